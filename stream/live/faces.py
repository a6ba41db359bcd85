"""The server's neural faces: models loaded once, one scheduler batching every session's mouths.

With ``--backend neural`` the engine makes one ``FaceService``. Each live scene's compose step
(a render worker thread, never the event loop) turns its frame into one ``FaceJob`` per neural
character and submits them with the frame's deadline; the scheduler's single worker runs the
jobs of all sessions that share a model in one forward pass, earliest deadline first, and the
scene pastes the crops back. While the model runs, the session waits on the event loop, not in
a worker thread, so every session's frame can join the same batch. A crop that misses its deadline (or a full queue) leaves that
character's rig mouth in the frame: the picture is never held back for the model.

Deadlines: a frame is composed once its display time ``t0 + k / FPS`` has come, so its mouths are
due ``budget_s`` after that (one frame by default; later than two frames the video track skips
the picture anyway).
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from accel.device import pick_device, pick_dtype, prepare_for_inference
from accel.face_batches import facegen_runner
from accel.scheduler import (
    DeadlineMissed,
    FrameScheduler,
    RenderRequest,
    SchedulerBusy,
    SchedulerClosed,
)
from avatar.neural.renderer import FaceTask, NeuralFaceRenderer
from avatar.scene import Compositor
from lipsync.neural.model import FaceGen
from lipsync.timebase import FPS

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FaceServiceConfig:
    steps: int = 1  # student sampler steps
    device: str = "auto"  # "auto": CUDA (bfloat16) when present, else the CPU (float32)
    max_batch: int = 16  # characters x sessions in one forward pass
    gather_ms: float = 3.0  # how long a part-full batch waits for other sessions' frames
    budget_s: float = 1.0 / FPS  # how late after its display time a frame's mouths may come

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.budget_s <= 0:
            raise ValueError(f"budget_s must be > 0, got {self.budget_s}")


@dataclass
class PendingPaint:
    """A frame whose mouths are being generated: its tasks and their futures."""

    frame: np.ndarray
    painter: NeuralFaceRenderer
    tasks: list[FaceTask]
    futures: list[Future[Any]]
    deadline_s: float


class FaceService:
    """Shared models + one ``FrameScheduler``. ``submit``, ``finish`` and ``paint`` are called from
    render worker threads (never the event loop); the model runs on the scheduler's thread."""

    def __init__(self, models: Mapping[str, FaceGen], *, config: FaceServiceConfig | None = None) -> None:
        if not models:
            raise ValueError("the neural backend has no trained models to serve")
        self.config = config or FaceServiceConfig()
        self.models = dict(models)
        self.device = pick_device(self.config.device)
        # One runner per distinct model: characters served by one cast model share batches.
        self._keys: dict[int, str] = {}
        runners = {}
        for model in self.models.values():
            if id(model) not in self._keys:
                key = f"model{len(self._keys)}"
                self._keys[id(model)] = key
                placed: torch.nn.Module = model
                if self.device.type != "cpu":  # the CPU keeps the loaded float32 model as is
                    placed = prepare_for_inference(
                        copy.deepcopy(model), device=self.device, dtype=pick_dtype(self.device)
                    )
                runners[key] = facegen_runner(placed, steps=self.config.steps, compose=False)
        self.scheduler = FrameScheduler(
            runners,
            max_batch=self.config.max_batch,
            gather_s=self.config.gather_ms / 1000.0,
        ).start()
        self._count_lock = threading.Lock()
        self.painted = 0
        self.missed = 0
        self.failed = 0  # mouths whose batch raised: the frame kept the rig's mouth

    def painter(self, compositor: Compositor) -> NeuralFaceRenderer:
        return NeuralFaceRenderer(compositor=compositor, models=self.models, steps=self.config.steps)

    def submit(
        self,
        frame: np.ndarray,
        painter: NeuralFaceRenderer,
        drives: Sequence[np.ndarray],
        *,
        session_key: str,
        shown_at_s: float,
    ) -> PendingPaint:
        """Queue the mouths of ``frame``, due ``budget_s`` after ``shown_at_s``; does not wait.

        The caller waits for ``pending.futures`` however it likes (a thread, or the event loop
        without holding a thread) and then calls ``finish``."""
        tasks = painter.jobs(frame, drives)
        deadline = shown_at_s + self.config.budget_s
        futures = self.scheduler.submit_many(
            [
                RenderRequest(
                    character_id=str(t.face.slot), session_id=session_key, deadline_s=deadline,
                    inputs=t.job, model_key=self._keys[id(t.face.model)],
                )
                for t in tasks
            ]
        )
        return PendingPaint(frame=frame, painter=painter, tasks=tasks, futures=futures, deadline_s=deadline)

    def finish(self, pending: PendingPaint) -> int:
        """Paste the crops of ``pending`` into its frame; returns how many characters kept the
        rig's mouth because their crop missed the deadline, the queue was full or the model's
        batch failed (counted in ``failed`` and logged)."""
        missed = failed = 0
        error: Exception | None = None
        for task, fut in zip(pending.tasks, pending.futures, strict=True):
            try:
                # The worker drops a request it finds late, so this wait is bounded by the
                # deadline plus one batch; the timeout only guards against a stuck worker.
                crop = fut.result(timeout=max(0.0, pending.deadline_s - time.monotonic()) + 1.0)
            except (
                DeadlineMissed, SchedulerBusy, SchedulerClosed,
                concurrent.futures.CancelledError, concurrent.futures.TimeoutError,
            ):
                missed += 1
                continue
            except Exception as exc:  # noqa: BLE001 - a failed batch costs mouths, never the video
                failed += 1
                error = exc
                continue
            pending.painter.paste(pending.frame, task, crop)
        with self._count_lock:
            self.painted += len(pending.tasks) - missed - failed
            self.missed += missed
            before, self.failed = self.failed, self.failed + failed
        if failed and (before == 0 or before // 250 != self.failed // 250):  # the first, then 1 in 250
            logger.error("neural mouths failed %d times, the rig's mouth shown instead: %s", self.failed, error)
        return missed + failed

    def paint(
        self,
        frame: np.ndarray,
        painter: NeuralFaceRenderer,
        drives: Sequence[np.ndarray],
        *,
        session_key: str,
        shown_at_s: float,
    ) -> int:
        """``submit`` then ``finish`` on the calling thread: repaint ``frame``'s mouths in place."""
        return self.finish(
            self.submit(frame, painter, drives, session_key=session_key, shown_at_s=shown_at_s)
        )

    def cancel(self, session_key: str) -> None:
        self.scheduler.cancel(session_id=session_key)

    def stats(self) -> dict[str, Any]:
        s = self.scheduler.stats
        sizes = list(s.batch_sizes)
        return {
            "models": len(self._keys),
            "device": str(self.device),
            "characters": sorted(self.models),
            "painted": self.painted,
            "kept_rig_mouth": self.missed,
            "failed": self.failed,
            "batches": s.batches,
            "mean_batch": round(sum(sizes) / len(sizes), 2) if sizes else None,
            "max_batch_seen": max(sizes) if sizes else None,
            "dropped_late": s.dropped_late,
        }

    def close(self) -> None:
        self.scheduler.close()

