"""What the select stage hands to the exports (``data.annotations``, ``data.labelstudio``, ``data.doccano``): the
chosen sentences, each with the head's labelling as a pre-annotation."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Pick:
    """A sentence the select stage chose to have labelled."""

    key: str  # stable sentence id: "corpus:<0-based prepared sentence id>" or "text:<n>", the n-th sentence (non-blank line) of the extra text
    words: list[str]  # the sentence's words (never empty; a word never contains whitespace)
    tags: list[str]  # the head's predicted tags, BIO, one per word
    confidence: list[float]  # each word's probability of its predicted category, in [0, 1]
    score: float  # the strategy's acquisition score (higher = asked first)
    rank: int  # 0-based position in the selection order
