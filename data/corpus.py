"""Read labelled corpora into sentences of (word, tag) pairs.

Two formats are supported:

* the Kaggle "Annotated Corpus for NER" CSV (``Sentence #, Word, POS, Tag``),
  plain or zipped, Latin-1 as shipped. ``Sentence #`` may be set on a
  sentence's first row only (the file as shipped) or repeated on every row
  (pandas' forward-filled export): a new id starts a sentence, an empty or
  repeated one continues it, and an id seen earlier in the file is refused
  (the rows of a sentence must be contiguous);
* CoNLL-style text: one word per line, its tag in the last column (or the
  column ``tag_column`` names), blank lines between sentences. Lines starting
  with ``#`` before a sentence's first word are comments when they read as
  CoNLL-U metadata (``# sent_id = 1``) or are not shaped like the file's word
  lines; ``#Porto<TAB>B-city`` is a word.

Every word survives exactly as written: ``NaN``, ``null`` and ``NA`` are words,
not missing values, and a word is never cut: a line with more columns than the
file's first word line (a word holding the separator) is an error. A line
break is a ``\\n`` together with the run of ``\\r`` just before it (``\\n``,
``\\r\\n``, ``\\r\\r\\n``: one break each), or a ``\\r`` outside such a run (old
Mac files, where ``\\r\\r`` is a blank line); so a file with any mix of these
endings keeps its sentences. A byte-order mark is not a word.

``encoding='auto'``: a UTF-16 or UTF-32 byte-order mark selects that encoding;
otherwise the file is UTF-8 when it is valid UTF-8; when it is not, it is read
as Latin-1 only if it holds no well-formed multi-byte UTF-8 sequence at all
(then no UTF-8 character can be garbled: the Kaggle file as shipped), and
otherwise refused at its first invalid byte, with line and byte offset (see
docs/own-data.md). Compressed or binary files are refused as such. Any problem
is raised as a :class:`CorpusError` whose message is one line:
``<file>:<line>: <problem>``.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import logging
import re
import zipfile
from array import array
from pathlib import Path

KAGGLE_COLUMNS = ("Sentence #", "Word", "Tag")
BIO_PREFIXES = ("B-", "I-")
OUTSIDE = "O"
FALLBACK_ENCODING = "latin-1"  # what encoding 'auto' reads a file with no UTF-8 in it as (every byte is a character)
# Leading bytes of files that are not text: refused with their name, not as "missing tag".
NOT_TEXT = (
    (b"\x1f\x8b", "gzip-compressed (decompress it first: gunzip)"),
    (b"BZh", "bzip2-compressed (decompress it first: bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed (decompress it first: unxz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed (decompress it first: unzstd)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive (extract it first)"),
    (b"Rar!\x1a\x07", "a RAR archive (extract it first)"),
    (b"PK\x03\x04", "a zip archive (name it .zip, or unzip it)"),
    (b"\x89HDF", "an HDF5 file, not a corpus"),
    (b"%PDF", "a PDF document, not a corpus"),
)
# Byte-order marks and the codec each selects; UTF-32-LE's mark starts with UTF-16-LE's, so it comes first.
BYTE_ORDER_MARKS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# One line break: a \n with the \r's just before it (\r\r\n is one break: a CRLF file converted twice), or a
# lone \r (old Mac files). Not str.splitlines(): \x85 and \u2028 are words here.
_LINE_BREAK = re.compile(r"\r*\n|\r")
_RAW_LINE_BREAK = re.compile(rb"\r*\n|\r")
# CoNLL-U's sentence metadata: "# sent_id = 1", "# text = ...", "# newdoc id = d1", "# newpar", "# global.columns = ..."
_CONLLU_METADATA = re.compile(r"# (?:(?:newdoc|newpar)\b|[\w.-]+ ?=(?: |$))")  # "# " then: no word is "#newpar"
# A well-formed multi-byte UTF-8 sequence (the Unicode standard's table 3-7).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """A corpus file that cannot be read; the message names file, line and problem."""


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Sentences of words and their tags, both as written in the source file."""

    words: list[list[str]]
    tags: list[list[str]]
    source: str
    first_lines: list[int] = dataclasses.field(default_factory=list)  # line of each sentence's first word
    word_lines: list[array] = dataclasses.field(default_factory=list)  # line of every word, per sentence

    def __post_init__(self):
        assert len(self.words) == len(self.tags)
        assert not self.first_lines or len(self.first_lines) == len(self.words)
        assert not self.word_lines or len(self.word_lines) == len(self.words)

    def location(self, sentence: int, word: int | None = None) -> str:
        """``file:line`` of a word (of a sentence's first word when ``word`` is None)."""
        if word is not None and self.word_lines:
            return f"{self.source}:{self.word_lines[sentence][word]}"
        if self.first_lines:
            return f"{self.source}:{self.first_lines[sentence]}"
        return f"{self.source}: sentence {sentence + 1}" + (f", word {word + 1}" if word is not None else "")

    @property
    def num_sentences(self) -> int:
        return len(self.words)

    @property
    def num_words(self) -> int:
        return sum(len(s) for s in self.words)


def _fail(path, line, problem) -> CorpusError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return CorpusError(f"{where}: {problem}")


def _line_of(raw: bytes, position: int) -> int:
    """The 1-based line of byte ``position``, with line breaks as the readers count them."""
    return len(_RAW_LINE_BREAK.findall(raw, 0, position)) + 1


def _lines_with_breaks(text: str) -> list[str]:
    """The lines of ``text``, each with its line break, by the readers' rule (module docstring)."""
    lines, start = [], 0
    for match in _LINE_BREAK.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def wide_encoding(raw: bytes) -> str | None:
    """'UTF-16-LE', 'UTF-32-BE', ... when NUL bytes fall as in that encoding's text without a byte-order mark.

    Looks at the first 4 KiB: UTF-32 puts a zero in two fixed bytes of every four, UTF-16 (mostly
    Latin-script text) in one fixed byte of most pairs. None when neither fits (binary data).
    """
    sample = raw[: 4096 - 4096 % 4]
    sample = sample[: len(sample) - len(sample) % 4]
    groups = len(sample) // 4
    if not groups:
        return None
    zeros = [sample[k::4].count(0) for k in range(4)]
    if zeros[3] == zeros[2] == groups and zeros[0] < groups:
        return "UTF-32-LE"
    if zeros[0] == zeros[1] == groups and zeros[3] < groups:
        return "UTF-32-BE"
    odd, even = zeros[1] + zeros[3], zeros[0] + zeros[2]
    if odd >= 1.5 * groups and even <= 0.25 * groups:
        return "UTF-16-LE"
    if even >= 1.5 * groups and odd <= 0.25 * groups:
        return "UTF-16-BE"
    return None


def _check_encoding(encoding: str, path: Path) -> str:
    if encoding == "auto":
        return encoding
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise CorpusError(
            f"{path}: unknown encoding {encoding!r} (prepare.encoding: auto, utf-8, latin-1, cp1252, ...)"
        ) from None


def _utf8_or_fallback(raw: bytes, name: str) -> str:
    """'utf-8' for valid UTF-8; the fallback for a file with no UTF-8 in it; else refuse at the first bad byte."""
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        bad = error.start
    utf8 = _UTF8_SEQUENCE.search(raw)
    if utf8 is None:
        log.info(
            "%s:%d: byte 0x%02x at byte offset %d is not UTF-8 and the file holds no UTF-8 character: read as %s",
            name,
            _line_of(raw, bad),
            raw[bad],
            bad,
            FALLBACK_ENCODING,
        )
        return FALLBACK_ENCODING
    character = utf8.group().decode("utf-8")
    raise _fail(
        name,
        _line_of(raw, bad),
        f"byte 0x{raw[bad]:02x} at byte offset {bad} is not valid UTF-8, but line {_line_of(raw, utf8.start())} "
        f"holds UTF-8 ({character!r} at byte offset {utf8.start()}), so the file is not read as "
        f"{FALLBACK_ENCODING} either: fix that byte, or set prepare.encoding (utf-8, latin-1, cp1252, ...)",
    )


def _decode(raw: bytes, name: str, encoding: str) -> str:
    """The text of ``raw``: refuses compressed and binary data, strips a byte-order mark."""
    for magic, what in NOT_TEXT:
        if raw.startswith(magic):
            raise _fail(name, None, f"not a text file: {what}")
    marked = next((codec for mark, codec in BYTE_ORDER_MARKS if raw.startswith(mark)), None)
    if encoding == "auto":
        encoding = marked or _utf8_or_fallback(raw, name)
    elif marked and not encoding.startswith(marked):
        raise _fail(
            name,
            1,
            f"{marked.upper()} text (byte-order mark) read as {encoding}: set the encoding to "
            f"{marked} or auto, or convert it (iconv -f {marked.upper()} -t UTF-8)",
        )
    if not encoding.startswith(("utf-16", "utf-32")) and b"\x00" in raw:
        wide = wide_encoding(raw)
        line = _line_of(raw, raw.index(b"\x00"))
        if wide:
            raise _fail(
                name,
                line,
                f"NUL bytes as in {wide} text without a byte-order mark: set the encoding to {wide.lower()}, "
                f"or convert it (iconv -f {''.join(wide.rsplit('-', 1))} -t UTF-8)",
            )
        raise _fail(name, line, "not a text file: binary data (NUL byte)")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise _fail(
            name,
            _line_of(raw, error.start),
            f"not valid {encoding} (byte 0x{raw[error.start]:02x} at byte offset {error.start}); "
            "set the corpus encoding (auto, utf-8, latin-1, ...)",
        ) from None
    if "\x00" in text:
        line = len(_LINE_BREAK.findall(text, 0, text.index("\x00"))) + 1
        raise _fail(name, line, "not a text file: NUL character")
    return text[1:] if text.startswith("\ufeff") else text


def _open_text(path: Path, encoding: str) -> tuple[str, str]:
    """Return (text, display name) of a plain file or of the single data file in a zip."""
    encoding = _check_encoding(encoding, path)
    if path.is_dir():
        raise _fail(path, None, "is a directory, not a corpus file")
    if not path.exists():
        raise _fail(path, None, "file not found")
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise _fail(path, None, f"zip must hold exactly one file, found {len(members)}")
                raw = archive.read(members[0])
                name = f"{path}!{members[0]}"
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as error:
            raise _fail(
                path, None, f"unreadable zip ({str(error).splitlines()[0] if str(error) else error!r})"
            ) from None
    else:
        raw = path.read_bytes()
        name = str(path)
    return _decode(raw, name, encoding), name


def _column(spec, header: list[str], what: str, name: str, line: int) -> int:
    """The index of column ``spec``: a header name (CSV) or an index (negative from the end)."""
    if isinstance(spec, str):
        if spec not in header:
            raise _fail(
                name, line, f"no column {spec!r} for the {what} (prepare.{what}_column); found {', '.join(header)}"
            )
        return header.index(spec)
    if not -len(header) <= spec < len(header):
        raise _fail(
            name,
            line,
            f"prepare.{what}_column is {spec}, but the line has {len(header)} columns (counted from 0; -1 is the last)",
        )
    return spec % len(header)


def read_kaggle_csv(
    path: str | Path,
    encoding: str = "latin-1",
    word_column: int | str | None = None,
    tag_column: int | str | None = None,
) -> Corpus:
    """Read the Kaggle GMB CSV: a row whose ``Sentence #`` is a new id starts a sentence.

    An empty ``Sentence #`` (the file as shipped) or the current sentence's id
    (a forward-filled export) continues the sentence; an id that an earlier
    sentence already used is refused, naming both lines. The word and tag
    columns default to ``Word`` and ``Tag``; give a header name or a 0-based
    index to read others.
    """
    path = Path(path)
    text, name = _open_text(path, encoding)
    if not text.strip():
        raise _fail(name, 1, "empty file")
    reader = csv.reader(_lines_with_breaks(text))  # the csv module's own line count would see \r\r\n as two
    header = next(reader)
    needed = [KAGGLE_COLUMNS[0]] + [c for c, spec in zip(KAGGLE_COLUMNS[1:], (word_column, tag_column)) if spec is None]
    missing = [c for c in needed if c not in header]
    if missing:
        raise _fail(name, 1, f"missing column(s) {', '.join(missing)}; found {', '.join(header)}")
    sid_col = header.index(KAGGLE_COLUMNS[0])
    word_col = _column("Word" if word_column is None else word_column, header, "word", name, 1)
    tag_col = _column("Tag" if tag_column is None else tag_column, header, "tag", name, 1)
    width = len(header)
    words: list[list[str]] = []
    tags: list[list[str]] = []
    first_lines: list[int] = []
    word_lines: list[array] = []
    id_lines: dict[str, int] = {}  # sentence id -> line of its sentence's first row
    current_id = None
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != width:
            raise _fail(
                name, line, f"expected {width} fields, found {len(row)} (a word with an unquoted comma or quote?)"
            )
        sentence_id = row[sid_col].strip()
        if sentence_id and sentence_id != current_id:
            if sentence_id in id_lines:
                raise _fail(
                    name,
                    line,
                    f"'Sentence #' {sentence_id!r} already started the sentence at line {id_lines[sentence_id]}: "
                    "a sentence's rows must be contiguous (was the file sorted or shuffled?)",
                )
            id_lines[sentence_id] = line
            current_id = sentence_id
            words.append([])
            tags.append([])
            first_lines.append(line)
            word_lines.append(array("l"))
        elif not words:
            raise _fail(name, line, "first row has no 'Sentence #'")
        word, tag = row[word_col], row[tag_col].strip()
        if word == "":
            raise _fail(name, line, "empty word")
        if tag == "":
            raise _fail(name, line, f"word {word!r} has no tag")
        words[-1].append(word)
        tags[-1].append(tag)
        word_lines[-1].append(line)
    if not words:
        raise _fail(name, 2, "no sentences after the header")
    return Corpus(words, tags, name, first_lines, word_lines)


def _columns(line: str, separator: str) -> list[str]:
    """The columns of a CoNLL line: split at each tab, or at runs of spaces."""
    if separator == "\t":
        return line.split("\t")
    return [c for c in line.split(" ") if c]  # str.split() would also break at \x85


def _is_word_line(line: str, separator: str, width: int) -> bool:
    """Whether ``line`` is shaped like the file's word lines: its separator only, and ``width`` columns."""
    if separator == "\t":
        return "\t" in line and len(line.split("\t")) == width
    return "\t" not in line and len(_columns(line, " ")) == width


def _is_comment(line: str, separator: str, width: int) -> bool:
    """Whether a ``#`` line before a sentence's first word is a comment (read_conll's docstring)."""
    return bool(_CONLLU_METADATA.match(line)) or not _is_word_line(line, separator, width)


def read_conll(path: str | Path, encoding: str = "utf-8", word_column: int = 0, tag_column: int = -1) -> Corpus:
    """Read CoNLL-style text: ``word [other columns] tag`` per line, blank line between sentences.

    The column separator is a tab if the first word line holds one, else runs of
    spaces; a file that mixes the two is refused, and so is a line whose column
    count differs from the first word line's (a word holding the separator would
    otherwise be cut). ``-DOCSTART-`` lines are skipped and end a sentence.

    A line starting with ``#`` before a sentence's first word (at the start,
    after a blank line, a ``-DOCSTART-`` or another comment) is a comment, and
    skipped, when it reads as CoNLL-U metadata (``# key = value``, ``# newdoc``,
    ``# newpar``) or is not shaped like a word line: the separator and number of
    columns of the file's first line that does not start with ``#`` (if every
    line does, of its first line that is not metadata). Otherwise it is a word
    (``#Porto<TAB>B-city``).
    A ``#`` line inside a sentence that is not shaped like a word line is refused.
    """
    path = Path(path)
    text, name = _open_text(path, encoding)
    if not text.strip():
        raise _fail(name, 1, "empty file")
    lines = _LINE_BREAK.split(text)
    content = [line for line in lines if line.strip() and not line.startswith("-DOCSTART-")]
    layout = next((line for line in content if not line.startswith("#")), None)  # the first word line
    if layout is None:  # every word starts with '#', or there is none
        layout = next((line for line in content if not _CONLLU_METADATA.match(line)), "")
    separator = "\t" if "\t" in layout else " "
    layout_width = len(_columns(layout, separator))
    width, width_line = 0, 0
    word_col = tag_col = 0
    words: list[list[str]] = [[]]
    tags: list[list[str]] = [[]]
    first_lines: list[int] = []
    word_lines: list[array] = [array("l")]

    def end_sentence():
        if words[-1]:
            words.append([])
            tags.append([])
            word_lines.append(array("l"))

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            end_sentence()
            continue
        if line.startswith("-DOCSTART-"):
            end_sentence()
            continue
        if line.startswith("#") and not words[-1] and _is_comment(line, separator, width or layout_width):
            continue
        if line.startswith("#") and not _is_word_line(line, separator, width or layout_width):
            raise _fail(
                name,
                number,
                "a '#' line inside a sentence, not shaped like a word line: comments go before a "
                "sentence's first word (after a blank line)",
            )
        if separator == "\t":
            if "\t" not in line and " " in line.strip():
                raise _fail(name, number, "mixed tab and space separators (this line uses spaces)")
        elif "\t" in line:
            raise _fail(name, number, "mixed tab and space separators (this line uses a tab)")
        columns = _columns(line, separator)
        if len(columns) < 2 or columns[-1].strip() == "":
            raise _fail(name, number, f"missing tag (expected 'word{separator!r}tag')")
        if not width:
            width, width_line = len(columns), number
            word_col = _column(word_column, columns, "word", name, number)
            tag_col = _column(tag_column, columns, "tag", name, number)
            if word_col == tag_col:
                raise _fail(name, number, f"the word and tag columns are both column {word_col}")
        elif len(columns) != width:
            holder = "a space (the file is space-separated)" if separator == " " else "a tab"
            raise _fail(
                name,
                number,
                f"{len(columns)} columns, but line {width_line} has {width}: "
                f"a word containing {holder}? Nothing is cut silently; fix the line",
            )
        word, tag = columns[word_col], columns[tag_col].strip()
        if word == "":
            raise _fail(name, number, "empty word")
        if tag == "":
            raise _fail(name, number, f"word {word!r} has no tag")
        if not words[-1]:
            first_lines.append(number)
        words[-1].append(word)
        tags[-1].append(tag)
        word_lines[-1].append(number)
    if not words[-1]:
        words.pop()
        tags.pop()
        word_lines.pop()
    if not words:
        raise _fail(
            name,
            None,
            "no sentences: every line is blank, -DOCSTART- or a '#' comment "
            "(a line starting with '#' before a sentence's first word)",
        )
    return Corpus(words, tags, name, first_lines, word_lines)


def read_corpus(
    path: str | Path,
    fmt: str = "auto",
    encoding: str = "auto",
    word_column: int | str | None = None,
    tag_column: int | str | None = None,
) -> Corpus:
    """Read a corpus in ``fmt`` ('kaggle', 'conll' or 'auto': by extension, .csv/.zip is Kaggle).

    ``encoding`` 'auto': a UTF-16/UTF-32 byte-order mark selects that; else UTF-8, or Latin-1
    for a file with no UTF-8 character in it (the module docstring has the rule).
    ``word_column``/``tag_column``: None for the format's default (CoNLL: first and
    last column; Kaggle: ``Word`` and ``Tag``), a 0-based index (negative counts
    from the end) or, for Kaggle, a header name.
    """
    path = Path(path)
    if fmt == "auto":
        fmt = "kaggle" if path.suffix.lower() in (".csv", ".zip") else "conll"
    if fmt == "kaggle":
        return read_kaggle_csv(path, encoding, word_column, tag_column)
    if fmt == "conll":
        for spec, what in ((word_column, "word"), (tag_column, "tag")):
            if spec is not None and not isinstance(spec, int):
                raise CorpusError(
                    f"{path}: prepare.{what}_column {spec!r}: a CoNLL file has no header; "
                    "give a column index (0 is the first, -1 the last)"
                )
        return read_conll(
            path, encoding, 0 if word_column is None else word_column, -1 if tag_column is None else tag_column
        )
    raise CorpusError(f"{path}: unknown corpus format {fmt!r} (use kaggle, conll or auto)")
