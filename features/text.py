"""Raw text -> words: the word tokenizer for unlabelled text and for tagging new text.

A line is one sentence. It is split at whitespace (every character for which
``str.isspace()`` is true), and each whitespace-free run is cut into tokens
from left to right, taking at each position the first of these rules that
matches (``W`` is a word character: a letter or digit, ``str.isalnum()``, or a
combining mark, Unicode category M):

1. a number with inner separators: digits, then one or more groups of one of
   ``. , : /`` followed by digits: ``12,000``, ``3.5``, ``10:30``, ``24/7``;
2. an abbreviation: two or more letter-period pairs: ``U.S.``, ``e.g.``;
3. a clitic that ends a word: ``'s 're 've 'll 'd 'm n't`` (any case, ``'``
   or ``’``): ``John's`` -> ``John 's``, ``don't`` -> ``do n't``;
4. a word: a run of ``W``, joined across inner hyphens and inner apostrophes
   that do not start a clitic: ``anti-war``, ``O'Brien``, ``COVID-19``, ``5pm``;
5. a run of one repeated ``. ! ? -``: ``...``, ``!!``, ``--``;
6. any other character that is not a letter, digit or underscore, with the
   combining marks after it and emoji joined by zero-width joiners: ``,``,
   ``$``, ``(``, ``❤️``;
7. any other single character (``_``, a stray zero-width joiner).

So the tokens of a line, joined, are exactly its non-whitespace characters:
nothing is dropped and no token is empty. The split follows the GMB corpus
where the rules can (``'s`` and punctuation apart; ``U.S.``, ``12,000`` and
hyphenated words whole). Titles such as ``Mr.`` come out as ``Mr .``.

Text files are read as bytes and decoded line by line, so a bad byte is
reported with its file and line, and a file of any size is streamed.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import re
import sys
import unicodedata
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from data.corpus import NOT_TEXT
from data.prepared_io import words_sha256

_CLITIC_TAIL = r"(?i:s|re|ve|ll|d|m)"
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_NEGATION = r"(?i:n['’]t)"


class TextError(ValueError):
    """Unreadable text; the message is one line: ``<file>:<line>: <problem>``."""


@functools.cache
def _marks_class() -> str:
    """The code points of Unicode category M (combining marks) as a regex class body."""
    ranges, start, previous = [], None, None
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)).startswith("M"):
            if start is None:
                start = code
            previous = code
        elif start is not None:
            ranges.append((start, previous))
            start = None
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


@functools.cache
def _token_pattern() -> re.Pattern:
    marks = _marks_class()
    word_char = rf"(?:[^\W_]|[{marks}])"
    not_word = rf"(?!{word_char})"
    rules = [
        r"\d+(?:[.,:/]\d+)+",  # 1 number
        r"(?:[^\W\d_]\.){2,}",  # 2 abbreviation
        rf"['’]{_CLITIC_TAIL}{not_word}|{_NEGATION}{not_word}",  # 3 clitic
        rf"{word_char}+?(?={_NEGATION}{not_word})",  # 4a word before n't
        rf"{word_char}+(?:(?:-|['’](?!{_CLITIC_TAIL}{not_word})){word_char}+)*",  # 4 word
        r"(?P<repeat>[.!?\-])(?P=repeat)+",  # 5 repeated punctuation
        rf"[^\w\s][{marks}]*(?:\u200d[^\w\s][{marks}]*)*",  # 6 symbol
        r"\S",  # 7 anything else
    ]
    return re.compile("|".join(f"(?:{rule})" for rule in rules))


def token_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the tokens of ``line``; see the module docstring."""
    return [match.span() for match in _token_pattern().finditer(line)]


def tokenize_line(line: str) -> list[str]:
    """The words of one line of raw text; see the module docstring for the exact rule."""
    return [match.group() for match in _token_pattern().finditer(line)]


def check_encoding(encoding: str, source: str = "") -> str:
    """The codec's canonical name; refuse codecs whose newline is not the byte 0x0a (UTF-16/32).

    ``source`` (a file, or the option that names the encoding) starts the error message.
    """
    where = f"{source}: " if source else ""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise TextError(f"{where}unknown text encoding {encoding!r}") from None
    if "\n".encode(name) != b"\n" or "\r".encode(name) != b"\r":
        raise TextError(
            f"{where}encoding {encoding!r} is not read line by line here; convert the file "
            f"to UTF-8 first (iconv -f {encoding} -t UTF-8)"
        )
    return name


def raw_lines(handle: BinaryIO, block_size: int = 1 << 16) -> Iterator[bytes]:
    """The lines of a binary handle, each with its line break: ``\n``, ``\r\n`` or a lone ``\r``."""
    read = getattr(handle, "read1", handle.read)  # read1: a pipe yields what it has, without waiting
    pending = b""
    while block := read(block_size):
        data, start = pending + block, 0
        for match in _LINE_BREAK.finditer(data):
            if match.end() == len(data) and data.endswith(b"\r"):
                break  # a \r at the end of a block may be the first half of \r\n
            yield data[start : match.end()]
            start = match.end()
        pending = data[start:]
    if pending:
        yield pending


def decode_lines(handle: BinaryIO, name: str, encoding: str, first_number: int = 1) -> Iterator[tuple[int, int, str]]:
    """(line number, byte offset, text without its line break) of every line of ``handle``.

    ``first_number`` is the line number of the handle's current position (after a seek).
    Lines end at ``\n``, ``\r\n`` or a lone ``\r`` (old Mac files).

    Raises TextError naming ``name`` and the line on a compressed or binary file
    (a NUL byte: binary data, or UTF-16 read as UTF-8), or on a byte the
    encoding cannot decode.
    """
    offset = handle.tell() if handle.seekable() else 0  # a pipe has no position: count from 0
    for number, raw in enumerate(raw_lines(handle), start=first_number):
        start, offset = offset, offset + len(raw)
        if number == 1:
            for magic, what in NOT_TEXT:
                if raw.startswith(magic):
                    raise TextError(f"{name}:1: not a text file: {what}")
        if b"\x00" in raw:
            raise TextError(f"{name}:{number}: NUL byte: not {encoding} text (UTF-16? binary?)")
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise TextError(
                f"{name}:{number}: not valid {encoding} (byte 0x{raw[error.start]:02x} at "
                f"column {error.start + 1}); set the text encoding, e.g. latin-1"
            ) from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]  # a byte-order mark is not a word
        yield number, start, text.rstrip("\r\n")  # only the line break: \x85 and \u2028 are words


def read_sentences(lines: Iterable[str]) -> Iterator[tuple[int, str, list[tuple[int, int]]]]:
    """(1-based line number, line, token spans) of every line that holds a word.

    Blank lines hold no word and are skipped; the numbers say how many lines were read.
    """
    for number, line in enumerate(lines, start=1):
        spans = token_spans(line)
        if spans:
            yield number, line, spans


@dataclasses.dataclass(frozen=True)
class TextScan:
    """What a first pass over a text file learns, without keeping its text.

    Sentence s is the s-th line that holds a word. ``seek[c]`` is the byte
    offset and line number of the first line of sentence chunk c (chunks of
    ``chunk_sentences``), so a second pass reads any chunk directly.
    """

    path: Path
    encoding: str
    chunk_sentences: int
    lengths: np.ndarray  # (S,) int32 words per sentence
    seek: np.ndarray  # (chunks, 2) int64 byte offset, line number
    lines: int  # lines in the file, blank ones included
    blank_lines: int  # lines without a word (skipped: nothing to encode)
    words_sha256: str  # data.prepared_io.words_sha256 of the sentences

    @property
    def num_sentences(self) -> int:
        return len(self.lengths)

    @property
    def num_words(self) -> int:
        return int(self.lengths.sum(dtype=np.int64))

    @property
    def offsets(self) -> np.ndarray:
        """Word-row offsets (S+1,) int64, as in the feature cache."""
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])


def scan_text(path: str | Path, encoding: str = "utf-8", chunk_sentences: int = 2048) -> TextScan:
    """First pass over a text file, one sentence per line: counts words, stores no text.

    Raises TextError (one line, with file and line) on an undecodable line and
    on a file without a single word.
    """
    path = Path(path)
    encoding = check_encoding(encoding, str(path))
    if path.is_dir():
        raise TextError(f"{path}: is a directory; expected a text file, one sentence per line")
    if not path.is_file():
        raise TextError(f"{path}: no such file")
    lengths = array("i")
    seek: list[tuple[int, int]] = []
    counts = {"lines": 0}

    def sentences():
        with open(path, "rb") as handle:
            for number, offset, line in decode_lines(handle, str(path), encoding):
                counts["lines"] = number
                words = tokenize_line(line)
                if not words:
                    continue
                if len(lengths) % chunk_sentences == 0:
                    seek.append((offset, number))
                lengths.append(len(words))
                yield words

    digest = words_sha256(sentences())
    if not lengths:
        raise TextError(
            f"{path}:{max(counts['lines'], 1)}: no text: the file is empty or blank (expected one sentence per line)"
        )
    return TextScan(
        path,
        encoding,
        chunk_sentences,
        np.frombuffer(lengths, dtype=np.int32).copy(),
        np.asarray(seek, dtype=np.int64).reshape(-1, 2),
        counts["lines"],
        counts["lines"] - len(lengths),
        digest,
    )


class TextSentences:
    """The sentences of a scanned text file, read from disk on each slice (a second pass).

    ``sentences[first:last]`` is a list of word lists; only those lines are
    read, starting from the chunk that holds ``first``. Features extraction
    slices it chunk by chunk, so memory stays flat whatever the file size.
    """

    def __init__(self, scan: TextScan):
        self.scan = scan

    def __len__(self) -> int:
        return self.scan.num_sentences

    def __getitem__(self, key: slice) -> list[list[str]]:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("TextSentences supports contiguous slices only")
        first, last, _ = key.indices(len(self))
        if first >= last:
            return []
        scan = self.scan
        chunk = first // scan.chunk_sentences
        offset, first_line = (int(v) for v in scan.seek[chunk])
        skip = first - chunk * scan.chunk_sentences
        sentences: list[list[str]] = []
        with open(scan.path, "rb") as handle:
            handle.seek(offset)
            for number, _, line in decode_lines(handle, str(scan.path), scan.encoding, first_line):
                words = tokenize_line(line)
                if not words:
                    continue
                if skip:
                    skip -= 1
                    continue
                index = first + len(sentences)
                if len(words) != scan.lengths[index]:
                    raise TextError(
                        f"{scan.path}:{number}: the file changed since it "
                        f"was scanned ({len(words)} words, the scan found {scan.lengths[index]})"
                    )
                sentences.append(words)
                if len(sentences) == last - first:
                    return sentences
        raise TextError(f"{scan.path}: the file changed since it was scanned (it ends early)")
