"""experiments.merge: parts of one experiment run over disjoint sizes become one JSON, or are refused."""

import pytest

from experiments.merge import merge


def part(sizes, seeds=(0, 1), seconds=10.0, **params):
    runs = [
        {"model": "bert_ner", "sample": "random", "size": s, "seed": k, "entity_f1": 0.5} for s in sizes for k in seeds
    ]
    return {
        "experiment": "learning_curve",
        "seconds": seconds,
        "params": {"sizes": list(sizes), "seeds": list(seeds), **params},
        "settings": {"ner_conf_kl": {"kl_weight": 1.0}},
        "features": {"encoder": "x"},
        "runs": runs,
    }


def test_merge_unites_sizes_runs_and_seconds():
    merged = merge([part([64, 128], seconds=5.0), part([512], seconds=7.5)], ["a", "b"])
    assert merged["params"]["sizes"] == [64, 128, 512]
    assert len(merged["runs"]) == 6 and merged["seconds"] == 12.5
    assert merged["split_into_processes"] == [[64, 128], [512]]


def test_merge_keeps_earlier_groups():
    earlier = {**part([64, 128]), "split_into_processes": [[64], [128]]}
    assert merge([part([256]), earlier], ["a", "b"])["split_into_processes"] == [[64], [128], [256]]


@pytest.mark.parametrize(
    "other, message",
    [
        (part([64]), "is also in"),
        (part([512], pool_size=9), "params differ from a's in pool_size"),
        ({**part([512]), "features": {"encoder": "y"}}, "features differs"),
        ({**part([512]), "settings": {}}, "settings differs"),
        ({**part([512]), "protocol": {"bert_ner_epochs": 30}}, "protocol differs"),
    ],
)
def test_merge_refuses_parts_that_do_not_belong_together(other, message):
    with pytest.raises(ValueError, match=message):
        merge([part([64]), other], ["a", "b"])


def selection_part(thresholds, scores, control=0.70, parts=("self_training",), supervised=0.75):
    rows = [
        {"threshold": t, "per_category": False, "validation_entity_f1": f, "validation_accuracy": 0.9}
        for t, f in zip(thresholds, scores)
    ]
    return {
        "experiment": "selection",
        "seconds": 10.0,
        "params": {"thresholds": list(thresholds), "selection_parts": list(parts), "seeds": [0]},
        "features": {"encoder": "x"},
        "supervised": [{"seed": 0, "converged": supervised}],
        "grids": {"ner_self_training": rows},
        "chosen": {
            "ner_self_training": {**max(rows, key=lambda r: r["validation_entity_f1"]), "control_entity_f1": control}
        },
        "defaults": {"ner_self_training": {"threshold": thresholds[0]}},
        "grid_values": {"thresholds": list(thresholds)},
    }


def test_merge_selection_unites_grids_and_chooses_again():
    merged = merge([selection_part([0.7, 0.9], [0.75, 0.74]), selection_part([0.5, 0.7], [0.76, 0.75])], ["a", "b"])
    assert [r["threshold"] for r in merged["grids"]["ner_self_training"]] == [0.5, 0.7, 0.9]
    assert merged["chosen"]["ner_self_training"]["threshold"] == 0.5
    assert merged["chosen"]["ner_self_training"]["control_entity_f1"] == 0.70
    assert merged["grid_values"]["thresholds"] == [0.5, 0.7, 0.9] and merged["seconds"] == 20.0
    assert merged["defaults"] == {"ner_self_training": {"threshold": 0.5}}  # the last part's


@pytest.mark.parametrize(
    "other, message",
    [
        (selection_part([0.5, 0.7], [0.76, 0.70]), "scored"),  # the same configuration, another score
        (selection_part([0.5], [0.76], supervised=0.74), "supervised differs"),  # other teachers
    ],
)
def test_merge_selection_refuses_parts_that_disagree(other, message):
    with pytest.raises(ValueError, match=message):
        merge([selection_part([0.7, 0.9], [0.75, 0.74]), other], ["a", "b"])


def active_part(strategies, seeds, complete=True, **settings):
    runs = [
        {"strategy": s, "seed": k, "sentences": n, "words": 20 * n, "entity_f1": 0.5}
        for s in strategies
        for k in seeds
        for n in (64, 192)
    ]
    params = {"seeds": [0], "active_strategies": list(strategies), "active_full": ["random"]}
    params.update(active_seeds=list(seeds), active_full_seeds=list(seeds))
    return {
        "experiment": "active_learning",
        "seconds": 3.0,
        "params": params,
        "settings": {"start": 64, "batch": 128, "until": 192, "pool": 0, **settings},
        "rounds": [64, 192],
        "features": {"encoder": "x"},
        "complete": complete,
        "runs": runs,
    }


def test_merge_active_unites_strategies_and_seeds():
    merged = merge([active_part(["random"], [0, 1]), active_part(["mnlp"], [2], complete=False)], ["a", "b"])
    assert merged["params"]["active_strategies"] == ["mnlp", "random"]
    assert merged["params"]["active_seeds"] == [0, 1, 2]
    assert len(merged["runs"]) == 6 and merged["seconds"] == 6.0
    assert merged["complete"] is False  # one part was interrupted
    assert merged["split_into_processes"] == [["random:0", "random:1"], ["mnlp:2"]]


@pytest.mark.parametrize(
    "other, message",
    [
        (active_part(["random"], [1]), "random seed 1 at 64 sentences is also in a"),
        (active_part(["mnlp"], [0], pool=10), "settings differs"),
    ],
)
def test_merge_active_refuses_parts_that_do_not_belong_together(other, message):
    with pytest.raises(ValueError, match=message):
        merge([active_part(["random"], [0, 1]), other], ["a", "b"])


def test_merge_active_whole_curves_leaves_out_short_curves_and_says_so():
    stopped = active_part(["mnlp"], [2, 3], complete=False)
    stopped["runs"] = [r for r in stopped["runs"] if (r["seed"], r["sentences"]) != (3, 192)]  # seed 3: 1 round
    earlier = active_part(["random"], [0, 1])
    earlier["cut"] = [{"strategy": "random", "seed": 2, "rounds": 1}]
    merged = merge([earlier, stopped], ["a", "b"], whole_curves=True)
    assert {(r["strategy"], r["seed"]) for r in merged["runs"]} == {("random", 0), ("random", 1), ("mnlp", 2)}
    assert merged["cut"] == [
        {"strategy": "random", "seed": 2, "rounds": 1},
        {"strategy": "mnlp", "seed": 3, "rounds": 1},
    ]
    assert merged["complete"] is True
    # Without the flag the short curve stays, and the merged file is as incomplete as its part.
    kept = merge([earlier, stopped], ["a", "b"])
    assert ("mnlp", 3) in {(r["strategy"], r["seed"]) for r in kept["runs"]} and kept["complete"] is False
    # A curve cut before and run whole since is no longer listed.
    rerun = merge([earlier, active_part(["random"], [2])], ["a", "b"], whole_curves=True)
    assert "cut" not in rerun and ("random", 2) in {(r["strategy"], r["seed"]) for r in rerun["runs"]}
    # A curve cut twice (two stopped attempts) is listed once, with its later attempt's rounds.
    again = active_part(["random"], [2], complete=False)
    again["runs"] = again["runs"][:1]
    older = dict(earlier, cut=[{"strategy": "random", "seed": 2, "rounds": 0}])  # stopped before its first round
    twice = merge([older, again], ["a", "b"], whole_curves=True)
    assert twice["cut"] == [{"strategy": "random", "seed": 2, "rounds": 1}]
