"""doccano's side of the exchange: JSONL with pre-annotations out, its sequence-labelling JSONL export in.

Only the tool's formats live here; ``data.annotations`` calls these functions (this module imports nothing
of it). Spans are ``[start, end, label]``: character offsets into ``text``, end exclusive, in Unicode code
points. doccano keeps the other fields of an imported line (``sentence``, ``rank``, ``score``) and writes
them back at the top level of its export, which is how a line finds its sentence again.

doccano marks no example as unanswered: an example nobody reviewed comes back with the head's
pre-annotations. Export with "Export only approved documents" so that only reviewed sentences return.
"""

from __future__ import annotations

import json

from data.picks import Pick

Span = tuple[int, int, str]  # (start, end, label): character offsets, end exclusive


def record(pick: Pick, text: str, spans: list[Span]) -> dict:
    """One line to import: the text, the head's entities as ``label`` and the sentence's key, rank and score."""
    return {
        "text": text,
        "label": [[start, end, category] for start, end, category in spans],
        "sentence": pick.key,
        "rank": int(pick.rank),
        "score": float(pick.score),
    }


def read_export(name: str, content: str) -> list[tuple[str, str, str, list[Span]]]:
    """Each line of a JSONL export as (where, key, text, spans); ``where`` names the file, line and id.

    Spans come from ``label`` (``[[start, end, label], ...]``) or from ``entities`` (dicts with
    ``start_offset``, ``end_offset`` and ``label``, the export of projects with relations).
    """
    annotated = []
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name}:{number}: not valid JSON ({error})") from None
        if not isinstance(example, dict):
            raise ValueError(f"{name}:{number}: expected a JSON object per line (doccano's JSONL export)")
        where = f"{name}:{number}: task {example.get('id', '(no id)')}"
        key, text = example.get("sentence"), example.get("text")
        if not isinstance(key, str) or not isinstance(text, str):
            raise ValueError(f"{where}: lacks the 'sentence' key or the 'text' of the exported lines")
        annotated.append((where, key, text, _spans(where, example)))
    return annotated


def _spans(where: str, example: dict) -> list[Span]:
    """The example's spans, from ``entities`` dicts when present, else from ``label`` triples."""
    if "entities" in example:
        entities = example["entities"]
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise ValueError(f"{where}: 'entities' is not a list of objects")
        triples = [[e.get("start_offset"), e.get("end_offset"), e.get("label")] for e in entities]
    else:
        triples = example.get("label", [])
    if not isinstance(triples, list):
        raise ValueError(f"{where}: 'label' is not a list of [start, end, label]")
    for triple in triples:
        valid = isinstance(triple, list) and len(triple) == 3
        if not (valid and type(triple[0]) is int and type(triple[1]) is int and isinstance(triple[2], str)):
            raise ValueError(f"{where}: span {json.dumps(triple)} is not [start, end, label]")
    return [(start, end, label) for start, end, label in triples]
