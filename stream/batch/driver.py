"""The driver: the one writer of the store in a batch. Tasks go out, results come back and are
committed; what is done already is skipped (``plan``).

Render: just before a scene's task is handed over, the driver adds its scene (when it is new)
and begins its take (``recording``). The worker writes the take's segment files; the driver
checks that every one of them is there at its indexed size, then commits the segment rows, the
lines, the take's completion with its mark and the scene's choice of it in one transaction. So a
take is complete, marked and chosen, or not complete at all.

Export: the driver opens an export row (``running``) per episode; the worker writes the files
under temporary names and renames them when complete; the driver writes the content mark
beside them and marks the row done (and, with an output folder, links the files there).

A task that fails after its retries loses its take or export (and a scene added for it) and is
reported; the others go on. An interrupted batch (Ctrl-C or any error) stops the tasks in flight
and deletes what it had begun and not committed. A driver killed outright leaves its takes
``recording`` and its exports ``running``: the store's recovery at the next open closes them
and sweeps their unindexed files, and none of them carries a mark, so the next run does them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lipsync.timebase import SAMPLE_RATE_HZ
from stream.batch.plan import EXPORT_MARK, ExportBatch, RenderBatch, SceneWork, take_mark
from stream.batch.runners import Runner, run_tasks
from stream.batch.tasks import (
    ExportedEpisode,
    ExportTask,
    RenderedTake,
    RenderTask,
    export_episode,
    render_scene,
)
from stream.export.jobs import output_paths
from stream.record.script_takes import (  # the labels and sets `talkie render` gives
    _scene_label,
    _set_id,
)
from stream.store import StorageError, Store, StoreError, Take
from stream.store.media import write_atomic

logger = logging.getLogger(__name__)

EXPORT_SUFFIXES = (".mp4", ".srt", ".vtt", ".otio")


@dataclass(frozen=True, slots=True)
class BatchReport:
    what: str  # "render" or "export"
    runner: str
    workers: int
    done: tuple[dict[str, Any], ...]  # what this run rendered or exported
    skipped: tuple[str, ...]  # scene keys or episode ids that were done already
    failed: tuple[dict[str, str], ...]
    retries: int  # attempts beyond the first, over all tasks
    wall_s: float
    media_s: float  # of what this run rendered or exported

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what, "runner": self.runner, "workers": self.workers, "done": list(self.done),
            "skipped": list(self.skipped), "failed": list(self.failed), "retries": self.retries,
            "wall_s": round(self.wall_s, 3), "media_s": round(self.media_s, 3),
            "realtime_factor": round(self.media_s / self.wall_s, 2) if self.wall_s > 0 else None,
        }


def _progress(total: int, initial: int, unit: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, disable=not enabled, dynamic_ncols=True)


# -- render ---------------------------------------------------------------------------------------


class _Scenes:
    """The scene each key of the batch renders into, and where a new one goes in its episode:
    right after the scene of the nearest earlier key of the batch, else before the nearest later
    one, else at the end; so a scene re-done after an interruption lands in script order."""

    def __init__(self, store: Store, batch: RenderBatch) -> None:
        self.store = store
        self.batch = batch
        self.of = {(w.episode_id, w.key): w.scene_id for w in batch.scenes if w.scene_id is not None}
        self.order: dict[str, list[str]] = {}
        for work in batch.scenes:
            self.order.setdefault(work.episode_id, []).append(work.key)

    def _position(self, work: SceneWork) -> int | None:
        keys = self.order[work.episode_id]
        at = keys.index(work.key)
        for key in reversed(keys[:at]):
            if (scene_id := self.of.get((work.episode_id, key))) is not None:
                return self.store.catalog.get_scene(scene_id).position + 1
        for key in keys[at + 1 :]:
            if (scene_id := self.of.get((work.episode_id, key))) is not None:
                return self.store.catalog.get_scene(scene_id).position
        return None

    def add(self, work: SceneWork) -> str:
        catalog = self.store.catalog
        number = len(catalog.list_scenes(work.episode_id)) + 1
        scene = catalog.create_scene(
            work.episode_id, _scene_label(work.plan, number), position=self._position(work),
            set_id=_set_id(self.store, self.batch.series_id, work.plan.set_name),
        )
        self.of[(work.episode_id, work.key)] = scene.id
        return scene.id

    def drop(self, work: SceneWork) -> None:
        self.of.pop((work.episode_id, work.key), None)


def _check_media(store: Store, rendered: RenderedTake) -> None:
    """Every file the worker wrote is here at its indexed size (else the storage is not shared)."""
    folder = store.media.take_dir(rendered.take_id)
    for segment, _, _ in rendered.segments:
        for name, size in ((segment.video_file, segment.video_bytes), (segment.audio_file, segment.audio_bytes)):
            if name is None:
                continue
            try:
                here: int | None = (folder / name).stat().st_size
            except OSError:
                here = None
            if here != size:
                found = "missing" if here is None else f"{here} bytes, not {size}"
                raise StorageError(
                    "missing_media",
                    f"{folder / name}, written by a worker on {rendered.host}, is {found} here: the data "
                    "directory must be one shared folder, mounted at the same path on every machine",
                )


def _commit_take(store: Store, work: SceneWork, rendered: RenderedTake) -> Take:
    _check_media(store, rendered)
    with store.db.write():  # one transaction: complete, marked and chosen, or none of it
        for segment, lines, shots in rendered.segments:
            store.takes.add_segment(segment, lines, shots)
        take = store.takes.finish(
            rendered.take_id, note=take_mark(work.key, work.content), lines=rendered.final_lines,
            shots=rendered.final_shots,
        )
        store.catalog.update_scene(take.scene_id, chosen_take_id=take.id)
    return take


def _discard_take(store: Store, take: Take, *, scene_added: bool) -> None:
    """Delete a take that will not be committed, with its files, and the scene added for it."""
    try:
        store.takes.finish(take.id, status="recovered", note="its batch task did not finish")
        store.delete("take", take.id)
        if scene_added and not store.takes.for_scene(take.scene_id):
            store.delete("scene", take.scene_id)
    except StoreError as exc:  # the store's recovery closes it at the next open
        logger.error("take %s: could not delete it after its task failed: %s", take.id, exc)


def render_series(
    store: Store, batch: RenderBatch, runner: Runner, *, retries: int = 2, fault_dir: Path | None = None,
    progress: bool = False,
) -> BatchReport:
    """Render every scene of ``batch`` not done yet, one task each, committing as they finish."""
    t0 = time.perf_counter()
    data_dir = str(store.data_dir.resolve())
    faults = str(fault_dir) if fault_dir is not None else None
    todo = batch.todo
    scenes = _Scenes(store, batch)
    begun: dict[int, tuple[Take, bool]] = {}

    def tasks() -> Iterator[RenderTask]:
        for index, work in enumerate(todo):
            scene_id, added = work.scene_id, False
            if scene_id is None:
                scene_id, added = scenes.add(work), True
            try:
                take = store.takes.begin(
                    scene_id, None, source="render", width_px=batch.config.width_px, height_px=batch.config.height_px,
                    cast=[s.name for s in work.plan.cast], set_name=work.plan.set_name,
                )
            except BaseException:
                if added:
                    store.delete("scene", scene_id)
                    scenes.drop(work)
                raise
            begun[index] = (take, added)
            yield RenderTask(work.key, take, data_dir, work.plan, batch.config, faults)

    done: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    retried, samples = 0, 0
    bar = _progress(len(batch.scenes), len(batch.scenes) - len(todo), "scene", progress)
    try:
        for fin in run_tasks(runner, render_scene, tasks(), retries=retries):
            work, (take, added) = todo[fin.index], begun.pop(fin.index)
            retried += fin.attempts - 1
            error = fin.error
            if fin.result is not None:
                try:
                    committed = _commit_take(store, work, fin.result)
                except StoreError as exc:
                    error = str(exc)
                else:
                    samples += committed.samples
                    done.append({"key": work.key, "episode_id": work.episode_id, "scene_id": committed.scene_id,
                                 "take_id": committed.id, "frames": committed.frames, "host": fin.result.host,
                                 "cpu_s": round(fin.result.cpu_s, 3)})
            if error is not None:
                logger.error("series %s: scene %s failed after %d attempts: %s", batch.series_id, work.key, fin.attempts, error)
                _discard_take(store, take, scene_added=added)
                if added:
                    scenes.drop(work)
                failed.append({"key": work.key, "episode_id": work.episode_id, "error": error})
            bar.update(1)
            bar.set_postfix(retries=retried, failed=len(failed))
    except BaseException:
        runner.cancel()
        for take, added in begun.values():
            _discard_take(store, take, scene_added=added)
        raise
    finally:
        bar.close()
    return BatchReport(
        "render", runner.kind if todo else "none", runner.workers if todo else 0, tuple(done), tuple(w.key for w in batch.done), tuple(failed),
        retried, time.perf_counter() - t0, samples / SAMPLE_RATE_HZ,
    )


# -- export ---------------------------------------------------------------------------------------


def _place(store: Store, export_id: str, episode_id: str, out_dir: Path) -> Path:
    """The export's files as ``out_dir/<episode id>.{mp4,srt,vtt,otio}``, each whole or not at all."""
    source = store.media.export_dir(export_id) / "episode.mp4"
    target = out_dir / f"{episode_id}.mp4"
    for src, dst in zip((source, *output_paths(source)), (target, *output_paths(target)), strict=True):
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)  # the same bytes at no cost when both are on one filesystem
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    return target


def _commit_export(store: Store, content: str, result: ExportedEpisode) -> None:
    folder = store.media.export_dir(result.export_id)
    missing = [f"episode{s}" for s in EXPORT_SUFFIXES if not (folder / f"episode{s}").is_file()]
    if missing:
        raise StorageError(
            "missing_media",
            f"{', '.join(missing)} of export {result.export_id}, written by a worker on {result.host}, "
            f"are not in {folder} here: the data directory must be one shared folder, mounted at the same path "
            "on every machine",
        )
    write_atomic(folder / EXPORT_MARK, json.dumps({"content_sha256": content, "episode_id": result.episode_id}).encode())
    store.exports.finish(result.export_id, frames=result.frames, samples=result.samples)


def _abandon_export(store: Store, export_id: str, error: str) -> None:
    try:
        store.exports.fail(export_id, error)
    except StoreError as exc:  # the store's recovery fails it at the next open
        logger.error("export %s: could not mark it failed: %s", export_id, exc)
    store.media.remove_export(export_id)


def export_series(
    store: Store, batch: ExportBatch, runner: Runner, *, out_dir: Path | None = None, retries: int = 2,
    fault_dir: Path | None = None, progress: bool = False,
) -> BatchReport:
    """Export every episode of ``batch`` not done yet, one task each; with ``out_dir``, every
    episode's files (done before or now) also appear there as ``<episode id>.mp4`` and companions."""
    t0 = time.perf_counter()
    if out_dir is not None and not out_dir.is_dir():
        raise ValueError(f"the output folder {out_dir} does not exist")
    data_dir = str(store.data_dir.resolve())
    faults = str(fault_dir) if fault_dir is not None else None
    todo = batch.todo
    begun: dict[int, str] = {}

    def tasks() -> Iterator[ExportTask]:
        for index, work in enumerate(todo):
            begun[index] = store.exports.create(episode_id=work.episode_id).id
            yield ExportTask(begun[index], work.episode_id, data_dir, work.timeline, work.segments, batch.config, faults)

    if out_dir is not None:
        for work in batch.done:
            assert work.done_export_id is not None
            _place(store, work.done_export_id, work.episode_id, out_dir)
    done: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    retried, samples = 0, 0
    bar = _progress(len(batch.episodes), len(batch.episodes) - len(todo), "episode", progress)
    try:
        for fin in run_tasks(runner, export_episode, tasks(), retries=retries):
            work, export_id = todo[fin.index], begun.pop(fin.index)
            retried += fin.attempts - 1
            error = fin.error
            if fin.result is not None:
                try:
                    _commit_export(store, work.content, fin.result)
                    mp4 = (_place(store, export_id, work.episode_id, out_dir) if out_dir is not None
                           else store.media.export_dir(export_id) / "episode.mp4")
                except (StoreError, OSError) as exc:
                    error = str(exc)
                else:
                    samples += fin.result.samples
                    done.append({"episode_id": work.episode_id, "name": work.name, "export_id": export_id,
                                 "mp4": str(mp4), "frames": fin.result.frames, "clips": fin.result.clips,
                                 "host": fin.result.host})
            if error is not None:
                logger.error("episode %s: export failed after %d attempts: %s", work.episode_id, fin.attempts, error)
                _abandon_export(store, export_id, error)
                failed.append({"episode_id": work.episode_id, "error": error})
            bar.update(1)
            bar.set_postfix(retries=retried, failed=len(failed))
    except BaseException:
        runner.cancel()
        for export_id in begun.values():
            _abandon_export(store, export_id, "the batch was interrupted")
        raise
    finally:
        bar.close()
    return BatchReport(
        "export", runner.kind if todo else "none", runner.workers if todo else 0, tuple(done), tuple(w.episode_id for w in batch.done), tuple(failed),
        retried, time.perf_counter() - t0, samples / SAMPLE_RATE_HZ,
    )
