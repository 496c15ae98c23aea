"""What a head reads from the feature caches: the corpus's word inputs, plus extra unlabelled text.

Training, evaluation and the experiments all open the corpus cache here, so
they refuse the same stale caches in the same words.
"""

from __future__ import annotations

import numpy as np

from cache.rows import ConcatColumns, ConcatRows
from cache.store import open_cache
from features.extract import requested_fingerprint
from features.settings import ExtractParams


def load_inputs(cache_path: str, extract: ExtractParams, corpus_sha256: str, piece_ids: bool):
    """Features (or, with ``piece_ids``, each word's first-piece id) of every word, and the cache fingerprint.

    The cache must hold features made with every setting of ``extract`` that
    changes them (all but ``threads``, ``backend``, ``ray_address`` and ``device``), by this code, for the
    corpus whose words hash to ``corpus_sha256``; any other cache is refused as stale in one line
    that names each differing setting. An explicit precision or window length must also be what the
    extraction resolved. The device is recorded but not compared: a cache made on a GPU serves
    training on the CPU (the kernels differ only in rounding; not measured here, for want of a GPU). The weights' hash cannot be known
    without loading the encoder: the extract stage checks it when resuming and
    ``predict`` when loading a head.
    """
    # The fields the writer's fingerprint takes from the settings alone (features.extract).
    with open_cache(cache_path, requested_fingerprint(extract, corpus_sha256)) as cache:
        # The features stay memory-mapped: training reads only the rows of its batches.
        inputs = cache.piece_ids[...] if piece_ids else cache.features
        return inputs, cache.fingerprint


def baseline_vocabulary(piece_ids: np.ndarray) -> np.ndarray:
    """The first-piece ids seen in the labelled words, sorted: the baseline's embedding rows 1..V.

    Row 0 is shared by every id never seen in a labelled word. Such rows never
    receive a gradient, so giving each unseen id a row of its own (the seed's full
    30,522-row table) changes nothing learnable, and Adam over the full table
    makes every step ~5x slower.
    """
    return np.unique(piece_ids).astype(np.int32)


def baseline_inputs(piece_ids: np.ndarray, vocabulary) -> np.ndarray:
    """Map first-piece ids to the baseline's embedding rows (0 for unseen ids), (N,) int32."""
    vocabulary = np.asarray(vocabulary, dtype=np.int32)
    position = np.clip(np.searchsorted(vocabulary, piece_ids), 0, max(len(vocabulary) - 1, 0))
    found = vocabulary[position] == piece_ids if len(vocabulary) else np.zeros(len(piece_ids), bool)
    return np.where(found, position + 1, 0).astype(np.int32)


def head_inputs(word_inputs, sentences, heads, vocabulary=None, centroids=None):
    """What a head reads for the words of ``sentences``, given their cached (or just encoded) inputs.

    ``word_inputs`` are features (W, D): with ``heads.shape_flags`` the word-shape
    flags of ``sentences``' words are appended (``heads.neighbour_flags``: their
    neighbours' too), with ``heads.word_forms`` their hashed word-form ids
    (``features.word_forms``, four columns of exact integers: the view is float32 then), and with
    ``heads.clusters`` the cluster ids of each word and its neighbours for each of ``centroids`` (the head's,
    ``features.clusters``: three columns per set), with ``heads.char_cnn`` each word's character ids
    (``features.chars``, ``CHAR_COLUMNS`` columns, last), a view that leaves the cache mapped. Or first-piece ids (W,): with ``vocabulary`` mapped to the
    baseline's embedding rows. Training, evaluation, the tagger and the
    experiments all build a head's inputs here, so they cannot disagree.
    """
    if np.ndim(word_inputs) == 1:
        return word_inputs if vocabulary is None else baseline_inputs(np.asarray(word_inputs), vocabulary)
    columns = [word_inputs]
    if heads.shape_flags:
        columns.append(shape_columns(sentences, heads.neighbour_flags, len(word_inputs)))
    if heads.word_forms:
        from features.word_forms import word_form_ids

        ids = word_form_ids(sentences, heads.word_form_rows)  # (W, 4) int32, below 2**24: exact in float32
        columns.append(ids.astype(np.float32))
    if heads.clusters:
        from features.clusters import cluster_columns

        if centroids is None or [len(c) for c in centroids] != [int(k) for k in heads.clusters]:
            raise ValueError(f"heads.clusters {list(heads.clusters)}: the head's centroids are missing or other")
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
        columns.append(cluster_columns(word_inputs, offsets, centroids))
    if heads.char_cnn:
        from features.chars import char_ids

        columns.append(char_ids(sentences).astype(np.float32))  # (W, CHAR_COLUMNS), below 512: exact
    if heads.word_forms or heads.clusters or heads.char_cnn:
        return ConcatColumns(*columns, dtype=np.float32)
    return columns[0] if len(columns) == 1 else ConcatColumns(*columns)


def shape_columns(sentences, neighbours: bool, num_words: int) -> np.ndarray:
    """The word-shape flags of ``sentences``' words, (W, 8) or with ``neighbours`` (W, 24)."""
    from features.shape import shape_flags

    flags = shape_flags(sentences, neighbours)
    if len(flags) != num_words:
        raise ValueError(f"the feature cache has {num_words} words, the sentences {len(flags)}")
    return flags


def text_sentences(path: str, encoding: str) -> list[list[str]]:
    """The words of a text file, one sentence per line with a word, as extract_text splits them."""
    from features.text import TextSentences, scan_text

    sentences = TextSentences(scan_text(path, encoding))
    return sentences[0 : len(sentences)]


def add_unlabelled_text(
    inputs,
    offsets: np.ndarray,
    labels: np.ndarray,
    unlabelled: np.ndarray,
    text_cache: str,
    mode: str,
    feature_fingerprint: dict,
    heads=None,
    text_words=None,
    centroids=None,
):
    """Inputs, offsets, labels and unlabelled ids with the text cache's sentences appended.

    The text's rows follow the corpus's (a ConcatRows view: nothing is copied)
    and carry no label (-1). ``mode`` 'add' keeps the corpus's unlabelled
    sentences, 'replace' drops them. The text cache must hold features of the
    very encoder, weights, layers, pooling and precision of the corpus cache.
    The text's rows are built as ``head_inputs`` builds the corpus's for ``heads``
    (``text_words``, the text's sentences, give their shape flags and word forms when ``heads`` has them;
    ``centroids``, the head's clusters).
    Returns (inputs, offsets, labels, unlabelled ids, a summary for the config).
    """
    with open_cache(text_cache) as cache:
        text_features, text_offsets, text_fingerprint = cache.features, cache.offsets, cache.fingerprint
    differ = [
        f"{k}: text cache has {text_fingerprint.get(k)!r}, corpus cache has {v!r}"
        for k, v in feature_fingerprint.items()
        if k != "corpus_sha256" and text_fingerprint.get(k) != v
    ]
    if differ:
        raise ValueError(
            f"{text_cache}: made with other extract settings ({'; '.join(differ)}); rerun the extract_text stage"
        )
    num_sentences, num_words = len(offsets) - 1, int(offsets[-1])
    text_ids = np.arange(num_sentences, num_sentences + len(text_offsets) - 1, dtype=np.int64)
    if heads is not None:
        text_features = head_inputs(text_features, text_words, heads, centroids=centroids)
    inputs = ConcatRows(inputs, text_features)
    offsets = np.concatenate([offsets, num_words + text_offsets[1:]])  # (S + T + 1,)
    labels = np.concatenate([labels, np.full(int(text_offsets[-1]), -1, dtype=labels.dtype)])
    unlabelled = text_ids if mode == "replace" else np.concatenate([unlabelled, text_ids])
    summary = {
        "mode": mode,
        "sentences": len(text_ids),
        "words": int(text_offsets[-1]),
        "corpus_sha256": text_fingerprint["corpus_sha256"],
    }
    return inputs, offsets, labels, unlabelled, summary
