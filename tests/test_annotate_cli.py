"""``python -m pipeline.annotate import``: a Label Studio export of a tiny prepared corpus's selection, appended to
the labelled file; a refusal leaves that file as it was."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import ROOT, project_environment, run_cli, run_command

from data.annotations import Pick, write_exports
from data.prepared_io import write_prepared
from pipeline.annotate import main

WORDS = [["Anna", "lives", "in", "Paris"], ["Bob", "saw", "Rome"], ["Zürich", "is", "big"], ["Rome", "is", "old"]]
TAGS = [["B-per", "O", "O", "B-geo"], ["B-per", "O", "B-geo"], ["B-geo", "O", "O"], ["B-geo", "O", "O"]]
CATEGORIES = ["O", "geo", "per"]
LABELLED = "# sent_id = corpus:0\r\nAnna\tB-per\r\nlives\tO\r\nin\tO\r\nParis\tB-geo\r\n"  # as a Windows editor left it


@pytest.fixture
def project(tmp_path):
    """A prepared corpus (sentence 0 labelled), a selection of sentences 1 and 2, and a labelled file."""
    split = {"test": np.array([3]), "labelled": np.array([0]), "unlabelled": np.array([1, 2])}
    write_prepared(tmp_path / "prepared", WORDS, TAGS, CATEGORIES, split, {"source": "test", "tag_scheme": "bio"})
    picks = [
        Pick("corpus:1", WORDS[1], ["O", "O", "B-geo"], [0.5, 0.9, 0.6], 2.0, 0),
        Pick("corpus:2", WORDS[2], ["B-geo", "O", "O"], [0.8, 0.9, 0.9], 1.0, 1),
    ]
    write_exports(picks, CATEGORIES, tmp_path / "selection", "head", "mnlp")
    (tmp_path / "labelled.conll").write_bytes(LABELLED.encode("utf-8"))
    return tmp_path


def export(project, answers: list[tuple[str, str, list]]) -> str:
    """A Label Studio export answering each (key, text, spans); an answer of None leaves its task unanswered."""
    tasks = []
    for number, (key, text, spans) in enumerate(answers, start=1):
        results = [
            {"type": "labels", "from_name": "label", "to_name": "text", "value": {"start": s, "end": e, "labels": [c]}}
            for s, e, c in spans or []
        ]
        annotations = [] if spans is None else [{"result": results, "was_cancelled": False}]
        tasks.append({"id": number, "data": {"text": text, "sentence": key}, "annotations": annotations})
    path = project / "export.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return str(path)


def arguments(project, export_path: str) -> list[str]:
    return [
        "import",
        export_path,
        "--manifest",
        str(project / "selection" / "manifest.jsonl"),
        "--labelled",
        str(project / "labelled.conll"),
        "--prepared",
        str(project / "prepared"),
    ]


def test_import_appends_the_answers_and_counts_the_unanswered(project):
    answers = [("corpus:1", "Bob saw Rome", [(0, 3, "per"), (8, 12, "geo")]), ("corpus:2", "Zürich is big", None)]
    command = [sys.executable, "-m", "pipeline.annotate", *arguments(project, export(project, answers))]
    result = run_command(command, ROOT, project_environment())
    assert result.stdout == f"imported 1 into {project / 'labelled.conll'}, skipped 1 unannotated\n"
    added = "\n# sent_id = corpus:1\nBob\tB-per\nsaw\tO\nRome\tB-geo\n"
    assert (project / "labelled.conll").read_bytes() == (LABELLED + added).encode("utf-8")


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (
            [("corpus:1", "Bob saw Rome", [(0, 3, "per")]), ("corpus:2", "Zürich is big", [(0, 6, "city")])],
            "task 2: sentence corpus:2: span 0-6 'Zürich' has the unknown label 'city' (labels: ['geo', 'per'])",
        ),
        ([("corpus:0", "Anna lives in Paris", [])], "task 1: sentence 'corpus:0' was not exported (not in {manifest})"),
    ],
)
def test_a_refused_import_names_the_task_and_leaves_the_labelled_file(project, capsys, monkeypatch, answers, reason):
    status, out, err = run_cli(main, arguments(project, export(project, answers)), capsys, monkeypatch)
    reason = reason.format(manifest=project / "selection" / "manifest.jsonl")
    assert (status, out, err) == (1, "", f"error: {project / 'export.json'}: {reason}\n")
    assert (project / "labelled.conll").read_bytes() == LABELLED.encode("utf-8")


def test_a_sentence_of_the_prepared_labelled_split_is_refused(project, capsys, monkeypatch):
    (project / "labelled.conll").unlink()
    manifest = project / "selection" / "manifest.jsonl"
    manifest.write_text(json.dumps({"sentence": "text:5", "words": WORDS[0], "text": " ".join(WORDS[0])}) + "\n")
    answers = [("text:5", "Anna lives in Paris", [(0, 4, "per")])]
    status, _, err = run_cli(main, arguments(project, export(project, answers)), capsys, monkeypatch)
    labelled = project / "labelled.conll"
    reason = "sentence text:5: its words are already labelled (in the prepared labelled split)"
    assert (status, err) == (1, f"error: {labelled}: {reason}\n")
    assert not labelled.exists()


def test_a_later_export_of_a_selection_imported_in_part(project, capsys, monkeypatch):
    """The first export answered corpus:1; the second answers corpus:1 again and corpus:2. Without
    --skip-imported it is refused; with it corpus:1 is left out (same tags) and corpus:2 appended, once."""
    first = [("corpus:1", "Bob saw Rome", [(0, 3, "per"), (8, 12, "geo")]), ("corpus:2", "Zürich is big", None)]
    assert run_cli(main, arguments(project, export(project, first)), capsys, monkeypatch)[0] == 0
    after_first = (project / "labelled.conll").read_bytes()
    second = [first[0], ("corpus:2", "Zürich is big", [(0, 6, "geo")])]
    status, _, err = run_cli(main, arguments(project, export(project, second)), capsys, monkeypatch)
    assert (status, err) == (
        1,
        f"error: {project / 'labelled.conll'}: sentence corpus:1: its words are already labelled (in the file)\n",
    )
    assert (project / "labelled.conll").read_bytes() == after_first
    skip = [*arguments(project, export(project, second)), "--skip-imported"]
    status, out, _ = run_cli(main, skip, capsys, monkeypatch)
    assert (status, out) == (
        0,
        f"imported 1 into {project / 'labelled.conll'}, skipped 0 unannotated, 1 imported before\n",
    )
    added = "\n# sent_id = corpus:2\nZürich\tB-geo\nis\tO\nbig\tO\n"
    assert (project / "labelled.conll").read_bytes() == after_first + added.encode("utf-8")
    # The same export once more: nothing new, nothing written.
    assert run_cli(main, skip, capsys, monkeypatch)[:2] == (
        0,
        f"imported 0 into {project / 'labelled.conll'}, skipped 0 unannotated, 2 imported before\n",
    )
    assert (project / "labelled.conll").read_bytes() == after_first + added.encode("utf-8")


def test_skip_imported_still_refuses_a_sentence_relabelled_differently(project, capsys, monkeypatch):
    first = [("corpus:1", "Bob saw Rome", [(0, 3, "per"), (8, 12, "geo")])]
    assert run_cli(main, arguments(project, export(project, first)), capsys, monkeypatch)[0] == 0
    before = (project / "labelled.conll").read_bytes()
    changed = [("corpus:1", "Bob saw Rome", [(8, 12, "geo")])]
    skip = [*arguments(project, export(project, changed)), "--skip-imported"]
    status, _, err = run_cli(main, skip, capsys, monkeypatch)
    reason = "sentence corpus:1: its words are already labelled (in the file with other tags)"
    assert (status, err) == (1, f"error: {project / 'labelled.conll'}: {reason}\n")
    assert (project / "labelled.conll").read_bytes() == before


def test_skip_imported_never_skips_a_sentence_of_the_prepared_labelled_split(project, capsys, monkeypatch):
    """Only the labelled file's sentences are skipped: one of the corpus's labelled split is refused as before."""
    (project / "labelled.conll").unlink()
    manifest = project / "selection" / "manifest.jsonl"
    manifest.write_text(json.dumps({"sentence": "text:5", "words": WORDS[0], "text": " ".join(WORDS[0])}) + "\n")
    answers = [("text:5", "Anna lives in Paris", [(0, 4, "per"), (14, 19, "geo")])]  # its corpus tags
    status, _, err = run_cli(main, [*arguments(project, export(project, answers)), "--skip-imported"], capsys,
                             monkeypatch)  # fmt: skip
    reason = "sentence text:5: its words are already labelled (in the prepared labelled split)"
    assert (status, err) == (1, f"error: {project / 'labelled.conll'}: {reason}\n")
    assert not (project / "labelled.conll").exists()
