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
    ],
)
def test_merge_refuses_parts_that_do_not_belong_together(other, message):
    with pytest.raises(ValueError, match=message):
        merge([part([64]), other], ["a", "b"])
