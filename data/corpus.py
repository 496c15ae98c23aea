"""Read labelled corpora into sentences of (word, tag) pairs.

Two formats are supported:

* the Kaggle "Annotated Corpus for NER" CSV (``Sentence #, Word, POS, Tag``),
  plain or zipped, Latin-1 by default;
* CoNLL-style text: one word per line, its tag in the last column, blank lines
  between sentences.

Every word survives exactly as written: ``NaN``, ``null`` and ``NA`` are words,
not missing values. Any problem is raised as a :class:`CorpusError` whose
message is one line: ``<file>:<line>: <problem>``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import zipfile
from pathlib import Path

KAGGLE_COLUMNS = ("Sentence #", "Word", "Tag")
BIO_PREFIXES = ("B-", "I-")
OUTSIDE = "O"


class CorpusError(ValueError):
    """A corpus file that cannot be read; the message names file, line and problem."""


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Sentences of words and their tags, both as written in the source file."""

    words: list[list[str]]
    tags: list[list[str]]
    source: str
    first_lines: list[int] = dataclasses.field(default_factory=list)  # line of each sentence's first word

    def __post_init__(self):
        assert len(self.words) == len(self.tags)
        assert not self.first_lines or len(self.first_lines) == len(self.words)

    def location(self, sentence: int) -> str:
        """``file:line`` of a sentence's first word (``file`` alone when lines are unknown)."""
        return f"{self.source}:{self.first_lines[sentence]}" if self.first_lines else self.source

    @property
    def num_sentences(self) -> int:
        return len(self.words)

    @property
    def num_words(self) -> int:
        return sum(len(s) for s in self.words)


def _fail(path, line, problem) -> CorpusError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return CorpusError(f"{where}: {problem}")


def _open_text(path: Path, encoding: str) -> tuple[str, str]:
    """Return (text, display name) of a plain file or of the single data file in a zip."""
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
        except (zipfile.BadZipFile, EOFError, OSError) as error:
            raise _fail(path, None, f"unreadable zip ({error})") from None
    else:
        raw = path.read_bytes()
        name = str(path)
    try:
        return raw.decode(encoding), name
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise _fail(name, line, f"not valid {encoding} (byte 0x{raw[error.start]:02x}); "
                                "set the corpus encoding, e.g. latin-1") from None


def read_kaggle_csv(path: str | Path, encoding: str = "latin-1") -> Corpus:
    """Read the Kaggle GMB CSV; ``Sentence #`` is set only on a sentence's first row."""
    path = Path(path)
    text, name = _open_text(path, encoding)
    if not text.strip():
        raise _fail(name, 1, "empty file")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    missing = [c for c in KAGGLE_COLUMNS if c not in header]
    if missing:
        raise _fail(name, 1, f"missing column(s) {', '.join(missing)}; found {', '.join(header)}")
    sid_col, word_col, tag_col = (header.index(c) for c in KAGGLE_COLUMNS)
    width = len(header)
    words: list[list[str]] = []
    tags: list[list[str]] = []
    first_lines: list[int] = []
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != width:
            raise _fail(name, line, f"expected {width} fields, found {len(row)}")
        if row[sid_col].strip():
            words.append([])
            tags.append([])
            first_lines.append(line)
        elif not words:
            raise _fail(name, line, "first row has no 'Sentence #'")
        word, tag = row[word_col], row[tag_col].strip()
        if word == "":
            raise _fail(name, line, "empty word")
        if tag == "":
            raise _fail(name, line, f"word {word!r} has no tag")
        words[-1].append(word)
        tags[-1].append(tag)
    if not words:
        raise _fail(name, 2, "no sentences after the header")
    return Corpus(words, tags, name, first_lines)


def read_conll(path: str | Path, encoding: str = "utf-8") -> Corpus:
    """Read CoNLL-style text: ``word [other columns] tag`` per line, blank line between sentences.

    The column separator is a tab if the first word line holds one, else a space;
    a file that mixes the two is refused. ``-DOCSTART-`` lines are skipped.
    """
    path = Path(path)
    text, name = _open_text(path, encoding)
    if not text.strip():
        raise _fail(name, 1, "empty file")
    separator = None
    words: list[list[str]] = [[]]
    tags: list[list[str]] = [[]]
    first_lines: list[int] = []
    # Split on "\n" only: str.splitlines() also breaks at \x85 and \u2028, which are words here.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if words[-1]:
                words.append([])
                tags.append([])
            continue
        if line.startswith("-DOCSTART-"):
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
        if not words[-1]:
            first_lines.append(number)
        words[-1].append(columns[0])
        tags[-1].append(columns[-1].strip())
    if not words[-1]:
        words.pop()
        tags.pop()
    if not words:
        raise _fail(name, None, "no sentences")
    return Corpus(words, tags, name, first_lines)


def read_corpus(path: str | Path, fmt: str = "auto", encoding: str = "auto") -> Corpus:
    """Read a corpus in ``fmt`` ('kaggle', 'conll' or 'auto': by extension, .csv/.zip is Kaggle)."""
    path = Path(path)
    if fmt == "auto":
        fmt = "kaggle" if path.suffix.lower() in (".csv", ".zip") else "conll"
    if fmt == "kaggle":
        return read_kaggle_csv(path, "latin-1" if encoding == "auto" else encoding)
    if fmt == "conll":
        return read_conll(path, "utf-8" if encoding == "auto" else encoding)
    raise CorpusError(f"{path}: unknown corpus format {fmt!r} (use kaggle, conll or auto)")
