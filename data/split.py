"""Deterministic splits of a corpus into test, labelled and unlabelled sentences."""

from __future__ import annotations

import numpy as np

SPLITS = ("test", "labelled", "unlabelled")


def resolve_size(size: float | str, available: int, what: str) -> int:
    """An absolute sentence count, a fraction of ``available`` (< 1, or the float 1.0) or 'all'."""
    if size == "all":
        return available
    if isinstance(size, str):
        raise ValueError(f"{what} of {size!r} sentences: give a count, a fraction or 'all'")
    fraction = 0 < size < 1 or (isinstance(size, float) and size == 1.0)
    count = int(round(size * available)) if fraction else int(size)
    if count < 0 or count > available:
        raise ValueError(f"{what} of {size} sentences asked, but only {available} are available")
    return count


def random_split(
    num_sentences: int,
    test_size: float,
    labelled_size: float,
    seed: int,
    test_ids: np.ndarray | None = None,
    labelled_ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Split sentence ids 0..num_sentences-1; returns sorted int64 ids per split.

    ``test_ids`` or ``labelled_ids`` fix those parts explicitly; the rest is drawn
    with ``seed`` from what remains. Everything not test or labelled is unlabelled.
    """
    rng = np.random.default_rng(seed)
    remaining = np.arange(num_sentences, dtype=np.int64)
    parts: dict[str, np.ndarray] = {}
    for name, size, fixed in (("test", test_size, test_ids), ("labelled", labelled_size, labelled_ids)):
        if fixed is not None:
            fixed = np.unique(np.asarray(fixed, dtype=np.int64))
            if fixed.size and (fixed[0] < 0 or fixed[-1] >= num_sentences):
                raise ValueError(f"{name} ids must lie in 0..{num_sentences - 1}")
            clash = np.intersect1d(fixed, np.setdiff1d(np.arange(num_sentences), remaining))
            if clash.size:
                raise ValueError(f"{clash.size} {name} sentences are already in another split")
            parts[name] = fixed
        else:
            count = resolve_size(size, remaining.size, f"a {name} split")
            parts[name] = np.sort(rng.permutation(remaining)[:count])
        remaining = np.setdiff1d(remaining, parts[name], assume_unique=True)
    parts["unlabelled"] = remaining
    return {name: parts[name] for name in SPLITS}


def read_id_file(path: str, num_sentences: int) -> np.ndarray:
    """Sentence numbers, one per line, 1-based as in the corpus; returns 0-based ids."""
    ids = []
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x}); expected sentence numbers, one per line"
        ) from None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= num_sentences:
            raise ValueError(f"{path}:{number}: expected a sentence number in 1..{num_sentences}, found {text!r}")
        ids.append(int(text) - 1)
    return np.asarray(ids, dtype=np.int64)


def is_id_file(path: str) -> bool:
    """Whether ``path`` lists sentence numbers (every line that is not blank or a ``#`` comment a number) and
    holds at least one, rather than labelled sentences in CoNLL."""
    lines = [line.strip() for line in _lines(path)]
    numbers = [line for line in lines if line and not line.startswith("#")]
    return bool(numbers) and all(line.isascii() and line.isdigit() for line in numbers)


def has_sentences(path: str) -> bool:
    """Whether ``path`` has a line that is not blank or a ``#`` comment (a labelled file may hold none yet)."""
    return any(line.strip() and not line.lstrip().startswith("#") for line in _lines(path))


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x})") from None


def add_annotated(words, tags, split: dict, annotated_words, annotated_tags, location) -> tuple:
    """The corpus and split with the sentences of the labelled file (``pipeline.annotate``'s) in the labelled
    split: a sentence with the very words of a corpus sentence outside the test split takes that sentence's place
    with the file's tags (the unlabelled split loses it); any other is appended. ``location(i)`` names the
    file's sentence i in errors. Returns (words, tags, split)."""
    words, tags = list(words), list(tags)
    test = set(split["test"].tolist())
    index = {}
    for i, sentence in enumerate(words):
        index.setdefault(tuple(sentence), i)
    labelled = list(split["labelled"])
    for number, (sentence, sentence_tags) in enumerate(zip(annotated_words, annotated_tags)):
        found = index.get(tuple(sentence))
        if found is not None and found in test:
            raise ValueError(f"{location(number)}: this sentence is in the test split; label another one")
        if found is None:
            found = len(words)
            words.append(sentence)
            tags.append(sentence_tags)
            index[tuple(sentence)] = found
        tags[found] = sentence_tags
        labelled.append(found)
    labelled = np.unique(np.asarray(labelled, np.int64))
    unlabelled = np.setdiff1d(split["unlabelled"], labelled)
    return words, tags, {"test": split["test"], "labelled": labelled, "unlabelled": unlabelled}


def outside_share(tags: list[list[str]], outside: str = "O") -> np.ndarray:
    """Share of words tagged ``outside`` in each sentence, (S,) float64."""
    return np.array([sum(t == outside for t in s) / max(len(s), 1) for s in tags])


def ranked_pool(
    candidates: np.ndarray, seed: int, outside: np.ndarray | None = None, strength: float = 0.0
) -> np.ndarray:
    """``candidates`` in the order a labeller would draw them; take the first n for a sample of n.

    With ``strength`` 0 the order is a uniform random permutation. Otherwise a
    sentence is drawn with weight exp(-strength * its outside share), without
    replacement (Gumbel top-k): sentences with fewer O words come first. Because
    every size takes a prefix of one order, samples of growing size are nested.
    """
    rng = np.random.default_rng(seed)
    candidates = np.asarray(candidates, dtype=np.int64)
    gumbel = rng.gumbel(size=candidates.size)
    if strength:
        if outside is None:
            raise ValueError("a biased draw needs each sentence's outside share")
        gumbel = gumbel - strength * outside[candidates]
    return candidates[np.argsort(-gumbel, kind="stable")]


def shared_sentences(words: list[list[str]], ids: np.ndarray, other_ids: np.ndarray) -> int:
    """How many of the sentences ``ids`` have the very words of some sentence in ``other_ids``."""
    other = {tuple(words[i]) for i in other_ids}
    return sum(tuple(words[i]) in other for i in ids)
