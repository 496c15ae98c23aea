"""pipeline.models: a model's settings resolved from params.yaml before any data is read."""

from __future__ import annotations

import pytest
import yaml

from heads.settings import HeadParams
from pipeline.models import model_settings
from pipeline.train import train

PARAMS = {
    "heads": {"hidden": [16], "latent_dim": 4},
    "bert_ner": {"epochs": 2},
    "bert_ner_es": {"schedule": "early_stopping", "head_settings": {"shape_flags": True}},
    "early_stopping": {"max_steps": 10},
    "kl": {"schedule": "joint"},
    "kl_models": {"dd": {"kind": "data_distribution", "rounds": 3, "init": "bert_ner_es"}},
    "self_training": {"threshold": 0.5},
    "self_training_models": {"st": {"init": "bert_ner_es", "control": True}},
}


@pytest.fixture
def params_path(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(PARAMS))
    return str(path)


def test_a_supervised_model_reads_its_sections_and_head_settings(params_path):
    epochs = model_settings("bert_ner", params_path)
    assert epochs.heads == HeadParams(hidden=[16], latent_dim=4) and epochs.supervised.epochs == 2
    assert epochs.early_stopping is None and epochs.init is None and epochs.input_kind == "features"
    converged = model_settings("bert_ner_es", params_path)
    assert converged.heads.shape_flags and converged.early_stopping.max_steps == 10
    assert model_settings("baseline", params_path).input_kind == "piece_ids"


def test_a_semi_supervised_model_takes_its_recipe_and_needs_its_init(params_path):
    with pytest.raises(ValueError, match=r"--init \(the directory of bert_ner_es's heads"):
        model_settings("dd", params_path)
    with pytest.raises(ValueError, match=r"--init \(the directory of bert_ner_es's heads"):
        model_settings("st", params_path)


def test_an_unknown_model_is_refused_before_any_data_is_read(params_path, tmp_path):
    missing = str(tmp_path / "no-such-dir")
    with pytest.raises(ValueError, match=r"unknown model 'nope': .*kl_models \(dd\).*self_training_models \(st\)"):
        train("nope", [0], missing, missing + "/features.h5", str(tmp_path / "out"), None, params_path, missing)
    with pytest.raises(ValueError, match="head_settings"):
        bad = dict(PARAMS, bert_ner={"head_settings": {"colour": "red"}})
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        train("bert_ner", [0], missing, missing, str(tmp_path / "out"), None, str(tmp_path / "bad.yaml"), missing)
