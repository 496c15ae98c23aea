"""Tag schemes and the category vocabulary.

A tag is either BIO (``B-geo``, ``I-per``, ``O``) or plain (``geo``, ``O``). The
category of a tag is the tag with its BIO prefix stripped; heads predict
categories, and entity-level metrics rebuild spans from them.
"""

from __future__ import annotations

from data.corpus import BIO_PREFIXES, OUTSIDE, Corpus, CorpusError

SCHEMES = ("auto", "bio", "plain")


def is_bio_tag(tag: str) -> bool:
    return tag == OUTSIDE or (tag[:2] in BIO_PREFIXES and len(tag) > 2)


def category_of(tag: str) -> str:
    """``B-geo`` -> ``geo``; a plain tag is its own category."""
    return tag[2:] if tag[:2] in BIO_PREFIXES else tag


def detect_scheme(corpus: Corpus) -> str:
    """'bio' when every tag is O or B-/I- prefixed, else 'plain'."""
    return "bio" if all(is_bio_tag(t) for s in corpus.tags for t in s) else "plain"


def _tag_line(corpus: Corpus, sentence: int, word: int) -> str:
    return f"{corpus.source}: sentence {sentence + 1}, word {word + 1}"


def validate_tags(corpus: Corpus, scheme: str, categories: list[str] | None = None) -> str:
    """Check every tag against ``scheme`` (and ``categories`` when declared); return the scheme."""
    if scheme not in SCHEMES:
        raise CorpusError(f"unknown tag scheme {scheme!r} (use {', '.join(SCHEMES)})")
    if scheme == "auto":
        scheme = detect_scheme(corpus)
    allowed = set(categories) if categories else None
    for s, sentence_tags in enumerate(corpus.tags):
        for w, tag in enumerate(sentence_tags):
            if any(c.isspace() for c in tag):
                raise CorpusError(f"{_tag_line(corpus, s, w)}: tag {tag!r} contains whitespace")
            if scheme == "bio" and not is_bio_tag(tag):
                raise CorpusError(f"{_tag_line(corpus, s, w)}: tag {tag!r} is not BIO (O, B-x or I-x)")
            if allowed is not None and category_of(tag) not in allowed:
                raise CorpusError(f"{_tag_line(corpus, s, w)}: category {category_of(tag)!r} "
                                  f"is not among the declared categories {sorted(allowed)}")
    return scheme


def category_vocabulary(tags: list[list[str]]) -> list[str]:
    """Categories present in ``tags``: 'O' first when present, the rest sorted."""
    found = {category_of(t) for s in tags for t in s}
    rest = sorted(found - {OUTSIDE})
    return ([OUTSIDE] if OUTSIDE in found else []) + rest
