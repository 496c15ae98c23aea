"""prepare stage: raw corpus -> prepared sentences, tags, categories and a fixed split."""

from __future__ import annotations

import argparse
import dataclasses
import logging

import numpy as np

from data.corpus import read_corpus
from data.prepared_io import write_prepared
from data.split import add_annotated, has_sentences, is_id_file, random_split, read_id_file, shared_sentences
from data.tags import category_of, category_vocabulary, check_categories, normalize_tags
from pipeline.params import PrepareParams, load_section, run_main

log = logging.getLogger("prepare")


def read_tagged(path: str, params: PrepareParams, scheme: str):
    """A corpus with its tags checked and brought to BIO (or plain); returns (corpus, tags, scheme)."""
    corpus = read_corpus(path, params.format, params.encoding, params.word_column, params.tag_column)
    tags, scheme = normalize_tags(corpus, scheme, params.categories)
    return corpus, tags, scheme


def plain_conll(params: PrepareParams) -> PrepareParams:
    """The settings the labelled file is read with: CoNLL as ``pipeline.annotate`` writes it, the corpus's
    categories."""
    return dataclasses.replace(params, format="conll", encoding="utf-8", word_column=None, tag_column=None)


def prepare(params: PrepareParams, out: str) -> None:
    corpus, tags, scheme = read_tagged(params.corpus, params, params.tag_scheme)
    words = corpus.words
    test, test_ids = None, None
    if params.test_corpus:
        test, test_tags, test_scheme = read_tagged(params.test_corpus, params, scheme)
        if test_scheme != scheme:
            raise ValueError(f"{params.test_corpus}: tag scheme differs from {params.corpus}")
        test_ids = np.arange(len(words), len(words) + len(test.words))
        words, tags = words + test.words, tags + test_tags
    check_categories(
        category_vocabulary(tags),
        corpus.source if test is None else f"{corpus.source} and {test.source}",
        tag_column_hint=params.tag_column is None,
    )
    labelled_ids, annotated = None, None
    if params.labelled_file and is_id_file(params.labelled_file):
        labelled_ids = read_id_file(params.labelled_file, corpus.num_sentences)
    elif params.labelled_file and has_sentences(params.labelled_file):
        annotated = read_tagged(params.labelled_file, plain_conll(params), scheme)
    split = random_split(
        len(words), params.test_size, params.labelled_size, params.seed, test_ids=test_ids, labelled_ids=labelled_ids
    )
    if annotated is not None:  # after the split: the test split stays the one drawn without them
        words, tags, split = add_annotated(words, tags, split, annotated[0].words, annotated[1], annotated[0].location)
    labelled_categories = set(category_vocabulary([tags[i] for i in split["labelled"]]))
    for i in split["test"]:
        unseen = sorted({category_of(t) for t in tags[i]} - labelled_categories)
        if unseen:
            where = corpus.location(i) if i < corpus.num_sentences else test.location(i - corpus.num_sentences)
            raise ValueError(
                f"{where}: category {', '.join(map(repr, unseen))} appears in the test split "
                "but not in the labelled split; no head could learn it"
            )
    shared = shared_sentences(words, split["test"], split["labelled"])
    if shared:
        log.warning(
            "%d of %d test sentences also appear, word for word, in the labelled split "
            "(%d labelled sentences): their test scores flatter the heads",
            shared,
            len(split["test"]),
            len(split["labelled"]),
        )
    categories = list(params.categories) if params.categories else category_vocabulary(tags)
    write_prepared(
        out,
        words,
        tags,
        categories,
        split,
        meta={
            "source": corpus.source,
            "tag_scheme": scheme,
            "split_seed": params.seed,
            "test_sentences_in_labelled": shared,
        },
    )
    log.info(
        "%d sentences, %d words, %d categories (%s); test %d, labelled %d, unlabelled %d",
        len(words),
        sum(map(len, words)),
        len(categories),
        " ".join(categories),
        *(len(split[k]) for k in ("test", "labelled", "unlabelled")),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/prepared")
    args = parser.parse_args()
    prepare(load_section(PrepareParams, "prepare", args.params), args.out)


if __name__ == "__main__":
    run_main(main)
