"""Micro-batching: coalesce concurrent requests into one encoder run.

Each request thread puts its texts on a queue and waits; one worker thread takes the
first job and every job already queued behind it (up to ``max_texts`` texts). A lone
request runs at once; when several were queued, stragglers get up to ``max_wait_s`` to
join. The encoder runs once on all of them and each job gets its slice. A failing run is
retried job by job, so one client's bad input can never fail another client's request.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from featx.encoders import EncodeResult

Run = Callable[[list[str]], EncodeResult]


@dataclass
class _Job:
    texts: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: EncodeResult | None = None
    error: BaseException | None = None


class MicroBatcher:
    """Run ``run`` on coalesced batches from many threads.

    Args:
        run: Embeds a list of texts (the encoder's ``encode_with_info``).
        max_texts: Most texts per coalesced run (a larger request runs alone).
        max_wait_s: How long the first job of a batch waits for company.
        on_batch: Called with the number of texts of every run (metrics).
        on_queue: Called with the queue depth whenever it changes (metrics).
    """

    def __init__(
        self,
        run: Run,
        *,
        max_texts: int = 64,
        max_wait_s: float = 0.002,
        on_batch: Callable[[int], Any] | None = None,
        on_queue: Callable[[int], Any] | None = None,
    ) -> None:
        self.run = run
        self.max_texts = max_texts
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch or (lambda n: None)
        self.on_queue = on_queue or (lambda n: None)
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="featx-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], timeout: float | None = None) -> EncodeResult:
        """Embed ``texts`` in the next batch; raise what the run raised for them.

        Raises:
            TimeoutError: If the result is not ready within ``timeout`` seconds.
        """
        job = _Job(list(texts))
        self._queue.put(job)
        self.on_queue(self._queue.qsize())
        if not job.done.wait(timeout):
            raise TimeoutError(f"The embedding was not ready within {timeout} s.")
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _loop(self) -> None:
        carried: _Job | None = None  # too big to join the last batch: first of the next
        while True:
            jobs = [carried or self._queue.get()]
            carried = None
            n_texts = len(jobs[0].texts)
            deadline = time.monotonic() + self.max_wait_s
            waiting = False  # a lone request runs at once; company makes it wait a little
            while n_texts < self.max_texts:
                try:
                    if waiting:
                        job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    else:
                        job = self._queue.get_nowait()
                except queue.Empty:
                    if waiting or len(jobs) == 1:
                        break
                    waiting = True  # others came together: give stragglers the window
                    continue
                if n_texts + len(job.texts) > self.max_texts:
                    carried = job
                    break
                jobs.append(job)
                n_texts += len(job.texts)
            self.on_queue(self._queue.qsize())
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        try:
            result = self.run(texts)
            self.on_batch(len(texts))
        except Exception as err:  # noqa: BLE001 - isolate: retry each job on its own
            if len(jobs) > 1:
                for job in jobs:
                    self._run([job])
                return
            jobs[0].error = err
            jobs[0].done.set()
            return
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            job.result = EncodeResult(
                embeddings=result.embeddings[start:end],
                n_tokens=result.n_tokens[start:end],
                truncated=result.truncated[start:end],
                n_windows=result.n_windows[start:end],
            )
            start = end
            job.done.set()
