"""Micro-batching with backpressure: coalesce concurrent requests into one encoder run.

Each request thread queues its texts (split into jobs of at most ``max_texts``) and waits;
a runner thread takes the first job and every job already queued behind it, up to
``max_texts`` texts. Several runners, each running ONNX Runtime on one core, outran one
runner on every core here (no thread of a run waits for a preempted sibling). A lone
request runs at once; when several were queued, stragglers get up to ``max_wait_s`` to
join. The encoder runs once on all of them and each job gets its slice. A failing run is
retried job by job, so one client's bad input can never fail another client's request.

The queue is bounded in texts: a request that does not fit is refused at once with
:class:`Overloaded` (the server's 429), with a retry delay estimated from the recent
throughput, instead of waiting behind work it cannot overtake. A request whose deadline
passes leaves the queue, so nothing runs for a client that has already been told to retry.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from featx.encoders import EncodeResult

Run = Callable[[list[str]], EncodeResult]


class Overloaded(Exception):
    """The queue is full; ``retry_after_s`` estimates when it has room again."""

    def __init__(self, queued: int, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"The server is at capacity ({queued} texts queued, limit {limit}); "
            f"retry in {retry_after_s} s."
        )
        self.retry_after_s = retry_after_s


@dataclass(eq=False)
class _Job:
    texts: list[str]
    deadline: float
    queued_at: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    result: EncodeResult | None = None
    error: BaseException | None = None


class MicroBatcher:
    """Run ``run`` on coalesced batches from many threads, with a bounded queue.

    Args:
        run: Embeds a list of texts (the encoder's ``encode_with_info``).
        max_texts: Most texts per run; larger requests are split across runs.
        max_wait_s: How long the first job of a batch waits for company.
        max_queue_texts: Most texts waiting; a request that would exceed it is refused.
        runners: Threads taking batches, each running the encoder on its own batch.
        on_batch: Called with every run's result (metrics).
        on_queue: Called with the texts waiting whenever that changes (metrics).
    """

    def __init__(
        self,
        run: Run,
        *,
        max_texts: int = 64,
        max_wait_s: float = 0.002,
        max_queue_texts: int = 1024,
        runners: int = 1,
        on_batch: Callable[[EncodeResult], Any] | None = None,
        on_queue: Callable[[int], Any] | None = None,
    ) -> None:
        self.run = run
        self.max_texts = max_texts
        self.max_wait_s = max_wait_s
        self.max_queue_texts = max_queue_texts
        self.runners = runners
        self.on_batch = on_batch or (lambda result: None)
        self.on_queue = on_queue or (lambda n: None)
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # texts in self._jobs
        self._lock = threading.Condition()
        self._rate = 0.0  # texts/s of the last run, for Retry-After
        for i in range(runners):
            threading.Thread(target=self._loop, name=f"featx-batcher-{i}", daemon=True).start()

    def submit(self, texts: list[str], timeout: float) -> EncodeResult:
        """Embed ``texts`` in the next batches; raise what the run raised for them.

        The result's ``seconds`` gives ``queue`` (submit to first run), and the
        ``tokenize`` and ``inference`` seconds of the runs that held these texts.

        Raises:
            Overloaded: If the queue has no room for ``texts`` now.
            TimeoutError: If the result is not ready within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        step = self.max_texts
        jobs = [_Job(list(texts[i : i + step]), deadline) for i in range(0, len(texts), step)]
        with self._lock:
            if self._queued + len(texts) > self.max_queue_texts:
                raise Overloaded(self._queued, self.max_queue_texts, self._retry_after())
            self._jobs.extend(jobs)
            self._queued += len(texts)
            self._lock.notify()
        self.on_queue(self._queued)
        for job in jobs:
            if not job.done.wait(max(0.0, deadline - time.monotonic())):
                self._cancel(jobs)
                raise TimeoutError(f"The embedding was not ready within {timeout:g} s.")
            if job.error is not None:
                self._cancel(jobs)
                raise job.error
        return _joined([job.result for job in jobs if job.result is not None])

    def _retry_after(self) -> int:
        if self._rate <= 0:
            return 1
        return min(60, max(1, math.ceil(self._queued / (self._rate * self.runners))))

    def _cancel(self, jobs: list[_Job]) -> None:
        with self._lock:
            for job in jobs:
                if not job.done.is_set() and job in self._jobs:
                    self._jobs.remove(job)
                    self._queued -= len(job.texts)
        self.on_queue(self._queued)

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            self.on_queue(self._queued)
            now = time.monotonic()
            expired = [job for job in jobs if job.deadline <= now]
            for job in expired:  # its client was already told to retry: do not run it
                job.error = TimeoutError("The embedding was not ready in time.")
                job.done.set()
            live = [job for job in jobs if job.deadline > now]
            if live:
                self._run(live)

    def _take(self) -> list[_Job]:
        """The next batch: the first job and those queued behind it, up to max_texts."""
        with self._lock:
            while not self._jobs:
                self._lock.wait()
            jobs = [self._pop()]
            n_texts = len(jobs[0].texts)
            deadline = time.monotonic() + self.max_wait_s
            waited = False  # a lone request runs at once; company makes it wait a little
            while n_texts < self.max_texts:
                if not self._jobs:
                    remaining = deadline - time.monotonic()
                    if waited or len(jobs) == 1 or remaining <= 0:
                        break
                    waited = True  # others came together: give stragglers the window
                    self._lock.wait(remaining)
                    continue
                if n_texts + len(self._jobs[0].texts) > self.max_texts:
                    break
                jobs.append(self._pop())
                n_texts += len(jobs[-1].texts)
            return jobs

    def _pop(self) -> _Job:
        job = self._jobs.popleft()
        self._queued -= len(job.texts)
        return job

    def _run(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        started = time.perf_counter()
        try:
            result = self.run(texts)
        except Exception as err:  # noqa: BLE001 - isolate: retry each job on its own
            if len(jobs) > 1:
                for job in jobs:
                    self._run([job])
                return
            jobs[0].error = err
            jobs[0].done.set()
            return
        elapsed = time.perf_counter() - started
        self._rate = len(texts) / max(elapsed, 1e-6)
        self.on_batch(result)
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            job.result = EncodeResult(
                embeddings=result.embeddings[start:end],
                n_tokens=result.n_tokens[start:end],
                truncated=result.truncated[start:end],
                n_windows=result.n_windows[start:end],
                seconds={**result.seconds, "queue": started - job.queued_at},
            )
            start = end
            job.done.set()


def _joined(results: list[EncodeResult]) -> EncodeResult:
    """One request's result from the runs its jobs were split across."""
    if len(results) == 1:
        return results[0]
    seconds = {
        "queue": results[0].seconds.get("queue", 0.0),
        "tokenize": sum(r.seconds.get("tokenize", 0.0) for r in results),
        "inference": sum(r.seconds.get("inference", 0.0) for r in results),
    }
    return replace(
        results[0],
        embeddings=np.concatenate([r.embeddings for r in results]),
        n_tokens=np.concatenate([r.n_tokens for r in results]),
        truncated=np.concatenate([r.truncated for r in results]),
        n_windows=np.concatenate([r.n_windows for r in results]),
        seconds=seconds,
    )
