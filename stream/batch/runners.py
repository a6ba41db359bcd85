"""Where batch tasks run: Ray (a local cluster, or one joined by address) or a local process pool.

Both sit behind one small interface (``Runner``: submit, wait, cancel, close) and one loop,
``run_tasks``, that keeps every worker busy and retries: a task that raises, or whose worker
dies, runs again (up to ``retries`` more times) before it counts as failed. Tasks are pulled
from their iterable only as slots free up, so the driver prepares each one (begins its take)
just before it is handed over.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

RAY_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # results are index rows, not media: a small store is plenty
# Ray runs its workers at nice 15; the pool's do the same, so a batch never takes CPU from a live
# server on the same machine (and on a machine of its own, it changes nothing).
WORKER_NICENESS = 15


class Runner(Protocol):
    """Runs one-argument functions somewhere; handles are opaque to the caller."""

    kind: str  # "ray" or "process pool"
    workers: int

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any: ...

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        """Block until at least one handle is done: (handle, result, error) for each done one."""
        ...

    def cancel(self) -> None:
        """Stop everything in flight now (an interrupted batch)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Finished(Generic[T, R]):
    """A task done: ``result`` after ``attempts`` tries, or ``error`` after the last one failed."""

    index: int
    task: T
    result: R | None
    error: str | None
    attempts: int


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".rstrip(": ")


def run_tasks(
    runner: Runner, fn: Callable[[T], R], tasks: Iterable[T], *, retries: int, in_flight_per_worker: int = 2
) -> Iterator[Finished[T, R]]:
    """Run ``fn`` on every task, yielding each as it finishes (in any order), retrying failures."""
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, got {retries}")
    pending = enumerate(tasks)
    limit = max(1, runner.workers * in_flight_per_worker)
    flying: dict[Any, tuple[int, T, int]] = {}
    exhausted = False
    while True:
        while not exhausted and len(flying) < limit:
            nxt = next(pending, None)
            if nxt is None:
                exhausted = True
                break
            index, task = nxt
            flying[runner.submit(fn, task)] = (index, task, 1)
        if not flying:
            return
        for handle, result, error in runner.wait(list(flying)):
            index, task, attempt = flying.pop(handle)
            if error is None:
                yield Finished(index, task, result, None, attempt)
            elif attempt <= retries:
                logger.warning("batch task %d failed (attempt %d of %d), running it again: %s",
                               index, attempt, retries + 1, describe(error))
                flying[runner.submit(fn, task)] = (index, task, attempt + 1)
            else:
                yield Finished(index, task, None, describe(error), attempt)


class PoolRunner:
    """A local process pool (spawned processes, so nothing of the driver's state leaks in), its
    workers at Ray's worker niceness.

    A worker that dies breaks a ``ProcessPoolExecutor`` for every task in it: those tasks fail
    with ``BrokenProcessPool`` (each counts an attempt) and the next submit starts a fresh pool.
    """

    kind = "process pool"

    def __init__(self, *, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None
        self._owner: dict[cf.Future[Any], cf.ProcessPoolExecutor] = {}

    def _current(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority, initargs=(WORKER_NICENESS,),
            )
        return self._pool

    def _drop(self, pool: cf.ProcessPoolExecutor) -> None:
        if pool is self._pool:
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future[Any]:
        pool = self._current()
        try:
            future = pool.submit(fn, arg)
        except BrokenProcessPool:  # broken since the last wait: start again
            self._drop(pool)
            pool = self._current()
            future = pool.submit(fn, arg)
        self._owner[future] = pool
        return future

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        out: list[tuple[Any, Any, BaseException | None]] = []
        for future in done:
            pool = self._owner.pop(future)
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                self._drop(pool)
            out.append((future, None if error is not None else future.result(), error))
        return out

    def cancel(self) -> None:
        pool, self._pool = self._pool, None
        self._owner.clear()
        if pool is None:
            return
        # Until Python 3.14's terminate_workers(): stop the running tasks too, not only the queued.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _lower_priority(niceness: int) -> None:
    os.nice(niceness)


class RayRunner:
    """Tasks on Ray: a local Ray of ``workers`` CPUs, or the cluster at ``address``.

    Each task asks for one CPU. Retries are ``run_tasks``'s (Ray's own are off), so a task that
    raises and one whose worker died are retried alike and counted.
    """

    kind = "ray"

    def __init__(self, *, workers: int | None = None, address: str | None = None) -> None:
        import ray

        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                ray.init(
                    num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                    logging_level=logging.WARNING, object_store_memory=RAY_OBJECT_STORE_BYTES,
                )
            self._started = True
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = min(workers, cluster_cpus) if workers else cluster_cpus
        self._remotes: dict[Callable[[Any], Any], Any] = {}
        self._flying: set[Any] = set()

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        ref = remote.remote(arg)
        self._flying.add(ref)
        return ref

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        ready, _ = self._ray.wait(handles, num_returns=1)
        out: list[tuple[Any, Any, BaseException | None]] = []
        for ref in ready:
            self._flying.discard(ref)
            try:
                out.append((ref, self._ray.get(ref), None))
            except self._ray.exceptions.RayTaskError as exc:  # the task raised: report its own error
                out.append((ref, None, exc.as_instanceof_cause()))
            except self._ray.exceptions.RayError as exc:  # the worker died, or the node
                out.append((ref, None, exc))
        return out

    def cancel(self) -> None:
        for ref in self._flying:
            self._ray.cancel(ref, force=True)
        self._flying.clear()

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def make_runner(*, workers: int | None = None, address: str | None = None, use_ray: bool | None = None) -> Runner:
    """Ray when it is installed (or asked for), else a process pool of ``workers`` (default: cores)."""
    if use_ray is None:
        use_ray = ray_available() or address is not None
    if use_ray:
        if not ray_available():
            raise ValueError("Ray is not installed: pip install 'talkie[ray]' (or run without --address)")
        return RayRunner(workers=workers, address=address)
    if address is not None:
        raise ValueError("--address joins a Ray cluster; it cannot go with the process pool")
    return PoolRunner(workers=workers or os.cpu_count() or 1)
