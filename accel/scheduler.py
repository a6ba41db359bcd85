"""FrameScheduler: one batched forward pass for the frames of every speaking character.

Callers (one per character per session) submit a ``RenderRequest`` (or a frame's requests at
once with ``submit_many``) and get ``concurrent.futures.Future``s. One worker thread forms batches
earliest deadline first: it takes the most urgent pending request and fills the batch, in
deadline order, with others that share its ``model_key`` (requests for different weights cannot
share a forward pass), up to ``max_batch``. Before running a batch that is not full, the worker
waits up to ``gather_s`` for more requests (never past the earliest deadline): frames of several
sessions arrive a few milliseconds apart, and one pass for all of them costs little more than
one. Model work never runs on the caller's thread or the event loop.

Drop policy: a request whose deadline has passed when its batch is formed is dropped, its future
fails with ``DeadlineMissed`` and ``stats.dropped_late`` counts it; a late frame is worth less
than the next one (the renderer repeats the previous frame). The queue is bounded
(``max_pending``); a request that would overflow it fails at once with ``SchedulerBusy``.
``cancel(session_id=...)`` flushes a session's pending work on an interrupt.

Deadlines are in seconds of ``clock`` (``time.monotonic`` by default): a caller turns a frame's
display time into a deadline; stamps stay frame counts, the wall clock only paces. The scheduler
knows nothing of what it runs: ``accel.face_batches`` makes the runner for FaceGen.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

BatchFn = Callable[[list[Any]], Sequence[Any]]


class DeadlineMissed(Exception):
    """The request's deadline passed before it could be rendered; it was dropped."""


class SchedulerBusy(Exception):
    """The scheduler's queue is full; the request was not accepted."""


class SchedulerClosed(Exception):
    """The scheduler was closed before the request ran."""


@dataclass(frozen=True)
class RenderRequest:
    """One frame (or chunk) to render for one character in one session."""

    character_id: str
    session_id: str
    deadline_s: float
    inputs: Any
    model_key: str = "default"


@dataclass
class SchedulerStats:
    submitted: int = 0
    completed: int = 0
    dropped_late: int = 0
    cancelled: int = 0
    rejected: int = 0
    failed: int = 0
    batches: int = 0
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))  # the latest


class FrameScheduler:
    """Batches render requests across characters and sessions, earliest deadline first.

    ``run_batch`` maps a list of request inputs to a list of results (same order). It may be a
    dict ``{model_key: run_batch}`` when several models are served.
    """

    def __init__(
        self,
        run_batch: BatchFn | dict[str, BatchFn],
        *,
        max_batch: int = 4,
        max_pending: int = 256,
        gather_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if gather_s < 0:
            raise ValueError(f"gather_s must be >= 0, got {gather_s}")
        self.gather_s = gather_s
        self._runners = dict(run_batch) if isinstance(run_batch, dict) else {"default": run_batch}
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._clock = clock
        self._heap: list[tuple[float, int, RenderRequest, Future[Any]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.stats = SchedulerStats()

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> FrameScheduler:
        """Start the worker thread (idempotent)."""
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._worker, name="frame-scheduler", daemon=True
                )
                self._thread.start()
        return self

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop the worker; pending requests fail with ``SchedulerClosed``."""
        with self._cv:
            self._closed = True
            pending, self._heap = self._heap, []
            self._cv.notify_all()
        for _, _, _, fut in pending:
            if fut.set_running_or_notify_cancel():
                fut.set_exception(SchedulerClosed("frame scheduler closed before this request ran"))
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> FrameScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_runner(self, model_key: str, run_batch: BatchFn) -> None:
        """Serve another model from now on (a model first needed after start-up); a key already
        served keeps its runner."""
        with self._cv:
            self._runners.setdefault(model_key, run_batch)

    # --- callers -----------------------------------------------------------------------
    def submit(self, request: RenderRequest) -> Future[Any]:
        """Queue ``request``; the future resolves to its result or fails (see module doc)."""
        return self.submit_many([request])[0]

    def submit_many(self, requests: Sequence[RenderRequest]) -> list[Future[Any]]:
        """Queue several requests at once (e.g. every character of one frame), so the worker
        sees them together."""
        futures: list[Future[Any]] = []
        with self._cv:
            for request in requests:
                if request.model_key not in self._runners:
                    raise ValueError(
                        f"no model for model_key {request.model_key!r}; known: {sorted(self._runners)}"
                    )
            for request in requests:
                fut: Future[Any] = Future()
                futures.append(fut)
                self.stats.submitted += 1
                if self._closed:
                    fut.set_exception(SchedulerClosed("frame scheduler is closed"))
                elif len(self._heap) >= self.max_pending:
                    self.stats.rejected += 1
                    fut.set_exception(
                        SchedulerBusy(
                            f"{len(self._heap)} requests pending (max_pending={self.max_pending})"
                        )
                    )
                else:
                    heapq.heappush(self._heap, (request.deadline_s, next(self._seq), request, fut))
            self._cv.notify()
        return futures

    def cancel(self, *, session_id: str, character_id: str | None = None) -> int:
        """Drop pending requests of a session (or one of its characters); returns how many."""
        with self._cv:
            keep: list[tuple[float, int, RenderRequest, Future[Any]]] = []
            gone: list[tuple[float, int, RenderRequest, Future[Any]]] = []
            for item in self._heap:
                req = item[2]
                hit = req.session_id == session_id and character_id in (None, req.character_id)
                (gone if hit else keep).append(item)
            heapq.heapify(keep)
            self._heap = keep
            self.stats.cancelled += len(gone)
        for _, _, _, fut in gone:
            fut.cancel()
        return len(gone)

    def pending(self) -> int:
        with self._cv:
            return len(self._heap)

    # --- worker ------------------------------------------------------------------------
    def _take_batch(self) -> tuple[str, list[tuple[RenderRequest, Future[Any]]]]:
        """Pop the next batch (lock held): drop late requests, then EDF with one model_key."""
        now = self._clock()
        late: list[tuple[RenderRequest, Future[Any]]] = []
        batch: list[tuple[RenderRequest, Future[Any]]] = []
        others: list[tuple[float, int, RenderRequest, Future[Any]]] = []
        key: str | None = None
        while self._heap and len(batch) < self.max_batch:
            item = heapq.heappop(self._heap)
            deadline, _, req, fut = item
            if deadline < now:
                late.append((req, fut))
            elif key is None or req.model_key == key:
                key = req.model_key
                batch.append((req, fut))
            else:
                others.append(item)
        for item in others:
            heapq.heappush(self._heap, item)
        for req, fut in late:
            self.stats.dropped_late += 1
            if fut.set_running_or_notify_cancel():
                fut.set_exception(
                    DeadlineMissed(
                        f"{req.session_id}/{req.character_id}: deadline {req.deadline_s:.3f} s passed at {now:.3f} s"
                    )
                )
        return key or "default", batch

    def run_once(self) -> int:
        """Form and run one batch on the calling thread; returns its size (0 when idle)."""
        with self._cv:
            key, batch = self._take_batch()
        live = [(req, fut) for req, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return 0
        with self._cv:
            runner = self._runners[key]
        try:
            results = runner([req.inputs for req, _ in live])
            if len(results) != len(live):
                raise RuntimeError(
                    f"run_batch returned {len(results)} results for {len(live)} inputs"
                )
        except Exception as err:  # the batch fails, the scheduler keeps serving
            logger.exception("frame batch of %d failed", len(live))
            with self._cv:
                self.stats.failed += len(live)
            for _, fut in live:
                fut.set_exception(err)
            return len(live)
        with self._cv:
            self.stats.batches += 1
            self.stats.completed += len(live)
            self.stats.batch_sizes.append(len(live))
        for (_, fut), result in zip(live, results, strict=True):
            fut.set_result(result)
        return len(live)

    def _gather(self) -> None:
        """Wait (lock held) up to ``gather_s`` for a fuller batch, never past the first deadline."""
        if self.gather_s <= 0:
            return
        until = min(self._clock() + self.gather_s, self._heap[0][0])
        while not self._closed and len(self._heap) < self.max_batch:
            left = until - self._clock()
            if left <= 0:
                return
            self._cv.wait(left)

    def _worker(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                self._gather()
            self.run_once()
