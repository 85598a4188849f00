"""Dynamic batching: images of concurrent requests are read together in one network call.

A request puts its decoded images on one queue and awaits their futures. Each worker thread
takes the first waiting image, then keeps taking until ``max_batch`` images or ``max_wait_s``
after the first, whichever comes first, and reads them with one ``read`` call per beam width.
Many small clients so get close to the throughput of ``Recognizer.recognize_batch``, and a
lone client waits at most ``max_wait_s`` more than it would alone.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DynamicBatcher"]

log = logging.getLogger("strings.serve")

# read(greys, sources, beam) -> one result per image, in order
ReadFn = Callable[[Sequence[np.ndarray], Sequence[str], int], Sequence[Any]]


@dataclass
class _Job:
    grey: np.ndarray
    source: str
    beam: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future, value: Any, error: BaseException | None) -> None:
    if future.done():  # the request timed out or its client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class DynamicBatcher:
    """Collects images from concurrent requests into batches for ``read``; thread-based, so
    the network runs beside the event loop, which keeps receiving and answering requests."""

    _STOP = None  # queue sentinel: one per worker

    def __init__(
        self,
        read: ReadFn,
        max_batch: int,
        max_wait_s: float,
        workers: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._read = read
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._on_batch = on_batch or (lambda n: None)
        self._threads = [
            threading.Thread(target=self._work, name=f"strings-batcher-{i}", daemon=True) for i in range(workers)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float | None = None) -> None:
        """Finish every queued image, then end the workers."""
        for _ in self._threads:
            self._queue.put(self._STOP)
        for t in self._threads:
            t.join(timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    async def submit(self, greys: Sequence[np.ndarray], sources: Sequence[str], beam: int) -> list[Any]:
        """Read ``greys``, batched with whatever else is waiting; results in order."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in greys]
        for grey, source, fut in zip(greys, sources, futures):
            self._queue.put(_Job(grey, source, beam, fut, loop))
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            for fut in futures:  # a timeout or a cancelled request: queued images are skipped
                fut.cancel()
            raise

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and the jobs that arrive before the batch is full or its wait is over;
        True when a stop sentinel was met."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if job is self._STOP:
                return batch, True
            batch.append(job)
        return batch, False

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is self._STOP:
                return
            batch, stopping = self._collect(first)
            self._run([j for j in batch if not j.future.done()])
            if stopping:
                return

    def _run(self, batch: list[_Job]) -> None:
        if not batch:
            return
        self._on_batch(len(batch))
        for beam in sorted({j.beam for j in batch}):
            group = [j for j in batch if j.beam == beam]
            try:
                results = list(self._read([j.grey for j in group], [j.source for j in group], beam))
                errors: list[BaseException | None] = [None] * len(group)
            except Exception as exc:  # reported to each request, which answers 500 and logs it
                log.exception("batch of %d images failed", len(group))
                results, errors = [None] * len(group), [exc] * len(group)
            for job, result, error in zip(group, results, errors):
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)
