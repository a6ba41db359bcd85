"""Per-stage wall-time accounting for benchmarks (speech, mouth track, render, compose, encode)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Accumulates seconds per named stage; ``NullTimer`` costs nothing when nobody measures."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0


class NullTimer(StageTimer):
    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield
