"""Alignment and pooling with the real packaged encoder: every word gets exactly one vector."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.align import tokenize
from features.extract import PAD_MULTIPLE, encode_windows, length_batches

# Ordinary words, words split into many pieces, and words that tokenise to nothing.
WORD = st.sampled_from(
    [
        "the",
        "London",
        "marched",
        "NaN",
        "null",
        "Grönholm",
        "°C",
        "\x85",
        "\u200b",
        "antidisestablishmentarianism",
        ",",
        "3.5",
        "U.S.",
        "5 storm",
    ]
)
SENTENCES = st.lists(st.lists(WORD, min_size=1, max_size=12), min_size=1, max_size=6)


def encode(encoder, sentences, pooling="first", bf16=False, max_length=512, stride=128):
    windows = tokenize(encoder.tokenizer, sentences, max_length, stride)
    return encode_windows(encoder, windows, [2, 3], "mean", pooling, bf16, 4096), windows


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SENTENCES, st.sampled_from(["first", "mean"]))
def test_one_finite_vector_per_word(encoder, sentences, pooling):
    vectors, windows = encode(encoder, sentences, pooling)
    assert vectors.shape == (sum(map(len, sentences)), encoder.hidden_size)
    assert np.isfinite(vectors).all()
    assert (np.abs(vectors).sum(1) > 0).all()
    assert windows.first_piece_id.shape == (vectors.shape[0],)


def test_sentence_alone_equals_sentence_in_a_batch(encoder):
    target = ["Thousands", "of", "demonstrators", "marched", "through", "London", "."]
    others = [["a"] * 40, ["Iran", "'s", "president", "spoke"], ["x"] * 3]
    alone, _ = encode(encoder, [target])
    batched, _ = encode(encoder, others[:2] + [target] + others[2:])
    start = 44
    np.testing.assert_allclose(batched[start : start + len(target)], alone, atol=2e-3, rtol=2e-3)


def test_pooling_matches_a_direct_encoder_pass(encoder):
    words = ["Citroën", "antidisestablishmentarianism", "rallied"]
    encoding = encoder.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder.model(**encoding, output_hidden_states=True).hidden_states
    reference = ((hidden[2] + hidden[3]) / 2)[0].numpy()  # (T, H)
    pieces = [[t for t, w in enumerate(encoding.word_ids()) if w == i] for i in range(len(words))]
    first, _ = encode(encoder, [words], "first")
    mean, _ = encode(encoder, [words], "mean")
    for i, positions in enumerate(pieces):
        np.testing.assert_allclose(first[i], reference[positions[0]], atol=1e-4)
        np.testing.assert_allclose(mean[i], reference[positions].mean(0), atol=1e-4)
    assert len(pieces[1]) > 1 and not np.allclose(first[1], mean[1])


def test_a_thousand_word_sentence_keeps_every_word(encoder):
    words = [f"word{i % 50}" for i in range(1000)]
    vectors, windows = encode(encoder, [words], max_length=128, stride=32)
    assert vectors.shape[0] == 1000 and np.isfinite(vectors).all()
    assert len(windows.input_ids) > 1
    # Each word comes from the window where it has the most context on its poorer side.
    for row in (0, 400, 999):
        assert windows.word_window[row] >= 0
    chosen = windows.word_first[500]
    window_length = len(windows.input_ids[windows.word_window[500]])
    assert min(chosen, window_length - chosen) >= 16


def test_word_with_no_pieces_gets_the_unknown_token(encoder):
    vectors, windows = encode(encoder, [["a", "\x85", "b"]])
    assert vectors.shape[0] == 3
    assert windows.first_piece_id[1] == encoder.tokenizer.unk_token_id


def pieces_as_text(tokenizer, words: list[str]) -> list[int]:
    """The piece ids of ``words`` read as plain text: no special token matched, none added."""
    return tokenizer(words, is_split_into_words=True, add_special_tokens=False, split_special_tokens=True)["input_ids"]


@pytest.mark.parametrize("word", ["[SEP]", "[CLS]", "[MASK]", "[PAD]", "[UNK]", "<s>", "x[SEP]y", "[sep]"])
def test_a_word_spelling_a_special_token_is_encoded_as_text(encoder, word):
    tokenizer = encoder.tokenizer
    windows = tokenize(tokenizer, [["see", word, "here"]], 512, 128)
    [ids] = windows.input_ids
    assert [i for i in ids if i in tokenizer.all_special_ids] == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    word_ids = [int(ids[p]) for p, w in zip(windows.piece_position, windows.piece_word) if w == 1]
    assert word_ids == pieces_as_text(tokenizer, [word]) and len(word_ids) > 1
    assert "".join(t.removeprefix("##") for t in tokenizer.convert_ids_to_tokens(word_ids)) == word.lower()


def test_unknown_token_repair_beside_a_special_token_word_in_overlapping_windows(encoder):
    """A word with no pieces gets the unknown token, as its one piece, in every window that holds it."""
    tokenizer = encoder.tokenizer
    words = [f"w{i}" for i in range(30)]
    words[9], words[12], words[20] = "\x85", "[SEP]", "\u200b"
    windows = tokenize(tokenizer, [["a", "\x85", "[SEP]", "b"], words], 16, 4)
    assert windows.input_ids[0] == [
        tokenizer.cls_token_id,
        *pieces_as_text(tokenizer, ["a"]),
        tokenizer.unk_token_id,
        *pieces_as_text(tokenizer, ["[SEP]"]),
        *pieces_as_text(tokenizer, ["b"]),
        tokenizer.sep_token_id,
    ]
    assert len(windows.input_ids) > 3 and (windows.window_sentence[1:] == 1).all()
    assert windows.first_piece_id[[1, 4 + 9, 4 + 20]].tolist() == [tokenizer.unk_token_id] * 3
    for ids in windows.input_ids:  # special tokens only frame the windows
        assert [i for i in ids[1:-1] if i in tokenizer.all_special_ids and i != tokenizer.unk_token_id] == []
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert sum(ids.count(tokenizer.unk_token_id) for ids in windows.input_ids[1:]) >= 2  # both, overlaps maybe twice


@pytest.mark.parametrize("budget", [64, 1000, 8192])
def test_length_batches_cover_every_window_once_within_budget(budget):
    lengths = np.random.default_rng(0).integers(3, 120, size=500)
    batches = length_batches(lengths, budget)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    for batch in batches:
        longest = -(-lengths[batch].max() // PAD_MULTIPLE) * PAD_MULTIPLE
        assert len(batch) == 1 or len(batch) * longest <= budget


def test_bf16_features_stay_close_to_fp32(encoder):
    sentences = [["Thousands", "of", "demonstrators", "have", "marched", "through", "London"]]
    fp32, _ = encode(encoder, sentences, bf16=False)
    bf16, _ = encode(encoder, sentences, bf16=True)
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99


# --- the backend: chosen in one place; the local path never loads the Ray module ----------------

TINY = [["Thousands", "of", "demonstrators"], ["London"]]
TINY_OFFSETS = np.array([0, 3, 4], dtype=np.int64)


def test_the_local_backend_never_imports_the_ray_module(tmp_path, monkeypatch):
    import importlib
    import sys

    from cache.store import open_cache
    from features.settings import ExtractParams

    # A fresh features.backend, with the Ray module made unimportable: any import of it raises.
    monkeypatch.delitem(sys.modules, "features.backend", raising=False)
    monkeypatch.setitem(sys.modules, "features.ray_extract", None)
    backend = importlib.import_module("features.backend")
    threads = torch.get_num_threads()
    params = ExtractParams(layers=(1,), precision="fp32", chunk_sentences=1, threads=1, device="cpu")
    stats = backend.encode_to_cache(params, TINY, TINY_OFFSETS, "tiny", str(tmp_path / "f.h5"))
    torch.set_num_threads(threads)
    assert stats["backend"] == "local" and stats["words"] == 4
    with open_cache(tmp_path / "f.h5", stats["fingerprint"]) as cache:
        assert cache.num_words == 4


def test_the_ray_backend_is_chosen_by_the_setting(tmp_path, monkeypatch):
    import features.ray_extract
    from features.backend import encode_to_cache
    from features.settings import ExtractParams

    calls = []
    monkeypatch.setattr(features.ray_extract, "encode_to_cache_ray", lambda *args: calls.append(args) or {})
    params = ExtractParams(backend="ray")
    assert encode_to_cache(params, TINY, TINY_OFFSETS, "tiny", "out.h5") == {}
    assert calls == [(params, TINY, TINY_OFFSETS, "tiny", "out.h5")]


def test_an_unknown_backend_is_refused_before_any_work(tmp_path):
    from features.backend import encode_to_cache
    from features.settings import ExtractParams

    with pytest.raises(ValueError, match=r"extract.backend 'spark': use one of local, ray"):
        encode_to_cache(ExtractParams(backend="spark"), TINY, TINY_OFFSETS, "tiny", str(tmp_path / "f.h5"))
    assert not list(tmp_path.iterdir())


def test_encode_chunk_encodes_with_every_one_of_its_settings(encoder):
    """Each field of EncodeSettings reaches the code that reads it (a long sentence spans several windows)."""
    from features.extract import encode_chunk, padded_length
    from features.settings import EncodeSettings

    sentences = [["the", "minister", "said"] * 9, ["London", "marched"], ["Grönholm"] * 5]
    settings = EncodeSettings(
        layers=(1, 3), combine="concat", pooling="first", bf16=False, max_length=16, stride=4, max_batch_tokens=40
    )
    vectors, piece_ids, counters = encode_chunk(encoder, sentences, settings)
    windows = tokenize(encoder.tokenizer, sentences, 16, 4)
    np.testing.assert_array_equal(vectors, encode_windows(encoder, windows, [1, 3], "concat", "first", False, 40))
    np.testing.assert_array_equal(piece_ids, windows.first_piece_id)
    lengths = np.array([len(ids) for ids in windows.input_ids])
    assert counters == {
        "words": 34,
        "pieces": int(lengths.sum()),
        "windows": len(lengths),
        "padded_slots": sum(
            len(b) * padded_length(int(lengths[b].max()), PAD_MULTIPLE) for b in length_batches(lengths, 40)
        ),
    }
    assert len(lengths) > 3  # the long sentence was cut into windows of 16 pieces
    bf16_vectors, _, _ = encode_chunk(encoder, sentences, dataclasses.replace(settings, bf16=True))
    assert not np.array_equal(bf16_vectors, vectors)
