"""The exchange with annotation tools: exports of picks, imports of Label Studio, doccano and CoNLL, the
labelled file. Round trips are property tests over random sentences; each refusal has its own test."""

from __future__ import annotations

import copy
import json
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import data.annotations
from data.annotations import (
    Annotated,
    AnnotationError,
    Imported,
    Pick,
    append_labelled,
    read_annotations,
    sentence_text,
    write_exports,
)
from data.corpus import read_conll

CATEGORIES = ["O", "geo", "per", "org"]
# Words as a corpus holds them: non-ASCII, punctuation, '#' (a comment marker in CoNLL), and random ones.
WORDS = st.one_of(
    st.sampled_from(["Zürich", "São", "東京", ",", ".", "(", "'s", "Paris", "the", "#", "#x", "O", "B-geo"]),
    st.text(st.characters(exclude_categories=("Cs", "Cc", "Z")), min_size=1, max_size=6).filter(
        lambda word: not any(c.isspace() for c in word)
    ),
)


@st.composite
def tagged_sentences(draw):
    """(words, BIO tags): each word's category drawn, and where a run of one category starts a new entity."""
    length = draw(st.integers(1, 8))
    words = draw(st.lists(WORDS, min_size=length, max_size=length))
    categories = draw(st.lists(st.sampled_from(CATEGORIES), min_size=length, max_size=length))
    starts = draw(st.lists(st.booleans(), min_size=length, max_size=length))
    tags, previous = [], "O"
    for category, start in zip(categories, starts):
        tags.append("O" if category == "O" else ("B-" if start or category != previous else "I-") + category)
        previous = category
    return words, tags


@st.composite
def random_picks(draw):
    """1 to 5 picks of random sentences, ranked in a random order."""
    sentences = draw(st.lists(tagged_sentences(), min_size=1, max_size=5))
    ranks = draw(st.permutations(range(len(sentences))))
    unit = st.floats(0, 1)
    return [
        Pick(f"corpus:{n}", words, tags, draw(st.lists(unit, min_size=len(words), max_size=len(words))), draw(unit), r)
        for n, ((words, tags), r) in enumerate(zip(sentences, ranks))
    ]


def expected(picks: list[Pick]) -> list[Annotated]:
    """What an import of untouched pre-annotations gives: the picks' words and tags, in rank order."""
    return [Annotated(pick.key, pick.words, pick.tags) for pick in sorted(picks, key=lambda pick: pick.rank)]


def labelstudio_export(tasks_path: Path, value_text: str = "keep") -> list[dict]:
    """The JSON export Label Studio gives after an annotator accepted every pre-annotation of labelstudio.json;
    ``value_text``: keep each span's text, drop it, or make it wrong (the import must not read it)."""
    export = []
    for number, task in enumerate(json.loads(tasks_path.read_text(encoding="utf-8")), start=1):
        result = copy.deepcopy(task["predictions"][0]["result"])
        for item in result:
            if value_text == "drop":
                del item["value"]["text"]
            elif value_text == "wrong":
                item["value"]["text"] = " " + item["value"]["text"].upper() + "  x"
        annotation = {"id": 100 + number, "completed_by": 1, "result": result[::-1], "was_cancelled": False}
        export.append(dict(task, id=number, annotations=[annotation]))
    return export


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


@settings(max_examples=60, deadline=None)
@given(picks=random_picks(), value_text=st.sampled_from(["keep", "drop", "wrong"]))
def test_labelstudio_round_trip_gives_back_words_and_tags(picks, value_text):
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory)
        write_exports(picks, CATEGORIES, out, "head-1", "mnlp")
        export = write_json(out / "export.json", labelstudio_export(out / "labelstudio.json", value_text))
        assert read_annotations(export, out / "manifest.jsonl", CATEGORIES) == Imported(expected(picks), 0)


@settings(max_examples=60, deadline=None)
@given(picks=random_picks())
def test_doccano_round_trip_gives_back_words_and_tags(picks):
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory)
        write_exports(picks, CATEGORIES, out, "head-1", "mnlp")
        lines = (out / "doccano.jsonl").read_text(encoding="utf-8").splitlines()
        exported = [dict(json.loads(line), id=number, Comments=[]) for number, line in enumerate(lines, start=1)]
        export = out / "export.jsonl"
        export.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in exported), encoding="utf-8")
        assert read_annotations(export, out / "manifest.jsonl", CATEGORIES) == Imported(expected(picks), 0)


@settings(max_examples=60, deadline=None)
@given(picks=random_picks())
def test_conll_round_trip_and_the_corpus_reader_reads_the_selection(picks):
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory)
        write_exports(picks, CATEGORIES, out, "head-1", "mnlp")
        selection = out / "selection.conll"
        assert read_annotations(selection, out / "manifest.jsonl", CATEGORIES) == Imported(expected(picks), 0)
        corpus = read_conll(selection)
    assert (corpus.words, corpus.tags) == ([s.words for s in expected(picks)], [s.tags for s in expected(picks)])


@given(words=st.lists(WORDS, min_size=1, max_size=8))
def test_sentence_text_offsets_index_each_word(words):
    text, offsets = sentence_text(words)
    assert text == " ".join(words)
    assert [text[start:end] for start, end in offsets] == words


OLD_WORD = "already-labelled"  # longer than any word drawn
HEADER = "# Sentences labelled by hand: one `word<TAB>tag` line per word.\n# python -m pipeline.annotate appends here\n"


@settings(max_examples=40, deadline=None)
@given(
    sentences=st.lists(tagged_sentences(), min_size=1, max_size=4),
    before=st.sampled_from(
        ["", f"{OLD_WORD}\tO", f"# sent_id = corpus:0\r\n{OLD_WORD}\tO\r\n", f"{OLD_WORD}\tO\n\n", HEADER]
    ),
)
@example(sentences=[(["Rome"], ["B-geo"])], before=HEADER)  # the labelled file as the repository ships it
def test_append_labelled_keeps_the_old_bytes_and_adds_readable_sentences(sentences, before):
    # read_conll takes its column layout from the first line not starting with '#': below a header comment,
    # sentences whose every word starts with '#' would be read as comments (data.corpus's rule, not ours)
    assume(before != HEADER or any(not word.startswith("#") for words, _ in sentences for word in words))
    by_words = {tuple(words): Annotated(f"text:{n}", words, tags) for n, (words, tags) in enumerate(sentences)}
    annotated = list(by_words.values())
    with tempfile.TemporaryDirectory() as directory:
        labelled = Path(directory) / "labelled.conll"
        if before:
            labelled.write_bytes(before.encode("utf-8"))
        append_labelled(labelled, annotated, set())
        content, corpus = labelled.read_bytes(), read_conll(labelled)
    old = [[OLD_WORD]] if OLD_WORD in before else []
    assert content.startswith(before.encode("utf-8"))
    assert corpus.words == old + [sentence.words for sentence in annotated]
    assert corpus.tags == [["O"]] * len(old) + [sentence.tags for sentence in annotated]


def tiny_picks() -> list[Pick]:
    """Two picks, text:2 asked first: two adjacent geo entities, then an I-org that starts a third."""
    return [
        Pick(
            "corpus:7",
            ["Anna", "lives", "in", "New", "York", "."],
            ["B-per", "O", "O", "B-geo", "I-geo", "O"],
            [0.9, 0.8, 0.7, 0.6, 0.4, 1.0],
            0.25,
            1,
        ),
        Pick("text:2", ["Zürich", "Genève", "東京"], ["B-geo", "B-geo", "I-org"], [0.5, 0.3, 0.2], 0.75, 0),
    ]


def test_labelstudio_tasks_carry_priority_entity_confidence_and_model(tmp_path):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "bert_ner/seed0", "mnlp")
    tasks = json.loads((tmp_path / "labelstudio.json").read_text(encoding="utf-8"))
    assert [task["data"]["sentence"] for task in tasks] == ["text:2", "corpus:7"]
    assert tasks[1]["data"] == {"text": "Anna lives in New York .", "sentence": "corpus:7", "rank": 1, "score": 0.25}
    prediction = tasks[1]["predictions"][0]
    assert (prediction["model_version"], prediction["score"]) == ("bert_ner/seed0", 0.5)
    first, second = prediction["result"]
    assert first == {
        "id": "corpus:7-0",
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {"start": 0, "end": 4, "text": "Anna", "labels": ["per"]},
        "score": 0.9,
    }
    assert (second["value"], second["score"]) == ({"start": 14, "end": 22, "text": "New York", "labels": ["geo"]}, 0.5)
    assert tasks[0]["predictions"][0]["score"] == 1.0


def test_adjacent_entities_of_one_category_stay_apart_and_a_stray_i_starts_one(tmp_path):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    (line, _) = (tmp_path / "doccano.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["label"] == [[0, 6, "geo"], [7, 13, "geo"], [14, 16, "org"]]
    annotated = read_annotations(tmp_path / "selection.conll", tmp_path / "manifest.jsonl", CATEGORIES).annotated
    assert annotated[0].tags == ["B-geo", "B-geo", "B-org"]


def test_labelling_config_has_one_escaped_label_per_category_but_o(tmp_path):
    categories = ["O", "geo", 'a&"b<', "per"]
    picks = [Pick("text:1", ["x"], ["O"], [1.0], 0.0, 0)]
    write_exports(picks, categories, tmp_path, "m", "mnlp")
    view = ElementTree.fromstring((tmp_path / "labelstudio.xml").read_text(encoding="utf-8"))
    (labels,) = view.findall("Labels")
    assert (labels.get("name"), labels.get("toName")) == ("label", "text")
    assert [label.get("value") for label in labels] == ["geo", 'a&"b<', "per"]
    assert len({label.get("background") for label in labels}) == 3
    assert view.find("Text").attrib == {"name": "text", "value": "$text"}


def test_manifest_is_written_last_and_an_interrupted_export_leaves_none(tmp_path, monkeypatch):
    written, real_write = [], data.annotations.atomic_write_text

    def recording_write(path, text):
        written.append(path.name)
        real_write(path, text)

    monkeypatch.setattr(data.annotations, "atomic_write_text", recording_write)
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    assert written[-1] == "manifest.jsonl" and len(written) == 5

    def failing_write(path, text):
        if path.name == "doccano.jsonl":
            raise OSError("disk full")
        real_write(path, text)

    monkeypatch.setattr(data.annotations, "atomic_write_text", failing_write)
    with pytest.raises(OSError):
        write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    assert not (tmp_path / "manifest.jsonl").exists()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (Pick("text:9", ["a", "b"], ["O"], [1.0, 1.0], 0.0, 2), "pick text:9: no words, or not one tag"),
        (Pick("text:9", [], [], [], 0.0, 2), "pick text:9: no words"),
        (Pick("text:9", ["a b"], ["O"], [1.0], 0.0, 2), "pick text:9: a word is empty or holds whitespace"),
        (Pick("text:9", ["a"], ["B-loc"], [1.0], 0.0, 2), "pick text:9: tag 'B-loc' is not O or B-/I- of"),
        (Pick("text:9", ["a"], ["geo"], [1.0], 0.0, 2), "pick text:9: tag 'geo' is not O or B-/I- of"),
        (Pick("text:2", ["a"], ["O"], [1.0], 0.0, 2), "pick text:2: chosen twice"),
        (Pick("text:9", ["a"], ["O"], [1.0], 0.0, 3), "the picks' ranks are not 0..2, each once"),
    ],
)
def test_invalid_picks_are_refused_before_anything_is_written(tmp_path, extra, reason):
    with pytest.raises(AnnotationError) as refusal:
        write_exports([*tiny_picks(), extra], CATEGORIES, tmp_path / "out", "m", "mnlp")
    assert str(refusal.value).startswith(reason)
    assert not (tmp_path / "out").exists()


# tiny_picks' pre-annotations accepted: as answers (task id, key, text, character spans), and as imported.
ANSWERS = [
    (1, "text:2", "Zürich Genève 東京", [(0, 6, "geo"), (7, 13, "geo"), (14, 16, "org")]),
    (2, "corpus:7", "Anna lives in New York .", [(0, 4, "per"), (14, 22, "geo")]),
]
TINY_ANNOTATED = [
    Annotated("text:2", ["Zürich", "Genève", "東京"], ["B-geo", "B-geo", "B-org"]),
    Annotated("corpus:7", ["Anna", "lives", "in", "New", "York", "."], ["B-per", "O", "O", "B-geo", "I-geo", "O"]),
]


def labelstudio_file(path: Path, answers) -> tuple[Path, str]:
    """A Label Studio export holding ``answers``, and how its messages name task 2."""
    tasks = [
        {
            "id": task_id,
            "data": {"text": text, "sentence": key},
            "annotations": [
                {
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "text",
                            "type": "labels",
                            "value": {"start": start, "end": end, "labels": [label]},
                        }
                        for start, end, label in spans
                    ],
                    "was_cancelled": False,
                }
            ],
        }
        for task_id, key, text, spans in answers
    ]
    return write_json(path / "export.json", tasks), f"{path / 'export.json'}: task 2"


def doccano_file(path: Path, answers) -> tuple[Path, str]:
    """A doccano export holding ``answers`` (task 2 on line 2), and how its messages name task 2."""
    lines = [{"id": task_id, "text": text, "label": spans, "sentence": key} for task_id, key, text, spans in answers]
    export = path / "export.jsonl"
    export.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return export, f"{export}:2: task 2"


REFUSALS = {  # what task 2 is changed to, and the reason its refusal must give
    "start off a word boundary": (("corpus:7", "Anna lives in New York .", [(1, 4, "per")]), "span 1-4 'nna' does not start and end on word boundaries"),
    "end off a word boundary": (("corpus:7", "Anna lives in New York .", [(14, 21, "geo")]), "span 14-21 'New Yor' does not start and end on word boundaries"),
    "end before start": (("corpus:7", "Anna lives in New York .", [(11, 4, "per")]), "span 11-4 '' does not start and end on word boundaries"),
    "overlapping (told in text order)": (("corpus:7", "Anna lives in New York .", [(18, 24, "org"), (14, 22, "geo")]), "span 18-24 'York .' overlaps span 14-22 'New York'"),
    "unknown label": (("corpus:7", "Anna lives in New York .", [(0, 4, "loc")]), "unknown label 'loc'"),
    "O as a label": (("corpus:7", "Anna lives in New York .", [(0, 4, "O")]), "unknown label 'O'"),
    "changed text": (("corpus:7", "Anna lives in New  York .", []), "differs from the exported one at character 18"),
    "unknown key": (("corpus:70", "Anna lives in New York .", []), "'corpus:70' was not exported"),
    "duplicate key": (("text:2", "Zürich Genève 東京", []), "text:2 is in the file twice"),
}  # fmt: skip


@pytest.mark.parametrize("tool", [labelstudio_file, doccano_file])
@pytest.mark.parametrize("case", REFUSALS)
def test_an_import_refuses_naming_the_file_the_task_and_the_problem(tmp_path, tool, case):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    changed, reason = REFUSALS[case]
    export, task_2 = tool(tmp_path, [ANSWERS[0], (2, *changed)])
    with pytest.raises(AnnotationError) as refusal:
        read_annotations(export, tmp_path / "manifest.jsonl", CATEGORIES)
    message = str(refusal.value)
    assert message.startswith(task_2) and reason in message and "\n" not in message


@pytest.mark.parametrize("tool", [labelstudio_file, doccano_file])
def test_the_answers_become_bio_tags_in_the_files_order(tmp_path, tool):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    imported = read_annotations(tool(tmp_path, ANSWERS)[0], tmp_path / "manifest.jsonl", CATEGORIES)
    assert imported == Imported(TINY_ANNOTATED, 0)


def test_a_selection_saved_with_windows_line_endings_and_spaces_imports_alike(tmp_path):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    selection = tmp_path / "selection.conll"
    edited = selection.read_text(encoding="utf-8").replace("\t", "    ").replace("\n", "\r\n")
    selection.write_bytes(edited.encode("utf-8"))
    imported = read_annotations(selection, tmp_path / "manifest.jsonl", CATEGORIES)
    assert imported == Imported(TINY_ANNOTATED, 0)


def test_doccano_entities_dicts_are_read_like_label_triples(tmp_path):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    entities = [{"id": 5, "label": "per", "start_offset": 0, "end_offset": 4}]
    line = {"id": 3, "text": "Anna lives in New York .", "entities": entities, "relations": [], "sentence": "corpus:7"}
    export = write_json(tmp_path / "export.jsonl", line)
    (sentence,) = read_annotations(export, tmp_path / "manifest.jsonl", CATEGORIES).annotated
    assert sentence.tags == ["B-per", "O", "O", "O", "O", "O"]


def test_the_last_answer_counts_cancelled_ones_are_ignored_and_unanswered_tasks_skipped(tmp_path):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    export, _ = labelstudio_file(tmp_path, [ANSWERS[0]])
    tasks = json.loads(export.read_text(encoding="utf-8"))
    answer = tasks[0]["annotations"][0]
    earlier = dict(answer, result=[])
    cancelled = dict(answer, result=[], was_cancelled=True)
    tasks[0]["annotations"] = [earlier, answer, cancelled]
    unanswered = {"id": 3, "data": {"text": "x", "sentence": "text:3"}, "annotations": []}
    only_cancelled = {"id": 4, "data": {"text": "y", "sentence": "text:4"}, "annotations": [cancelled]}
    write_json(export, [tasks[0], unanswered, only_cancelled])
    imported = read_annotations(export, tmp_path / "manifest.jsonl", CATEGORIES)
    assert imported == Imported(TINY_ANNOTATED[:1], 2)


CONLL_REFUSALS = {  # an edit of selection.conll, and the line and reason of its refusal
    "unknown label": (("Anna\tB-per", "Anna\tB-loc"), 7, "unknown label 'loc'"),
    "changed word": (("Anna\tB-per", "Ana\tB-per"), 7, "differs from the exported one at character 2"),
    "unknown key": (("sent_id = corpus:7", "sent_id = corpus:8"), 7, "'corpus:8' was not exported"),
    "duplicate key": (("sent_id = corpus:7", "sent_id = text:2"), 7, "text:2 is in the file twice (also"),
    "not a BIO tag": (("Anna\tB-per", "Anna\tper"), 9, "tag 'per' is not O, B-x or I-x"),
    "no key": (("# sent_id = corpus:7\n", ""), 7, "a sentence needs its '# sent_id = ' comment and word lines"),
    "no words": ((".\tO\n", ".\tO\n\n# sent_id = text:5\n"), 16, "a sentence needs its '# sent_id = ' comment and word lines"),
    "three columns": (("Anna\tB-per", "Anna\tNNP\tB-per"), 9, "found 3 columns"),
    "comment inside": (("lives\tO", "# note = x\nlives\tO"), 10, "a comment inside a sentence"),
}  # fmt: skip


@pytest.mark.parametrize("case", CONLL_REFUSALS)
def test_a_conll_import_refuses_naming_the_line_and_the_problem(tmp_path, case):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    (old, new), line, reason = CONLL_REFUSALS[case]
    selection = tmp_path / "selection.conll"
    selection.write_text(selection.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    with pytest.raises(AnnotationError) as refusal:
        read_annotations(selection, tmp_path / "manifest.jsonl", CATEGORIES)
    message = str(refusal.value)
    assert message.startswith(f"{selection}:{line}: ") and reason in message and "\n" not in message


@pytest.mark.parametrize(
    ("labelled_words", "before", "reason"),
    [
        ({("Anna", "lives", "in", "New", "York", ".")}, "a\tO\r\n", "in the prepared labelled split"),
        (set(), "# sent_id = corpus:7\nAnna\tB-per\nlives\tO\nin\tO\nNew\tB-geo\nYork\tI-geo\n.\tO", "in the file"),
    ],
)
def test_append_labelled_refuses_a_labelled_sentence_and_leaves_the_file_as_it_was(
    tmp_path, labelled_words, before, reason
):
    labelled = tmp_path / "labelled.conll"
    labelled.write_bytes(before.encode("utf-8"))
    sentences = [Annotated(pick.key, pick.words, pick.tags) for pick in tiny_picks()[::-1]]
    with pytest.raises(AnnotationError) as refusal:
        append_labelled(labelled, sentences, labelled_words)
    assert str(refusal.value) == f"{labelled}: sentence corpus:7: its words are already labelled ({reason})"
    assert labelled.read_bytes() == before.encode("utf-8")


def test_append_labelled_refuses_one_sentence_twice_in_an_import(tmp_path):
    labelled = tmp_path / "labelled.conll"
    sentence = Annotated("text:1", ["Rome"], ["B-geo"])
    with pytest.raises(AnnotationError, match="text:2: its words are already labelled \\(as sentence text:1 of"):
        append_labelled(labelled, [sentence, Annotated("text:2", ["Rome"], ["O"])], set())
    assert not labelled.exists()


MALFORMED = {  # an export that no tool wrote as the import expects, and the start of its refusal after the file
    "not JSON": ("[{", "export: not valid JSON"),
    "not a task": ("[1]", "export: task #1: a task without 'data'"),
    "JSON-MIN": ('[{"id": 4, "text": "a", "label": []}]', "export: task 4: a task without 'data': export as JSON"),
    "annotations not a list": ('[{"id": 4, "data": {}, "annotations": {}}]', "export: task 4: 'annotations' is not a list"),
    "no sentence": ('[{"id": 4, "data": {"text": "a"}, "annotations": [{"result": []}]}]', "export: task 4: data lacks the 'sentence'"),
    "result not a list": ('[{"id": 4, "data": {"text": "a", "sentence": "k"}, "annotations": [{"result": {}}]}]', "export: task 4: the annotation's result is not a list"),
    "choices": ('[{"id": 4, "data": {"text": "a", "sentence": "k"}, "annotations": [{"result": [{"type": "choices"}]}]}]', "export: task 4: a result of type 'choices'"),
    "two labels": ('[{"id": 4, "data": {"text": "a", "sentence": "k"}, "annotations": [{"result": [{"type": "labels", "value": {"start": 0, "end": 1, "labels": ["geo", "per"]}}]}]}]', "export: task 4: span 0-1 has labels ['geo', 'per']"),
    "start not a number": ('[{"id": 4, "data": {"text": "a", "sentence": "k"}, "annotations": [{"result": [{"type": "labels", "value": {"start": "0", "end": 1, "labels": ["geo"]}}]}]}]', "export: task 4: a labels result without integer start/end"),
    "doccano line not JSON": ('{"id": 1, "text": "a", "sentence": "k", "label": []}\n{"id": 2', "export:2: not valid JSON"),
    "doccano line not an object": ('{"id": 1, "text": "a", "sentence": "k", "label": []}\n[2]\n', "export:2: expected a JSON object per line"),
    "doccano line without its key": ('{"id": 1, "text": "a", "sentence": "k", "label": []}\n{"id": 2}\n', "export:2: task 2: lacks the 'sentence' key"),
    "doccano span not a triple": ('{"id": 1, "text": "a", "sentence": "k", "label": [[0, 1]]}', "export:1: task 1: span [0, 1] is not [start, end, label]"),
    "doccano label not a list": ('{"id": 1, "text": "a", "sentence": "k", "label": "geo"}', "export:1: task 1: 'label' is not a list"),
    "doccano entities not objects": ('{"id": 1, "text": "a", "sentence": "k", "entities": [[0, 1, "geo"]]}', "export:1: task 1: 'entities' is not a list of objects"),
}  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_export_is_refused_in_one_line_naming_file_and_task(tmp_path, case):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    content, start = MALFORMED[case]
    (tmp_path / "export").write_text(content, encoding="utf-8")
    with pytest.raises(AnnotationError) as refusal:
        read_annotations(tmp_path / "export", tmp_path / "manifest.jsonl", CATEGORIES)
    assert str(refusal.value).startswith(f"{tmp_path}/{start}") and "\n" not in str(refusal.value)


def test_an_export_not_utf8_a_missing_or_broken_manifest_and_an_unknown_format_are_refused(tmp_path):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    selection, manifest = tmp_path / "selection.conll", tmp_path / "manifest.jsonl"
    (tmp_path / "latin1.conll").write_bytes("Genève\tB-geo\n".encode("latin-1"))
    with pytest.raises(AnnotationError, match="latin1.conll: not UTF-8 \\(byte 0xe8 at offset 3\\)$"):
        read_annotations(tmp_path / "latin1.conll", manifest, CATEGORIES)
    with pytest.raises(AnnotationError, match="elsewhere.jsonl: no manifest: the export is incomplete"):
        read_annotations(selection, tmp_path / "elsewhere.jsonl", CATEGORIES)
    manifest.write_text(manifest.read_text(encoding="utf-8") + '{"words": ["a"]}\n', encoding="utf-8")
    with pytest.raises(AnnotationError, match="manifest.jsonl:3: not a manifest line"):
        read_annotations(selection, manifest, CATEGORIES)
    with pytest.raises(AnnotationError, match="unknown format 'brat'"):
        read_annotations(selection, manifest, CATEGORIES, fmt="brat")


def test_a_format_given_overrides_the_detection(tmp_path):
    write_exports(tiny_picks(), CATEGORIES, tmp_path, "m", "mnlp")
    manifest = tmp_path / "manifest.jsonl"
    with pytest.raises(AnnotationError, match="doccano.jsonl:1: expected 'word<TAB>tag', found 20 columns"):
        read_annotations(tmp_path / "doccano.jsonl", manifest, CATEGORIES, fmt="conll")
    with pytest.raises(AnnotationError, match="doccano.jsonl: not valid JSON"):
        read_annotations(tmp_path / "doccano.jsonl", manifest, CATEGORIES, fmt="labelstudio")
    task = write_json(tmp_path / "task.json", {"id": 1, "data": {}})
    with pytest.raises(AnnotationError, match="task.json: expected a JSON list of tasks"):
        read_annotations(task, manifest, CATEGORIES, fmt="labelstudio")
