"""features.packing: windows packed end to end into one row per model call give the hidden states of separate
rows (the real MiniLM weights), whatever the calls' budget, pooling and combination; bf16 linear weights cast
once give the outputs of autocast's cast, bit for bit; int8 linear layers (``--int8``) stay close to fp32."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from features.align import tokenize
from features.extract import encode_windows
from features.packing import ATTENTION, cast_linear_weights, encode_packed, pack_calls, packs, quantize_linear_int8

LONG = (
    "The delegation from Brazil met officials of the European Union in Brussels on Tuesday to discuss "
    "tariffs on steel , coffee and soybeans before the summit in Geneva next month ."
)
SENTENCES = [
    ["Ship", "the", "Luma", "lamp", "to", "Porto", "on", "Friday", "."],
    ["Hi"],
    ["Is", "the", "desk", "lamp", "in", "stock", "in", "Lisbon", "?"],
    # longer than the 24-piece windows below: several windows, overlapping
    LONG.split(" "),
    ["a[SEP]b", "[CLS]", "Zürich", "naïve", "café", "😀"],
]
LAYERS = [1, 3, 6]


@pytest.fixture(scope="module")
def windows(encoder):
    return tokenize(encoder.tokenizer, SENTENCES, 24, 6)


def test_the_encoder_packs(encoder):
    assert packs(encoder)


@pytest.mark.parametrize("pooling,combine", [("mean", "mean"), ("first", "concat")])
@pytest.mark.parametrize("max_batch_tokens", [4096, 40, 1])  # one call; several; a window a call
def test_packed_windows_give_the_hidden_states_of_separate_rows(encoder, windows, pooling, combine, max_batch_tokens):
    assert len(windows.input_ids) > len(SENTENCES)  # the long sentence has several windows
    expected = encode_windows(encoder, windows, LAYERS, combine, pooling, False, 4096)
    before = encoder.model.config._attn_implementation
    found = encode_packed(encoder, windows, LAYERS, combine, pooling, False, max_batch_tokens)
    assert encoder.model.config._attn_implementation == before != ATTENTION  # the encoder is left as it was
    assert found.shape == expected.shape
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-4)


def test_the_windows_of_a_row_do_not_see_each_other(encoder, windows, monkeypatch):
    """Without attention window by window, the packed row's windows attend across: the features move by far
    more than the tolerance (the test above would fail)."""
    import features.packing as packing

    plain = packing.packed_attention

    def across_windows(*args, **kwargs):
        kwargs.pop("packed_windows", None)
        return plain(*args, **kwargs)

    monkeypatch.setattr(packing, "packed_attention", across_windows)
    packing._register_attention.cache_clear()
    try:
        found = encode_packed(encoder, windows, LAYERS, "mean", "mean", False, 4096)
    finally:
        monkeypatch.undo()
        packing._register_attention.cache_clear()
    expected = encode_windows(encoder, windows, LAYERS, "mean", "mean", False, 4096)
    assert np.abs(found - expected).max() > 0.1


def test_bf16_packed_features_stay_within_bf16_noise_of_separate_rows(encoder, windows):
    expected = encode_windows(encoder, windows, LAYERS, "mean", "mean", True, 4096)
    found = encode_packed(encoder, windows, LAYERS, "mean", "mean", True, 4096)
    assert np.abs(found - expected).max() < 0.05  # bf16 keeps 8 bits: features of magnitude ~1 move by ~0.01


def test_linear_weights_cast_once_give_autocasts_outputs_bit_for_bit(encoder, windows):
    cast = copy.deepcopy(encoder)
    cast_linear_weights(cast.model)
    assert cast.model.encoder.layer[0].attention.self.query.weight.dtype.is_floating_point
    assert str(cast.model.encoder.layer[0].output.dense.weight.dtype) == "torch.bfloat16"
    for encode in (encode_windows, encode_packed):
        expected = encode(encoder, windows, LAYERS, "mean", "mean", True, 4096)
        found = encode(cast, windows, LAYERS, "mean", "mean", True, 4096)
        assert np.array_equal(found, expected), encode.__name__


def test_pack_calls_fill_each_call_up_to_the_budget_in_order():
    calls = pack_calls(np.array([5, 3, 7, 2, 12, 1]), 8)
    assert [call.tolist() for call in calls] == [[0, 1], [2], [3], [4], [5]]  # 12 > 8: alone
    assert [call.tolist() for call in pack_calls(np.array([3, 3, 3]), 4096)] == [[0, 1, 2]]
    assert pack_calls(np.array([], dtype=np.int64), 8) == []


def test_int8_quantizes_all_but_the_down_projections_per_channel_and_keeps_each_word_s_direction(encoder, windows):
    import torch

    layers = encoder.model.encoder.layer
    quantized = dataclasses.replace(encoder, model=quantize_linear_int8(encoder.model))
    dynamic = [m for m in quantized.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    kept = [m for m in quantized.model.modules() if type(m) is torch.nn.Linear]
    # query, key, value, attention output and the feed-forward's first layer of each block (and the pooler)
    assert len(dynamic) == 5 * len(layers) + 1 and {m.weight().qscheme() for m in dynamic} == {torch.per_channel_affine}
    assert len(kept) == len(layers) and all(m.in_features > m.out_features for m in kept)  # 1536 -> 384: fp32
    assert type(layers[0].intermediate.dense) is torch.nn.Linear  # the fp32 model is left as it was
    expected = encode_packed(encoder, windows, LAYERS, "mean", "mean", False, 4096)
    found = encode_packed(quantized, windows, LAYERS, "mean", "mean", False, 4096)
    cosine = (found * expected).sum(1) / np.linalg.norm(found, axis=1) / np.linalg.norm(expected, axis=1)
    assert (
        cosine.min() > 0.985
    )  # each word's vector keeps its direction (0.991; the down-projections in int8 too: 0.980) ...
    assert np.abs(found - expected).max() > 1e-3  # ... but is not fp32's: the weights are int8
