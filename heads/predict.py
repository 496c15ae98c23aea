"""Category probabilities and latent vectors of a trained head, jitted once per head architecture."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnums=0)
def _probabilities(model, params, inputs):
    # The model is a static argument (a hashable Flax module), so each head
    # architecture compiles once per input shape and every later call reuses it.
    logits, latent = model.apply({"params": params}, inputs)
    return jax.nn.softmax(logits, axis=-1), latent  # (P, C), (P, latent_dim)


def _hashable(model):
    """``model`` with list fields as tuples (a config read from msgpack has lists), so jit can key on it."""
    lists = {f.name: tuple(getattr(model, f.name)) for f in dataclasses.fields(model)
             if isinstance(getattr(model, f.name), list)}
    return model.clone(**lists) if lists else model


def predict_padded(params, model, inputs):
    """Probabilities (P, C) and latent vectors (P, latent_dim) of ``inputs`` as given, device arrays."""
    return _probabilities(_hashable(model), params, jnp.asarray(inputs))


def predict(params, model, inputs, batch_words=65536):
    """Category probabilities (N, C) and latent vectors (N, latent_dim), float32 NumPy.

    Runs in chunks of one fixed size (the last one zero-padded), so a call
    compiles once however many words it gets.
    """
    n = len(inputs)
    probabilities = np.empty((n, model.num_classes), np.float32)
    latent = np.empty((n, model.latent_dim), np.float32)
    chunk = min(batch_words, -(-max(n, 1) // 256) * 256)  # no bigger than the input needs
    for start in range(0, n, chunk):
        piece = np.asarray(inputs[start : start + chunk])
        real = len(piece)
        if real < chunk:
            padding = np.zeros((chunk - real,) + piece.shape[1:], piece.dtype)
            piece = np.concatenate([piece, padding])
        chunk_probabilities, chunk_latent = predict_padded(params, model, piece)
        probabilities[start : start + real] = np.asarray(chunk_probabilities[:real])
        latent[start : start + real] = np.asarray(chunk_latent[:real])
    return probabilities, latent
