"""Encode windows packed end to end into one row per model call: the tagger's (predict's and the server's) path.

``features.extract.encode_windows`` gives each window a row of its own, padded
to the longest in its batch: on a chatbot's few short messages of unequal
length, nearly half the tokens a model call computes are padding. Here the
windows of a call are laid end to end in a single row (up to
``max_batch_tokens`` pieces, padded to a multiple of 8 so that shapes repeat),
each window's position ids restart at 0, and attention runs window by window
(``packed_attention``, one scaled dot-product attention per window, no mask):
every window is encoded as if it were alone in a row, the same hidden states
up to float rounding (tests/test_packing.py), with no padding computed but the
row's tail. The linear layers, which are nearly all the work, see only real pieces.

Only for encoders whose positions are absolute and read from ``position_ids``
and whose self-attention goes through transformers' attention interface (BERT
and its kin, MiniLM among them): ``packs(encoder)`` says whether this one is;
the tagger falls back to ``encode_windows`` for others. The extract stage never
runs this: the feature cache is ``encode_windows``'s.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

from features.align import Windows
from features.encoder import Encoder
from features.extract import PAD_MULTIPLE, feature_dim, padded_length, pooled_pieces

PACKED_MODEL_TYPES = ("bert",)  # absolute position embeddings looked up by position_ids, attention via the interface
ATTENTION = "ssner_packed"  # the name packed_attention is registered under in transformers' AttentionInterface


def packs(encoder: Encoder) -> bool:
    """Whether ``encode_packed`` gives this encoder's hidden states: a BERT on the CPU, absolute positions."""
    config = encoder.model.config
    on_cpu = getattr(getattr(encoder.model, "device", None), "type", "cpu") == "cpu"
    absolute = getattr(config, "position_embedding_type", None) in ("absolute", None)
    return on_cpu and absolute and config.model_type in PACKED_MODEL_TYPES and not config.is_decoder


def packed_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """Self-attention within each window of a packed row (``packed_windows``: (start, length) pairs).

    query, key, value (1, heads, T, head_dim); returns (1, T, heads, head_dim) as transformers'
    SDPA attention does, zeros at the row's padded tail. Without ``packed_windows``: plain SDPA.
    """
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    windows = kwargs.pop("packed_windows", None)
    if windows is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    parts = [
        F.scaled_dot_product_attention(
            query[:, :, start : start + length],
            key[:, :, start : start + length],
            value[:, :, start : start + length],
            scale=scaling,
        )
        for start, length in windows
    ]  # each (1, heads, length, head_dim)
    tail = query.shape[2] - sum(length for _, length in windows)
    if tail:
        parts.append(query.new_zeros(query.shape[:2] + (tail, query.shape[3])))
    return torch.cat(parts, 2).transpose(1, 2).contiguous(), None


@functools.cache
def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, packed_attention)


_ATTENTION_LOCK = threading.Lock()
_attention_users: dict[int, tuple[int, str]] = {}  # id(model config) -> (blocks inside, implementation before)


@contextlib.contextmanager
def _packed_attention(model):
    """The model's self-attention is ``packed_attention`` within this block (and its previous one after the
    last block, of any thread, that uses the model ends: threads may encode with one model at once)."""
    _register_attention()
    config = model.config
    with _ATTENTION_LOCK:
        users, previous = _attention_users.get(id(config), (0, config._attn_implementation))
        _attention_users[id(config)] = (users + 1, previous)
        config._attn_implementation = ATTENTION
    try:
        yield
    finally:
        with _ATTENTION_LOCK:
            users, previous = _attention_users.pop(id(config))
            if users > 1:
                _attention_users[id(config)] = (users - 1, previous)
            else:
                config._attn_implementation = previous


def pack_calls(lengths: np.ndarray, max_batch_tokens: int) -> list[np.ndarray]:
    """Windows (their indices, in order) grouped into model calls of at most ``max_batch_tokens`` pieces
    (a longer window alone)."""
    calls, start, total = [], 0, 0
    for window, length in enumerate(lengths):
        if window > start and total + length > max_batch_tokens:
            calls.append(np.arange(start, window))
            start, total = window, 0
        total += int(length)
    if len(lengths):
        calls.append(np.arange(start, len(lengths)))
    return calls


def encode_packed(
    encoder: Encoder,
    windows: Windows,
    layers: list[int],
    combine: str,
    pooling: str,
    bf16: bool,
    max_batch_tokens: int,
) -> np.ndarray:
    """Word vectors (num_words, D) float32, as ``encode_windows`` gives them, from windows packed into rows."""
    import torch

    lengths = np.array([len(ids) for ids in windows.input_ids], dtype=np.int64)
    calls = pack_calls(lengths, max_batch_tokens)
    window_start = np.zeros(len(lengths), dtype=np.int64)  # where each window begins in its call's row
    for call in calls:
        window_start[call[1:]] = np.cumsum(lengths[call])[:-1]
    window_call = np.zeros(len(lengths), dtype=np.int64)
    for number, call in enumerate(calls):
        window_call[call] = number

    dim = feature_dim(encoder, layers, combine)
    words = torch.zeros((windows.num_words, dim), dtype=torch.float32)
    piece_window, piece_position, piece_word, piece_weight = pooled_pieces(windows, pooling)
    piece_call = window_call[piece_window]
    piece_column = window_start[piece_window] + piece_position  # (P,) the piece's place in its call's row
    pieces_by_call = np.argsort(piece_call, kind="stable")
    call_starts = np.searchsorted(piece_call[pieces_by_call], np.arange(len(calls) + 1))
    pad_id = encoder.tokenizer.pad_token_id or 0
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), autocast, _packed_attention(encoder.model):
        for number, call in enumerate(calls):
            used = int(lengths[call].sum())
            width = padded_length(used, PAD_MULTIPLE)
            ids = np.full((1, width), pad_id, dtype=np.int64)
            positions = np.zeros((1, width), dtype=np.int64)
            ids[0, :used] = np.concatenate([windows.input_ids[w] for w in call])
            positions[0, :used] = np.concatenate([np.arange(lengths[w]) for w in call])
            ids_t = torch.from_numpy(ids)
            output = encoder.model(
                input_ids=ids_t,
                position_ids=torch.from_numpy(positions),
                token_type_ids=torch.zeros_like(ids_t),
                output_hidden_states=True,
                packed_windows=[(int(window_start[w]), int(lengths[w])) for w in call],
            )
            chosen = [output.hidden_states[layer][0].float() for layer in layers]  # each (T, H)
            hidden = torch.cat(chosen, -1) if combine == "concat" else torch.stack(chosen).mean(0)  # (T, D)
            pieces = pieces_by_call[call_starts[number] : call_starts[number + 1]]
            weighted = hidden[torch.from_numpy(piece_column[pieces])] * torch.from_numpy(piece_weight[pieces])[:, None]
            words.index_add_(0, torch.from_numpy(piece_word[pieces]), weighted)
    return words.numpy()


def cast_linear_weights(model) -> None:
    """The model's linear layers' weights and biases in bf16, once, instead of at every call under autocast.

    CPU autocast casts each fp32 weight to bf16 on every forward (about 10% of a small call's time); a weight
    already in bf16 is used as it is, and the cast is the same rounding, so the outputs under autocast are
    bit-identical (tests/test_packing.py). Only for a model that always runs under bf16 autocast.
    """
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)


def quantize_linear_int8(model):
    """The model with its linear layers' weights in int8, a scale per output channel, and their inputs quantized
    per call (torch's dynamic quantization, fbgemm kernels), all but the down-projections (more inputs than
    outputs: a feed-forward block's second layer), which stay fp32.

    A dynamic int8 layer scales its whole input by one number; a down-projection's input, after the GELU, holds a
    few large outliers that leave the other values a handful of levels. On MiniLM, quantizing those too took the
    mean cosine of a word's vector to fp32's from 0.993 to 0.982 for a few per cent more speed. The features move
    by the rounding (a head trained on fp32 features tags nearly, not exactly, the same: bench/int8.json gives
    the measured entity F1 and speed), so only on request: ``--int8``.
    """
    import warnings

    import torch

    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao, still shipped
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        chosen = {
            name: per_channel_dynamic_qconfig
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module.in_features <= module.out_features
        }
        return quantize_dynamic(model, chosen, dtype=torch.qint8)
