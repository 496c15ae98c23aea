"""The heads: output shapes, dropout, and one train step touching every parameter."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from heads.batches import Batch
from heads.model import EmbeddingHead, MLPHead
from heads.steps import ce_step, init_head_params, init_state, make_optimizer

NUM_CLASSES = 9


def feature_batch(n=40, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones(n, bool)
    mask[-5:] = False  # padding
    return Batch(
        inputs=rng.standard_normal((n, dim)).astype(np.float16),
        labels=rng.integers(0, NUM_CLASSES, n).astype(np.int32),
        mask=mask,
        starts=np.eye(1, n, dtype=bool)[0],  # one sentence
    )


def id_batch(n=40, vocab=30, seed=0):
    features = feature_batch(n, seed=seed)
    ids = np.random.default_rng(seed).integers(0, vocab, n).astype(np.int32)
    return features._replace(inputs=ids)


HEADS = {
    "mlp": (MLPHead(NUM_CLASSES), feature_batch),
    "embedding": (EmbeddingHead(30, NUM_CLASSES, embed_dim=16), id_batch),
}


@pytest.mark.parametrize("name", list(HEADS))
def test_output_shapes_and_dtypes(name):
    model, make = HEADS[name]
    batch = make()
    params = init_head_params(model, batch.inputs, jax.random.key(0))
    logits, latent = model.apply({"params": params}, jnp.asarray(batch.inputs))
    assert logits.shape == (40, NUM_CLASSES) and logits.dtype == jnp.float32
    assert latent.shape == (40, 32) and latent.dtype == jnp.float32


def test_layer_sizes_follow_the_seed():
    params = init_head_params(MLPHead(NUM_CLASSES), np.zeros((1, 384), np.float16), jax.random.key(0))
    kernels = [params["body"][f"Dense_{i}"]["kernel"].shape for i in range(4)]
    assert kernels == [(384, 256), (256, 128), (128, 64), (64, 32)]
    assert params["classifier"]["kernel"].shape == (32, NUM_CLASSES)


def test_embedding_head_default_size():
    model = EmbeddingHead(50, NUM_CLASSES)
    params = init_head_params(model, np.zeros(1, np.int32), jax.random.key(0))
    assert params["embedding"]["embedding"].shape == (50, 784)


def test_dropout_only_in_training():
    model = MLPHead(NUM_CLASSES, dropout_rate=0.5)
    x = jnp.asarray(feature_batch().inputs)
    params = init_head_params(model, x, jax.random.key(0))
    variables = {"params": params}
    eval_a, _ = model.apply(variables, x)
    eval_b, _ = model.apply(variables, x, deterministic=True)
    np.testing.assert_array_equal(eval_a, eval_b)
    train_a, _ = model.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    train_b, _ = model.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_a, eval_a) and not np.allclose(train_a, train_b)


@pytest.mark.parametrize("name", list(HEADS))
def test_one_ce_step_changes_every_parameter(name):
    model, make = HEADS[name]
    model = model.clone(dropout_rate=0.2)  # the dropout path; the train tests cover rate 0
    batch = make()
    params = init_head_params(model, batch.inputs, jax.random.key(0))
    optimizer = make_optimizer(1e-3)
    state = init_state(params, optimizer)
    step = jax.jit(functools.partial(ce_step, apply_fn=model.apply, optimizer=optimizer))
    new_state, metrics = step(state, batch, dropout_key=jax.random.key(3))
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), params, new_state.params)
    unchanged = [path for path, c in jax.tree_util.tree_leaves_with_path(changed) if not c]
    assert not unchanged, f"parameters not updated: {unchanged}"
    assert int(new_state.step) == 1
    assert float(metrics["words"]) == 35.0
    assert 0 <= float(metrics["correct"]) <= 35.0
    assert np.isfinite(float(metrics["ce_sum"])) and float(metrics["ce_sum"]) > 0
    # The KL optimizer state is untouched by a CE step.
    same = jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), state.kl_opt_state,
                                  new_state.kl_opt_state)  # fmt: skip
    assert all(jax.tree_util.tree_leaves(same))
