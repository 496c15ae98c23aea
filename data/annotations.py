"""The exchange with annotation tools: chosen sentences out, the annotators' labels back into the labelled file.

``write_exports`` writes one selection for Label Studio (``labelstudio.json`` and ``labelstudio.xml``), for
doccano (``doccano.jsonl``), as CoNLL to edit by hand (``selection.conll``) and, last, ``manifest.jsonl``: what
was exported, which the import checks against. ``read_annotations`` reads any of the three back;
``append_labelled`` adds the result to the labelled CoNLL file. Every check runs before anything is written,
and a refusal is an ``AnnotationError`` of one line naming the file, the task (or line) and the problem.

A sentence's text is its words joined by one space; an entity is a span of characters of that text, end
exclusive, which must start and end on word boundaries. Entities come from BIO tags as the heads read them
(``B-`` starts one, ``I-`` continues one of its category), so two adjacent entities of one category stay two.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

from data import doccano, labelstudio
from data.corpus import read_conll
from data.picks import Pick
from data.prepared_io import atomic_write_text
from data.split import has_sentences
from data.tags import category_of, is_bio_tag

FORMATS = ("auto", "labelstudio", "doccano", "conll")
MANIFEST = "manifest.jsonl"
Span = tuple[int, int, str]  # (start, end, category): character offsets into a sentence's text, end exclusive
Entity = tuple[int, int, str]  # (first word, end word, category): word indices, end exclusive


@dataclasses.dataclass(frozen=True)
class Annotated:
    """A sentence as the annotator labelled it: the exported words and their BIO tags."""

    key: str
    words: list[str]
    tags: list[str]


class AnnotationError(ValueError):
    """An export or an import refused: one line naming the file, the task (or line) and the problem."""


class Imported(NamedTuple):
    """What an annotation tool's export gave back."""

    annotated: list[Annotated]  # the answered sentences, in the file's order
    skipped: int  # tasks nobody answered (Label Studio: no annotation, or only cancelled ones)


def sentence_text(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence's text (words joined by one space) and each word's (start, end) in it."""
    offsets, start = [], 0
    for word in words:
        offsets.append((start, start + len(word)))
        start += len(word) + 1
    return " ".join(words), offsets


def bio_entities(tags: list[str]) -> list[Entity]:
    """The entities of BIO tags: ``B-`` starts one; ``I-`` continues the previous word's entity when that has
    its category, and otherwise (after ``O`` or another category) starts one."""
    entities: list[Entity] = []
    for index, tag in enumerate(tags):
        if tag == "O":
            continue
        category = category_of(tag)
        if tag.startswith("I-") and entities and entities[-1][1:] == (index, category):
            entities[-1] = (entities[-1][0], index + 1, category)
        else:
            entities.append((index, index + 1, category))
    return entities


def bio_tags(length: int, entities: list[Entity]) -> list[str]:
    """The BIO tags of a sentence of ``length`` words holding ``entities``: B- on each first word, I- after."""
    tags = ["O"] * length
    for first, end, category in entities:
        tags[first:end] = [f"B-{category}"] + [f"I-{category}"] * (end - first - 1)
    return tags


def char_spans(words: list[str], tags: list[str]) -> tuple[str, list[Span]]:
    """The sentence's text and the character span of each entity of its tags."""
    text, offsets = sentence_text(words)
    return text, [(offsets[first][0], offsets[end - 1][1], category) for first, end, category in bio_entities(tags)]


def conll_sentence(metadata: dict[str, str], words: list[str], tags: list[str]) -> str:
    """One CoNLL sentence: a ``# name = value`` line per metadata item, then ``word<TAB>tag`` lines."""
    comments = "".join(f"# {name} = {value}\n" for name, value in metadata.items())
    return comments + "".join(f"{word}\t{tag}\n" for word, tag in zip(words, tags))


def export_files(picks: list[Pick], categories: list[str], model_version: str, strategy: str) -> dict[str, str]:
    """The text of each export file by name (the module docstring lists them), picks in rank order."""
    _check_picks(picks, categories)
    tasks, lines, sentences, manifest = [], [], [], []
    for pick in sorted(picks, key=lambda pick: pick.rank):
        text, spans = char_spans(pick.words, pick.tags)
        confidences = [sum(pick.confidence[first:end]) / (end - first) for first, end, _ in bio_entities(pick.tags)]
        entities = [(*span, float(confidence)) for span, confidence in zip(spans, confidences)]
        tasks.append(labelstudio.task(pick, text, entities, float(1 - pick.rank / len(picks)), model_version))
        lines.append(doccano.record(pick, text, spans))
        tags = bio_tags(len(pick.words), bio_entities(pick.tags))
        sentences.append(conll_sentence({"sent_id": pick.key, "text": text}, pick.words, tags))
        manifest.append({"sentence": pick.key, "words": pick.words, "text": text, "strategy": strategy})
    return {
        "labelstudio.json": "[\n" + ",\n".join(json.dumps(task, ensure_ascii=False) for task in tasks) + "\n]\n",
        "labelstudio.xml": labelstudio.labelling_config(categories),
        "doccano.jsonl": "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
        "selection.conll": "\n".join(sentences),
        MANIFEST: "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in manifest),
    }


def write_exports(picks: list[Pick], categories: list[str], out_dir, model_version: str, strategy: str) -> None:
    """Write the export files into ``out_dir``, each atomically; the manifest last, so that its presence
    marks a complete export (an old one is removed first: an interrupted export must not look complete)."""
    files = export_files(picks, categories, model_version, strategy)
    out_dir = Path(out_dir)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    manifest = files.pop(MANIFEST)
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
    atomic_write_text(out_dir / MANIFEST, manifest)


def _check_picks(picks: list[Pick], categories: list[str]) -> None:
    """Refuse picks that would export wrongly: ranks not 0..N-1, a key twice, words, tags and confidences
    of different lengths, an empty word or one holding whitespace, a tag of no known category."""
    if sorted(pick.rank for pick in picks) != list(range(len(picks))):
        raise AnnotationError(f"the picks' ranks are not 0..{len(picks) - 1}, each once")
    labels, keys = set(categories) - {"O"}, set()
    for pick in picks:
        if pick.key in keys:
            raise AnnotationError(f"pick {pick.key}: chosen twice")
        keys.add(pick.key)
        if not pick.words or not len(pick.words) == len(pick.tags) == len(pick.confidence):
            raise AnnotationError(f"pick {pick.key}: no words, or not one tag and one confidence per word")
        if not all(word and not any(c.isspace() for c in word) for word in pick.words):
            raise AnnotationError(f"pick {pick.key}: a word is empty or holds whitespace")
        unknown = [tag for tag in pick.tags if not is_bio_tag(tag) or (tag != "O" and tag[2:] not in labels)]
        if unknown:
            raise AnnotationError(f"pick {pick.key}: tag {unknown[0]!r} is not O or B-/I- of {sorted(labels)}")


def read_annotations(path, manifest_path, categories: list[str], fmt: str = "auto") -> Imported:
    """The annotated sentences of an export (``fmt``: labelstudio, doccano, conll, or auto: a JSON list is
    Label Studio's, JSON lines doccano's, anything else CoNLL), each checked against the manifest."""
    if fmt not in FORMATS:
        raise AnnotationError(f"{path}: unknown format {fmt!r} (use {', '.join(FORMATS)})")
    exported = read_manifest(manifest_path)
    records, skipped = _records(str(path), _read_text(Path(path)), fmt)
    labels, seen, annotated = set(categories) - {"O"}, {}, []
    for where, key, text, spans in records:
        if key in seen:
            raise AnnotationError(f"{where}: sentence {key} is in the file twice (also {seen[key]})")
        seen[key] = where
        if key not in exported:
            raise AnnotationError(f"{where}: sentence {key!r} was not exported (not in {manifest_path})")
        words = exported[key]
        expected, offsets = sentence_text(words)
        if text != expected:
            raise AnnotationError(f"{where}: sentence {key}: {_difference(text, expected)}")
        entities = _word_entities(f"{where}: sentence {key}", text, offsets, spans, labels)
        annotated.append(Annotated(key, words, bio_tags(len(words), entities)))
    return Imported(annotated, skipped)


def read_manifest(path) -> dict[str, list[str]]:
    """The words of each exported sentence, by key, from an export's manifest.jsonl."""
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"{path}: no manifest: the export is incomplete, or its manifest is elsewhere")
    exported = {}
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if line.strip():
            try:
                entry = json.loads(line)
                exported[entry["sentence"]] = entry["words"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AnnotationError(f"{path}:{number}: not a manifest line (JSON with sentence and words)") from None
    return exported


def _read_text(path: Path) -> str:
    """A UTF-8 file's text (a byte-order mark dropped); other bytes are refused with their offset."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise AnnotationError(
            f"{path}: not UTF-8 (byte 0x{error.object[error.start]:02x} at offset {error.start})"
        ) from None


def _records(name: str, content: str, fmt: str) -> tuple[list[tuple[str, str, str, list[Span]]], int]:
    """(where, key, text, spans) of each answered task in the file, and how many tasks had no answer."""
    if fmt == "auto":
        first = content.lstrip()[:1]
        fmt = "labelstudio" if first == "[" else "doccano" if first == "{" else "conll"
    try:
        if fmt == "labelstudio":
            return labelstudio.read_export(name, content)
        if fmt == "doccano":
            return doccano.read_export(name, content), 0
        return _conll_records(name, content), 0
    except ValueError as error:  # the tool modules' refusals, already one line naming file and task
        raise AnnotationError(str(error)) from None


def _difference(text: str, expected: str) -> str:
    """Where ``text`` first departs from the exported text, for a refusal."""
    at = next((i for i, (a, b) in enumerate(zip(text, expected)) if a != b), min(len(text), len(expected)))
    shown = f"{text[at : at + 20]!r} against {expected[at : at + 20]!r}"
    return f"the text differs from the exported one at character {at} ({shown}): the words must stay as exported"


def _word_entities(where: str, text: str, offsets: list[tuple[int, int]], spans: list[Span], labels: set[str]):
    """The entities (word indices) of character spans; refuses an unknown label, a span off word boundaries
    and spans that share a word."""
    starts = {start: index for index, (start, _) in enumerate(offsets)}
    ends = {end: index + 1 for index, (_, end) in enumerate(offsets)}
    holder: list[str | None] = [None] * len(offsets)  # the span holding each word, as messages show it
    entities = []
    for start, end, label in sorted(spans):
        shown = f"span {start}-{end} {text[start:end]!r}"
        if label not in labels:
            raise AnnotationError(f"{where}: {shown} has the unknown label {label!r} (labels: {sorted(labels)})")
        if start not in starts or end not in ends or ends[end] <= starts[start]:
            raise AnnotationError(f"{where}: {shown} does not start and end on word boundaries")
        first, last = starts[start], ends[end]
        if other := next((held for held in holder[first:last] if held), None):
            raise AnnotationError(f"{where}: {shown} overlaps {other}")
        holder[first:last] = [shown] * (last - first)
        entities.append((first, last, label))
    return entities


def _conll_records(name: str, content: str) -> list[tuple[str, str, str, list[Span]]]:
    """(file:line where it starts, key, text, spans) of each sentence of a CoNLL file like selection.conll."""
    records = []
    for block in _blocks(content):
        key, words, tags = _conll_sentence(name, block)
        records.append((f"{name}:{block[0][0]}", key, *char_spans(words, tags)))
    return records


def _blocks(content: str) -> list[list[tuple[int, str]]]:
    """The runs of non-blank lines of ``content``, each line with its 1-based number."""
    blocks, block = [], []
    for number, line in enumerate(content.split("\n"), start=1):
        if line.strip():
            block.append((number, line))
        elif block:
            blocks.append(block)
            block = []
    return blocks + [block] if block else blocks


def _conll_sentence(name: str, block: list[tuple[int, str]]) -> tuple[str, list[str], list[str]]:
    """(key, words, tags) of one sentence: ``# `` comments (``# sent_id = key``), then ``word<TAB>tag`` lines."""
    key, words, tags = None, [], []
    for number, line in block:
        if line.startswith("# "):
            if words:
                raise AnnotationError(f"{name}:{number}: a comment inside a sentence (a blank line goes before it)")
            if line.startswith("# sent_id = "):
                key = line.removeprefix("# sent_id = ").strip()
            continue
        columns = line.split()
        if len(columns) != 2:
            raise AnnotationError(f"{name}:{number}: expected 'word<TAB>tag', found {len(columns)} columns")
        if not is_bio_tag(columns[1]):
            raise AnnotationError(f"{name}:{number}: tag {columns[1]!r} is not O, B-x or I-x")
        words.append(columns[0])
        tags.append(columns[1])
    if key is None or not words:
        raise AnnotationError(f"{name}:{block[0][0]}: a sentence needs its '# sent_id = ' comment and word lines")
    return key, words, tags


def append_labelled(
    labelled_path, annotated: list[Annotated], labelled_words: set[tuple[str, ...]], skip_imported: bool = False
) -> list[Annotated]:
    """Append the sentences to the labelled CoNLL file (``# sent_id`` comment, ``word<TAB>tag`` lines) by moving
    a new file holding the old bytes and the new lines onto it; refuses, writing nothing, a sentence whose words
    are already labelled (in ``labelled_words``, in the file, or earlier in ``annotated``). With
    ``skip_imported``, a sentence the file already holds with the very same tags (a second export of a selection
    partly imported before) is left out instead; with other tags it is still refused. Returns those left out."""
    path = Path(labelled_path)
    old = path.read_bytes() if path.exists() else b""
    known = dict.fromkeys(labelled_words, "in the prepared labelled split")
    # a file of comments only holds no sentence yet; read_conll refuses, at its line, one that is not UTF-8
    in_file = read_conll(path, "utf-8") if old and has_sentences(path) else None
    file_tags = {tuple(w): tuple(t) for w, t in zip(in_file.words, in_file.tags)} if in_file else {}
    known.update(dict.fromkeys(file_tags, "in the file"))
    added, left_out = [], []
    for sentence in annotated:
        words = tuple(sentence.words)
        if skip_imported and file_tags.get(words) == tuple(sentence.tags):
            left_out.append(sentence)
            continue
        if words in known:
            other = " with other tags" if skip_imported and known[words] == "in the file" else ""
            raise AnnotationError(
                f"{path}: sentence {sentence.key}: its words are already labelled ({known[words]}{other})"
            )
        known[words] = f"as sentence {sentence.key} of this import"
        added.append(sentence)
    if added:
        lines = "\n".join(conll_sentence({"sent_id": s.key}, s.words, s.tags) for s in added)
        text = old.decode("utf-8")  # cannot fail (checked above); not read_text, whose newlines would change
        atomic_write_text(path, text + _separator(text) + lines)
    return left_out


def _separator(old: str) -> str:
    """What ends the file's last sentence with a blank line, whatever its line endings."""
    trailing = old[len(old.rstrip("\r\n")) :].count("\n")
    return "" if not old else "\n" * max(0, 2 - trailing)
