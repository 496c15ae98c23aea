"""Tag schemes and the category vocabulary.

A tag is either BIO (``B-geo``, ``I-per``, ``O``) or plain (``geo``, ``O``). The
category of a tag is the tag with its BIO prefix stripped; heads predict
categories, and entity-level metrics rebuild spans from them.

Corpora come in more schemes than that, and ``normalize_tags`` brings them to
BIO, saying so in the log: ``o`` is ``O`` and prefixes are read in any case;
BIOES/BILOU tags (``S-``/``U-`` single, ``E-``/``L-`` last) become ``B-``/``I-``;
IOB1 (an entity may start with ``I-``) becomes BIO. A prefix with no category
(``B-``) is an error, never the category ``''``. ``check_categories`` refuses a
corpus that has fewer than two categories or no ``O``, saying why.
"""

from __future__ import annotations

import logging

from data.corpus import BIO_PREFIXES, OUTSIDE, Corpus, CorpusError

SCHEMES = ("auto", "bio", "plain")
PREFIX_LETTERS = {"B": "B", "I": "I", "E": "I", "L": "I", "S": "B", "U": "B"}  # BIOES/BILOU -> BIO

log = logging.getLogger(__name__)


def is_bio_tag(tag: str) -> bool:
    return tag == OUTSIDE or (tag[:2] in BIO_PREFIXES and len(tag) > 2)


def category_of(tag: str) -> str:
    """``B-geo`` -> ``geo``; a plain tag is its own category."""
    return tag[2:] if tag[:2] in BIO_PREFIXES else tag


def _prefix(tag: str) -> str | None:
    """The upper-case prefix letter of ``B-x``/``s-x``/..., or None for O and plain tags."""
    return tag[0].upper() if len(tag) >= 2 and tag[1] == "-" and tag[0].upper() in PREFIX_LETTERS else None


def _is_outside(tag: str) -> bool:
    return tag.upper() == OUTSIDE


def detect_scheme(corpus: Corpus) -> str:
    """'bio' when every tag is O or prefixed (B-, I-, E-, S-, L-, U-, any case), else 'plain'."""
    return "bio" if all(_is_outside(t) or _prefix(t) for s in corpus.tags for t in s) else "plain"


def normalize_tags(corpus: Corpus, scheme: str, categories: list[str] | None = None) -> tuple[list[list[str]], str]:
    """Check every tag against ``scheme`` (and ``categories`` when declared); return (BIO tags, scheme).

    Words are untouched; only tags are rewritten, and each kind of rewrite is logged with its count.
    """
    if scheme not in SCHEMES:
        raise CorpusError(f"unknown tag scheme {scheme!r} (use {', '.join(SCHEMES)})")
    if scheme == "auto":
        scheme = detect_scheme(corpus)
    allowed = set(categories) if categories else None
    counts = {"outside": 0, "case": 0, "bioes": 0, "iob1": 0}
    normalized: list[list[str]] = []
    for s, sentence_tags in enumerate(corpus.tags):
        out: list[str] = []
        previous = None  # category of the previous tag, None after O
        for w, tag in enumerate(sentence_tags):
            where = corpus.location(s, w)
            if any(c.isspace() for c in tag):
                raise CorpusError(f"{where}: tag {tag!r} contains whitespace")
            prefix = _prefix(tag)
            if _is_outside(tag):
                counts["outside"] += tag != OUTSIDE
                out.append(OUTSIDE)
                previous = None
                continue
            if prefix and tag[2:] == "":
                raise CorpusError(f"{where}: tag {tag!r} has a prefix but no category (expected e.g. {tag[:2]}city)")
            if scheme == "bio":
                if prefix is None:
                    raise CorpusError(f"{where}: tag {tag!r} is not BIO (O, B-x or I-x)")
                category = tag[2:]
                counts["case"] += tag[0] != prefix
                bio = PREFIX_LETTERS[prefix]
                counts["bioes"] += bio != prefix
                if bio == "I" and previous != category:
                    bio = "B"  # IOB1: an entity that starts with I-
                    counts["iob1"] += prefix == "I"
                tag = f"{bio}-{category}"
                previous = category
            else:
                category = category_of(tag)
                previous = category
            if allowed is not None and category not in allowed:
                raise CorpusError(
                    f"{where}: category {category!r} is not among the declared categories {sorted(allowed)}"
                )
            out.append(tag)
        normalized.append(out)
    notes = {
        "outside": "lower-case o tags read as O",
        "case": "lower-case prefixes read as upper-case",
        "bioes": "BIOES/BILOU tags converted to BIO (S-/U- -> B-, E-/L- -> I-)",
        "iob1": "entities starting with I- (IOB1) converted to B-",
    }
    for key, count in counts.items():
        if count:
            log.info("%s: %d %s", corpus.source, count, notes[key])
    return normalized, scheme


def validate_tags(corpus: Corpus, scheme: str, categories: list[str] | None = None) -> str:
    """Check every tag against ``scheme`` (and ``categories`` when declared); return the scheme."""
    return normalize_tags(corpus, scheme, categories)[1]


def check_categories(categories: list[str], source: str, tag_column_hint: bool = True) -> None:
    """Refuse a vocabulary no head can learn from: fewer than two categories, or no O."""
    found = ", ".join(map(repr, categories))
    hint = (
        " Are the tags in another column? Set prepare.tag_column (0 is the first column, -1 the last)."
        if tag_column_hint
        else ""
    )
    if len(categories) < 2:
        raise CorpusError(
            f"{source}: only one category ({found}): a head needs O and at least one "
            f"entity category to learn anything.{hint}"
        )
    if OUTSIDE not in categories:
        raise CorpusError(
            f"{source}: no word is tagged O (categories: {found}): words outside entities must be tagged O.{hint}"
        )


def category_vocabulary(tags: list[list[str]]) -> list[str]:
    """Categories present in ``tags``: 'O' first when present, the rest sorted."""
    found = {category_of(t) for s in tags for t in s}
    rest = sorted(found - {OUTSIDE})
    return ([OUTSIDE] if OUTSIDE in found else []) + rest
