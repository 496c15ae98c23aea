"""The FastAPI app: ``/tag``, ``/doccano``, ``/health``, ``/info``, ``/stats`` and the page at ``/``.

The ``Batcher``'s workers own the tagger (``heads.tagger.Tagger``, the code path
of ``pipeline.predict``; a copy per worker, each with its own tokenizer);
requests only parse, check and queue their texts.
Every error is a JSON object ``{"error": "<one line>"}`` with a 4xx status
(5xx only for the server's own faults). The interactive OpenAPI pages are left
out (they load assets from a CDN); ``/openapi.json`` describes the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import time
from pathlib import Path

import jax
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from serving.batcher import Batcher, BatchSettings, Busy, Tagged, bucket_rows
from serving.texts import Limits, RequestError, TagRequest, parse_body, tag_request, text_lines, text_result

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
# The page's own files only: no CDN, no inline script, nothing from another origin.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
PAGE_FILES = {
    "/": ("index.html", "text/html"),
    "/page.js": ("page.js", "text/javascript"),
    "/page.css": ("page.css", "text/css"),
}
WARM_UP_WORDS = [
    "book",
    "a",
    "flight",
    "to",
    "Lisbon",
    "on",
    "Friday",
    ",",
    "is",
    "the",
    "Luma",
    "lamp",
    "in",
    "stock",
    "?",
]
# displaCy's entity colours, given to the head's categories in their order (O has none).
PALETTE = ["#7aecec", "#feca74", "#aa9cfc", "#bfeeb7", "#ff9561", "#c887fb", "#9cc9cc", "#ffeb80", "#ff8197", "#bfe1d9"]
# doccano's auto-labelling, "Custom REST Request" with body {"text": "{{ text }}"}: its mapping template.
DOCCANO_TEMPLATE = (
    "[{% for entity in input %}"
    '{"label": "{{ entity.label }}", "start_offset": {{ entity.start_offset }}, '
    '"end_offset": {{ entity.end_offset }}}{% if not loop.last %}, {% endif %}'
    "{% endfor %}]"
)


class Entity(BaseModel):
    entity_group: str
    score: float
    word: str
    start: int
    end: int


class TextResult(BaseModel):
    words: list[str]
    spans: list[tuple[int, int]]
    categories: list[str]
    scores: list[float]
    entities: list[Entity]


class TagResults(BaseModel):
    results: list[TextResult]


class DoccanoLabel(BaseModel):
    label: str
    start_offset: int
    end_offset: int


def category_colours(categories: list[str]) -> dict[str, str]:
    """A colour per category other than O, from displaCy's palette in the head's category order."""
    entities = [category for category in categories if category != "O"]
    return {category: PALETTE[index % len(PALETTE)] for index, category in enumerate(entities)}


def service_info(tagger, head_path: str, limits: Limits, batching: BatchSettings) -> dict:
    """What ``/info`` says: the head, its encoder, categories and colours, its features' fingerprint, the limits."""
    features = tagger.config.get("features", {})
    return {
        "head": str(head_path),
        "model": tagger.config.get("model"),
        "seed": tagger.config.get("seed"),
        "encoder": features.get("encoder"),
        "encoder_weights": "int8" if tagger.int8 else features.get("precision"),  # int8: --int8, else as trained
        "categories": tagger.categories,
        "colours": category_colours(tagger.categories),
        "fingerprint": features,
        "limits": dataclasses.asdict(limits),
        "batching": dataclasses.asdict(batching),
    }


def warm_up_sentence(words: int, shift: int = 0) -> list[str]:
    """A made-up sentence of ``words`` words (``shift`` varies which words)."""
    return [WARM_UP_WORDS[(shift + i) % len(WARM_UP_WORDS)] for i in range(words)]


def warm_up_layouts(rows: int) -> list[list[list[str]]]:
    """Model calls of ``rows`` padded rows: one long text just over the size below, and chat messages
    (5 to 64 words) filling the size; for the smallest size also one word, and eight 20-word messages."""
    lengths, messages, words = [5, 12, 30, 64, 7, 20, 48, 9], [], rows
    while words > 0:
        messages.append(warm_up_sentence(min(lengths[len(messages) % len(lengths)], words), len(messages)))
        words -= len(messages[-1])
    layouts = [[warm_up_sentence(rows // 2 + 1)], messages]
    if rows == 256:
        layouts += [[warm_up_sentence(1)], [warm_up_sentence(20, shift) for shift in range(8)]]
    return layouts


def warm_up(tag, max_rows: int) -> dict[int, float]:
    """Tag made-up texts of each padded size up to ``max_rows``, so that every shape the head is jitted
    for compiles now, not on a request; returns the seconds each size took."""
    seconds, rows = {}, 256
    while rows <= max_rows:
        start = time.perf_counter()
        for layout in warm_up_layouts(rows):
            tag(layout)
        seconds[rows] = round(time.perf_counter() - start, 3)
        rows *= 2
    return seconds


class CompileCounter:
    """A ``jax.monitoring`` listener counting XLA compilations: after warm-up, each one is a request that waited
    on a compilation (a shape the warm-up missed)."""

    def __init__(self):
        self.count = 0

    def __call__(self, event: str, duration: float, **kwargs) -> None:
        if event.endswith("backend_compile_duration"):
            self.count += 1
            log.warning("a request compiled the head for a new shape (%.2f s): warm-up missed it", duration)


def worker_taggers(tagger, count: int) -> list:
    """``count`` taggers, one per batcher worker: ``tagger`` and copies sharing its encoder's model and its head,
    each with a tokenizer of its own (a fast tokenizer refuses a call while another thread is in one)."""
    copies = [copy.copy(tagger) for _ in range(count - 1)]
    for worker in copies:
        worker.encoder = dataclasses.replace(tagger.encoder, tokenizer=copy.deepcopy(tagger.encoder.tokenizer))
    return [tagger, *copies]


def max_rows(limits: Limits, batching: BatchSettings) -> int:
    """The largest padded size a model call can have: a full batch, or one text of the longest allowed."""
    return bucket_rows(max(batching.max_words, limits.max_text_chars))  # a word holds at least one character


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` (declared or streamed) is answered 413 before the app sees it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(scope, receive, send, declared)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send, None)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send, declared: bytes | None):
        if declared is not None and not declared.isdigit():
            status, message = 400, f"Content-Length {declared.decode('latin-1')!r} is not a number"
        else:
            status, message = 413, f"request body over {self.max_bytes} bytes: send fewer or shorter texts"
        await JSONResponse({"error": message}, status, headers={"Connection": "close"})(scope, receive, send)


async def tag_texts(batcher: Batcher, texts: list[str]) -> list[dict]:
    """Each text's result, its words tagged by the batcher's worker together with other requests' texts."""
    lines = [text_lines(text) for text in texts]
    try:
        futures = [batcher.submit([line.words for line in text]) for text in lines]
    except Busy as error:
        raise RequestError(503, f"server busy: {error}") from None
    tagged: list[list[Tagged]] = await asyncio.gather(*(asyncio.wrap_future(future) for future in futures))
    return [text_result(text, result) for text, result in zip(lines, tagged)]


async def read_request(request: Request, limits: Limits) -> tuple[list[str], bool]:
    """The texts of a tagging request and whether it sent one ``text``; RequestError when refused."""
    return tag_request(parse_body(await request.body(), request.headers.get("content-type")), limits)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": message}``: refused requests, unknown paths and methods, and faults."""

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError):
        return error_response(error.status, error.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": str(error.detail)}, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0]
        return error_response(422, f"{'.'.join(map(str, first['loc']))}: {first['msg']}")

    @app.exception_handler(Exception)
    async def fault(request: Request, error: Exception):
        log.error("%s %s failed: %r", request.method, request.url.path, error)
        return error_response(500, f"internal error: {type(error).__name__}; the server is still up")


def create_app(
    tagger,
    head_path: str,
    limits: Limits | None = None,
    batching: BatchSettings | None = None,
    cors_origins: tuple[str, ...] = (),
) -> FastAPI:
    """The app around a loaded ``tagger``; its batcher's worker runs while the app's lifespan does.

    ``limits`` and ``batching`` default to ``Limits()`` and ``BatchSettings()``.
    """
    limits, batching = limits or Limits(), batching or BatchSettings()
    batcher = Batcher([worker.tag_scored for worker in worker_taggers(tagger, batching.workers)], batching)
    info = service_info(tagger, head_path, limits, batching)
    text_lines("warm up")  # builds the word splitter's regex now (it scans every code point): not on a request
    pages = {path: ((STATIC / name).read_bytes(), media) for path, (name, media) in PAGE_FILES.items()}

    compilations = CompileCounter()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        jax.monitoring.register_event_duration_secs_listener(compilations)
        batcher.start()
        yield
        batcher.stop()
        jax.monitoring.unregister_event_duration_listener(compilations)

    app = FastAPI(title="ssner tagger", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.batcher = batcher
    add_error_handlers(app)
    request_body = {"content": {"application/json": {"schema": TagRequest.model_json_schema()}}, "required": True}

    @app.post("/tag", response_model=TextResult | TagResults, openapi_extra={"requestBody": request_body})
    async def tag(request: Request):
        """Tag ``{"text": ...}`` (one result) or ``{"texts": [...]}`` (``{"results": [...]}``)."""
        texts, single = await read_request(request, limits)
        results = await tag_texts(batcher, texts)
        # A response as it is: FastAPI would validate the results against the model again (they are built to it).
        return JSONResponse(results[0] if single else {"results": results})

    @app.post("/doccano", response_model=list[DoccanoLabel], openapi_extra={"requestBody": request_body})
    async def doccano(request: Request):
        """doccano's auto-labelling: ``{"text": ...}`` -> ``[{"label", "start_offset", "end_offset"}, ...]``."""
        texts, single = await read_request(request, limits)
        if not single:
            raise RequestError(422, 'doccano sends one "text" per request, not "texts"')
        entities = (await tag_texts(batcher, texts))[0]["entities"]
        return JSONResponse(
            [{"label": e["entity_group"], "start_offset": e["start"], "end_offset": e["end"]} for e in entities]
        )

    @app.get("/health")
    async def health():
        """200 while the tagging worker runs, 503 if it stopped."""
        if not batcher.alive:
            return error_response(503, "the tagging worker is not running")
        return {"status": "ok", "queued": batcher.queued}

    @app.get("/info")
    async def service():
        """The head, its encoder, categories, colours, fingerprint, and the server's limits."""
        return info

    @app.get("/stats")
    async def stats():
        """Texts and model calls since start-up, per padded size: first, last and mean milliseconds; XLA
        compilations since start-up (0 when the warm-up covered every shape)."""
        return {**batcher.stats(), "compilations": compilations.count}

    for path, (content, media) in pages.items():
        app.add_api_route(path, page_route(content, media), methods=["GET"], include_in_schema=False)
    app.add_api_route("/favicon.ico", lambda: Response(status_code=204), methods=["GET"], include_in_schema=False)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )
    return app


def page_route(content: bytes, media_type: str):
    """A GET handler answering one of the page's files, with the page's security headers."""

    async def page() -> Response:
        return Response(content, media_type=media_type, headers=PAGE_HEADERS)

    return page
