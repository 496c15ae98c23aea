"""Read labelled corpora into sentences of (word, tag) pairs.

Two formats are supported:

* the Kaggle "Annotated Corpus for NER" CSV (``Sentence #, Word, POS, Tag``),
  plain or zipped, Latin-1 as shipped;
* CoNLL-style text: one word per line, its tag in the last column (or the
  column ``tag_column`` names), blank lines between sentences.

Every word survives exactly as written: ``NaN``, ``null`` and ``NA`` are words,
not missing values, and a word is never cut: a line with more columns than the
file's first word line (a word holding the separator) is an error. Lines may
end in ``\\n``, ``\\r\\n`` or a lone ``\\r``; a byte-order mark is not a word.
With ``encoding='auto'`` the file is read as UTF-8 when it is valid UTF-8, else
as Latin-1 (the Kaggle file as shipped); a UTF-16 byte-order mark selects
UTF-16. Compressed or binary files are refused as such. Any problem is raised
as a :class:`CorpusError` whose message is one line: ``<file>:<line>: <problem>``.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import logging
import re
import zipfile
from array import array
from pathlib import Path

KAGGLE_COLUMNS = ("Sentence #", "Word", "Tag")
BIO_PREFIXES = ("B-", "I-")
OUTSIDE = "O"
FALLBACK_ENCODING = "latin-1"  # what encoding 'auto' reads a file that is not valid UTF-8 as
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
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # not str.splitlines(): \x85 and \u2028 are words here

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
    return raw[:position].count(b"\n") + 1


def _check_encoding(encoding: str, path: Path) -> str:
    if encoding == "auto":
        return encoding
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise CorpusError(
            f"{path}: unknown encoding {encoding!r} (prepare.encoding: auto, utf-8, latin-1, cp1252, ...)"
        ) from None


def _decode(raw: bytes, name: str, encoding: str) -> str:
    """The text of ``raw``: refuses compressed and binary data, strips a byte-order mark."""
    for magic, what in NOT_TEXT:
        if raw.startswith(magic):
            raise _fail(name, None, f"not a text file: {what}")
    utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
    if encoding == "auto":
        if utf16:
            encoding = "utf-16"
        else:
            try:
                encoding = "utf-8"
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                log.info("%s:%d: not valid UTF-8, read as %s", name, _line_of(raw, error.start), FALLBACK_ENCODING)
                encoding = FALLBACK_ENCODING
    elif utf16 and not encoding.startswith("utf-16"):
        raise _fail(
            name,
            1,
            f"UTF-16 text (byte-order mark) read as {encoding}: set the encoding to "
            "utf-16 or auto, or convert it (iconv -f UTF-16 -t UTF-8)",
        )
    if not encoding.startswith(("utf-16", "utf-32")) and b"\x00" in raw:
        raise _fail(name, _line_of(raw, raw.index(b"\x00")), "not a text file: binary data (NUL byte)")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = _line_of(raw, error.start)
        raise _fail(
            name,
            line,
            f"not valid {encoding} (byte 0x{raw[error.start]:02x}); "
            "set the corpus encoding (auto, utf-8, latin-1, ...)",
        ) from None
    if "\x00" in text:
        raise _fail(name, text[: text.index("\x00")].count("\n") + 1, "not a text file: NUL character")
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
    """Read the Kaggle GMB CSV; ``Sentence #`` is set only on a sentence's first row.

    The word and tag columns default to ``Word`` and ``Tag``; give a header name
    or a 0-based index to read others.
    """
    path = Path(path)
    text, name = _open_text(path, encoding)
    if not text.strip():
        raise _fail(name, 1, "empty file")
    reader = csv.reader(io.StringIO(text, newline=""))
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
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != width:
            raise _fail(
                name, line, f"expected {width} fields, found {len(row)} (a word with an unquoted comma or quote?)"
            )
        if row[sid_col].strip():
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


def read_conll(path: str | Path, encoding: str = "utf-8", word_column: int = 0, tag_column: int = -1) -> Corpus:
    """Read CoNLL-style text: ``word [other columns] tag`` per line, blank line between sentences.

    The column separator is a tab if the first word line holds one, else runs of
    spaces; a file that mixes the two is refused, and so is a line whose column
    count differs from the first word line's (a word holding the separator would
    otherwise be cut). ``-DOCSTART-`` lines are skipped and end a sentence.
    """
    path = Path(path)
    text, name = _open_text(path, encoding)
    if not text.strip():
        raise _fail(name, 1, "empty file")
    separator, width, width_line = None, 0, 0
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

    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not line.strip():
            end_sentence()
            continue
        if line.startswith("-DOCSTART-"):
            end_sentence()
            continue
        if separator is None:
            separator = "\t" if "\t" in line else " "
        if separator == "\t":
            if "\t" not in line and " " in line.strip():
                raise _fail(name, number, "mixed tab and space separators (this line uses spaces)")
            columns = line.split("\t")
        else:
            if "\t" in line:
                raise _fail(name, number, "mixed tab and space separators (this line uses a tab)")
            columns = [c for c in line.split(" ") if c]  # str.split() would also break at \x85
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
        raise _fail(name, None, "no sentences")
    return Corpus(words, tags, name, first_lines, word_lines)


def read_corpus(
    path: str | Path,
    fmt: str = "auto",
    encoding: str = "auto",
    word_column: int | str | None = None,
    tag_column: int | str | None = None,
) -> Corpus:
    """Read a corpus in ``fmt`` ('kaggle', 'conll' or 'auto': by extension, .csv/.zip is Kaggle).

    ``encoding`` 'auto' reads UTF-8, else Latin-1 (a UTF-16 byte-order mark: UTF-16).
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
