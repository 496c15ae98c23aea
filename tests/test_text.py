"""Raw unlabelled text: the word tokenizer, the streamed two-pass reader, its cache, the row view."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.rows import ConcatRows
from cache.store import CacheWriter, open_cache
from data.prepared_io import words_sha256
from features.extract import extract_to_cache, fingerprint
from features.settings import EncodeSettings, ExtractParams
from features.text import TextError, TextSentences, check_encoding, scan_text, tokenize_line

LINES = [
    "Book a flight to Cape Town on Friday!",
    "",
    "   ",
    "is the Zephyr X2 (12,000 mAh) in stock at 10:30... in the U.S.?",
    "John's co-op don't sell O'Brien's e-mail",
    "Çava? très bien — 😀 café",
]


@pytest.mark.parametrize(
    "line, words",
    [
        (
            "Kyrgyzstan's minister said U.S. troops won't leave.",
            ["Kyrgyzstan", "'s", "minister", "said", "U.S.", "troops", "wo", "n't", "leave", "."],
        ),
        (
            "12,000 people at 10:30 on 24/7 with 3.5kg",
            ["12,000", "people", "at", "10:30", "on", "24/7", "with", "3.5", "kg"],
        ),
        (
            "anti-war O'Brien’s COVID-19 e.g. Mr. Smith",
            ["anti-war", "O'Brien", "’s", "COVID-19", "e.g.", "Mr", ".", "Smith"],
        ),
        ("Wait... what?! (really)", ["Wait", "...", "what", "?", "!", "(", "really", ")"]),
        ("cafe\u0301 snake_case ❤️", ["cafe\u0301", "snake", "_", "case", "❤️"]),
        (" \t\u00a0 ", []),
    ],
)
def test_tokenizer_examples(line, words):
    assert tokenize_line(line) == words


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_tokens_join_to_the_non_space_characters(line):
    tokens = tokenize_line(line)
    assert "".join(tokens) == "".join(line.split())
    assert all(tokens) and not any(c.isspace() for token in tokens for c in token)


def write_lines(path, lines, encoding="utf-8"):
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def test_scan_counts_words_and_slices_reread_the_lines(tmp_path):
    path = write_lines(tmp_path / "text.txt", LINES * 7)
    sentences = [tokenize_line(line) for line in LINES * 7 if tokenize_line(line)]
    scan = scan_text(path, chunk_sentences=3)
    assert scan.lines == 42 and scan.blank_lines == 14 and scan.num_sentences == 28
    assert scan.lengths.tolist() == [len(s) for s in sentences]
    assert scan.offsets[-1] == scan.num_words == sum(map(len, sentences))
    assert scan.words_sha256 == words_sha256(sentences)
    reader = TextSentences(scan)
    for first, last in [(0, 28), (0, 3), (3, 6), (4, 11), (27, 28), (26, 40), (5, 5)]:
        assert reader[first:last] == sentences[first:last]


def test_a_file_changed_after_the_scan_is_refused(tmp_path):
    path = write_lines(tmp_path / "text.txt", LINES)
    scan = scan_text(path, chunk_sentences=2)
    write_lines(path, ["one two", "three"] + LINES)
    with pytest.raises(TextError, match="changed since it was scanned"):
        TextSentences(scan)[0:4]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"empty.txt:1: no text: the file is empty or blank"),
        (b"\n  \n\t\n", r"empty.txt:3: no text"),
        ("fine line\ncaf\xe9 au lait\n".encode("latin-1"), r"empty.txt:2: not valid utf-8 \(byte 0xe9 at column 4\)"),
        ("hello\n".encode("utf-16"), r"empty.txt:1: NUL byte: not utf-8 text"),
    ],
)
def test_bad_text_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(TextError, match=message) as error:
        scan_text(path)
    assert "\n" not in str(error.value)


def test_other_encodings_and_refused_codecs(tmp_path):
    path = write_lines(tmp_path / "latin.txt", ["café crème"], encoding="latin-1")
    assert TextSentences(scan_text(path, "latin-1"))[0:1] == [["café", "crème"]]
    with pytest.raises(TextError, match="convert the file to UTF-8"):
        check_encoding("utf-16")
    with pytest.raises(TextError, match="unknown text encoding"):
        check_encoding("klingon")


class Interrupted(Exception):
    pass


class FailingSentences(TextSentences):
    """Raises on the read of a given chunk, like a crash part way through a long file."""

    def __init__(self, scan, fail_at):
        super().__init__(scan)
        self.fail_at = fail_at

    def __getitem__(self, key):
        if key.start == self.fail_at:
            raise Interrupted
        return super().__getitem__(key)


def test_text_extraction_counts_and_resumes(encoder, tmp_path):
    path = write_lines(tmp_path / "text.txt", LINES * 3)
    scan = scan_text(path, chunk_sentences=4)
    settings = ExtractParams(
        layers=(1, 2),
        combine="mean",
        pooling="first",
        precision="fp32",
        max_length=64,
        stride=16,
        chunk_sentences=4,
        max_batch_tokens=512,
    )
    expected = fingerprint(encoder, settings, False, 64, scan.words_sha256)
    encode_settings = EncodeSettings(
        layers=(1, 2), combine="mean", pooling="first", bf16=False, max_length=64, stride=16, max_batch_tokens=512
    )

    def writer(name):
        return CacheWriter(tmp_path / name, expected, scan.offsets, encoder.hidden_size, 4)

    interrupted = writer("resumed.h5")
    with pytest.raises(Interrupted):
        extract_to_cache(encoder, FailingSentences(scan, fail_at=8), interrupted, encode_settings, progress=False)
    interrupted.close()
    resumed = writer("resumed.h5")
    assert resumed.pending_chunks() == [2]
    counters = extract_to_cache(encoder, TextSentences(scan), resumed, encode_settings, progress=False)
    assert counters["sentences"] == scan.num_sentences - 8
    resumed.finish()

    whole = writer("whole.h5")
    sentences = [tokenize_line(line) for line in LINES * 3 if tokenize_line(line)]
    counters = extract_to_cache(encoder, sentences, whole, encode_settings, progress=False)
    assert counters["sentences"] == 12 and counters["words"] == scan.num_words
    whole.finish()
    with open_cache(tmp_path / "resumed.h5", expected) as a, open_cache(tmp_path / "whole.h5", expected) as b:
        assert a.num_sentences == 12 and np.array_equal(a.offsets, scan.offsets)
        np.testing.assert_array_equal(a.load_features(), b.load_features())


def run_stage(tmp_path, text_params: dict):
    params = {"extract": {"chunk_sentences": 4}, "unlabelled_text": text_params}
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.extract_text",
            "--params",
            str(tmp_path / "params.yaml"),
            "--out",
            str(tmp_path / "text.h5"),
            "--stats",
            str(tmp_path / "stats.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_stage_refuses_an_empty_file_in_one_line(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    result = run_stage(tmp_path, {"path": str(tmp_path / "empty.txt"), "mode": "add"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'empty.txt'}:2: no text: the file is empty or blank (expected one sentence per line)"
    ]


def test_stage_mode_none_writes_an_empty_placeholder(tmp_path):
    result = run_stage(tmp_path, {"path": "nowhere.txt", "mode": "none"})
    assert result.returncode == 0, result.stderr
    with open_cache(tmp_path / "text.h5") as cache:
        assert cache.num_sentences == 0 and cache.fingerprint == {"unlabelled_text": "none"}
    assert run_stage(tmp_path, {"mode": "sometimes"}).stderr.startswith("error: unlabelled_text.mode 'sometimes'")


# The row view -----------------------------------------------------------------------------------

PARTS = st.lists(st.integers(0, 6), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(PARTS, st.data())
def test_concat_rows_index_like_the_concatenation(sizes, data):
    rng = np.random.default_rng(sum(sizes))
    parts = [rng.standard_normal((n, 3)).astype(np.float16) for n in sizes]
    whole = np.concatenate(parts)
    view = ConcatRows(*parts)
    assert view.shape == whole.shape and view.dtype == np.float16 and len(view) == len(whole)
    if len(whole):
        rows = np.asarray(data.draw(st.lists(st.integers(-len(whole), len(whole) - 1), max_size=12)), np.int64)
        np.testing.assert_array_equal(view[rows], whole[rows])
        start, stop = data.draw(st.integers(0, len(whole))), data.draw(st.integers(0, len(whole)))
        np.testing.assert_array_equal(view[start:stop], whole[start:stop])
        np.testing.assert_array_equal(view[len(whole) - 1], whole[-1])
    np.testing.assert_array_equal(np.asarray(view), whole)


def test_concat_rows_over_a_memmap_and_an_h5py_dataset(tmp_path):
    first = np.arange(12, dtype=np.float16).reshape(6, 2)
    mapped = np.memmap(tmp_path / "a.bin", dtype=np.float16, mode="w+", shape=(6, 2))
    mapped[:] = first
    second = first + 100
    with h5py.File(tmp_path / "b.h5", "w") as handle:
        handle.create_dataset("features", data=second, chunks=(2, 2))  # h5py: sorted unique rows only
    with h5py.File(tmp_path / "b.h5", "r") as handle:
        view = ConcatRows(mapped, handle["features"])
        rows = np.array([11, 0, 7, 7, 6, 5])
        np.testing.assert_array_equal(view[rows], np.concatenate([first, second])[rows])
    with pytest.raises(IndexError):
        view[np.array([12])]
    with pytest.raises(ValueError, match="differ"):
        ConcatRows(first, first.astype(np.float32))
    with pytest.raises(TypeError):
        view[np.array([0.5])]


def test_training_inputs_with_added_or_replacing_text(tmp_path):
    from features.inputs import add_unlabelled_text

    main_fp = {"encoder": "e", "layers": [1], "corpus_sha256": "corpus"}
    text_offsets = np.array([0, 2, 5])
    writer = CacheWriter(tmp_path / "text.h5", dict(main_fp, corpus_sha256="text"), text_offsets, 2, 4)
    writer.write_chunk(0, np.full((5, 2), 7, np.float32), np.zeros(5, np.int32))
    writer.finish()
    features = np.zeros((4, 2), np.float16)
    offsets, labels, unlabelled = np.array([0, 1, 3, 4]), np.array([0, 1, -1, -1], np.int32), np.array([2])
    inputs, new_offsets, new_labels, ids, summary = add_unlabelled_text(
        features, offsets, labels, unlabelled, str(tmp_path / "text.h5"), "add", main_fp
    )
    assert new_offsets.tolist() == [0, 1, 3, 4, 6, 9] and ids.tolist() == [2, 3, 4]
    assert new_labels.tolist() == [0, 1, -1, -1, -1, -1, -1, -1, -1] and len(inputs) == 9
    assert inputs[np.array([8, 0])].tolist() == [[7, 7], [0, 0]]
    assert summary == {"mode": "add", "sentences": 2, "words": 5, "corpus_sha256": "text"}
    ids = add_unlabelled_text(features, offsets, labels, unlabelled, str(tmp_path / "text.h5"), "replace", main_fp)[3]
    assert ids.tolist() == [3, 4]
    with pytest.raises(ValueError, match=r"encoder: text cache has 'e', corpus cache has 'other'\); rerun"):
        add_unlabelled_text(
            features, offsets, labels, unlabelled, str(tmp_path / "text.h5"), "add", dict(main_fp, encoder="other")
        )
