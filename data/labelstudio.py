"""Label Studio's side of the exchange: tasks with pre-annotations out, its JSON export in.

Only the tool's formats live here; what a sentence, a pick or a refusal is belongs to ``data.annotations``,
which calls these functions (so this module imports nothing of it). Spans are character offsets into
``data.text``, end exclusive, in Unicode code points as Python indexes a str.

Tasks out (``labelstudio.json``, imported with the config of ``labelling_config``): the head's entities are
``predictions`` whose ``score`` is the task's place in the active-learning order, so that sorting by
prediction score, descending, in the community edition asks the most useful sentence first.

Export in (Export > JSON, not JSON-MIN): a list of tasks, each with its ``annotations``; the last one that was
not cancelled is the annotator's answer, and a task with none is skipped (and counted), not refused. The
span's ``value.text`` is never read: ``start``/``end`` on ``data.text`` are the truth.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import quoteattr

from data.picks import Pick

# Label colours, one per category in the corpus's order; distinct on a white page, then reused.
PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
    "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075",
)  # fmt: skip

Span = tuple[int, int, str]  # (start, end, label): character offsets, end exclusive


def task(pick: Pick, text: str, entities: list[tuple[int, int, str, float]], priority: float, model_version: str):
    """One task: the sentence's text and key, and the head's entities as a prediction scored ``priority``.

    ``entities`` are (start, end, category, mean confidence of its words); each becomes a ``labels`` result.
    """
    results = [
        {
            "id": f"{pick.key}-{number}",
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [category]},
            "score": confidence,
        }
        for number, (start, end, category, confidence) in enumerate(entities)
    ]
    return {
        "data": {"text": text, "sentence": pick.key, "rank": int(pick.rank), "score": float(pick.score)},
        "predictions": [{"model_version": model_version, "score": priority, "result": results}],
    }


def labelling_config(categories: list[str]) -> str:
    """The project's labelling config: one ``Label`` per category other than ``O``, over the task's text."""
    labels = "".join(
        f"    <Label value={quoteattr(category)} background={quoteattr(PALETTE[number % len(PALETTE)])}/>\n"
        for number, category in enumerate(c for c in categories if c != "O")
    )
    return (
        f'<View>\n  <Labels name="label" toName="text">\n{labels}  </Labels>\n'
        '  <Text name="text" value="$text"/>\n</View>\n'
    )


def read_export(name: str, content: str) -> tuple[list[tuple[str, str, str, list[Span]]], int]:
    """The annotated tasks of a JSON export as (where, key, text, spans), and how many had no answer.

    ``where`` names the file and task id for messages; a malformed task is a ValueError naming both.
    """
    try:
        tasks = json.loads(content)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name}: not valid JSON ({error})") from None
    if not isinstance(tasks, list):
        raise ValueError(f"{name}: expected a JSON list of tasks (Label Studio's JSON export)")
    annotated, skipped = [], 0
    for position, entry in enumerate(tasks, start=1):
        task_id = entry.get("id", f"#{position}") if isinstance(entry, dict) else f"#{position}"
        where = f"{name}: task {task_id}"
        answer = _last_answer(where, entry)
        if answer is None:
            skipped += 1
            continue
        key, text = _sentence(where, entry["data"])
        result = answer.get("result", [])
        if not isinstance(result, list):
            raise ValueError(f"{where}: the annotation's result is not a list")
        annotated.append((where, key, text, [_span(where, item) for item in result]))
    return annotated, skipped


def _last_answer(where: str, entry) -> dict | None:
    """The task's last annotation that was not cancelled, or None when it has none."""
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
        raise ValueError(f"{where}: a task without 'data': export as JSON (not JSON-MIN or CSV)")
    annotations = entry.get("annotations", [])
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise ValueError(f"{where}: 'annotations' is not a list of annotations")
    answers = [a for a in annotations if not a.get("was_cancelled", False)]
    return answers[-1] if answers else None


def _sentence(where: str, data: dict) -> tuple[str, str]:
    """(key, text) of a task's data, as ``task`` wrote them."""
    key, text = data.get("sentence"), data.get("text")
    if not isinstance(key, str) or not isinstance(text, str):
        raise ValueError(f"{where}: data lacks the 'sentence' key or the 'text' of the exported tasks")
    return key, text


def _span(where: str, item) -> Span:
    """(start, end, label) of one ``labels`` result; anything else is refused, not dropped."""
    kind = item.get("type") if isinstance(item, dict) else None
    if kind != "labels":
        raise ValueError(f"{where}: a result of type {kind!r}: only 'labels' spans are read (was the config changed?)")
    value = item.get("value") if isinstance(item.get("value"), dict) else {}
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if not (type(start) is int and type(end) is int and isinstance(labels, list) and labels):
        raise ValueError(f"{where}: a labels result without integer start/end and its labels")
    if len(labels) != 1 or not isinstance(labels[0], str):
        raise ValueError(f"{where}: span {start}-{end} has labels {labels}: give each span exactly one")
    return start, end, labels[0]
