"""The classic peers on the project's own split, scored by the project's own metrics.

    python -m bench.peers --out bench/peers.json

Two taggers that need no encoder, trained on the labelled split of the prepared
corpus and scored on its test split exactly as pipeline/evaluate.py scores a
head: each word's predicted BIO tag becomes its category (``data.tags.category_of``),
``heads.metrics.word_metrics`` scores the category ids and
``heads.metrics.entity_metrics`` the category names (seqeval, entities chunked
from the categories). ``entity_bio`` adds seqeval on the peer's own BIO tags,
which keeps adjacent entities of one category apart.

- ``crf``: a linear-chain CRF (sklearn-crfsuite) on the hand features of issue 19
  (``word_features``); L-BFGS, c1 = c2 = 0.1, 150 iterations, all transitions.
- ``spacy``: spaCy's NER from a blank English pipeline, ``spacy init config
  --lang en --pipeline ner --optimize efficiency`` and ``spacy train`` with only
  the paths and the seed set; its dev set is the project's validation part
  (``heads.stats.validation_split``, 20%) of the labelled split. Test sentences
  keep the corpus's tokenisation (Docs built from the words).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from data.prepared_io import Prepared, atomic_write_text, read_prepared
from data.tags import category_of
from features.word_forms import word_shape  # the collapsed shape: the CRF peer's and the heads' word-form ids
from heads.metrics import entity_metrics, word_metrics
from heads.stats import validation_split

log = logging.getLogger("bench.peers")

PEERS = ("crf", "spacy")
CRF_REGULARISATION = 0.1  # c1 = c2, the measured CRF
CRF_ITERATIONS = 150  # L-BFGS iterations of the measured CRF
SPACY_DEV_FRACTION = 0.2  # of the labelled split: the project's one validation part
NEIGHBOUR_OFFSETS = (-2, -1, 1, 2)  # the two words on each side
PACKAGES = ("sklearn-crfsuite", "python-crfsuite", "spacy", "thinc", "seqeval", "numpy")


def word_features(words: list[str], index: int) -> dict:
    """The CRF's features of ``words[index]``: its form, affixes, case, digits, shape and sentence start, and the
    lower-cased form, title, caps and shape of the two words on each side (absent beyond the sentence)."""
    word = words[index]
    lower = word.lower()
    features = {
        "lower": lower,
        "prefix3": lower[:3],
        "suffix2": lower[-2:],
        "suffix3": lower[-3:],
        "title": word.istitle(),
        "upper": word.isupper(),
        "digit": word.isdigit(),
        "shape": word_shape(word),
        "first": index == 0,
    }
    for offset in NEIGHBOUR_OFFSETS:
        if 0 <= index + offset < len(words):
            neighbour = words[index + offset]
            features[f"{offset:+d}:lower"] = neighbour.lower()
            features[f"{offset:+d}:title"] = neighbour.istitle()
            features[f"{offset:+d}:upper"] = neighbour.isupper()
            features[f"{offset:+d}:shape"] = word_shape(neighbour)
    return features


def sentence_features(words: list[str]) -> list[dict]:
    """``word_features`` of every word of one sentence."""
    return [word_features(words, index) for index in range(len(words))]


def train_crf(words: list[list[str]], tags: list[list[str]], iterations: int = CRF_ITERATIONS):
    """A fitted ``sklearn_crfsuite.CRF`` on the sentences' BIO tags."""
    import sklearn_crfsuite

    crf = sklearn_crfsuite.CRF(
        algorithm="lbfgs",
        c1=CRF_REGULARISATION,
        c2=CRF_REGULARISATION,
        max_iterations=iterations,
        all_possible_transitions=True,
    )
    crf.fit([sentence_features(sentence) for sentence in words], tags)
    return crf


def bio_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """Entities of one sentence's BIO tags as (start, end exclusive, category); an I- that does not continue an
    entity of its category starts one, as seqeval reads it."""
    spans = []
    for index, tag in enumerate(tags):
        if tag == "O":
            continue
        category = category_of(tag)
        continues = tag.startswith("I-") and spans and spans[-1][1] == index and spans[-1][2] == category
        if continues:
            spans[-1] = (spans[-1][0], index + 1, category)
        else:
            spans.append((index, index + 1, category))
    return spans


def spans_to_bio(spans: list[tuple[int, int, str]], length: int) -> list[str]:
    """BIO tags of a sentence of ``length`` words holding the non-overlapping ``spans`` (start, end, category)."""
    tags = ["O"] * length
    for start, end, category in spans:
        tags[start] = f"B-{category}"
        tags[start + 1 : end] = [f"I-{category}"] * (end - start - 1)
    return tags


def write_docbin(path: Path, words: list[list[str]], tags: list[list[str]]) -> None:
    """A spaCy DocBin of the sentences, tokenised as given, their entities from the BIO tags."""
    import spacy
    from spacy.tokens import DocBin, Span

    vocab = spacy.blank("en").vocab
    docs = DocBin(store_user_data=False)
    for sentence_words, sentence_tags in zip(words, tags):
        doc = spacy.tokens.Doc(vocab, words=sentence_words)
        doc.ents = [Span(doc, start, end, label=category) for start, end, category in bio_spans(sentence_tags)]
        docs.add(doc)
    docs.to_disk(path)


def spacy_config_text() -> str:
    """What ``spacy init config --lang en --pipeline ner --optimize efficiency`` (CPU) writes."""
    from spacy.cli.init_config import init_config

    return init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=False).to_str()


def train_spacy(train, dev, workdir: Path, seed: int, max_steps: int | None = None) -> Path:
    """``spacy train`` on (words, tags) pairs ``train`` and ``dev`` in a subprocess; returns the model-best path.

    Only the paths and the seed are set (and ``max_steps`` when given, for quick runs): the rest is spaCy's
    own efficiency config. Its log goes to stderr."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_docbin(workdir / "train.spacy", *train)
    write_docbin(workdir / "dev.spacy", *dev)
    (workdir / "config.cfg").write_text(spacy_config_text(), encoding="utf-8")
    command = [sys.executable, "-m", "spacy", "train", str(workdir / "config.cfg")]
    command += ["--output", str(workdir / "model"), "--paths.train", str(workdir / "train.spacy")]
    command += ["--paths.dev", str(workdir / "dev.spacy"), "--system.seed", str(seed)]
    if max_steps is not None:
        command += ["--training.max_steps", str(max_steps)]
    subprocess.run(command, check=True, stdout=sys.stderr, env=dict(os.environ, PYTHONHASHSEED="0"))
    model = workdir / "model" / "model-best"
    if not model.is_dir():
        raise FileNotFoundError(f"spacy train wrote no {model}")
    return model


def trained_settings(model: Path) -> dict:
    """The seed and training schedule the spaCy pipeline at ``model`` was trained with (its saved config)."""
    from spacy.util import load_config

    config = load_config(model / "config.cfg")
    schedule = ("max_steps", "max_epochs", "patience", "eval_frequency", "dropout")
    return {"system.seed": config["system"]["seed"], **{f"training.{k}": config["training"][k] for k in schedule}}


def predict_spacy(model: Path, words: list[list[str]]) -> list[list[str]]:
    """BIO tags of each sentence from the spaCy pipeline at ``model``, on Docs built from the given words."""
    import spacy
    from spacy.tokens import Doc

    nlp = spacy.load(model)
    docs = nlp.pipe(Doc(nlp.vocab, words=sentence) for sentence in words)
    return [spans_to_bio([(e.start, e.end, e.label_) for e in doc.ents], len(doc)) for doc in docs]


def score(true_tags: list[list[str]], predicted_tags: list[list[str]], categories: list[str]) -> dict:
    """pipeline/evaluate.py's metrics of BIO predictions: word metrics on categories, entity metrics from them,
    and ``entity_bio``, seqeval on the predicted BIO tags themselves."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    index = {category: i for i, category in enumerate(categories)}
    true = np.asarray([index[category_of(tag)] for sentence in true_tags for tag in sentence], np.int32)
    predicted = np.asarray([index[category_of(tag)] for sentence in predicted_tags for tag in sentence], np.int32)
    predicted_names = [[category_of(tag) for tag in sentence] for sentence in predicted_tags]
    metrics = word_metrics(true, predicted, categories)
    metrics["entity"] = entity_metrics(true_tags, predicted_names)
    metrics["entity_bio"] = {
        "precision": float(precision_score(true_tags, predicted_tags, zero_division=0)),
        "recall": float(recall_score(true_tags, predicted_tags, zero_division=0)),
        "f1": float(f1_score(true_tags, predicted_tags, zero_division=0)),
    }
    return metrics


def run_crf(train, test_words: list[list[str]], iterations: int) -> tuple[list[list[str]], dict]:
    """(predicted test tags, settings and seconds) of the CRF peer trained on (words, tags) ``train``."""
    start = time.perf_counter()
    crf = train_crf(*train, iterations=iterations)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predicted = crf.predict([sentence_features(sentence) for sentence in test_words])
    settings = {
        "algorithm": "lbfgs",
        "c1": CRF_REGULARISATION,
        "c2": CRF_REGULARISATION,
        "max_iterations": iterations,
        "all_possible_transitions": True,
        "train_sentences": len(train[0]),
        "features": sorted(word_features(["w"] * 5, 2)),  # a middle word's: every neighbour present
    }
    timing = {"train_seconds": round(train_seconds, 1), "predict_seconds": round(time.perf_counter() - start, 1)}
    return [list(tags) for tags in predicted], {**settings, **timing}


def run_spacy(
    train_part, dev_part, test_words: list[list[str]], seed: int, max_steps: int | None, workdir: Path
) -> tuple[list[list[str]], dict]:
    """(predicted test tags, settings and seconds) of the spaCy peer trained on ``train_part``, dev ``dev_part``."""
    start = time.perf_counter()
    model = train_spacy(train_part, dev_part, workdir, seed, max_steps)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predicted = predict_spacy(model, test_words)
    settings = {
        "config": "spacy init config --lang en --pipeline ner --optimize efficiency",
        "trained_with": trained_settings(model),
        "model": "model-best (best dev ents_f)",
        "train_sentences": len(train_part[0]),
        "dev_sentences": len(dev_part[0]),
    }
    timing = {"train_seconds": round(train_seconds, 1), "predict_seconds": round(time.perf_counter() - start, 1)}
    return predicted, {**settings, **timing}


def sentences(prepared: Prepared, ids) -> tuple[list[list[str]], list[list[str]]]:
    """(words, tags) of the sentences ``ids``."""
    return [prepared.words[i] for i in ids], [prepared.tags[i] for i in ids]


def run_peers(
    prepared: Prepared,
    peers,
    seed: int,
    labelled_limit: int | None = None,
    test_limit: int | None = None,
    crf_iterations: int = CRF_ITERATIONS,
    spacy_max_steps: int | None = None,
) -> dict:
    """Each peer trained on the labelled split (its first ``labelled_limit`` ids) and scored on the test split
    (its first ``test_limit``); returns {"labelled_sentences", "test_sentences", "peers": {name: metrics}}."""
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise ValueError(f"unknown peers {unknown} (known: {', '.join(PEERS)})")
    labelled = prepared.split["labelled"][:labelled_limit]
    test_ids = prepared.split["test"][:test_limit]
    train = sentences(prepared, labelled)
    test_words, test_tags = sentences(prepared, test_ids)
    results = {}
    for peer in peers:
        log.info("%s: %d labelled sentences, %d test sentences", peer, len(labelled), len(test_ids))
        if peer == "crf":
            predicted, details = run_crf(train, test_words, crf_iterations)
        else:
            train_ids, dev_ids = validation_split(labelled, SPACY_DEV_FRACTION, seed)
            with tempfile.TemporaryDirectory(prefix="peers_spacy_") as workdir:
                predicted, details = run_spacy(
                    sentences(prepared, train_ids),
                    sentences(prepared, dev_ids),
                    test_words,
                    seed,
                    spacy_max_steps,
                    Path(workdir),
                )
        metrics = score(test_tags, predicted, prepared.categories)
        results[peer] = {
            "entity_f1": metrics["entity"]["f1"],
            "accuracy": metrics["accuracy"],
            "accuracy_no_o": metrics["accuracy_no_o"],
            "mean_f1": metrics["mean_f1"],
            **details,
            "metrics": metrics,
        }
        log.info(
            "%s: entity F1 %.4f, accuracy %.4f, accuracy no O %.4f, mean F1 %.4f, trained in %.1f s",
            peer,
            metrics["entity"]["f1"],
            metrics["accuracy"],
            metrics["accuracy_no_o"] or 0,
            metrics["mean_f1"],
            details["train_seconds"],
        )
    return {"labelled_sentences": int(len(labelled)), "test_sentences": int(len(test_ids)), "peers": results}


def versions() -> dict:
    """Python's and the peers' library versions."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def commit() -> dict:
    """The checkout's commit and whether this script differs from it."""
    git = ["git", "-C", str(Path(__file__).resolve().parent)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run([*git, "status", "--porcelain", "--", Path(__file__).name], capture_output=True, text=True)
    return {"commit": head.stdout.strip() or None, "script_changed": bool(changed.stdout.strip())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", default="bench/peers.json")
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--labelled-limit", type=int, default=None, help="the first N labelled sentences (quick runs)")
    parser.add_argument("--test-limit", type=int, default=None, help="the first N test sentences (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="spaCy's seed and its train/dev split's")
    parser.add_argument("--crf-iterations", type=int, default=CRF_ITERATIONS, help="fewer for quick runs")
    parser.add_argument("--spacy-max-steps", type=int, default=None, help="spaCy's own default unless given")
    args = parser.parse_args()
    for name in ("labelled_limit", "test_limit", "crf_iterations", "spacy_max_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    start = time.perf_counter()
    prepared = read_prepared(args.prepared)
    figures = {
        **commit(),
        "prepared": args.prepared,
        "words_sha256": prepared.meta["words_sha256"],
        "categories": prepared.categories,
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        **run_peers(
            prepared,
            args.peers,
            args.seed,
            args.labelled_limit,
            args.test_limit,
            args.crf_iterations,
            args.spacy_max_steps,
        ),
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(Path(args.out), json.dumps(figures, indent=2) + "\n")
    summary = {
        peer: {k: v for k, v in r.items() if k not in ("metrics", "features")} for peer, r in figures["peers"].items()
    }
    log.info("%s", json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
