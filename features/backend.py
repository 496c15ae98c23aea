"""Which code fills a feature cache: this process (``extract.backend: local``) or a Ray cluster (``ray``).

The one place the backend is chosen. Both write the same cache (layout, offsets,
fingerprint, features); the Ray module is imported only when ``ray`` is asked for,
so a local run never loads it, and the modules that read caches never import this one.
"""

from __future__ import annotations

from features.extract import encode_to_cache_local
from features.settings import ExtractParams

BACKENDS = ("local", "ray")


def check_backend(backend: str) -> None:
    """Fail fast on an ``extract.backend`` that is neither local nor ray."""
    if backend not in BACKENDS:
        raise ValueError(f"extract.backend {backend!r}: use one of {', '.join(BACKENDS)}")


def encode_to_cache(params: ExtractParams, sentences, offsets, words_sha256: str, out: str) -> dict:
    """Fill the cache ``out`` with the features of ``sentences`` on ``params.backend``, resuming a partial one.

    ``sentences[first:last]`` must give a list of word lists (a list, or a reader that
    streams from disk); ``offsets`` (S+1,) are their word-row offsets and ``words_sha256``
    the hash the fingerprint records. Returns the run's timing and size figures.
    """
    check_backend(params.backend)
    if params.backend == "ray":
        from features.ray_extract import encode_to_cache_ray

        return encode_to_cache_ray(params, sentences, offsets, words_sha256, out)
    return encode_to_cache_local(params, sentences, offsets, words_sha256, out)
