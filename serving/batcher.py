"""Micro-batching: worker threads, each with a tagger of its own; texts from concurrent requests are tagged together.

A request hands each of its texts to ``Batcher.submit`` and awaits the
returned futures. A worker takes the oldest queued text and every text
queued behind it, up to ``max_texts`` texts or ``max_words`` words (a text
longer than that runs alone), and tags them in one call. When requests are
arriving together (texts were waiting when the worker came back, or its last
call held several), it also waits up to ``wait_ms`` milliseconds for more, so
that clients whose answers just went out join the next call instead of
starting a small one of their own; the wait ends as soon as the batch holds
as many texts as the largest of the last few calls (those clients are back).
A lone client never waits: its text is tagged as soon as it arrives. Several
workers make their model calls at once (torch releases the GIL): on two cores,
one call runs on each. Under load the queue fills while the model runs, so
batches, and throughput, grow with the load, and a text never waits behind
more than one call it is not part of, since a call is bounded in words.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

log = logging.getLogger(__name__)

Tagged = tuple[list[str], list[float]]  # one sentence's categories and their scores
TagFunction = Callable[[list[list[str]]], list[Tagged]]
RECENT_CALLS = 8  # the wait ends once a batch is as large as the largest of this many last calls


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    max_texts: int = 32  # texts in one model call: 8 clients' messages fit with room to spare
    max_words: int = 2048  # words in one model call, so a long text delays the others little
    wait_ms: float = 5.0  # under concurrent load, how long to wait for more texts (a lone client never waits)
    max_queue_texts: int = 4096  # texts waiting beyond this: the server answers 503 (busy), not a growing queue
    workers: int = 1  # model calls at once, each on one thread (torch releases the GIL): one per core to use

    def __post_init__(self):
        for name in ("max_texts", "max_words", "max_queue_texts", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"batching: {name} is {getattr(self, name)}; give a positive number")
        if self.wait_ms < 0:
            raise ValueError(f"batching: wait_ms is {self.wait_ms}; give zero or more milliseconds")


class Busy(Exception):
    """The queue holds ``max_queue_texts`` texts already."""


def bucket_rows(words: int) -> int:
    """The padded row count of a model call on ``words`` words, as ``heads.tagger`` pads the head's input."""
    return max(256, 1 << (max(words, 1) - 1).bit_length())


@dataclasses.dataclass
class _Job:
    sentences: list[list[str]]  # one text: its lines that hold words
    words: int
    future: Future


@dataclasses.dataclass
class BucketStats:
    """Model calls of one padded size: how many and how long (the first one apart, to show compilation)."""

    calls: int = 0
    first_ms: float = 0.0
    last_ms: float = 0.0
    total_ms: float = 0.0

    def add(self, ms: float) -> None:
        if not self.calls:
            self.first_ms = ms
        self.calls += 1
        self.last_ms = ms
        self.total_ms += ms

    def as_dict(self) -> dict:
        mean = self.total_ms / self.calls if self.calls else 0.0
        return {
            "calls": self.calls,
            "first_ms": round(self.first_ms, 3),
            "last_ms": round(self.last_ms, 3),
            "mean_ms": round(mean, 3),
        }


class Batcher:
    """Tags texts from any thread in batches, on worker threads: worker ``k`` alone calls ``tags[k]``."""

    def __init__(self, tags: TagFunction | Sequence[TagFunction], settings: BatchSettings):
        self.tags, self.settings = list(tags) if isinstance(tags, (list, tuple)) else [tags], settings
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.texts = self.batches = self.failures = 0
        self.buckets: dict[int, BucketStats] = {}

    def start(self) -> None:
        """Start the worker threads (once), one per tag function."""
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._run, args=(tag,), name=f"tagger-{k}", daemon=True)
                for k, tag in enumerate(self.tags)
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Let the workers finish the queued texts, then end them."""
        for _ in self._threads:
            self._queue.put(None)  # each worker ends at the first of these it takes
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def submit(self, sentences: list[list[str]]) -> Future:
        """Queue one text (its sentences of words); the future resolves to one ``Tagged`` per sentence.

        Raises Busy when the queue is full.
        """
        if self._queue.qsize() >= self.settings.max_queue_texts:
            raise Busy(f"{self._queue.qsize()} texts are waiting; try again shortly")
        future: Future = Future()
        self._queue.put(_Job(sentences, sum(map(len, sentences)), future))
        return future

    def stats(self) -> dict:
        """Counters since start-up: texts, model calls, failed calls, calls per padded size."""
        with self._lock:
            buckets = {str(rows): stats.as_dict() for rows, stats in sorted(self.buckets.items())}
            return {
                "texts": self.texts,
                "batches": self.batches,
                "failed_batches": self.failures,
                "queued": self.queued,
                "buckets": buckets,
            }

    def _run(self, tag: TagFunction) -> None:
        carried: _Job | None = None
        recent = collections.deque([0], maxlen=RECENT_CALLS)  # texts in each of the last calls
        while True:
            busy = carried is not None or not self._queue.empty() or recent[-1] > 1  # requests arrive together
            first = carried if carried is not None else self._queue.get()
            if first is None:
                return
            # As many texts as a recent call held have come back: the clients it answered, no need to wait on.
            expected = max(recent) if max(recent) > 1 else self.settings.max_texts
            jobs, carried = self._collect(first, self.settings.wait_ms / 1000 if busy else 0.0, expected)
            self._tag(tag, jobs)
            recent.append(len(jobs))
            if carried is None and jobs[-1] is None:  # the stop sentinel arrived while collecting
                return

    def _collect(self, first: _Job, wait: float, expected: int) -> tuple[list, _Job | None]:
        """``first``, the texts queued behind it and those that arrive within ``wait`` seconds (until the batch
        holds ``expected`` texts), up to the batch limits.

        Returns the batch and the text that did not fit (it starts the next one). A stop
        sentinel ends the batch and is kept as its last element.
        """
        jobs, words = [first], first.words
        deadline = time.monotonic() + wait
        while len(jobs) < self.settings.max_texts:
            waiting = deadline - time.monotonic() if len(jobs) < expected else 0.0  # texts queued are still taken
            try:
                job = self._queue.get(timeout=max(waiting, 0.0))
            except queue.Empty:
                break
            if job is None:
                jobs.append(None)
                break
            if words + job.words > self.settings.max_words:
                return jobs, job
            jobs.append(job)
            words += job.words
        return jobs, None

    def _tag(self, tag: TagFunction, jobs: list) -> None:
        """One model call for the texts of ``jobs``; each future gets its text's sentences or the error."""
        jobs = [job for job in jobs if job is not None and job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        sentences = [sentence for job in jobs for sentence in job.sentences]
        words = sum(job.words for job in jobs)
        start = time.perf_counter()
        try:
            tagged = tag(sentences)
        except Exception as error:  # a failed batch fails its requests, never the worker
            log.exception("tagging a batch of %d texts failed", len(jobs))
            with self._lock:
                self.failures += 1
            for job in jobs:
                job.future.set_exception(error)
            return
        ms = (time.perf_counter() - start) * 1000
        with self._lock:
            self.texts += len(jobs)
            self.batches += 1
            self.buckets.setdefault(bucket_rows(words), BucketStats()).add(ms)
        first = 0
        for job in jobs:
            job.future.set_result(tagged[first : first + len(job.sentences)])
            first += len(job.sentences)
