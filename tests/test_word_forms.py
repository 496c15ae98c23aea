"""Hashed word-form ids (features.word_forms) against pinned ids and an independent per-word reference, and
the module that embeds them (heads.word_forms) against a NumPy reference, with padding and one Adam step."""

from __future__ import annotations

import hashlib
import itertools
import unicodedata

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.word_forms import (
    WORD_FORM_ATTRIBUTES,
    attribute_id,
    word_attributes,
    word_form_ids,
    word_form_ids_flat,
    word_shape,
)
from heads.word_forms import WordFormEmbed

ROWS = 5000  # spaCy's rows for NORM
EXAMPLES = settings(max_examples=60, deadline=None)

# ---------------------------------------------------------------- pinned ids: the same on every machine and run

# (lower, prefix, suffix, shape) ids with ROWS buckets. Computed once by this module; a change of the hash,
# its seeds, NFKC, the affix length or the shape rules changes some of them.
PINNED = {
    "Bush": (340, 3270, 2851, 2655),
    "bush": (340, 3270, 2851, 1971),
    "U.S.": (2012, 4429, 4393, 2457),
    "1990s": (2295, 3279, 531, 1625),
    "London": (4513, 1033, 4227, 2655),
    "\uff22\uff55\uff53\uff48": (340, 3270, 2851, 2655),  # full-width "Ｂｕｓｈ": NFKC makes it "Bush"
    "e\u0301": (310, 3027, 860, 1971),  # decomposed "é": NFKC composes it
    "\u00e9": (310, 3027, 860, 1971),
    "": (4382, 4572, 2615, 2354),
    ".": (783, 2070, 2587, 4875),
}
# The hash itself, over the whole 31-bit range: BLAKE2b-64 of the UTF-8 bytes, person = the attribute's name.
PINNED_HASHES = {
    ("lower", "bush"): 1673240644,
    ("prefix", "bush"): 696095854,
    ("shape", "Xx"): 465460985,
}

SHAPES = {
    "Bush": "Xx",
    "bush": "x",
    "US": "X",
    "U.S.": "X.X.",
    "2006": "d",
    "1990s": "dx",
    "3.5": "d.d",
    "well-known": "x-x",
    "McDonald's": "XxXx'x",
    "e\u0301t\u00e9": "x",  # a combining mark belongs to the letter before it
    "\u00c9lys\u00e9e": "Xx",
    "\u0661\u0669\u0669\u0660": "d",  # Arabic-Indic digits
    "\u5317\u4eac": "x",  # letters without case
    "...": ".",
    "": "",
}


@pytest.mark.parametrize("word", list(PINNED))
def test_pinned_ids(word):
    ids = word_form_ids([["the", word]], ROWS)
    assert ids.dtype == np.int32 and ids.shape == (2, len(WORD_FORM_ATTRIBUTES))
    assert tuple(ids[1].tolist()) == PINNED[word]


def test_pinned_hashes():
    rows = 2**31 - 1
    assert {key: attribute_id(*key, rows) for key in PINNED_HASHES} == PINNED_HASHES


@pytest.mark.parametrize("word", list(SHAPES))
def test_shapes(word):
    assert word_shape(word) == SHAPES[word]


def test_attribute_strings():
    assert word_attributes("Washington") == {"lower": "washington", "prefix": "was", "suffix": "ton", "shape": "Xx"}
    assert word_attributes("I") == {"lower": "i", "prefix": "i", "suffix": "i", "shape": "X"}
    assert word_attributes("\ufb01ne")["lower"] == "fine"  # the ligature "ﬁ" under NFKC


def test_case_goes_to_the_shape_only():
    bush, lower_bush = word_form_ids_flat(["Bush", "bush"], ROWS)
    lower, prefix, suffix, shape = (WORD_FORM_ATTRIBUTES.index(name) for name in ("lower", "prefix", "suffix", "shape"))
    assert bush[lower] == lower_bush[lower] and bush[prefix] == lower_bush[prefix]
    assert bush[suffix] == lower_bush[suffix]
    assert bush[shape] != lower_bush[shape]


def test_same_attribute_strings_same_ids():
    words = ["Kingston", "kings", "Boston", "Washington", "Paris", "1990s", "2000s"]
    ids = word_form_ids_flat(words, ROWS)
    strings = [word_attributes(word) for word in words]
    for a, name in enumerate(WORD_FORM_ATTRIBUTES):
        for i, j in itertools.combinations(range(len(words)), 2):
            if strings[i][name] == strings[j][name]:
                assert ids[i, a] == ids[j, a], (name, words[i], words[j])
    # Pairs that do share: "kin" prefixes, "ton" suffixes, "dx" shapes.
    assert ids[0, 1] == ids[1, 1] and ids[0, 2] == ids[2, 2] == ids[3, 2] and ids[5, 3] == ids[6, 3]


def test_attribute_seeds_differ():
    # One string under two attributes: the tables' collisions are not the same.
    assert len({attribute_id(name, "bus", 2**31 - 1) for name in WORD_FORM_ATTRIBUTES}) == 4


def test_unseen_word_gets_its_affix_and_shape_rows():
    training = word_form_ids([["Kingston", "went", "to", "Washington"]], ROWS)
    unseen = word_form_ids_flat(["Kingsley", "Clinton"], ROWS)  # a separate call: no vocabulary is kept
    names = WORD_FORM_ATTRIBUTES
    assert unseen[0, names.index("prefix")] == training[0, names.index("prefix")]  # "kin"
    assert unseen[1, names.index("suffix")] == training[3, names.index("suffix")]  # "ton"
    assert unseen[0, names.index("shape")] == unseen[1, names.index("shape")] == training[0, names.index("shape")]
    for row, word in zip(unseen, ["Kingsley", "Clinton"]):
        strings = word_attributes(word)
        assert row.tolist() == [attribute_id(name, strings[name], ROWS) for name in names]


def test_every_string_has_an_id():
    ids = word_form_ids_flat(["\ud800", "a\udfffb"], ROWS)  # lone surrogates, as json.loads can return
    assert ids.shape == (2, 4) and ((ids >= 0) & (ids < ROWS)).all()


def test_attribute_subset_and_arguments():
    words = ["Bush", "said", "U.S.", "troops"]
    full = word_form_ids_flat(words, ROWS)
    np.testing.assert_array_equal(word_form_ids_flat(words, ROWS, ("shape", "lower")), full[:, [3, 0]])
    assert word_form_ids_flat([], ROWS).shape == (0, 4)
    np.testing.assert_array_equal(word_form_ids([["Bush", "said"], [], ["U.S.", "troops"]], ROWS), full)
    for rows in (0, -5, 2**31, 2.5, True):
        with pytest.raises(ValueError, match="rows"):
            word_form_ids_flat(words, rows)
    for attributes in ((), ("lower", "lower"), ("lower", "norm")):
        with pytest.raises(ValueError, match="attributes"):
            word_form_ids_flat(words, ROWS, attributes)


# ---------------------------------------------------------------- per distinct word == a naive per-word reference


def reference_shape(word: str) -> str:
    """The shape spelled out again: classes of the characters that are not marks, runs merged."""

    def symbol(character: str) -> str:
        if character.isupper():
            return "X"
        if character.isalpha():
            return "x"
        return "d" if character.isdigit() else character

    kept = [symbol(c) for c in word if unicodedata.category(c)[0] != "M"]
    return "".join(key for key, _ in itertools.groupby(kept))


def reference_ids(word: str, rows: int) -> list[int]:
    """The ids of one word from the module's docstring, hashed here with hashlib directly."""
    normal = unicodedata.normalize("NFKC", word)
    lower = normal.lower()
    strings = [lower, lower[:3], lower[max(len(lower) - 3, 0) :], reference_shape(normal)]
    return [
        int.from_bytes(
            hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8, person=name.encode()).digest(), "little"
        )
        % rows
        for name, s in zip(("lower", "prefix", "suffix", "shape"), strings)
    ]


EDGE_CHARACTERS = "aZ9.-'\u0301\u0308\u00df\u0130\ufb01\uff22\u0661\u00e9\u5317 "
words = st.text(st.one_of(st.characters(), st.sampled_from(EDGE_CHARACTERS)), max_size=6)


@EXAMPLES
@given(
    vocabulary=st.lists(words, min_size=1, max_size=12),
    picks=st.lists(st.integers(0, 11), max_size=40),
    rows=st.sampled_from([1, 2, 7, ROWS, 2**31 - 1]),
)
def test_distinct_words_match_the_naive_reference(vocabulary, picks, rows):
    flat = [vocabulary[i % len(vocabulary)] for i in picks]  # repeats, so the gather matters
    ids = word_form_ids_flat(flat, rows)
    assert ids.dtype == np.int32 and ids.shape == (len(flat), 4)
    assert ids.tolist() == [reference_ids(word, rows) for word in flat]
    assert ((ids >= 0) & (ids < rows)).all()


# ---------------------------------------------------------------- the module

WIDTH = 8
SMALL_ROWS = 50


def init_module(seed: int = 0, rows: int = SMALL_ROWS):
    module = WordFormEmbed(rows, WIDTH)
    ids = jnp.zeros((3, len(WORD_FORM_ATTRIBUTES)), jnp.int32)
    return module, module.init(jax.random.key(seed), ids)["params"]


def reference_output(params, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """concat(present ? table[id] : 0 per attribute) @ kernel + bias, tanh, zero where not ``mask``."""
    pieces = []
    for a, name in enumerate(WORD_FORM_ATTRIBUTES):
        table = np.asarray(params[f"{name}_embedding"]["embedding"], np.float64)
        pieces.append(np.where(ids[:, a, None] >= 0, table[np.maximum(ids[:, a], 0)], 0.0))
    mix = params["mix"]
    hidden = np.concatenate(pieces, axis=1) @ np.asarray(mix["kernel"], np.float64) + np.asarray(mix["bias"])
    return np.where(mask[:, None], np.tanh(hidden), 0.0)


def random_ids(seed: int, words: int, rows: int = SMALL_ROWS) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, rows, (words, len(WORD_FORM_ATTRIBUTES))).astype(np.int32)


def test_module_shapes_and_parameters():
    module, params = init_module()
    assert set(params) == {f"{name}_embedding" for name in WORD_FORM_ATTRIBUTES} | {"mix"}
    assert params["lower_embedding"]["embedding"].shape == (SMALL_ROWS, WIDTH)
    assert params["mix"]["kernel"].shape == (len(WORD_FORM_ATTRIBUTES) * WIDTH, WIDTH)
    out = module.apply({"params": params}, jnp.asarray(random_ids(1, 7)))
    assert out.shape == (7, WIDTH) and out.dtype == jnp.float32
    grid = module.apply({"params": params}, jnp.asarray(random_ids(1, 6)).reshape(2, 3, 4))
    np.testing.assert_array_equal(grid.reshape(6, WIDTH), module.apply({"params": params}, random_ids(1, 6)))
    with pytest.raises(ValueError, match="ids must be"):
        module.apply({"params": params}, jnp.zeros((3, 2), jnp.int32))


def test_module_matches_the_numpy_reference():
    module, params = init_module(seed=3)
    ids = random_ids(2, 9)
    ids[1, 1] = ids[4, 0] = ids[4, 3] = -1  # absent attributes
    ids[6] = -1  # a padding word
    out = module.apply({"params": params}, jnp.asarray(ids))
    mask = (ids >= 0).any(axis=1)
    np.testing.assert_allclose(out, reference_output(params, ids, mask), atol=1e-5)
    assert np.abs(np.asarray(out)[mask]).min(axis=1).max() > 0  # real words are not zeroed


def test_padding_words_give_zeros_and_no_gradient():
    module, params = init_module(seed=4)
    ids = random_ids(5, 6)
    ids[[1, 4]] = -1  # padding by ids
    mask = np.ones(6, bool)
    mask[5] = False  # padding by mask, with real-looking ids
    out = np.asarray(module.apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask)))
    assert (out[[1, 4, 5]] == 0).all() and (np.abs(out[[0, 2, 3]]).sum(axis=1) > 0).all()
    # A padded word's output does not depend on what else the batch holds.
    alone = np.asarray(module.apply({"params": params}, jnp.asarray(ids[[0]])))
    np.testing.assert_allclose(alone[0], out[0], atol=1e-6)

    def total(params, ids, mask):
        return module.apply({"params": params}, ids, mask).sum()

    only_padding = jax.grad(total)(params, jnp.asarray(ids[[1, 4, 5]]), jnp.asarray(mask[[1, 4, 5]]))
    assert all(not np.asarray(leaf).any() for leaf in jax.tree.leaves(only_padding))


def test_absent_attribute_reads_no_row():
    module, params = init_module(seed=6)
    ids = random_ids(7, 4)
    ids[:, 1] = -1  # no prefix for any word
    out = module.apply({"params": params}, jnp.asarray(ids))
    changed = jax.tree.map(lambda leaf: leaf, params)
    changed["prefix_embedding"]["embedding"] = params["prefix_embedding"]["embedding"] + 1.0  # every row, -1's too
    np.testing.assert_array_equal(out, module.apply({"params": changed}, jnp.asarray(ids)))


def test_one_adam_step_changes_every_parameter_and_only_used_rows():
    module, params = init_module(seed=8)
    ids = jnp.asarray(random_ids(9, 16))
    target = jax.random.normal(jax.random.key(1), (16, WIDTH))

    def loss(params):
        return jnp.mean((module.apply({"params": params}, ids) - target) ** 2)

    loss_and_grad = jax.jit(jax.value_and_grad(loss))  # one compile instead of one per op
    before, grads = loss_and_grad(params)
    optimizer = optax.adam(1e-2)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    stepped = optax.apply_updates(params, updates)
    changed = jax.tree.map(lambda old, new: np.asarray(old != new), params, stepped)
    assert all(leaf.any() for leaf in jax.tree.leaves(changed))
    for a, name in enumerate(WORD_FORM_ATTRIBUTES):
        rows_changed = changed[f"{name}_embedding"]["embedding"].any(axis=1)  # (rows,)
        np.testing.assert_array_equal(np.flatnonzero(rows_changed), np.unique(np.asarray(ids[:, a])))
    assert loss_and_grad(stepped)[0] < before
