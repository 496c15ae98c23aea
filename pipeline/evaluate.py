"""evaluate stage: a model's heads (one per seed) on the test split -> metrics JSON, predictions TSV, plots.

Every ``seed<N>/head.msgpack`` under ``--heads`` is scored; the corpus and the test features are read once.
Outputs per seed: ``METRICS/seed<N>.json``, ``PREDICTIONS/seed<N>.tsv`` and ``PLOTS/seed<N>/``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from pathlib import Path

import numpy as np

from cache.store import check_encodes, open_cache
from data.prepared_io import atomic_write_text, disagreement, read_prepared
from features.inputs import head_inputs
from heads.batches import sentence_starts, word_rows
from heads.build import model_from_config
from heads.checkpoint import check_trained_on, head_centroids, input_columns, load_head
from heads.metrics import confusion, entity_metrics, sentences_from_offsets, word_metrics
from heads.plots import plot_confusion, plot_latent_pca
from heads.predict import predict_categories
from heads.settings import HeadParams
from pipeline.params import enable_compilation_cache, run_main

log = logging.getLogger("evaluate")


def predictions_tsv(sentence_ids, words, tags, predicted) -> str:
    """sentence id, word index, word, true tag, predicted category: one row per test word."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["sentence", "word_index", "word", "true_tag", "predicted"])
    for sentence, sentence_words, sentence_tags, sentence_predicted in zip(sentence_ids, words, tags, predicted):
        for index, (word, tag, category) in enumerate(zip(sentence_words, sentence_tags, sentence_predicted)):
            writer.writerow([int(sentence), index, word, tag, category])
    return buffer.getvalue()


class TestSplit:
    """The test split read once: its words, tags, labels and features (each input kind read when first asked);
    the cache must encode the corpus's words, and ``check`` refuses a head trained on other data."""

    def __init__(self, prepared_dir: str, cache_path: str):
        self.prepared = read_prepared(prepared_dir)
        self.prepared_dir, self.cache_path = prepared_dir, cache_path
        words = self.prepared.meta["words_sha256"]
        self.fingerprint = check_encodes(cache_path, words, f"{prepared_dir}/meta.json", "rerun extract")
        with open_cache(cache_path) as cache:  # every chunk's checksum, once
            self.dim = cache.dim
        self.sentences = self.prepared.split["test"]
        self.rows = word_rows(self.prepared.offsets, self.sentences)
        self.starts = sentence_starts(self.prepared.offsets, self.sentences)
        self.words = [self.prepared.words[s] for s in self.sentences]
        self.tags = [self.prepared.tags[s] for s in self.sentences]
        self.offsets = np.concatenate([[0], np.cumsum(np.diff(self.prepared.offsets)[self.sentences])])
        self._inputs = {}

    def check(self, config: dict, head_path) -> None:
        """Refuse a head trained on other categories, words, split, features or input columns than these."""
        check_trained_on(head_path, config, self.prepared_dir, self.prepared, self.cache_path, self.fingerprint)
        recorded, built = config["trained_on"]["input_columns"], input_columns(config, self.dim)
        if recorded != built:
            raise ValueError(disagreement(head_path, self.cache_path, "input_columns", recorded, built, "retrain it"))

    def inputs(self, config: dict, head_path) -> np.ndarray:
        """The head's inputs for the test words."""
        heads, piece_ids = HeadParams(**config["heads"]), config["input"] == "piece_ids"
        if piece_ids not in self._inputs:  # the cached words, read once per kind
            with open_cache(self.cache_path, verify=False) as cache:  # verified once, in __init__
                self._inputs[piece_ids] = cache.piece_ids[...][self.rows] if piece_ids else cache.features[self.rows]
        word_inputs = self._inputs[piece_ids]
        if piece_ids:
            return head_inputs(word_inputs, self.words, heads, config["vocabulary"])
        centroids = head_centroids(config, str(head_path), word_inputs.shape[1])
        return np.asarray(head_inputs(word_inputs, self.words, heads, centroids=centroids)[:])


def evaluate(head_path: Path, params, config, test: TestSplit, metrics_dir, predictions_dir, plots_dir) -> dict:
    """One head (checked by ``test.check``) on the test split; its outputs are named by its seed."""
    categories = test.prepared.categories
    predicted, _, latent = predict_categories(
        params, model_from_config(config), test.inputs(config, head_path), test.starts
    )
    true = test.prepared.labels[test.rows]
    predicted_names = sentences_from_offsets([categories[i] for i in predicted], test.offsets)
    metrics = word_metrics(true, predicted, categories)
    metrics["entity"] = entity_metrics(test.tags, predicted_names)
    seed = int(config["seed"])
    metrics.update(model=config["model"], seed=seed)
    plots = plots_dir / f"seed{seed}"
    for normalize in ("true", "pred"):
        plot_confusion(
            confusion(true, predicted, len(categories), normalize),
            categories,
            f"{config['model']} seed {seed}: normalised by {normalize} category",
            plots / f"confusion_by_{normalize}.png",
        )
    plot_latent_pca(
        latent, true, predicted, categories, plots / "latent_true.png", plots / "latent_predicted.png", seed=seed
    )
    atomic_write_text(
        predictions_dir / f"seed{seed}.tsv", predictions_tsv(test.sentences, test.words, test.tags, predicted_names)
    )
    atomic_write_text(metrics_dir / f"seed{seed}.json", json.dumps(metrics, indent=2))
    log.info(
        "%s seed %s: accuracy %.4f, accuracy no O %.4f, mean F1 %.4f, entity F1 %.4f",
        *(config["model"], seed, metrics["accuracy"], metrics["accuracy_no_o"] or 0, metrics["mean_f1"]),
        metrics["entity"]["f1"],
    )
    return metrics


def evaluate_model(
    heads_dir: str, prepared_dir: str, cache_path: str, metrics_dir: str, predictions_dir: str, plots_dir: str
) -> list[dict]:
    """Every seed's head under ``heads_dir``, in seed order."""
    heads = [path for path in Path(heads_dir).glob("seed*/head.msgpack") if path.parent.name[4:].isdigit()]
    heads.sort(key=lambda path: int(path.parent.name[4:]))
    if not heads:
        raise ValueError(f"{heads_dir}: no seed<N>/head.msgpack to evaluate")
    test = TestSplit(prepared_dir, cache_path)
    loaded = [(head, *load_head(head)) for head in heads]
    for head, _, config in loaded:  # every head checked before any output is written
        test.check(config, head)
    outs = Path(metrics_dir), Path(predictions_dir), Path(plots_dir)
    return [evaluate(head, params, config, test, *outs) for head, params, config in loaded]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heads", required=True, help="a model's directory: seed<N>/head.msgpack")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--metrics", required=True, help="directory: seed<N>.json")
    parser.add_argument("--predictions", required=True, help="directory: seed<N>.tsv")
    parser.add_argument("--plots", required=True, help="directory: seed<N>/*.png")
    args = parser.parse_args()
    enable_compilation_cache()
    evaluate_model(args.heads, args.prepared, args.cache, args.metrics, args.predictions, args.plots)


if __name__ == "__main__":
    run_main(main)
