"""Load benchmark of the HTTP tagger (``python -m pipeline.serve``), beside the command-line predict, in one run.

The server runs as a subprocess on 127.0.0.1. Messages are test-split sentences of 5 to 30 words
(``--messages``: a file of them instead, one per line), words joined by spaces. In order:

1. per padded size (256 to 2,048 rows): ``--bucket-requests`` requests that fill it, one at a time; the
   first (the first of that size since start-up) against the last: a compilation on the request path
   would make the first one slower by far;
2. the messages one at a time (concurrency 1), then from 8 clients at once, each request one message:
   p50/p95/p99 latency, messages/s, errors;
3. the server's RSS before and after ``--soak-requests`` more requests from 8 clients;
4. the whole test split through the server (requests of 32 texts) and through ``python -m pipeline.predict
   --json``: the categories compared word by word, beside predict against itself in batches of 32 lines
   instead of 1,024 (bf16 features move with the batch they are encoded in: that is the floor); predict's
   cost per message, run once per message (process start and encoder load included) and over the file.
   ``--load-only`` stops after 3 (a server setting compared in minutes: ``--server-arg=--threads=2``);
5. the probe, after the server has stopped: the tagger alone in this process, no HTTP and no clients, two
   threads each with a tagger of its own (as the server's two workers) tagging the messages in batches of 8
   and of 32: the most messages/s the model calls allow on this machine, whatever the server does.

    python -m bench.serve --head models/bert_ner_es/seed0/head.msgpack --out bench/serve.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from data.prepared_io import atomic_write_text, read_prepared

ENV = dict(os.environ, HF_HUB_OFFLINE="1")


def test_split_lines(prepared_dir: str) -> list[str]:
    """The test split's sentences as lines of text, words joined by spaces."""
    prepared = read_prepared(Path(prepared_dir))
    return [" ".join(prepared.words[i]) for i in prepared.split["test"]]


def chat_messages(lines: list[str], count: int, seed: int) -> list[str]:
    """``count`` lines of 5 to 30 words (chatbot length), drawn without replacement."""
    fitting = [line for line in lines if 5 <= len(line.split()) <= 30]
    if len(fitting) < count:
        raise ValueError(f"only {len(fitting)} lines of 5 to 30 words; the benchmark sends {count}")
    chosen = np.random.default_rng(seed).choice(len(fitting), size=count, replace=False)
    return [fitting[i] for i in chosen]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    """One keep-alive HTTP connection to the server; ``post`` returns (status, body, seconds)."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, document: dict) -> tuple[int, dict | None, float]:
        body = json.dumps(document).encode()
        start = time.perf_counter()
        for attempt in (1, 2):  # a keep-alive connection the server closed while idle: reconnect once
            try:
                self.connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.connection.close()
                if attempt == 2:
                    return 0, None, time.perf_counter() - start
                start = time.perf_counter()
            except (OSError, http.client.HTTPException):
                self.connection.close()
                return 0, None, time.perf_counter() - start
        seconds = time.perf_counter() - start
        return response.status, json.loads(data) if response.status == 200 else None, seconds

    def get(self, path: str) -> dict:
        self.connection.request("GET", path)
        return json.loads(self.connection.getresponse().read())


def start_server(head: str, port: int, extra: list[str]) -> tuple[subprocess.Popen, float]:
    """The server process and the seconds it took to answer /health (loading and warm-up included)."""
    command = [sys.executable, "-m", "pipeline.serve", "--head", head, "--port", str(port), "--log-level", "warning"]
    start = time.perf_counter()
    server = subprocess.Popen(command + extra, env=ENV)
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode} before answering")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server, time.perf_counter() - start
        except OSError:
            pass
        if time.perf_counter() - start > 600:
            server.kill()
            raise RuntimeError("the server did not answer /health within 600 s")
        time.sleep(0.2)


def rss_mib(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def latency_summary(seconds: list[float], errors: int, wall: float, messages: int) -> dict:
    """Percentiles in milliseconds, messages per second over the wall time, errors."""
    ms = np.asarray(seconds) * 1000
    return {
        "requests": len(seconds),
        "errors": errors,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "messages_per_second": round(messages / wall, 1),
    }


def load_run(port: int, documents: list[dict], clients: int) -> dict:
    """Send ``documents`` from ``clients`` threads, each on its own connection; the latency summary."""
    seconds: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def work(share: list[dict]) -> None:
        client = Client(port)
        for document in share:
            status, _, took = client.post("/tag", document)
            with lock:
                seconds.append(took)
                errors[0] += status != 200

    threads = [threading.Thread(target=work, args=(documents[k::clients],)) for k in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    messages = sum(len(d.get("texts", [None])) for d in documents)
    return {"clients": clients, **latency_summary(seconds, errors[0], wall, messages)}


def bucket_requests(messages: list[str], rows: int) -> dict:
    """A request that fills ``rows`` padded rows in one model call: texts of about 40 words, at most 32 of
    them (the default batch), more than half of ``rows`` words in all."""
    texts, words, index = [], 0, 0
    while words <= rows // 2 or not texts:
        text = messages[index % len(messages)]
        index += 1
        while len(text.split()) < 40:
            text += " " + messages[index % len(messages)]
            index += 1
        texts.append(text)
        words += len(text.split())
    if len(texts) > 32 or words > rows:
        raise ValueError(f"cannot fill {rows} rows with at most 32 texts of about 40 words")
    return {"texts": texts}


def bucket_run(port: int, messages: list[str], requests: int) -> dict:
    """Per padded size: the first request's milliseconds, the last one's and the median."""
    client, report = Client(port), {}
    for rows in (256, 512, 1024, 2048):
        document = {"text": messages[0]} if rows == 256 else bucket_requests(messages, rows)
        seconds = []
        for _ in range(requests):
            status, _, took = client.post("/tag", document)
            if status != 200:
                raise RuntimeError(f"a {rows}-row request failed with status {status}")
            seconds.append(took * 1000)
        words = sum(len(t.split()) for t in document.get("texts", [document.get("text")]))
        report[str(rows)] = {
            "words": words,
            "first_ms": round(seconds[0], 2),
            "last_ms": round(seconds[-1], 2),
            "median_ms": round(float(np.median(seconds)), 2),
            "requests": requests,
        }
    return report


def served_categories(port: int, lines: list[str]) -> list[list[str]]:
    """Every line's categories from the server, in requests of 32 texts."""
    client, categories = Client(port), []
    for first in range(0, len(lines), 32):
        status, body, _ = client.post("/tag", {"texts": lines[first : first + 32]})
        if status != 200:
            raise RuntimeError(f"tagging lines {first}.. failed with status {status}")
        categories += [result["categories"] for result in body["results"]]
    return categories


def predict_file(head: str, path: Path, batch_sentences: int, extra: list[str]) -> tuple[float, list[list[str]]]:
    """``python -m pipeline.predict --json --file``: wall seconds (process start and loading included), categories."""
    command = [sys.executable, "-m", "pipeline.predict", "--head", head, *extra, "--json", "--file", str(path)]
    start = time.perf_counter()
    done = subprocess.run(
        command + ["--batch-sentences", str(batch_sentences)], env=ENV, check=True, capture_output=True, text=True
    )
    return time.perf_counter() - start, [json.loads(record)["categories"] for record in done.stdout.splitlines()]


def predict_cli(head: str, lines: list[str], work: Path, extra: list[str]) -> dict:
    """``python -m pipeline.predict`` (with ``extra`` options): once for one message, then over the file of
    ``lines`` in its default batches (1,024 lines) and in batches of 32 (how its own batching moves bf16
    features: the noise floor)."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "pipeline.predict", "--head", head, *extra, lines[0]]
    subprocess.run(command, env=ENV, check=True, capture_output=True)
    one = time.perf_counter() - start
    path = work / "lines.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    seconds, categories = predict_file(head, path, 1024, extra)
    _, small_batches = predict_file(head, path, 32, extra)
    return {
        "one_message_seconds": round(one, 2),
        "file_lines": len(lines),
        "file_seconds": round(seconds, 2),
        "file_ms_per_message": round(seconds / len(lines) * 1000, 3),
        "categories": categories,
        "small_batches": small_batches,
    }


def agreement(found: list[list[str]], expected: list[list[str]]) -> dict:
    """Lines and words whose categories differ between two taggings of the same lines."""
    lines = [i for i, (a, b) in enumerate(zip(found, expected)) if a != b]
    words = sum(x != y for a, b in zip(found, expected) for x, y in zip(a, b))
    total = sum(map(len, expected))
    return {
        "lines": len(expected),
        "words": total,
        "equal": len(found) == len(expected) and not lines,
        "differing_lines": len(lines),
        "differing_words": words,
        "word_agreement": round(1 - words / total, 6),
        "first_differing_lines": lines[:10],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", default="models/bert_ner_es/seed0/head.msgpack")
    parser.add_argument("--prepared", default="data/prepared", help="its test split gives the messages")
    parser.add_argument("--messages", default=None, help="a file of messages, one per line (instead)")
    parser.add_argument("--count", type=int, default=2000, help="messages per load run")
    parser.add_argument("--bucket-requests", type=int, default=1000, help="requests per padded size")
    parser.add_argument("--soak-requests", type=int, default=10000, help="requests between the two RSS readings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server-arg", action="append", default=[], help="passed to pipeline.serve (repeat)")
    parser.add_argument("--int8", action="store_true", help="the server and predict with --int8 (bench/int8.py)")
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="latency, throughput and RSS alone: no tagging of the test split, no command-line predict (minutes less)",
    )
    parser.add_argument("--out", default="bench/serve.json")
    return parser.parse_args()


def tagger_ceiling(head: str, messages: list[str], int8: bool) -> dict:
    """Messages/s of the tagger alone: two threads (one core each), batches of 8 and of 32 messages."""
    import torch

    from heads.tagger import Tagger
    from serving.app import worker_taggers

    sentences = [message.split() for message in messages]
    workers = worker_taggers(Tagger.load(head, int8=int8), 2)
    torch.set_num_threads(1)
    ceiling = {}
    for batch in (8, 32):
        for worker in workers:
            worker.tag_scored(sentences[:batch])  # compiled before the clock starts

        def tag(worker, part, batch):
            for first in range(0, len(part), batch):
                worker.tag_scored(part[first : first + batch])

        threads = [
            threading.Thread(target=tag, args=(worker, sentences[k :: len(workers)], batch))
            for k, worker in enumerate(workers)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ceiling[f"batches_of_{batch}_messages_per_second"] = round(len(sentences) / (time.perf_counter() - start), 1)
    return ceiling


def main() -> None:
    args = parse_args()
    if args.int8:
        args.server_arg.append("--int8")
    if args.messages:
        lines = [line.strip() for line in Path(args.messages).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        lines = test_split_lines(args.prepared)
    messages = chat_messages(lines, args.count, args.seed)
    load_before = os.getloadavg()[0]
    port = free_port()
    server, startup = start_server(args.head, port, args.server_arg)
    try:
        report = {"cpu_threads": os.cpu_count(), "head": args.head, "messages": len(messages)}
        report["startup_seconds"] = round(startup, 1)
        report["rss_mib_after_startup"] = rss_mib(server.pid)
        report["buckets"] = bucket_run(port, messages, args.bucket_requests)
        report["server_buckets"] = Client(port).get("/stats")["buckets"]  # the model calls alone, server-side
        documents = [{"text": message} for message in messages]
        report["runs"] = [load_run(port, documents, clients) for clients in (1, 8)]
        before = rss_mib(server.pid)
        soak = load_run(port, [documents[i % len(documents)] for i in range(args.soak_requests)], 8)
        after = rss_mib(server.pid)
        report["soak"] = {**soak, "rss_mib_before": before, "rss_mib_after": after}
        report["soak"]["rss_growth_percent"] = round((after - before) / before * 100, 2)
        served = None if args.load_only else served_categories(port, lines)
        report["server_stats"] = Client(port).get("/stats")
    finally:
        server.terminate()
        server.wait(30)
    report["server_args"] = args.server_arg
    if not args.load_only:
        with tempfile.TemporaryDirectory() as work:
            predict = predict_cli(args.head, lines, Path(work), ["--int8"] if args.int8 else [])
        expected, small_batches = predict.pop("categories"), predict.pop("small_batches")
        report["predict_cli"] = predict
        report["served_equal_predict"] = agreement(served, expected)
        report["predict_32_vs_1024_line_batches"] = agreement(small_batches, expected)
        report["served_vs_predict_32_line_batches"] = agreement(served, small_batches)  # the server sends 32 texts
    report["tagger_alone"] = tagger_ceiling(args.head, messages, args.int8)
    c1, c8 = report["runs"]
    report["targets"] = {
        "p95_ms_at_concurrency_1_le_30": c1["p95_ms"] <= 30,
        "messages_per_second_at_concurrency_8_ge_250": c8["messages_per_second"] >= 250,
        "no_errors": all(run["errors"] == 0 for run in [*report["runs"], report["soak"]]),
        "rss_growth_under_5_percent": report["soak"]["rss_growth_percent"] < 5,
        "no_compilation_after_warm_up": report["server_stats"]["compilations"] == 0,
    }
    if not args.load_only:
        report["targets"]["served_equal_predict"] = report["served_equal_predict"]["equal"]
    report["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")
    print(json.dumps({"runs": report["runs"], "targets": report["targets"]}, indent=2))


if __name__ == "__main__":
    main()
