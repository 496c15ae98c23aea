"""Word metrics, BIO chunking, entity metrics and confusion matrices."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_recall_fscore_support

from heads.metrics import (
    categories_to_bio,
    confusion,
    entity_metrics,
    sentences_from_offsets,
    word_metrics,
)

CATEGORIES = ["O", "geo", "per"]


def test_word_metrics_hand_computed():
    # true: O O O geo geo per ; pred: O geo O geo per per
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 1, 0, 1, 2, 2])
    result = word_metrics(true, pred, CATEGORIES)
    assert result["num_words"] == 6
    assert result["accuracy"] == pytest.approx(4 / 6)
    # non-O words: geo geo per -> predicted geo per per: 2 of 3 right
    assert result["accuracy_no_o"] == pytest.approx(2 / 3)
    geo = result["per_category"]["geo"]
    # geo: predicted twice (1 right), true twice (1 right)
    assert geo["precision"] == pytest.approx(1 / 2)
    assert geo["recall"] == pytest.approx(1 / 2)
    assert geo["support"] == 2
    o = result["per_category"]["O"]
    assert o["precision"] == pytest.approx(1.0)  # predicted O twice, both right
    assert o["recall"] == pytest.approx(2 / 3)
    assert o["f1"] == pytest.approx(0.8)
    per = result["per_category"]["per"]
    assert per["precision"] == pytest.approx(1 / 2)
    assert per["recall"] == pytest.approx(1.0)
    assert per["true_share"] == pytest.approx(1 / 6)
    assert per["predicted_share"] == pytest.approx(2 / 6)
    assert result["mean_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert result["categories"] == CATEGORIES
    json.dumps(result, allow_nan=False)  # plain, NaN-free types


def test_precision_and_recall_not_swapped():
    # "geo" is predicted for 4 words, only 1 of which is geo; the single true
    # geo word is found: precision 1/4, recall 1/1.
    true = np.array([1, 0, 0, 0, 0])
    pred = np.array([1, 1, 1, 1, 0])
    geo = word_metrics(true, pred, CATEGORIES)["per_category"]["geo"]
    assert geo["precision"] == pytest.approx(0.25)
    assert geo["recall"] == pytest.approx(1.0)


def test_absent_category_scores_zero_and_counts_in_mean():
    true = np.array([0, 1])
    pred = np.array([0, 1])
    result = word_metrics(true, pred, CATEGORIES)
    assert result["per_category"]["per"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
        "true_share": 0.0,
        "predicted_share": 0.0,
    }
    assert result["mean_f1"] == pytest.approx(2 / 3)


def test_accuracy_no_o_none_without_entity_words():
    result = word_metrics(np.array([0, 0]), np.array([0, 1]), CATEGORIES)
    assert result["accuracy_no_o"] is None
    assert result["accuracy"] == pytest.approx(0.5)


def test_accuracy_no_o_uses_o_by_name_not_position():
    categories = ["geo", "per", "O"]
    true = np.array([2, 2, 0, 1])
    pred = np.array([0, 2, 0, 0])
    assert word_metrics(true, pred, categories)["accuracy_no_o"] == pytest.approx(0.5)
    # without an "O" category every word counts
    assert word_metrics(true, pred, ["a", "b", "c"])["accuracy_no_o"] == pytest.approx(0.5)


def test_word_metrics_rejects_bad_input():
    with pytest.raises(ValueError):
        word_metrics(np.array([0, 3]), np.array([0, 0]), CATEGORIES)
    with pytest.raises(ValueError):
        word_metrics(np.array([0, 1]), np.array([0]), CATEGORIES)


@settings(max_examples=60, deadline=None)
@given(
    num_classes=st.integers(1, 12),
    num_words=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_word_metrics_match_sklearn(num_classes, num_words, seed):
    rng = np.random.default_rng(seed)
    # skewed labels so some categories are missing from true or pred
    weights = rng.dirichlet(np.full(num_classes, 0.5))
    true = rng.choice(num_classes, size=num_words, p=weights)
    pred = np.where(rng.random(num_words) < 0.6, true, rng.integers(0, num_classes, num_words))
    categories = [f"c{k}" for k in range(num_classes)]
    result = word_metrics(true, pred, categories)

    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=list(range(num_classes)), zero_division=0
    )
    got = result["per_category"]
    np.testing.assert_allclose([got[c]["precision"] for c in categories], precision, atol=1e-12)
    np.testing.assert_allclose([got[c]["recall"] for c in categories], recall, atol=1e-12)
    np.testing.assert_allclose([got[c]["f1"] for c in categories], f1, atol=1e-12)
    assert [got[c]["support"] for c in categories] == support.tolist()
    assert result["mean_f1"] == pytest.approx(float(np.mean(f1)))
    assert result["accuracy"] == pytest.approx(float(np.mean(true == pred)))
    assert sum(got[c]["predicted_share"] for c in categories) == pytest.approx(1.0)


def test_categories_to_bio_example():
    assert categories_to_bio(["O", "geo", "geo", "per", "O", "per", "per"]) == [
        "O",
        "B-geo",
        "I-geo",
        "B-per",
        "O",
        "B-per",
        "I-per",
    ]
    assert categories_to_bio([]) == []


@given(st.lists(st.sampled_from(["O", "geo", "per", "org"]), max_size=40))
def test_categories_to_bio_one_b_per_run(categories):
    tags = categories_to_bio(categories)
    runs = sum(1 for i, c in enumerate(categories) if c != "O" and (i == 0 or categories[i - 1] != c))
    assert sum(tag.startswith("B-") for tag in tags) == runs
    assert len(tags) == len(categories)
    for category, tag in zip(categories, tags):
        assert tag == "O" if category == "O" else tag[2:] == category


def test_entity_metrics_partial_span_is_a_miss():
    true = [["B-geo", "I-geo", "O", "B-per", "O"], ["B-org", "O"]]
    # geo span cut short (miss), per exact (hit), org exact (hit), an extra tim
    pred = [["geo", "O", "O", "per", "tim"], ["org", "O"]]
    result = entity_metrics(true, pred)
    assert result["num_true_entities"] == 3
    assert result["num_pred_entities"] == 4
    assert result["precision"] == pytest.approx(2 / 4)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert result["per_type"]["geo"]["f1"] == 0.0
    assert result["per_type"]["per"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert result["per_type"]["tim"]["support"] == 0
    json.dumps(result, allow_nan=False)


def test_entity_metrics_plain_true_tags_form_runs():
    # plain tags: "geo geo" is one entity, "per" another
    true = [["geo", "geo", "O", "per"]]
    assert entity_metrics(true, [["geo", "geo", "O", "per"]])["f1"] == pytest.approx(1.0)
    split = entity_metrics(true, [["geo", "O", "O", "per"]])
    assert split["num_true_entities"] == 2
    assert split["recall"] == pytest.approx(0.5)


def test_entity_metrics_adjacent_bio_entities_differ_from_one_run():
    # two adjacent true geo entities; predicted categories merge them into one
    true = [["B-geo", "B-geo"]]
    result = entity_metrics(true, [["geo", "geo"]])
    assert result["num_true_entities"] == 2
    assert result["num_pred_entities"] == 1
    assert result["f1"] == 0.0


def test_entity_metrics_rejects_length_mismatch():
    with pytest.raises(ValueError):
        entity_metrics([["O", "B-geo"]], [["O"]])


def test_sentences_from_offsets():
    values = np.array(["a", "b", "c", "d"])
    assert sentences_from_offsets(values, np.array([0, 1, 1, 4])) == [["a"], [], ["b", "c", "d"]]
    with pytest.raises(ValueError):
        sentences_from_offsets(values, np.array([0, 3]))


def test_confusion_normalisation():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 200)  # category 4 never true
    pred = rng.integers(0, 3, 200)  # categories 3 and 4 never predicted
    counts = confusion(true, pred, 5, normalize=None)
    assert counts.sum() == 200
    assert counts[1, 2] == np.sum((true == 1) & (pred == 2))

    by_true = confusion(true, pred, 5, normalize="true")
    assert not np.isnan(by_true).any()
    np.testing.assert_allclose(by_true.sum(axis=1), [1, 1, 1, 1, 0])
    np.testing.assert_allclose(by_true[1], counts[1] / counts[1].sum())

    by_pred = confusion(true, pred, 5, normalize="pred")
    assert not np.isnan(by_pred).any()
    np.testing.assert_allclose(by_pred.sum(axis=0), [1, 1, 1, 0, 0])
    np.testing.assert_allclose(by_pred[:, 2], counts[:, 2] / counts[:, 2].sum())

    with pytest.raises(ValueError):
        confusion(true, pred, 5, normalize="all")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.sampled_from(["O", "B-a", "I-a", "B-b", "I-b"]), st.integers(0, 2)), min_size=0, max_size=8
        ),
        min_size=1,
        max_size=6,
    )
)
def test_entity_f1_fast_matches_seqeval(sentences):
    from heads.metrics import entity_f1_fast, entity_metrics

    categories = ["O", "a", "b"]
    sentences = [s for s in sentences if s] or [[("O", 0)]]
    true_tags = [[t for t, _ in s] for s in sentences]
    pred_ids = [[p for _, p in s] for s in sentences]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
    reference = entity_metrics(true_tags, [[categories[p] for p in s] for s in pred_ids])
    fast = entity_f1_fast([t for s in true_tags for t in s], np.concatenate(pred_ids), categories, offsets)
    for key in ("precision", "recall", "f1", "num_true_entities", "num_pred_entities"):
        assert fast[key] == pytest.approx(reference[key]), key


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(["O", "B-a", "I-a", "I-b", "B-c"]), st.sampled_from(["O", "a", "b"]))),
        min_size=1,
        max_size=6,
    )
)
def test_entity_metrics_equal_seqevals_classification_report(sentences):
    """entity_metrics counts seqeval's chunks itself; its figures are seqeval's report, per type too."""
    import warnings

    from seqeval.metrics import classification_report

    true_tags = [[t for t, _ in s] for s in sentences]
    predicted = [[p for _, p in s] for s in sentences]
    result = entity_metrics(true_tags, predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(
            true_tags, [categories_to_bio(s) for s in predicted], output_dict=True, zero_division=0
        )
    micro = report["micro avg"]
    assert (result["precision"], result["recall"], result["f1"]) == pytest.approx(
        (micro["precision"], micro["recall"], micro["f1-score"])
    )
    assert result["num_true_entities"] == micro["support"]
    types = {name: row for name, row in report.items() if not name.endswith(" avg")}
    assert set(result["per_type"]) == set(types)
    for name, row in types.items():
        ours = result["per_type"][name]
        assert (ours["precision"], ours["recall"], ours["f1"], ours["support"]) == pytest.approx(
            (row["precision"], row["recall"], row["f1-score"], row["support"])
        )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=40))
def test_accuracy_no_o_counts_only_words_whose_true_category_is_not_o(pairs):
    true, pred = (np.array(column) for column in zip(*pairs))
    entity = [t == p for t, p in pairs if t != 0]  # CATEGORIES[0] is O
    expected = sum(entity) / len(entity) if entity else None
    assert word_metrics(true, pred, CATEGORIES)["accuracy_no_o"] == pytest.approx(expected)


def test_accuracy_no_o_differs_from_accuracy_when_o_words_are_right():
    # Every O word right, one of two entity words wrong: accuracy 3/4, accuracy no O 1/2.
    result = word_metrics(np.array([0, 0, 1, 2]), np.array([0, 0, 1, 1]), CATEGORIES)
    assert result["accuracy"] == pytest.approx(3 / 4) and result["accuracy_no_o"] == pytest.approx(1 / 2)
