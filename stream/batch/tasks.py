"""What a batch worker runs: pure functions of their task that write media files and nothing else.

A worker never opens the SQLite store: it may run on another machine, where SQLite over a
network filesystem is unsafe, and the store has one writer, the driver. A task carries what
the worker needs (a scene's plan and the take the driver began; an episode's timeline with its
segment index) and the data directory, which every worker must see at the same path. The
worker writes media there the way the store does (``SegmentWriter``: segment files fsynced and
renamed into place; ``export_timeline``: files renamed only when complete) and returns the
index rows it would have committed, for the driver to commit.

A retried task starts again from an empty take or export folder: nothing it wrote before is
indexed, so nothing of it is lost.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from lipsync.timebase import SAMPLES_PER_FRAME
from stream.export.jobs import ExportConfig, export_timeline
from stream.export.stitch import Timeline
from stream.record.offline import RenderConfig, ScenePlan, offline_speech, perform
from stream.record.script_takes import write_take
from stream.record.stages import NullTimer
from stream.store import Segment, Store, Take, TakeLine, TakeShot
from stream.store.media import MediaLayout
from stream.store.segments import SegmentWriter


class InjectedFault(RuntimeError):
    """A failure planted through a fault folder (see ``claim_fault``)."""


@dataclass(frozen=True, slots=True)
class RenderTask:
    """Render one script scene into ``take`` (begun by the driver, status ``recording``)."""

    key: str
    take: Take
    data_dir: str  # absolute; the same path on every worker
    plan: ScenePlan
    config: RenderConfig
    fault_dir: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedTake:
    """The index rows of a rendered take, in the order ``SegmentWriter`` would commit them."""

    take_id: str
    segments: tuple[tuple[Segment, tuple[TakeLine, ...], tuple[TakeShot, ...]], ...]
    final_lines: tuple[TakeLine, ...]
    final_shots: tuple[TakeShot, ...]
    frames: int
    host: str
    wall_s: float
    cpu_s: float  # the worker process's CPU time for it (all its threads)


@dataclass(frozen=True, slots=True)
class ExportTask:
    """Export one episode's timeline into ``exports/<export_id>/episode.mp4`` and its companions."""

    export_id: str
    episode_id: str
    data_dir: str
    timeline: Timeline
    segments: Mapping[str, tuple[Segment, ...]]  # take id -> its segment index rows
    config: ExportConfig
    fault_dir: str | None = None


@dataclass(frozen=True, slots=True)
class ExportedEpisode:
    export_id: str
    episode_id: str
    frames: int
    samples: int
    clips: int
    host: str
    wall_s: float


class _CollectedTake:
    """Stands in for ``Takes`` under a worker's ``SegmentWriter``: keeps the rows it would commit."""

    def __init__(self, take: Take) -> None:
        self._take = take
        self.rows: list[tuple[Segment, tuple[TakeLine, ...], tuple[TakeShot, ...]]] = []
        self.final_lines: tuple[TakeLine, ...] = ()
        self.final_shots: tuple[TakeShot, ...] = ()

    def add_segment(self, segment: Segment, lines: Sequence[TakeLine] = (), shots: Sequence[TakeShot] = ()) -> None:
        self.rows.append((segment, tuple(lines), tuple(shots)))

    def finish(
        self, take_id: str, *, status: str = "complete", note: str | None = None, lines: Sequence[TakeLine] = (),
        shots: Sequence[TakeShot] = (),
    ) -> Take:
        assert take_id == self._take.id
        self.final_lines = tuple(lines)
        self.final_shots = tuple(shots)
        frames = sum(segment.frames for segment, _, _ in self.rows)
        return replace(self._take, frames=frames, samples=frames * SAMPLES_PER_FRAME)


class _SegmentIndex:
    """Stands in for ``Takes`` under ``read_take``: the segment rows the driver sent along."""

    def __init__(self, segments: Mapping[str, tuple[Segment, ...]]) -> None:
        self._segments = segments

    def segments(self, take_id: str) -> list[Segment]:
        return list(self._segments[take_id])


class _MediaOnlyStore:
    """The two parts of ``Store`` that segment writing and reading use: the media layout and a
    take index. Here the index is the task's own, so the worker needs no database."""

    def __init__(self, data_dir: Path, takes: _CollectedTake | _SegmentIndex) -> None:
        self.data_dir = data_dir
        self.media = MediaLayout(data_dir)
        self.takes = takes


def claim_fault(fault_dir: str | None, target: str) -> None:
    """Fail this attempt if a fault can be claimed from ``fault_dir`` (for trying retries).

    Each file in the folder is one fault, claimed (deleted) by exactly one task attempt. It reads
    ``exit`` (the worker process dies on the spot) or ``raise`` (the task raises
    ``InjectedFault``), optionally followed by the one task it is for: a scene key
    (``raise ep01.fountain#2``) or an episode id; without one, any task may claim it.
    """
    if fault_dir is None:
        return
    for entry in sorted(Path(fault_dir).glob("*")):
        try:
            kind, _, only = entry.read_text().strip().partition(" ")
            if only.strip() and only.strip() != target:
                continue
            entry.unlink()
        except FileNotFoundError:  # another attempt claimed it first
            continue
        if kind == "exit":
            os._exit(70)
        raise InjectedFault(f"injected fault {entry.name} (from {fault_dir})")


def render_scene(task: RenderTask) -> RenderedTake:
    """Speak and draw one scene into its take's media folder; exactly what ``record_script`` writes."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    claim_fault(task.fault_dir, task.key)
    data_dir = Path(task.data_dir)
    shutil.rmtree(MediaLayout(data_dir).take_dir(task.take.id), ignore_errors=True)  # a retry starts clean
    index = _CollectedTake(task.take)
    # SegmentWriter asks its store for ``media`` and ``takes`` only; this one has no database.
    writer = SegmentWriter(cast(Store, _MediaOnlyStore(data_dir, index)), task.take)
    timer = NullTimer()
    try:
        timeline = perform(task.plan, offline_speech(), config=task.config, timer=timer)
        take = write_take(writer, [(task.plan, timeline)], config=task.config, timer=timer)
    except BaseException:
        writer.abort(note="render failed")
        raise
    return RenderedTake(
        task.take.id, tuple(index.rows), index.final_lines, index.final_shots, take.frames, socket.gethostname(),
        time.perf_counter() - t0, time.process_time() - cpu0,
    )


def export_episode(task: ExportTask) -> ExportedEpisode:
    """Stitch and encode one episode from its takes' segment files: MP4, SRT, WebVTT and OTIO."""
    t0 = time.perf_counter()
    claim_fault(task.fault_dir, task.episode_id)
    data_dir = Path(task.data_dir)
    folder = MediaLayout(data_dir).export_dir(task.export_id)
    shutil.rmtree(folder, ignore_errors=True)  # a retry starts clean
    folder.mkdir(parents=True)
    store = cast(Store, _MediaOnlyStore(data_dir, _SegmentIndex(task.segments)))
    result = export_timeline(store, task.timeline, folder / "episode.mp4", config=task.config)
    return ExportedEpisode(
        task.export_id, task.episode_id, result.n_frames, result.n_samples, result.clips, socket.gethostname(),
        time.perf_counter() - t0,
    )


def warm_up(_: object = None) -> str:
    """Nothing but the imports above; a bench runs it on the workers before timing."""
    return socket.gethostname()
