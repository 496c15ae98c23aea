"""The prepared corpus on disk: sentences, tags, categories and split, written by ``prepare``.

Layout of the prepared directory::

    sentences.jsonl   one {"words": [...], "tags": [...]} per sentence, corpus order
    split.json        {"test": [ids], "labelled": [ids], "unlabelled": [ids], ...}
    meta.json         categories, tag scheme, counts, the words' sha256 and the split's

What was made from a prepared corpus says so: a feature cache records the words' hash
(``corpus_sha256``), a head the words' and the split's hashes and the categories. ``read_prepared``
checks both hashes against the files they describe, and every stage that meets two artefacts refuses
them when they disagree, in one line naming both (``disagreement``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from data.tags import category_of


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A prepared corpus loaded in memory."""

    words: list[list[str]]
    tags: list[list[str]]
    categories: list[str]
    split: dict[str, np.ndarray]
    meta: dict

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """Word-row offsets (S+1,): sentence s owns rows offsets[s]:offsets[s+1]."""
        return np.concatenate([[0], np.cumsum([len(s) for s in self.words])]).astype(np.int64)

    @functools.cached_property
    def labels(self) -> np.ndarray:
        """Category id of every word, flattened in corpus order (W,) int32."""
        index = {c: i for i, c in enumerate(self.categories)}
        return np.fromiter((index[category_of(t)] for s in self.tags for t in s), dtype=np.int32)


def words_sha256(words: list[list[str]]) -> str:
    """A hash of the words only: what the encoder's features depend on."""
    digest = hashlib.sha256()
    for sentence in words:
        digest.update("\x1f".join(sentence).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def split_sha256(split: dict) -> str:
    """A hash of the split: each part's name and its sentence ids, in the order of the names."""
    digest = hashlib.sha256()
    for name in sorted(split):
        digest.update(name.encode("utf-8") + b"\x1e")
        digest.update(np.asarray(split[name], dtype="<i8").tobytes())
        digest.update(b"\x1d")
    return digest.hexdigest()


def shown(value) -> str:
    """A value as a message shows it: a sha256 by its first 12 digits."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "..."
    return "none recorded" if value is None else repr(value)


def disagreement(first, second, field: str, first_value, second_value, hint: str) -> str:
    """The one-line refusal of two artefacts that disagree on ``field``: both files, both values, a remedy."""
    return f"{first} and {second} disagree on {field}: {shown(first_value)} against {shown(second_value)}; {hint}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` is either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_prepared(directory: Path, words, tags, categories, split, meta) -> None:
    directory = Path(directory)
    lines = (json.dumps({"words": w, "tags": t}, ensure_ascii=False) for w, t in zip(words, tags))
    atomic_write_text(directory / "sentences.jsonl", "\n".join(lines) + "\n")
    atomic_write_text(directory / "split.json", json.dumps({k: v.tolist() for k, v in split.items()}))
    full_meta = dict(
        meta,
        categories=categories,
        num_sentences=len(words),
        num_words=sum(map(len, words)),
        words_sha256=words_sha256(words),
        split_sha256=split_sha256(split),
        split_sizes={k: int(len(v)) for k, v in split.items()},
    )
    # meta.json is written last: its presence marks a complete prepared directory.
    atomic_write_text(directory / "meta.json", json.dumps(full_meta, indent=2, ensure_ascii=False))


def read_prepared(directory: Path) -> Prepared:
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{directory}: no meta.json; run the prepare stage first")
    meta = _json(meta_path, meta_path.read_text(encoding="utf-8"))
    words, tags = [], []
    with open(directory / "sentences.jsonl", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            record = _json(f"{directory / 'sentences.jsonl'}:{number}", line)
            words.append(record["words"])
            tags.append(record["tags"])
    split_path = directory / "split.json"
    split = {k: np.asarray(v, dtype=np.int64) for k, v in _json(split_path, split_path.read_text("utf-8")).items()}
    if len(words) != meta["num_sentences"]:
        raise ValueError(
            f"{directory}: sentences.jsonl has {len(words)} sentences, "
            f"meta.json says {meta['num_sentences']}; rerun prepare"
        )
    # The hashes the caches and heads are checked against must describe these very files.
    found = {
        "words_sha256": (words_sha256(words), "sentences.jsonl"),
        "split_sha256": (split_sha256(split), "split.json"),
    }
    for field, (digest, name) in found.items():
        if field not in meta:  # meta.json of an older prepare: the hash of the file itself stands in
            meta[field] = digest
        elif meta[field] != digest:
            raise ValueError(disagreement(meta_path, directory / name, field, meta[field], digest, "rerun prepare"))
    return Prepared(words, tags, meta["categories"], split, meta)


def _json(where, text: str):
    """``text`` parsed as JSON; a ValueError naming ``where`` (file or file:line) if it is not."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error}); rerun prepare") from None
