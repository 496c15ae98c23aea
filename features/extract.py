"""Run the frozen encoder over sentences and pool its pieces into one vector per word.

Windows are sorted by length and packed into batches under a token budget, so
little compute is spent on padding; on CPUs with native bf16 the encoder runs
under bf16 autocast. Features are written chunk by chunk to the HDF5 cache, so
memory stays flat whatever the corpus size and an interrupted run resumes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Sequence

import numpy as np

from cache.store import CacheWriter
from features.align import Windows, tokenize
from features.encoder import Encoder

log = logging.getLogger(__name__)

# Bump when a change here changes the features: caches made by older code are then refused.
FEATURES_CODE_VERSION = 1
POOLINGS = ("first", "mean")
COMBINES = ("mean", "concat")
PAD_MULTIPLE = 8  # padded lengths repeat, so oneDNN reuses its kernels across batches


def feature_dim(encoder: Encoder, layers: list[int], combine: str) -> int:
    return encoder.hidden_size * (len(layers) if combine == "concat" else 1)


def check_layers(encoder: Encoder, layers: list[int], combine: str, pooling: str) -> None:
    """Fail fast on a layer list or option the encoder cannot serve."""
    top = encoder.num_layers
    if not layers or any(not 0 <= layer <= top for layer in layers):
        raise ValueError(f"layers {layers}: each must be in 0..{top} (0 = embeddings) for {encoder.name}")
    if combine not in COMBINES:
        raise ValueError(f"combine {combine!r}: use one of {COMBINES}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r}: use one of {POOLINGS}")


def length_batches(lengths: np.ndarray, max_batch_tokens: int, multiple: int = PAD_MULTIPLE) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, each with (count * padded longest) <= budget.

    Padded lengths are rounded up to ``multiple`` so that batch shapes repeat:
    oneDNN builds a kernel per new shape, which costs more than a little padding.
    """
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = padded_length(int(lengths[order[start]]), multiple)
        count = max(1, max_batch_tokens // longest)
        batches.append(order[start:start + count])
        start += count
    return batches


def padded_length(length: int, multiple: int) -> int:
    return -(-max(length, 1) // multiple) * multiple


def truncate_encoder(encoder: Encoder, top_layer: int) -> None:
    """Drop the transformer layers above ``top_layer``: their output is never read."""
    stack = getattr(getattr(encoder.model, "encoder", None), "layer", None)
    if stack is not None and top_layer < len(stack):
        encoder.model.encoder.layer = stack[:top_layer]


def encode_windows(encoder: Encoder, windows: Windows, layers: list[int], combine: str,
                   pooling: str, bf16: bool, max_batch_tokens: int, sort: bool = True,
                   batch_windows: int | None = None) -> np.ndarray:
    """Word vectors (num_words, D) float32 for tokenised ``windows``.

    ``sort=False`` with ``batch_windows`` gives the naive schedule (corpus order,
    fixed batch size) that the benchmark compares against.
    """
    import torch

    lengths = np.array([len(ids) for ids in windows.input_ids])
    if sort:
        batches = length_batches(lengths, max_batch_tokens)
    else:
        size = batch_windows or 128
        batches = [np.arange(i, min(i + size, len(lengths))) for i in range(0, len(lengths), size)]
    dim = feature_dim(encoder, layers, combine)
    words = torch.zeros((windows.num_words, dim), dtype=torch.float32)
    if pooling == "first":
        piece_window, piece_position = windows.word_window, windows.word_first
        piece_word = np.arange(windows.num_words)
        piece_weight = np.ones(windows.num_words, dtype=np.float32)
    else:
        piece_window, piece_position, piece_word = windows.piece_window, windows.piece_position, windows.piece_word
        counts = np.bincount(piece_word, minlength=windows.num_words)
        piece_weight = (1.0 / counts[piece_word]).astype(np.float32)
    # Group the pieces by window once, so each batch finds its pieces by slicing.
    by_window = np.argsort(piece_window, kind="stable")
    window_starts = np.searchsorted(piece_window[by_window], np.arange(len(lengths) + 1))
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
    pad_id = encoder.tokenizer.pad_token_id or 0
    with torch.inference_mode(), autocast:
        for batch in batches:
            longest = padded_length(int(lengths[batch].max()), PAD_MULTIPLE if sort else 1)
            ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for b, window in enumerate(batch):
                ids[b, :lengths[window]] = torch.tensor(windows.input_ids[window])
                mask[b, :lengths[window]] = 1
            output = encoder.model(input_ids=ids, attention_mask=mask,
                                   token_type_ids=torch.zeros_like(ids), output_hidden_states=True)
            chosen = [output.hidden_states[layer].float() for layer in layers]   # each (B, T, H)
            hidden = torch.cat(chosen, -1) if combine == "concat" else torch.stack(chosen).mean(0)
            flat = hidden.reshape(-1, dim)                                       # (B*T, D)
            pieces = np.concatenate([by_window[window_starts[w]:window_starts[w + 1]] for w in batch])
            slot = np.empty(len(lengths), dtype=np.int64)
            slot[batch] = np.arange(len(batch))
            rows = torch.from_numpy(slot[piece_window[pieces]] * longest + piece_position[pieces])
            weighted = flat[rows] * torch.from_numpy(piece_weight[pieces])[:, None]
            words.index_add_(0, torch.from_numpy(piece_word[pieces]), weighted)
    return words.numpy()


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def release_freed_memory() -> None:
    """Give the heap memory freed by the last chunk back to the OS (glibc's malloc_trim).

    Each chunk allocates and frees batches of many sizes; glibc keeps the freed
    pages, fragmented, so without this the RSS creeps up chunk after chunk
    (measured: +430 MiB over 100k lines) instead of staying flat.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def fingerprint(encoder: Encoder, layers, combine, pooling, bf16, max_length, stride, words_sha256) -> dict:
    """Everything the cached features depend on; a reader asks for exactly this."""
    return {"encoder": encoder.name, "weights_sha256": encoder.weights_sha256,
            "layers": [int(layer) for layer in layers], "combine": combine, "pooling": pooling,
            "precision": "bf16" if bf16 else "fp32", "max_length": int(max_length),
            "stride": int(stride), "corpus_sha256": words_sha256,
            "vocab_size": len(encoder.tokenizer),
            "code_version": FEATURES_CODE_VERSION}


def extract_to_cache(encoder: Encoder, sentences: Sequence[list[str]], writer: CacheWriter,
                     layers, combine, pooling, bf16, max_length, stride, max_batch_tokens,
                     progress: bool = True) -> dict:
    """Encode every pending chunk of ``sentences`` into ``writer``; returns counters.

    ``sentences`` is read one chunk at a time, ``sentences[first:last]``: a list,
    or a reader such as ``features.text.TextSentences`` that streams from disk.
    """
    from tqdm import tqdm

    pending = writer.pending_chunks()
    total = sum(np.subtract(*writer.chunk_sentence_range(c)[::-1]) for c in pending)
    counters = {"sentences": 0, "words": 0, "pieces": 0, "padded_slots": 0, "windows": 0}
    with tqdm(total=int(total), unit="sent", disable=not progress, desc="extract") as bar:
        for chunk in pending:
            first, last = writer.chunk_sentence_range(chunk)
            windows = tokenize(encoder.tokenizer, sentences[first:last], max_length, stride)
            vectors = encode_windows(encoder, windows, layers, combine, pooling, bf16, max_batch_tokens)
            writer.write_chunk(chunk, vectors, windows.first_piece_id)
            lengths = np.array([len(ids) for ids in windows.input_ids])
            counters["sentences"] += last - first
            counters["words"] += windows.num_words
            counters["pieces"] += int(lengths.sum())
            counters["windows"] += len(lengths)
            counters["padded_slots"] += sum(len(b) * padded_length(int(lengths[b].max()), PAD_MULTIPLE)
                                            for b in length_batches(lengths, max_batch_tokens))
            del windows, vectors
            release_freed_memory()
            bar.update(last - first)
    return counters
