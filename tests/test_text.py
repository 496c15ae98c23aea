"""Raw unlabelled text: the word tokenizer, the streamed two-pass reader, its cache, the row view."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import unicodedata

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
from features.text import (
    TextError,
    TextSentences,
    check_encoding,
    decode_lines,
    raw_lines,
    read_sentences,
    scan_text,
    token_spans,
    tokenize_line,
)

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


def is_format(character: str) -> bool:
    return unicodedata.category(character) == "Cf"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_tokens_join_to_the_non_space_characters(line):
    """Nothing is lost but format characters that touch no token (a whitespace-free run of only them)."""
    tokens = tokenize_line(line)
    assert "".join(tokens) == "".join(run for run in line.split() if not all(map(is_format, run)))
    assert all(tokens) and not any(c.isspace() for token in tokens for c in token)
    assert not any(all(map(is_format, token)) for token in tokens)  # no invisible word
    spans = token_spans(line)
    assert [line[a:b] for a, b in spans] == tokens
    assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))


# Invisible format characters (category Cf), the zero-width joiner aside (it joins emoji, see below).
FORMAT = st.sampled_from(["\u00ad", "\u200b", "\u200c", "\u200e", "\u200f", "\u2060", "\ufeff", "\u2066", "\U000e0041"])
VISIBLE_TEXT = st.text(st.characters(exclude_categories=["Cf", "Cs"]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(VISIBLE_TEXT, st.lists(st.tuples(st.integers(0, 40), FORMAT), max_size=6))
def test_format_characters_never_split_a_word(line, insertions):
    """Format characters anywhere in a line: the same words, each keeping those inside and next to it."""
    spoiled = line
    for position, character in sorted(insertions, reverse=True):
        position = min(position, len(spoiled))
        spoiled = spoiled[:position] + character + spoiled[position:]
    tokens = tokenize_line(spoiled)
    assert ["".join(c for c in token if not is_format(c)) for token in tokens] == tokenize_line(line)


@pytest.mark.parametrize(
    "line, words",
    [
        ("Zür\u00adich is nice", ["Zür\u00adich", "is", "nice"]),  # soft hyphen
        ("in Zürich\u200b.", ["in", "Zürich\u200b", "."]),  # zero-width space before punctuation
        ("New\u2060York's mayor", ["New\u2060York", "'s", "mayor"]),  # word joiner, then a clitic
        ("U\u00ad.S. 12,\u200b000", ["U\u00ad.S.", "12,\u200b000"]),  # the rules read the visible text
        ("\u200bPorto and \ufeffLisbon", ["\u200bPorto", "and", "\ufeffLisbon"]),  # after a space: the next word
        ("a \u200b\u2060 b \u00ad", ["a", "b"]),  # touching no word: dropped
        ("می\u200cخواهم", ["می\u200cخواهم"]),  # a zero-width non-joiner inside a Persian word
        ("क्\u200dष", ["क्\u200dष"]),  # a zero-width joiner inside a Devanagari word
        ("👨\u200d👩\u200d👧 🏳️\u200d🌈!", ["👨\u200d👩\u200d👧", "🏳️\u200d🌈", "!"]),  # joiners between symbols
        ("wo\u00adn't", ["wo\u00ad", "n't"]),
    ],
)
def test_format_character_examples(line, words):
    assert tokenize_line(line) == words


def test_predict_spans_cover_a_word_with_format_characters():
    """read_sentences (predict's split) gives the word with its soft hyphen: the entity ends after it."""
    [(number, line, spans)] = read_sentences(["", "Flights to Zür\u00adich today"])
    assert number == 2 and [line[a:b] for a, b in spans] == ["Flights", "to", "Zür\u00adich", "today"]
    assert spans[2] == (11, 18)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.text("ab \x85", max_size=4), st.sampled_from(["\n", "\r\n", "\r\r\n", "\r", "\r\r"]))),
    st.integers(1, 7),
)
def test_raw_lines_split_like_the_corpus_rule_at_any_block_size(lines, block_size):
    """A run of \\r split across blocks is held back until the next block says whether a \\n follows."""
    data = "".join(text + ending for text, ending in lines).encode()
    expected = [m.group() for m in re.finditer(rb"[^\r\n]*(?:\r*\n|\r)|[^\r\n]+$", data)]
    assert list(raw_lines(io.BytesIO(data), block_size)) == expected


def test_line_numbers_count_crcrlf_as_one_break(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(b"book a flight\r\r\nto Porto\r\r\n\r\r\nnow\rcaf\xe9\n")
    numbers = [(n, line) for n, _, line in decode_lines(io.BytesIO(path.read_bytes()[:-5]), "t", "utf-8")]
    assert numbers == [(1, "book a flight"), (2, "to Porto"), (3, ""), (4, "now")]
    with pytest.raises(TextError) as error:
        scan_text(path)
    assert str(error.value) == (
        f"{path}:5: not valid utf-8 (byte 0xe9 at column 4, byte offset 37); set the text encoding, e.g. latin-1"
    )


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
        (
            "fine line\ncaf\xe9 au lait\n".encode("latin-1"),
            r"empty.txt:2: not valid utf-8 \(byte 0xe9 at column 4, byte offset 13\)",
        ),
        ("hello\n".encode("utf-16"), r"empty.txt:1: UTF-16 text \(byte-order mark\)"),
    ],
)
def test_bad_text_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(TextError, match=message) as error:
        scan_text(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "hello\n".encode("utf-32"),
            "UTF-32 text (byte-order mark), read line by line as utf-8 here: convert it first "
            "(iconv -f UTF-32 -t UTF-8)",
        ),
        (
            "hello\n".encode("utf-16"),
            "UTF-16 text (byte-order mark), read line by line as utf-8 here: convert it first "
            "(iconv -f UTF-16 -t UTF-8)",
        ),
        (
            "hello there\n".encode("utf-16-le"),
            "NUL bytes as in UTF-16-LE text without a byte-order mark, read line by line as utf-8 here: "
            "convert it first (iconv -f UTF-16LE -t UTF-8)",
        ),
        (
            "hello\n".encode("utf-32-be"),
            "NUL bytes as in UTF-32-BE text without a byte-order mark, read line by line as utf-8 here: "
            "convert it first (iconv -f UTF-32BE -t UTF-8)",
        ),
        (b"\x00\x01\x02\x03\x04\x05\x06\x07\n", "NUL byte: not utf-8 text (binary?)"),
    ],
)
def test_wide_text_is_named_not_reported_as_nul(tmp_path, content, message):
    path = tmp_path / "wide.txt"
    path.write_bytes(content)
    with pytest.raises(TextError) as error:
        scan_text(path)
    assert str(error.value) == f"{path}:1: {message}"


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
    refused = run_stage(tmp_path, {"mode": "sometimes"}).stderr
    assert (
        refused
        == f"error: {tmp_path / 'params.yaml'}: unlabelled_text.mode is 'sometimes': expected one of none, add, replace\n"
    )


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
