"""Tag a chatbot's messages over HTTP: the encoder and head loaded once, a page at / to try it (docs/serve.md).

    python -m pipeline.serve --head models/bert_ner_es/seed0/head.msgpack
    curl -s localhost:8000/tag -H 'Content-Type: application/json' -d '{"text": "Ship the Luma lamp to Porto"}'

The head is loaded as ``pipeline.predict`` loads it (one ``heads.tagger.Tagger``,
the encoder its fingerprint names, refused if the weights differ), then every
padded size a request can reach is tagged once (warm-up) so that no request
waits on a compilation; only then does the server bind. It binds 127.0.0.1
unless ``--host`` says otherwise and answers cross-origin requests only from
the ``--cors-origin`` origins given. Endpoints: POST /tag, POST /doccano,
GET /health, /info, /stats, /openapi.json and the page at /.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

from pipeline.params import run_main
from serving.batcher import BatchSettings
from serving.texts import Limits

log = logging.getLogger("serve")


def parse_args() -> argparse.Namespace:
    limits, batching = Limits(), BatchSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", required=True, help="a head.msgpack written by the train stage")
    parser.add_argument("--encoder", default=None, help="load the encoder from here (a local copy); weights must match")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="the encoder in int8: faster without bf16, tags a little off (docs/serve.md)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch's CPU threads (0: one per core but one, shared by the workers)"
    )
    parser.add_argument("--batch-texts", type=int, default=batching.max_texts, help="texts in one model call")
    parser.add_argument("--batch-words", type=int, default=batching.max_words, help="words in one model call")
    parser.add_argument(
        "--batch-wait-ms", type=float, default=batching.wait_ms, help="how long to collect texts for one call"
    )
    parser.add_argument("--workers", type=int, default=2, help="model calls at once, one thread each (docs/serve.md)")
    parser.add_argument("--max-queue", type=int, default=batching.max_queue_texts, help="queued texts before 503")
    parser.add_argument("--max-texts", type=int, default=limits.max_texts, help="texts in one request")
    parser.add_argument("--max-text-chars", type=int, default=limits.max_text_chars, help="characters of one text")
    parser.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes, help="request body size")
    parser.add_argument(
        "--cors-origin", action="append", default=[], help="an origin allowed to call the API from a browser (repeat)"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args()


def load_app(args: argparse.Namespace):
    """The app around the head of ``args.head``, warmed up for every padded size."""
    import torch

    from heads.tagger import Tagger
    from serving.app import create_app, max_rows, warm_up

    if os.path.isdir(args.head):
        raise ValueError(f"{args.head}: is a directory; --head takes a head.msgpack written by the train stage")
    if not os.path.isfile(args.head):
        raise FileNotFoundError(f"{args.head}: no such head file")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: give a port between 1 and 65535")
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: give 1 or more")
    if args.threads < 0:
        raise ValueError(f"--threads {args.threads}: give 0 (one per core but one) or more")
    if "*" in args.cors_origin:
        log.warning("--cors-origin '*': any web page may call this server from its visitors' browsers")
    limits = Limits(args.max_body_bytes, args.max_texts, args.max_text_chars)
    batching = BatchSettings(args.batch_texts, args.batch_words, args.batch_wait_ms, args.max_queue, args.workers)
    start = time.perf_counter()
    tagger = Tagger.load(args.head, args.encoder, int8=args.int8)
    # One per core but one (on 2 busy cores, one call on both took 575 ms a message, on one 16 ms), shared out
    # among the workers, whose calls run at once (torch releases the GIL): on 2 cores, a thread each.
    torch.set_num_threads(args.threads or max(1, ((os.cpu_count() or 1) - 1) // args.workers))
    loaded = time.perf_counter()
    seconds = warm_up(tagger.tag_scored, max_rows(limits, batching))
    log.info(
        "loaded %s in %.1f s; warmed up %s padded rows in %.1f s",
        args.head,
        loaded - start,
        ", ".join(map(str, seconds)),
        time.perf_counter() - loaded,
    )
    return create_app(tagger, args.head, limits, batching, tuple(args.cors_origin))


def main() -> None:
    import uvicorn

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args()
    app = load_app(args)
    log.info("serving on http://%s:%d/", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    run_main(main)
