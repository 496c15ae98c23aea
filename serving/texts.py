"""A request's texts: parsed and checked, split into words as ``pipeline.predict`` splits them, and tagged results.

A text's lines are split at ``\\r\\n``, ``\\r`` and ``\\n`` (what predict's
``input_lines`` does with a TEXT argument) and each line that holds a word is
one sentence, split into words by ``features.text.token_spans``; so the
categories served equal predict's for the same line. Character offsets in
the results index the text as sent (Python ``str`` indices: code points).
"""

from __future__ import annotations

import dataclasses
import json
import re

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from features.text import read_sentences
from heads.tagger import json_record

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # heads.tagger.input_lines' line breaks, no others
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a one-line message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20  # 1 MiB: hundreds of chat messages; a larger body is refused (413)
    max_texts: int = 256  # texts in one request (413 beyond): a bulk job belongs to pipeline.predict
    max_text_chars: int = 2000  # characters of one text (413 beyond): a message, not a document

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(f"limits: {field.name} is {getattr(self, field.name)}; give a positive number")


class TagRequest(BaseModel):
    """``{"text": "..."}`` for one text or ``{"texts": ["...", ...]}`` for several."""

    model_config = ConfigDict(extra="forbid", strict=True)
    text: str | None = None
    texts: list[str] | None = None

    @model_validator(mode="after")
    def _one_of_text_or_texts(self) -> TagRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError('give either "text" (a string) or "texts" (a list of strings), not both or neither')
        return self


@dataclasses.dataclass(frozen=True)
class Line:
    """One line of a text that holds words: where it starts in the text, its characters, its token spans."""

    offset: int
    text: str
    spans: list[tuple[int, int]]

    @property
    def words(self) -> list[str]:
        return [self.text[a:b] for a, b in self.spans]


def text_lines(text: str) -> list[Line]:
    """The lines of ``text`` that hold words, each with its offset in ``text`` (blank lines are skipped)."""
    starts = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]
    return [Line(starts[number - 1], line, spans) for number, line, spans in read_sentences(_LINE_BREAK.split(text))]


def parse_body(body: bytes, content_type: str | None) -> dict:
    """The JSON object of a request body; RequestError (415 or 422) when it is not one."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise RequestError(415, f"Content-Type must be application/json, got {content_type or 'none'}")
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(
            422, f"body is not valid UTF-8: byte 0x{body[error.start]:02x} at offset {error.start}"
        ) from None
    try:
        document = json.loads(decoded)
    except json.JSONDecodeError as error:
        raise RequestError(422, f"body is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise RequestError(422, "body is not a request: JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise RequestError(422, f'body must be a JSON object with "text" or "texts", got a JSON {type_name(document)}')
    return document


def type_name(value) -> str:
    """JSON's name of a decoded value's type."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def tag_request(document: dict, limits: Limits) -> tuple[list[str], bool]:
    """The texts of a request object and whether it sent one ``text``; RequestError (413, 422) when refused."""
    texts = document.get("texts")
    if isinstance(texts, list) and len(texts) > limits.max_texts:  # before validating thousands of items
        raise RequestError(
            413, f"{len(texts)} texts in one request; the limit is {limits.max_texts}: send them in several requests"
        )
    try:
        request = TagRequest.model_validate(document)
    except ValidationError as error:
        raise RequestError(422, validation_message(error)) from None
    single = request.text is not None
    texts = [request.text] if single else request.texts
    if not texts:
        raise RequestError(422, '"texts" is empty: give at least one text')
    for index, text in enumerate(texts):
        check_text(text, "text" if single else f"texts[{index}]", limits)
    return texts, single


def validation_message(error: ValidationError) -> str:
    """The first problem pydantic found, on one line: where and what."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def check_text(text: str, name: str, limits: Limits) -> None:
    """Refuse a text that is too long (413), empty, blank or not valid Unicode (422)."""
    if len(text) > limits.max_text_chars:
        raise RequestError(
            413, f"{name} has {len(text)} characters; the limit is {limits.max_text_chars}: split it into messages"
        )
    if not text:
        raise RequestError(422, f"{name} is empty: nothing to tag")
    if surrogate := _SURROGATE.search(text):
        raise RequestError(
            422,
            f"{name} is not valid Unicode: a lone surrogate U+{ord(surrogate.group()):04X} "
            f"at character {surrogate.start()}",
        )
    if text.isspace():
        raise RequestError(422, f"{name} holds only whitespace: nothing to tag")


def text_result(lines: list[Line], tagged: list[tuple[list[str], list[float]]]) -> dict:
    """One text's words, their character spans, categories and scores, and its entities.

    Entities carry the fields of Hugging Face's ``pipeline("ner")`` with an aggregation
    strategy: ``entity_group``, ``score`` (the mean of its words' scores), ``word`` (the
    text it covers, spacing included), ``start`` and ``end`` (character offsets, end exclusive).
    """
    result: dict = {"words": [], "spans": [], "categories": [], "scores": [], "entities": []}
    for line, (categories, scores) in zip(lines, tagged):
        words = line.words
        result["words"] += words
        result["spans"] += [[line.offset + a, line.offset + b] for a, b in line.spans]
        result["categories"] += categories
        result["scores"] += [round(float(score), 6) for score in scores]
        for entity in json_record(line.text, line.spans, words, categories)["entities"]:
            covered = scores[entity["start"] : entity["end"]]
            result["entities"].append(
                {
                    "entity_group": entity["category"],
                    "score": round(float(sum(covered) / len(covered)), 6),
                    "word": entity["text"],
                    "start": line.offset + entity["char_start"],
                    "end": line.offset + entity["char_end"],
                }
            )
    return result
