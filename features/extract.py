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
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cache.store import CacheError, CacheWriter, cache_totals, open_cache
from features.align import Windows, tokenize
from features.encoder import Encoder, cpu_supports_bf16, load_encoder
from features.settings import EncodeSettings, ExtractParams

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
        batches.append(order[start : start + count])
        start += count
    return batches


def padded_length(length: int, multiple: int) -> int:
    return -(-max(length, 1) // multiple) * multiple


def truncate_encoder(encoder: Encoder, top_layer: int) -> None:
    """Drop the transformer layers above ``top_layer``: their output is never read."""
    stack = getattr(getattr(encoder.model, "encoder", None), "layer", None)
    if stack is not None and top_layer < len(stack):
        encoder.model.encoder.layer = stack[:top_layer]


def pooled_pieces(windows: Windows, pooling: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pieces a word vector pools, each as (window, position in it, word, weight), all (P,):
    ``first``: each word's first piece, weight 1; ``mean``: every piece, weight 1 / the word's piece count."""
    if pooling == "first":
        piece_word = np.arange(windows.num_words)
        return windows.word_window, windows.word_first, piece_word, np.ones(windows.num_words, dtype=np.float32)
    counts = np.bincount(windows.piece_word, minlength=windows.num_words)
    weight = (1.0 / counts[windows.piece_word]).astype(np.float32)
    return windows.piece_window, windows.piece_position, windows.piece_word, weight


def encode_windows(
    encoder: Encoder,
    windows: Windows,
    layers: list[int],
    combine: str,
    pooling: str,
    bf16: bool,
    max_batch_tokens: int,
    sort: bool = True,
    batch_windows: int | None = None,
) -> np.ndarray:
    """Word vectors (num_words, D) float32 (a NumPy array, on the CPU) for tokenised ``windows``.

    Runs where the encoder's model is (the CPU, or a GPU: ``load_encoder(device=...)``),
    under bf16 autocast there when ``bf16``. ``sort=False`` with ``batch_windows``
    gives the naive schedule (corpus order, fixed batch size) that the benchmark
    compares against.
    """
    import torch

    device = getattr(encoder.model, "device", torch.device("cpu"))

    lengths = np.array([len(ids) for ids in windows.input_ids])
    if sort:
        batches = length_batches(lengths, max_batch_tokens)
    else:
        size = batch_windows or 128
        batches = [np.arange(i, min(i + size, len(lengths))) for i in range(0, len(lengths), size)]
    dim = feature_dim(encoder, layers, combine)
    words = torch.zeros((windows.num_words, dim), dtype=torch.float32, device=device)
    piece_window, piece_position, piece_word, piece_weight = pooled_pieces(windows, pooling)
    # Group the pieces by window once, so each batch finds its pieces by slicing.
    by_window = np.argsort(piece_window, kind="stable")
    window_starts = np.searchsorted(piece_window[by_window], np.arange(len(lengths) + 1))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    pad_id = encoder.tokenizer.pad_token_id or 0
    with torch.inference_mode(), autocast:
        for batch in batches:
            longest = padded_length(int(lengths[batch].max()), PAD_MULTIPLE if sort else 1)
            ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for b, window in enumerate(batch):
                ids[b, : lengths[window]] = torch.tensor(windows.input_ids[window])
                mask[b, : lengths[window]] = 1
            ids, mask = ids.to(device), mask.to(device)  # no-ops on the CPU
            output = encoder.model(
                input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), output_hidden_states=True
            )
            chosen = [output.hidden_states[layer].float() for layer in layers]  # each (B, T, H)
            hidden = torch.cat(chosen, -1) if combine == "concat" else torch.stack(chosen).mean(0)
            flat = hidden.reshape(-1, dim)  # (B*T, D)
            pieces = np.concatenate([by_window[window_starts[w] : window_starts[w + 1]] for w in batch])
            slot = np.empty(len(lengths), dtype=np.int64)
            slot[batch] = np.arange(len(batch))
            rows = torch.from_numpy(slot[piece_window[pieces]] * longest + piece_position[pieces]).to(device)
            weighted = flat[rows] * torch.from_numpy(piece_weight[pieces]).to(device)[:, None]
            words.index_add_(0, torch.from_numpy(piece_word[pieces]).to(device), weighted)
    return words.cpu().numpy()


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


# The fingerprint's fields in the order it is written (the stats' JSON shows it in this order).
FINGERPRINT_FIELDS = (
    "encoder",
    "weights_sha256",
    "device",
    "device_requested",
    "vocab_size",
    "layers",
    "combine",
    "pooling",
    "precision",
    "precision_requested",
    "max_length",
    "max_length_requested",
    "stride",
    "chunk_sentences",
    "max_batch_tokens",
    "corpus_sha256",
    "code_version",
)


def requested_fingerprint(params: ExtractParams, words_sha256: str) -> dict:
    """The fields of the fingerprint that ``params`` and the corpus's hash fix without loading the encoder.

    Every setting that changes the features, as requested, plus ``precision`` and
    ``max_length`` where the request leaves nothing to resolve (bf16 or fp32; a
    window length other than 0). ``fingerprint`` writes these values, and a reader
    (``features.inputs.load_inputs``) asks a cache for exactly these. Not here: the
    weights' hash and vocabulary size (known once the encoder is loaded) and the
    device, requested or resolved (recorded, not asked: a GPU cache serves the CPU).
    """
    requested = {
        "encoder": params.encoder,
        "layers": [int(layer) for layer in params.layers],
        "combine": params.combine,
        "pooling": params.pooling,
        "precision_requested": params.precision,
        "max_length_requested": int(params.max_length),
        "stride": int(params.stride),
        "chunk_sentences": int(params.chunk_sentences),
        "max_batch_tokens": int(params.max_batch_tokens),
        "corpus_sha256": words_sha256,
        "code_version": FEATURES_CODE_VERSION,
    }
    if params.precision in ("bf16", "fp32"):
        requested["precision"] = params.precision
    if params.max_length:
        requested["max_length"] = int(params.max_length)
    return requested


def fingerprint(encoder: Encoder, params: ExtractParams, bf16: bool, max_length: int, words_sha256: str) -> dict:
    """Everything the cached features depend on: ``requested_fingerprint`` plus what was resolved.

    Each setting that changes the features is here, as requested and, where the
    machine or the encoder resolves it, as resolved: ``precision`` (auto) and
    ``max_length`` (0). ``chunk_sentences`` and ``max_batch_tokens`` decide which
    windows share a padded batch, and that moves features (measured: chunk_sentences
    0.013 max abs on 7,810 rows; max_batch_tokens 256 vs 4096, fp32: 7e-6, i.e. up
    to 0.002 once stored as float16). ``device`` is here too (kernels differ between
    CPU and GPU); ``threads`` is not: 1 and 2 threads gave bit-identical features,
    and neither are ``backend`` and ``ray_address``, which run the same code.
    """
    resolved = {
        "encoder": encoder.name,  # the name it was loaded by: params.encoder
        "weights_sha256": encoder.weights_sha256,
        "device": getattr(getattr(encoder.model, "device", None), "type", "cpu"),
        "device_requested": params.device,
        "vocab_size": len(encoder.tokenizer),
        "precision": "bf16" if bf16 else "fp32",
        "max_length": int(max_length),
    }
    fields = {**requested_fingerprint(params, words_sha256), **resolved}
    return {field: fields[field] for field in FINGERPRINT_FIELDS}


def extract_to_cache(
    encoder: Encoder,
    sentences: Sequence[list[str]],
    writer: CacheWriter,
    settings: EncodeSettings,
    progress: bool = True,
) -> dict:
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
            vectors, piece_ids, chunk_counters = encode_chunk(encoder, sentences[first:last], settings)
            writer.write_chunk(chunk, vectors, piece_ids)
            counters["sentences"] += last - first
            for key, value in chunk_counters.items():
                counters[key] += value
            del vectors, piece_ids
            release_freed_memory()
            bar.update(last - first)
    return counters


def encode_chunk(
    encoder: Encoder, sentences: list[list[str]], settings: EncodeSettings
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One chunk of sentences -> (word vectors (W, D) float32, first piece ids (W,), counters).

    The unit of work of both backends: the local loop above and each Ray actor
    (``features.ray_extract``) run exactly this, with the same settings, on the same sentence ranges.
    """
    windows = tokenize(encoder.tokenizer, sentences, settings.max_length, settings.stride)
    vectors = encode_windows(
        encoder,
        windows,
        list(settings.layers),
        settings.combine,
        settings.pooling,
        settings.bf16,
        settings.max_batch_tokens,
    )
    lengths = np.array([len(ids) for ids in windows.input_ids])
    counters = {
        "words": windows.num_words,
        "pieces": int(lengths.sum()),
        "windows": len(lengths),
        "padded_slots": sum(
            len(b) * padded_length(int(lengths[b].max()), PAD_MULTIPLE)
            for b in length_batches(lengths, settings.max_batch_tokens)
        ),
    }
    return vectors, windows.first_piece_id, counters


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """``extract.device`` (auto, cpu or cuda) -> the torch device this process encodes on.

    auto: CUDA when torch sees a GPU, else the CPU. cuda without a GPU is an
    error, not a silent fall-back to a CPU run a hundred times slower.
    """
    if device not in DEVICES:
        raise ValueError(f"extract.device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ValueError(
            f"extract.device is cuda but torch {torch.__version__} sees no GPU "
            f"(a CPU-only torch build, or no driver); use auto or cpu"
        )
    return "cpu"


def resolve_precision(precision: str, device: str) -> bool:
    """Whether ``precision`` (auto, bf16 or fp32) runs the encoder under bf16 autocast on ``device``.

    auto is bf16 where the hardware has it natively (a GPU since Ampere, a CPU
    with AVX512-BF16 or AMX), else fp32. No fp16: the cache's fingerprint
    records bf16 or fp32 only, so a GPU without bf16 runs fp32.
    """
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision {precision!r}: use auto, bf16 or fp32")
    if device == "cuda":
        import torch

        native = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not native:
            raise ValueError("extract.precision is bf16 but this GPU has no bf16: use auto or fp32")
        return precision == "bf16" or (precision == "auto" and native)
    return precision == "bf16" or (precision == "auto" and cpu_supports_bf16())


def use_bf16(precision: str) -> bool:
    """Whether ``precision`` runs the encoder under bf16 autocast on this CPU."""
    return resolve_precision(precision, "cpu")


def load_for_params(
    params: ExtractParams, bf16: bool, device: str = "cpu", threads: int | None = None
) -> tuple[Encoder, EncodeSettings]:
    """The encoder (on ``device``) and the settings that ``params`` resolve to for it, with ``bf16`` autocast or not.

    ``threads`` overrides ``params.threads`` (a Ray actor uses the CPUs it was given).
    Fails fast on layers, options or a stride the encoder cannot serve.
    """
    encoder = load_encoder(params.encoder, threads or params.threads or None, device)
    layers = tuple(int(layer) for layer in params.layers)
    check_layers(encoder, list(layers), params.combine, params.pooling)
    max_length = params.max_length or encoder.max_length
    if max_length > encoder.max_length:  # an encoder whose config was not at hand before loading (a hub name)
        raise ValueError(
            f"extract.max_length {max_length}: encoder {params.encoder} reads at most {encoder.max_length}"
        )
    if not 0 <= params.stride < max_length - 2:
        raise ValueError(f"stride {params.stride} must be below the window length {max_length} - 2")
    settings = EncodeSettings(
        layers=layers,
        combine=params.combine,
        pooling=params.pooling,
        bf16=bf16,
        max_length=max_length,
        stride=params.stride,
        max_batch_tokens=params.max_batch_tokens,
    )
    return encoder, settings


def finished_cache(out: str, expected: dict, offsets) -> dict | None:
    """The totals of a complete cache at ``out`` that holds the features of exactly these words (its fingerprint
    carries every field of ``expected``, the words' hash among them, and its offsets are ``offsets``), every
    chunk's checksum verified; None when there is no such file."""
    if not Path(out).exists():
        return None
    try:
        with open_cache(out, expected) as cache:
            same = np.array_equal(np.asarray(cache.offsets), np.asarray(offsets))
    except (CacheError, OSError):
        return None
    return cache_totals(out) if same else None


def encode_to_cache_local(params: ExtractParams, sentences, offsets, words_sha256: str, out: str) -> dict:
    """Encode ``sentences`` (sliceable: ``sentences[first:last]`` is a list of word lists) in this process into
    the cache ``out``, resuming a partial one; returns timing and size figures.

    The local backend (``features.backend.encode_to_cache`` chooses it). The corpus and
    any unlabelled text go through here, so both caches hold features of the same
    encoder, layers, pooling and precision.
    """
    device = resolve_device(params.device)  # first: a wrong device fails before any work
    encoder, settings = load_for_params(params, resolve_precision(params.precision, device), device)
    expected = fingerprint(encoder, params, settings.bf16, settings.max_length, words_sha256)
    kept = finished_cache(out, expected, offsets)
    if kept is not None:  # e.g. prepare rerun after an import that changed only tags (docs/active-learning.md)
        log.info("%s already holds these words' features with these settings: kept", out)
        return dict(kept, reused=True, backend="local", device=device, seconds=0.0, fingerprint=expected)
    truncate_encoder(encoder, max(settings.layers))
    dim = feature_dim(encoder, list(settings.layers), settings.combine)
    writer = CacheWriter(out, expected, offsets, dim, params.chunk_sentences)
    log.info(
        "%s on %s, layers %s (%s), %s pooling, %s; %d sentences",
        params.encoder,
        device,
        list(settings.layers),
        settings.combine,
        settings.pooling,
        "bf16" if settings.bf16 else "fp32",
        len(offsets) - 1,
    )
    start = time.perf_counter()
    try:
        counters = extract_to_cache(encoder, sentences, writer, settings)
    except BaseException:
        writer.close()  # the partial file stays; the next run resumes from it
        raise
    path = writer.finish()
    seconds = time.perf_counter() - start
    log.info("wrote %s: %d words in %.1f s", path, counters["words"], seconds)
    totals = cache_totals(path)  # the whole cache: after a resume, counters cover only this run's chunks
    return dict(
        sentences=totals["sentences"],
        words=totals["words"],
        chunks=totals["chunks"],
        chunks_resumed=writer.chunks_done_at_open,
        this_run=counters,
        backend="local",
        device=device,
        seconds=round(seconds, 2),
        pieces_per_second=round(counters["pieces"] / max(seconds, 1e-9), 1),
        padding_fill=round(counters["pieces"] / max(counters["padded_slots"], 1), 4),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        cache_bytes=path.stat().st_size,
        fingerprint=expected,
    )
