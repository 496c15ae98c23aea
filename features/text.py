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
7. any other single character (``_``).

Invisible format characters (Unicode category Cf: soft hyphen, zero-width
space, word joiner, zero-width (non-)joiner, direction marks, a byte-order mark
inside a line, ...) never split a word: the rules above see the line without
them, and each is kept inside the token it touches: a run of them right after
a token's characters belongs to that token, one after whitespace or the line's
start to the token that follows it (``Zür\u00adich`` is one word, soft hyphen
included, and its span covers it). Only a run that touches no token (between
whitespace or the line's ends) is dropped: it would be a word nobody can see.
The exception is a zero-width joiner between two symbols, which joins them as
rule 6 says (emoji sequences such as ``👨\u200d👩\u200d👧``). Kept inside a
word, the characters reach the encoder, whose tokenizer drops them (BERT's
normalizer removes category C), so the word's pieces are those of the
visible word.

So the tokens of a line, joined, are exactly its non-whitespace characters,
less the format characters that touch no token: no token is empty, none is
invisible. The split follows the GMB corpus
where the rules can (``'s`` and punctuation apart; ``U.S.``, ``12,000`` and
hyphenated words whole). Titles such as ``Mr.`` come out as ``Mr .``.

Text files are read as bytes and decoded line by line, so a bad byte is
reported with its file, line and byte offset, and a file of any size is
streamed. A line break is a ``\\n`` with the run of ``\\r`` just before it
(``\\n``, ``\\r\\n``, ``\\r\\r\\n``) or a lone ``\\r``, as for corpora
(``data.corpus``), so line numbers agree with an editor's.
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

from data.corpus import BYTE_ORDER_MARKS, NOT_TEXT, wide_encoding
from data.prepared_io import words_sha256

_CLITIC_TAIL = r"(?i:s|re|ve|ll|d|m)"
_LINE_BREAK = re.compile(rb"\r*\n|\r")  # data.corpus's rule: \r\r\n is one line break
_ZERO_WIDTH_JOINER = "\u200d"
_NEGATION = r"(?i:n['’]t)"


class TextError(ValueError):
    """Unreadable text; the message is one line: ``<file>:<line>: <problem>``."""


@functools.cache
def _category_classes() -> dict[str, str]:
    """Regex class bodies of the code points of Unicode categories M (combining marks) and Cf (format).

    One pass over every code point serves both (it is the slow part of the first call).
    """
    ranges: dict[str, list[tuple[int, int]]] = {"M": [], "Cf": []}
    current, start = None, 0
    for code in range(sys.maxunicode + 2):
        category = unicodedata.category(chr(code)) if code <= sys.maxunicode else ""
        kind = "M" if category.startswith("M") else "Cf" if category == "Cf" else None
        if kind != current:
            if current is not None:
                ranges[current].append((start, code - 1))
            current, start = kind, code

    def body(spans):
        return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in spans)

    return {kind: body(spans) for kind, spans in ranges.items()}


def _marks_class() -> str:
    """The code points of Unicode category M (combining marks) as a regex class body."""
    return _category_classes()["M"]


def _format_class() -> str:
    """The code points of Unicode category Cf (invisible format characters) as a regex class body."""
    return _category_classes()["Cf"]


@functools.cache
def _format_pattern() -> re.Pattern:
    """One invisible format character (Unicode category Cf)."""
    return re.compile(f"[{_format_class()}]")


@functools.cache
def _symbol_pattern() -> re.Pattern:
    """One character that starts a rule-6 symbol: not a letter, digit, underscore, space, mark or format character."""
    return re.compile(rf"[^\w\s{_marks_class()}{_format_class()}]")


def _is_mark(character: str) -> bool:
    return unicodedata.category(character).startswith("M")


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


def _joins_symbols(line: str, position: int, hidden: list[bool]) -> bool:
    """Whether the zero-width joiner at ``position`` stands between two symbols (an emoji sequence)."""
    before = position - 1
    while before >= 0 and (hidden[before] or _is_mark(line[before])):
        before -= 1
    after = position + 1
    while after < len(line) and hidden[after]:
        after += 1
    symbol = _symbol_pattern().fullmatch
    return before >= 0 and after < len(line) and bool(symbol(line[before])) and bool(symbol(line[after]))


def _spans_ignoring_format(line: str) -> list[tuple[int, int]]:
    """token_spans of a line holding format characters: the rules read the visible characters only."""
    hidden = [bool(_format_pattern().fullmatch(c)) for c in line]
    for position, character in enumerate(line):
        if character == _ZERO_WIDTH_JOINER and _joins_symbols(line, position, hidden):
            hidden[position] = False
    shown = [position for position, is_hidden in enumerate(hidden) if not is_hidden]  # visible -> line index
    visible = "".join(line[position] for position in shown)
    spans = []
    for match in _token_pattern().finditer(visible):
        start, end = shown[match.start()], shown[match.end() - 1] + 1
        while end < len(line) and hidden[end]:
            end += 1  # a run right after the token's characters belongs to it
        before = start
        while before > 0 and hidden[before - 1]:
            before -= 1
        if before == 0 or line[before - 1].isspace():
            start = before  # a run after whitespace (or the line's start) belongs to the token that follows
        spans.append((start, end))
    return spans


def token_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the tokens of ``line``; see the module docstring."""
    if _format_pattern().search(line):
        return _spans_ignoring_format(line)
    return [match.span() for match in _token_pattern().finditer(line)]


def tokenize_line(line: str) -> list[str]:
    """The words of one line of raw text; see the module docstring for the exact rule.

    Invisible format characters (category Cf) are kept inside the word they touch, never split it.
    """
    return [line[start:end] for start, end in token_spans(line)]


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
    """The lines of a binary handle, each with its line break (module docstring: ``\\r\\r\\n`` is one)."""
    read = getattr(handle, "read1", handle.read)  # read1: a pipe yields what it has, without waiting
    pending = b""
    while block := read(block_size):
        data, start = pending + block, 0
        # A run of \r at the end of a block may belong to a \r...\r\n that the next block completes.
        settled = len(data.rstrip(b"\r"))
        for match in _LINE_BREAK.finditer(data):
            if match.start() >= settled:
                break
            yield data[start : match.end()]
            start = match.end()
        pending = data[start:]
    start = 0
    for match in _LINE_BREAK.finditer(pending):  # at the end of the input a run of \r is settled
        yield pending[start : match.end()]
        start = match.end()
    if start < len(pending):
        yield pending[start:]


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
            marked = next((codec for mark, codec in BYTE_ORDER_MARKS if raw.startswith(mark)), None)
            if marked:
                raise TextError(
                    f"{name}:1: {marked.upper()} text (byte-order mark), read line by line as {encoding} here: "
                    f"convert it first (iconv -f {marked.upper()} -t UTF-8)"
                )
        if b"\x00" in raw:
            wide = wide_encoding(raw)
            if wide:
                raise TextError(
                    f"{name}:{number}: NUL bytes as in {wide} text without a byte-order mark, read line by line as "
                    f"{encoding} here: convert it first (iconv -f {''.join(wide.rsplit('-', 1))} -t UTF-8)"
                )
            raise TextError(f"{name}:{number}: NUL byte: not {encoding} text (binary?)")
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise TextError(
                f"{name}:{number}: not valid {encoding} (byte 0x{raw[error.start]:02x} at "
                f"column {error.start + 1}, byte offset {start + error.start}); set the text encoding, e.g. latin-1"
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
