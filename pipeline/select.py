"""select stage: the sentences to label next, chosen by a trained head, written out for an annotation tool.

The head of ``active.model``, seed ``active.seed``, scores the candidates by ``active.strategy``
(``heads.acquisition``): the corpus's unlabelled split and, with ``unlabelled_text.mode`` add, the extra text's
sentences (replace: those alone). A candidate whose words equal a labelled or test sentence, or a candidate
chosen before it, is never asked. ``active.batch`` sentences go to ``--out`` with the head's labelling as
pre-annotations (``data.annotations.write_exports``: Label Studio, doccano, CoNLL, and the manifest that the
import checks against); ``--stats`` gets the counts and seconds. docs/active-learning.md walks the loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

from cache.rows import ConcatRows, TakeRows
from cache.store import check_encodes, open_cache
from data.annotations import Pick, write_exports
from data.prepared_io import atomic_write_text, disagreement, read_prepared, words_sha256
from features.inputs import head_inputs, text_sentences
from heads.acquisition import choose, rank_candidates, sentence_vectors
from heads.batches import word_rows
from heads.build import model_from_config
from heads.checkpoint import check_trained_on, head_centroids, input_columns, load_head
from heads.metrics import categories_to_bio
from heads.settings import ActiveParams, HeadParams
from pipeline.params import UnlabelledTextParams, enable_compilation_cache, load_section, run_main

log = logging.getLogger("select")


def candidates(prepared, cache_path: str, text: UnlabelledTextParams, text_cache: str, fingerprint: dict):
    """(keys, words, cached word vectors (W, D), a row view) of every candidate: ``corpus:<id>`` sentences of the unlabelled
    split, then ``text:<n>`` sentences of the extra text (the n-th sentence of its file, from 1)."""
    keys, words, parts = [], [], []
    if text.mode != "replace":
        ids = prepared.split["unlabelled"]
        with open_cache(cache_path, verify=False) as cache:  # check_encodes verified it
            parts.append(_rows_of(cache.features, word_rows(prepared.offsets, ids)))
        keys += [f"corpus:{i}" for i in ids]
        words += [prepared.words[i] for i in ids]
    if text.mode != "none":
        sentences = text_sentences(text.path, text.encoding)
        found = check_encodes(text_cache, words_sha256(sentences), text.path, "rerun the extract_text stage")
        for field in ("encoder", "weights_sha256", "layers", "combine", "pooling", "precision"):
            if found.get(field) != fingerprint.get(field):
                raise ValueError(disagreement(text_cache, cache_path, field, found.get(field), fingerprint.get(field),
                                              "rerun the extract_text stage"))  # fmt: skip
        with open_cache(text_cache, verify=False) as cache:
            parts.append(_rows_of(cache.features, np.arange(len(cache.features))))
        keys += [f"text:{n}" for n in range(1, len(sentences) + 1)]
        words += sentences
    if not parts:
        return keys, words, np.zeros((0, 0), np.float16)
    return keys, words, parts[0] if len(parts) == 1 else ConcatRows(*parts)


def _rows_of(features, rows):
    """``rows`` of cached features: a view read when scored (a memmap outlives its file; h5py's: read now)."""
    return TakeRows(features, rows) if isinstance(features, np.memmap) else np.asarray(features[rows])


def picks(ranking, chosen, keys, words, offsets, categories) -> list[Pick]:
    """The chosen candidates, in the order asked, with the head's labelling (BIO) and its confidence."""
    out = []
    for rank, index in enumerate(chosen):
        first, last = offsets[index], offsets[index + 1]
        predicted = ranking.outputs.predicted[first:last]
        confidence = ranking.outputs.probabilities[np.arange(first, last), predicted]
        tags = categories_to_bio([categories[c] for c in predicted])
        out.append(Pick(keys[index], list(words[index]), tags, confidence.tolist(), float(ranking.scores[index]), rank))
    return out


def choose_sentences(active: ActiveParams, params, config: dict, head_path: str, keys, words, vectors, asked: set,
                     categories) -> list[Pick]:  # fmt: skip
    """The candidates (``keys``, ``words``, their cached word vectors) scored by the head (``params``, its
    ``config``) and ``active.batch`` of them chosen, none whose words are in ``asked``."""
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in words])])
    centroids = head_centroids(config, head_path, vectors.shape[1])
    inputs = head_inputs(vectors, words, HeadParams(**config["heads"]), centroids=centroids)  # read chunk by chunk
    starts = np.zeros(len(inputs), bool)
    starts[offsets[:-1]] = True
    ranking = rank_candidates(
        active.strategy, params, model_from_config(config), inputs, starts, offsets, batch=active.batch,
        seed=active.seed, vectors=sentence_vectors(vectors, offsets) if active.strategy == "diversity" else None,
        samples=active.samples, dropout=active.dropout,
    )  # fmt: skip
    chosen = choose(ranking.order, words, active.batch, asked)
    return picks(ranking, chosen, keys, words, offsets, categories)


def select(active: ActiveParams, params_path: str, prepared_dir: str, cache_path: str, text_cache: str, models: str,
           out: str, stats_path: str | None) -> dict:  # fmt: skip
    started = time.perf_counter()
    text = load_section(UnlabelledTextParams, "unlabelled_text", params_path)
    prepared = read_prepared(prepared_dir)
    fingerprint = check_encodes(cache_path, prepared.meta["words_sha256"], f"{prepared_dir}/meta.json", "rerun extract")
    head_path = f"{models}/{active.model}/seed{active.seed}/head.msgpack"
    params, config = load_head(head_path)
    check_trained_on(head_path, config, prepared_dir, prepared, cache_path, fingerprint)
    keys, words, vectors = candidates(prepared, cache_path, text, text_cache, fingerprint)
    if active.pool and active.pool < len(keys):
        drawn = np.sort(np.random.default_rng(active.seed).permutation(len(keys))[: active.pool])
        vectors = TakeRows(vectors, word_rows(np.concatenate([[0], np.cumsum([len(w) for w in words])]), drawn))
        keys, words = [keys[i] for i in drawn], [words[i] for i in drawn]
    if not keys:
        raise ValueError(f"{prepared_dir}: no unlabelled sentence to choose from (unlabelled_text.mode is {text.mode})")
    recorded, built = config["trained_on"]["input_columns"], input_columns(config, vectors.shape[1])
    if recorded != built:
        raise ValueError(disagreement(head_path, cache_path, "input_columns", recorded, built, "retrain it"))
    read = time.perf_counter()
    asked = {tuple(prepared.words[i]) for part in ("labelled", "test") for i in prepared.split[part]}
    chosen = choose_sentences(active, params, config, head_path, keys, words, vectors, asked, prepared.categories)
    scored = time.perf_counter()
    write_exports(chosen, prepared.categories, out, f"{active.model}/seed{active.seed}", active.strategy)
    stats = {
        "strategy": active.strategy, "model": active.model, "seed": active.seed, "candidates": len(keys),
        "candidate_words": sum(map(len, words)), "chosen": len(chosen), "chosen_words": sum(len(p.words) for p in chosen),
        "seconds": {"read": round(read - started, 2), "score_and_choose": round(scored - read, 2),
                    "export": round(time.perf_counter() - scored, 2), "total": round(time.perf_counter() - started, 2)},
    }  # fmt: skip
    log.info("%s: %d of %d candidates chosen by %s in %.1f s", out, len(chosen), len(keys), active.strategy,
             stats["seconds"]["total"])  # fmt: skip
    if stats_path:
        atomic_write_text(stats_path, json.dumps(stats, indent=2))
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--text-cache", default="cache/unlabelled.h5")
    parser.add_argument("--models", default="models", help="the directory of models/<model>/seed<N>/head.msgpack")
    parser.add_argument("--out", default="selection")
    parser.add_argument("--stats", default=None, help="write the counts and seconds to this JSON")
    args = parser.parse_args()
    enable_compilation_cache()
    active = load_section(ActiveParams, "active", args.params)
    select(active, args.params, args.prepared, args.cache, args.text_cache, args.models, args.out, args.stats)


if __name__ == "__main__":
    run_main(main)
