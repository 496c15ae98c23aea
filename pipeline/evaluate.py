"""evaluate stage: a trained head on the test split -> metrics JSON, predictions TSV, plots."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from pathlib import Path

import numpy as np

from cache.store import open_cache
from data.prepared_io import atomic_write_text, read_prepared
from features.inputs import with_shape_flags
from heads.batches import word_rows
from heads.checkpoint import load_head
from heads.metrics import confusion, entity_metrics, sentences_from_offsets, word_metrics
from heads.model import baseline_inputs, model_from_config
from heads.plots import plot_confusion, plot_latent_pca
from heads.predict import predict
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


def evaluate(
    head_path: str, prepared_dir: str, cache_path: str, metrics_path: str, predictions_path: str, plots_dir: str
) -> dict:
    params, config = load_head(head_path)
    prepared = read_prepared(prepared_dir)
    categories = prepared.categories
    if list(config["categories"]) != categories:
        raise ValueError(
            f"{head_path}: trained on categories {config['categories']}, the prepared corpus has {categories}"
        )
    test = prepared.split["test"]
    rows = word_rows(prepared.offsets, test)
    with open_cache(cache_path, config["features"]) as cache:
        if config["input"] == "piece_ids":
            inputs = baseline_inputs(cache.piece_ids[...][rows], config["vocabulary"])
        else:
            inputs = cache.features[rows]
            if config["heads"].get("shape_flags"):
                inputs = with_shape_flags(inputs, [prepared.words[s] for s in test])[:]
    probabilities, latent = predict(params, model_from_config(config), inputs)
    predicted = probabilities.argmax(1)
    true = prepared.labels[rows]
    test_offsets = np.concatenate([[0], np.cumsum(np.diff(prepared.offsets)[test])])
    predicted_names = sentences_from_offsets([categories[i] for i in predicted], test_offsets)
    metrics = word_metrics(true, predicted, categories)
    metrics["entity"] = entity_metrics([prepared.tags[s] for s in test], predicted_names)
    metrics.update(model=config["model"], seed=int(config["seed"]))

    plots = Path(plots_dir)
    for normalize in ("true", "pred"):
        plot_confusion(
            confusion(true, predicted, len(categories), normalize),
            categories,
            f"{config['model']} seed {config['seed']}: normalised by {normalize} category",
            plots / f"confusion_by_{normalize}.png",
        )
    plot_latent_pca(
        latent,
        true,
        predicted,
        categories,
        plots / "latent_true.png",
        plots / "latent_predicted.png",
        seed=int(config["seed"]),
    )
    atomic_write_text(
        Path(predictions_path),
        predictions_tsv(test, [prepared.words[s] for s in test], [prepared.tags[s] for s in test], predicted_names),
    )
    atomic_write_text(Path(metrics_path), json.dumps(metrics, indent=2))
    log.info(
        "%s seed %s: accuracy %.4f, accuracy no O %.4f, mean F1 %.4f, entity F1 %.4f",
        config["model"],
        config["seed"],
        metrics["accuracy"],
        metrics["accuracy_no_o"] or 0,
        metrics["mean_f1"],
        metrics["entity"]["f1"],
    )
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--head", required=True)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--predictions", required=True)
    parser.add_argument("--plots", required=True)
    args = parser.parse_args()
    enable_compilation_cache()
    evaluate(args.head, args.prepared, args.cache, args.metrics, args.predictions, args.plots)


if __name__ == "__main__":
    run_main(main)
