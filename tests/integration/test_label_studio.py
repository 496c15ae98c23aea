"""The exchange with a real Label Studio server: our export in through its API, its JSON export back out.

What it proves, on 200+ sentences (GMB sentences when the corpus is at hand, made-up ones otherwise, and
hand-written ones in other scripts): Label Studio accepts ``labelstudio.xml`` and ``labelstudio.json`` as
``write_exports`` writes them, shows the head's entities as predictions whose score is the active-learning
order, and what an annotator submits comes back through ``read_annotations`` as exactly the words and BIO
tags submitted. The submitted (gold) entities differ from the predicted ones for many tasks, so the import is
seen to read the annotation, not the prediction; a few tasks get a first answer replaced by a later one, or a
later one cancelled (skipped), as the reader's "last answer not cancelled" rule expects.

It needs Label Studio in its own venv (``make setup-label-studio``); without it the test is skipped.
``make test-integration`` runs it: about 70 s, mostly the ~210 annotations submitted one request at a time
(~0.3 s each: Label Studio's sqlite commits), the server starting in ~8 s from the migrated database that
the setup keeps (~60 s without it).
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import pytest
from label_studio_server import ROOT, LabelStudio, label_studio_executable, running_label_studio

from data.annotations import Pick, read_annotations, write_exports
from data.corpus import read_corpus

pytestmark = pytest.mark.skipif(
    label_studio_executable() is None,
    reason="Label Studio is not installed (make setup-label-studio; or set $LABEL_STUDIO_EXE)",
)

log = logging.getLogger(__name__)

CATEGORIES = ["O", "art", "eve", "geo", "gpe", "nat", "org", "per", "tim"]  # GMB's, in data/prepared's order
CORPUS_PATHS = (ROOT / "data/raw/ner_dataset.csv.zip", ROOT.parent / "shared/data/ner_dataset.csv.zip")
CORPUS_SENTENCES = 190  # with the hand-written ones: over 200 sentences answered and read back
MODEL_VERSION = "integration-test"

# Sentences no corpus of ours has: other scripts, combining and astral characters, punctuation words, markup
# characters, adjacent entities of one category, an entity holding a comma, an entity ending the sentence.
HAND_WRITTEN = [
    ("Zürich and São Paulo are far from Málaga .", "B-geo O B-geo I-geo O O O B-geo O"),
    ("東京 is the capital of 日本 .", "B-geo O O O O B-gpe O"),
    ("Angela Merkel met François Hollande in Paris on Tuesday .", "B-per I-per O B-per I-per O B-geo O B-tim O"),
    ("Москва and Санкт-Петербург are linked by the Сапсан .", "B-geo O B-geo O O O O B-art O"),
    ("The Ελληνικό Κοινοβούλιο voted on 25 Μαΐου .", "O B-org I-org O O B-tim I-tim O"),
    ("القاهرة lies on the Nile .", "B-geo O O O B-geo O"),
    ("Ça va très bien , merci !", "O O O O O O O"),
    ("« Le Monde » quoted Jean-Luc Mélenchon ( LFI ) .", "O B-org I-org O O B-per I-per O B-org O O"),
    ("AT&T paid $ 1.5 billion to <Acme> & Co. in 2019 ...", "B-org O O O O O B-org I-org I-org O B-tim O"),
    ("Emoji 🙂 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 stay put in Zürich .", "O O O O O O O B-geo O"),
    ("Cafe\u0301 Müller opened in Köln .", "B-org I-org O O B-geo O"),
    ("He flew Paris London Tokyo in one day .", "O O B-geo B-geo B-geo O O O O"),
    ("The United Nations Educational , Scientific and Cultural Organization met .", "O" + " B-org" + " I-org" * 7 + " O O"),
    ("She lives in New York City", "O O O B-geo I-geo I-geo"),
    ("' s -- ... ( ) [ ] { } ; : ? ! \" # % *", " ".join(["O"] * 18)),
    ("São Tomé and Príncipe joined the Tour de France .", "B-gpe I-gpe I-gpe I-gpe O O B-eve I-eve I-eve O"),
]  # fmt: skip
# Answered in no usable way: the first is skipped (its only answer is cancelled), nobody opens the second.
UNANSWERED = [("The annotator skips this one .", "O O O O O O"), ("Nobody opens this one .", "O O O O O")]


def entities(tags: list[str]) -> list[tuple[int, int, str]]:
    """(first word, end word, category) of each entity of canonical BIO tags (an ``I-`` always continues).

    Written here, not taken from ``data.annotations``, so that the gold spans do not share its mistakes."""
    found: list[tuple[int, int, str]] = []
    for index, tag in enumerate(tags):
        if tag.startswith("B-"):
            found.append((index, index + 1, tag[2:]))
        elif tag.startswith("I-"):
            found[-1] = (found[-1][0], index + 1, found[-1][2])
    return found


def bio(length: int, spans: list[tuple[int, int, str]]) -> list[str]:
    """Canonical BIO tags of ``length`` words holding the entities ``spans``."""
    tags = ["O"] * length
    for first, end, category in spans:
        tags[first:end] = [f"B-{category}"] + [f"I-{category}"] * (end - first - 1)
    return tags


def usable(words: list[str], tags: list[str]) -> bool:
    """Whether a corpus sentence can be exported as it is: no word holds whitespace (GMB has a few with
    U+0085 or U+00A0, which the select stage never picks) and its tags are canonical BIO of our categories
    (an ``I-`` only after a tag of its category), as the submitted answers will be."""
    plain_words = all(word and not any(c.isspace() for c in word) for word in words)
    known = all(tag == "O" or (tag[:2] in ("B-", "I-") and tag[2:] in CATEGORIES[1:]) for tag in tags)
    canonical = all(not tag.startswith("I-") or (i > 0 and tags[i - 1][2:] == tag[2:]) for i, tag in enumerate(tags))
    return plain_words and known and canonical


def corpus_sentences(count: int) -> list[tuple[str, list[str], list[str]]]:
    """``count`` (key, words, gold tags) from the GMB corpus: a fifth without entities, ten holding non-ASCII
    words, the rest in corpus order; made-up sentences when the corpus is not at hand."""
    path = next((path for path in CORPUS_PATHS if path.exists()), None)
    if path is None:
        return synthetic_sentences(count)
    corpus = read_corpus(path)
    candidates = [i for i, (words, tags) in enumerate(zip(corpus.words, corpus.tags)) if usable(words, tags)]
    without = [i for i in candidates if set(corpus.tags[i]) == {"O"}][: count // 5]
    non_ascii = [i for i in candidates if not all(word.isascii() for word in corpus.words[i])][:10]
    chosen = set(without + non_ascii)
    rest = [i for i in candidates if i not in chosen][: count - len(chosen)]
    return [(f"corpus:{i}", corpus.words[i], corpus.tags[i]) for i in sorted(chosen | set(rest))]


def synthetic_sentences(count: int) -> list[tuple[str, list[str], list[str]]]:
    """Made-up sentences in four shapes (person, place and date; an organisation; no entity; quoted
    punctuation), for checkouts without the GMB corpus."""
    people = [["Ana", "Lima"], ["Bo"], ["Jean", "de", "la", "Tour"], ["Kim", "Min-jun"]]
    places = [["New", "York"], ["Lagos"], ["Buenos", "Aires"], ["Ulan", "Bator"], ["Oslo"]]
    made = []
    for n in range(count):
        person, place = people[n % len(people)], places[n % len(places)]
        shapes = [
            [(person, "per"), (["visited"], "O"), (place, "geo"), (["on"], "O"), (["Monday"], "tim"), (["."], "O")],
            [(["The"], "O"), (["World", "Bank"], "org"), (["lent", "$", str(n), "million", "to"], "O"), (place, "geo")],
            [(["The", "meeting", "ended", "early", "(", "as", "planned", ")", "."], "O")],
            [(["Officials", "in"], "O"), (place, "geo"), (["said", ":", '"', "no", "!", '"'], "O")],
        ]
        words, tags = chunks_to_bio(shapes[n % len(shapes)])
        made.append((f"corpus:{n}", words, tags))
    return made


def chunks_to_bio(chunks: list[tuple[list[str], str]]) -> tuple[list[str], list[str]]:
    """Words and BIO tags of a sentence given as (words, category) chunks: "O" chunks are outside, any other
    chunk is one entity."""
    words, spans = [], []
    for chunk, category in chunks:
        if category != "O":
            spans.append((len(words), len(words) + len(chunk), category))
        words += chunk
    return words, bio(len(words), spans)


def hand_written() -> list[tuple[str, list[str], list[str]]]:
    """The hand-written and unanswered sentences as (key, words, tags), keyed ``text:<n>`` as the text
    input's lines are."""
    made = []
    for line, (text, tags) in enumerate(HAND_WRITTEN + UNANSWERED, start=1):
        words, tag_list = text.split(" "), tags.split(" ")
        assert len(words) == len(tag_list), f"HAND_WRITTEN {text!r}: {len(words)} words, {len(tag_list)} tags"
        made.append((f"text:{line}", words, tag_list))
    return made


def predicted(gold: list[str], number: int) -> list[str]:
    """The head's tags for sentence ``number``: the gold ones with the mistakes an annotator corrects, in turn
    a missed entity, a wrong category, a cut-short entity, or none; a spurious entity on every other
    sentence without any."""
    spans = entities(gold)
    if not spans:
        return bio(len(gold), [(0, 1, "org")]) if number % 2 == 0 else gold
    first, end, category = spans[0]
    mistakes = [
        spans[:-1],
        [(first, end, "org" if category != "org" else "geo"), *spans[1:]],
        [(first, first + 1, category), *spans[1:]],
        spans,
    ]
    return bio(len(gold), mistakes[number % len(mistakes)])


def make_picks(sentences: list[tuple[str, list[str], list[str]]]) -> list[Pick]:
    """One pick per sentence with predicted tags, made-up confidences and scores, and ranks in a shuffled
    order, so that the active-learning order is not the order of the sentences."""
    ranks = list(range(len(sentences)))
    random.Random(0).shuffle(ranks)
    return [
        Pick(
            key=key,
            words=words,
            tags=predicted(gold, number),
            confidence=[0.5 + 0.1 * ((number + j) % 5) for j in range(len(words))],
            score=1.0 - rank / len(sentences),
            rank=rank,
        )
        for number, ((key, words, gold), rank) in enumerate(zip(sentences, ranks))
    ]


def result(words: list[str], tags: list[str], prefix: str) -> list[dict]:
    """Label Studio ``labels`` results for the entities of ``tags``, offsets into the words joined by one space,
    as the labelling page submits them."""
    starts = [sum(len(word) + 1 for word in words[:i]) for i in range(len(words))]
    text = " ".join(words)
    results = []
    for number, (first, end, category) in enumerate(entities(tags)):
        start, stop = starts[first], starts[end - 1] + len(words[end - 1])
        value = {"start": start, "end": stop, "text": text[start:stop], "labels": [category]}
        results.append({"id": f"{prefix}{number}", "from_name": "label", "to_name": "text", "type": "labels", "value": value})  # fmt: skip
    return results


def check_project(server: LabelStudio, project_id: int) -> None:
    """The project's config has our labels, in our order."""
    labels = server.project(project_id)["parsed_label_config"]["label"]["labels"]
    assert labels == CATEGORIES[1:], f"the project's labels are {labels}, not {CATEGORIES[1:]}"


def check_predictions(server_tasks: list[dict], exported: list[dict]) -> None:
    """Each task holds its text and key as exported and the head's entities as one prediction with its score;
    sorting by prediction score, descending, gives the active-learning order."""
    assert len(server_tasks) == len(exported), f"{len(server_tasks)} tasks on the server, {len(exported)} exported"
    by_key = {task["data"]["sentence"]: task for task in server_tasks}
    for task in exported:
        shown = by_key[task["data"]["sentence"]]
        assert shown["data"] == task["data"], f"task {shown['id']}: data changed on import"
        [prediction] = shown["predictions"]
        [sent] = task["predictions"]
        assert prediction["score"] == pytest.approx(sent["score"]), f"task {shown['id']}: prediction score"
        assert prediction["model_version"] == MODEL_VERSION
        assert prediction["result"] == sent["result"], f"task {shown['id']}: predicted entities changed on import"
    by_score = sorted(server_tasks, key=lambda task: -task["predictions"][0]["score"])
    assert [task["data"]["rank"] for task in by_score] == list(range(len(exported)))


def annotate(server: LabelStudio, server_tasks: list[dict], gold: dict[str, list[str]], picks: dict[str, Pick]):
    """Submit the gold entities for every task but the ``UNANSWERED`` ones (the first gets only a cancelled
    answer, the second none). Every 50th task first gets the prediction as an answer that a later one
    replaces, and the task after it a cancelled answer after the gold one: the reader must take the last
    answer not cancelled."""
    skipped, unopened = (key for key, _, _ in hand_written()[-len(UNANSWERED) :])
    for number, task in enumerate(sorted(server_tasks, key=lambda task: task["id"])):
        key = task["data"]["sentence"]
        pick = picks[key]
        if key == unopened:
            continue
        if key == skipped:
            server.annotate(task["id"], [], cancelled=True)
            continue
        if number % 50 == 0:
            server.annotate(task["id"], result(pick.words, pick.tags, "first-"))
        server.annotate(task["id"], result(pick.words, gold[key], "gold-"))
        if number % 50 == 1:
            server.annotate(task["id"], result(pick.words, pick.tags, "cancelled-"), cancelled=True)


def test_label_studio_round_trip(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Our export into a real Label Studio, annotations submitted there, its JSON export read back exactly."""
    caplog.set_level(logging.WARNING, logger="httpx")  # not a line per request in the timing report
    corpus = corpus_sentences(CORPUS_SENTENCES)
    sentences = corpus + hand_written()
    gold = {key: tags for key, _, tags in sentences}
    picks = make_picks(sentences)
    _check_coverage(sentences, picks)
    out_dir = tmp_path / "selection"
    out_dir.mkdir()
    write_exports(picks, CATEGORIES, out_dir, MODEL_VERSION, "integration")
    exported = json.loads((out_dir / "labelstudio.json").read_text(encoding="utf-8"))
    data_dir = tmp_path / "label-studio"
    data_dir.mkdir()
    with running_label_studio(label_studio_executable(), data_dir) as server:
        log.info("Label Studio answered after %.1f s", server.start_s)
        started = time.monotonic()
        project_id = server.create_project("Active learning", (out_dir / "labelstudio.xml").read_text("utf-8"))["id"]
        check_project(server, project_id)
        imported = server.import_tasks(project_id, exported)
        assert imported["task_count"] == len(picks) and imported["prediction_count"] == len(picks), imported
        server_tasks = server.tasks(project_id)
        check_predictions(server_tasks, exported)
        annotate(server, server_tasks, gold, {pick.key: pick for pick in picks})
        export_path = tmp_path / "project-export.json"
        export_path.write_bytes(server.export_json(project_id))
        log.info("import, annotation and export took %.1f s", time.monotonic() - started)
    answered = read_annotations(export_path, out_dir / "manifest.jsonl", CATEGORIES)
    unanswered = {key for key, _, _ in sentences[-len(UNANSWERED) :]}
    assert answered.skipped == 1, f"{answered.skipped} tasks skipped, expected the one whose answer was cancelled"
    expected = {key: (words, tags) for key, words, tags in sentences if key not in unanswered}
    read_back = {sentence.key: (sentence.words, sentence.tags) for sentence in answered.annotated}
    assert read_back == expected, _first_difference(read_back, expected)


def _first_difference(read_back: dict, expected: dict) -> str:
    """What a failed round trip got wrong first, readably: a sentence missing or extra, or its words and
    tags read back against the ones submitted."""
    if missing := sorted(expected.keys() - read_back.keys()):
        return f"{len(missing)} answered sentences not read back, first {missing[0]}"
    if extra := sorted(read_back.keys() - expected.keys()):
        return f"{len(extra)} sentences read back that were not answered, first {extra[0]}"
    key = next(key for key in expected if read_back[key] != expected[key])
    (words, tags), (sent_words, sent_tags) = read_back[key], expected[key]
    return f"sentence {key}: read back {list(zip(words, tags))}, submitted {list(zip(sent_words, sent_tags))}"


def _check_coverage(sentences: list[tuple[str, list[str], list[str]]], picks: list[Pick]) -> None:
    """The sentences hold the cases the test is for, so that a change of corpus cannot quietly weaken it."""
    spans = [entities(tags) for _, _, tags in sentences]
    cases = {
        "sentences": len(sentences),
        "multi-word entities": sum(any(end - first > 1 for first, end, _ in s) for s in spans),
        "no entity": sum(not s for s in spans),
        "non-ASCII words": sum(not all(w.isascii() for w in words) for _, words, _ in sentences),
        "punctuation words": sum(any(not any(c.isalnum() for c in w) for w in words) for _, words, _ in sentences),
        "predictions that differ from the answer": sum(p.tags != tags for p, (_, _, tags) in zip(picks, sentences)),
    }
    least = {"sentences": 200 + len(UNANSWERED), "multi-word entities": 20, "no entity": 20, "non-ASCII words": 10}
    least |= {"punctuation words": 50, "predictions that differ from the answer": 50}
    short = {case: f"{cases[case]} < {least[case]}" for case in least if cases[case] < least[case]}
    assert not short, f"the test's sentences lack cases: {short}"
