"""prepare stage: raw corpus -> prepared sentences, tags, categories and a fixed split."""

from __future__ import annotations

import argparse
import dataclasses
import logging

import numpy as np

from data.corpus import read_corpus
from data.prepared import write_prepared
from data.split import random_split, read_id_file
from data.tags import category_of, category_vocabulary, validate_tags
from pipeline.params import load_section, run_main

log = logging.getLogger("prepare")


@dataclasses.dataclass(frozen=True)
class PrepareParams:
    corpus: str = "data/raw/ner_dataset.csv.zip"  # Kaggle CSV/zip or CoNLL file
    format: str = "auto"            # kaggle | conll | auto (.csv/.zip -> kaggle)
    encoding: str = "auto"          # auto: latin-1 for Kaggle (as shipped), utf-8 for CoNLL
    tag_scheme: str = "auto"        # bio | plain | auto (bio when every tag is O/B-x/I-x)
    categories: list | None = None  # declare the categories to refuse any other; None: from data
    test_corpus: str | None = None  # a separate CoNLL/Kaggle test file; None: split the corpus
    test_size: float | str = 9600   # sentences (or a fraction < 1) drawn as the test split
    labelled_size: float | str = 2560  # sentences, a fraction (< 1, or 1.0) or 'all' drawn as labelled
    labelled_file: str | None = None  # sentence numbers (1-based) forming the labelled split
    seed: int = 0                   # seed of the split; fixed so every head sees the same split


def prepare(params: PrepareParams, out: str) -> None:
    corpus = read_corpus(params.corpus, params.format, params.encoding)
    words, tags = corpus.words, corpus.tags
    scheme = validate_tags(corpus, params.tag_scheme, params.categories)
    test, test_ids = None, None
    if params.test_corpus:
        test = read_corpus(params.test_corpus, params.format, params.encoding)
        if validate_tags(test, scheme, params.categories) != scheme:
            raise ValueError(f"{params.test_corpus}: tag scheme differs from {params.corpus}")
        test_ids = np.arange(len(words), len(words) + len(test.words))
        words, tags = words + test.words, tags + test.tags
    labelled_ids = read_id_file(params.labelled_file, corpus.num_sentences) if params.labelled_file else None
    split = random_split(len(words), params.test_size, params.labelled_size, params.seed,
                         test_ids=test_ids, labelled_ids=labelled_ids)
    labelled_categories = set(category_vocabulary([tags[i] for i in split["labelled"]]))
    for i in split["test"]:
        unseen = sorted({category_of(t) for t in tags[i]} - labelled_categories)
        if unseen:
            where = corpus.location(i) if i < corpus.num_sentences else test.location(i - corpus.num_sentences)
            raise ValueError(f"{where}: category {', '.join(map(repr, unseen))} appears in the test split "
                             "but not in the labelled split; no head could learn it")
    categories = list(params.categories) if params.categories else category_vocabulary(tags)
    write_prepared(out, words, tags, categories, split,
                   meta={"source": corpus.source, "tag_scheme": scheme, "split_seed": params.seed})
    log.info("%d sentences, %d words, %d categories (%s); test %d, labelled %d, unlabelled %d",
             len(words), sum(map(len, words)), len(categories), " ".join(categories),
             *(len(split[k]) for k in ("test", "labelled", "unlabelled")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/prepared")
    args = parser.parse_args()
    prepare(load_section(PrepareParams, "prepare", args.params), args.out)


if __name__ == "__main__":
    run_main(main)
