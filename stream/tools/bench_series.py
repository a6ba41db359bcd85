"""``talkie bench series``: how a series batch scales with workers, on Ray and on the process pool.

Eight one-minute scripts (two characters talking, 512x512; each starts at another line of the
dialogue, so no two are alike), each its own episode, are rendered into a fresh store by
``series render`` with 1 and then 2 workers, on Ray (when installed) and on the process pool,
and once by ``record_script`` in this process for reference. ``wall_s`` runs from the first task
handed over to the last take committed; starting the runner and importing the renderer in its
workers comes before and is ``startup_s``. ``realtime_factor`` is media seconds per wall second;
``worker_cores`` is the CPU time the workers spent on the tasks per wall second (on a shared
machine, below the worker count when other processes take CPU too).
Every run's takes are compared, segment by segment (the CRC-32 of every file), with the
single-process render's: ``identical`` says whether all pictures and all samples match (samples
match only once espeak-ng's voice jitter is seeded, not taken from the clock).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ
from stream.batch.driver import render_series
from stream.batch.plan import plan_render, read_entries
from stream.batch.runners import PoolRunner, RayRunner, Runner, ray_available, run_tasks
from stream.batch.tasks import warm_up
from stream.record.offline import RenderConfig, read_script
from stream.record.script_takes import record_script
from stream.store import Store
from stream.tools.bench_render import bench_script

Fingerprint = dict[str, tuple[list[int], list[int]]]  # episode name -> (video, audio) CRC-32 per segment


def _write_scripts(folder: Path, *, count: int, seconds: float) -> None:
    lines = bench_script(seconds, SpeechEngine()).lines
    for i in range(count):
        turn = lines[i % len(lines):] + lines[: i % len(lines)]
        (folder / f"ep{i + 1:02d}.txt").write_text("\n".join(f"{ln.speaker}: {ln.text}" for ln in turn) + "\n")


def _fingerprint(store: Store, series_id: str) -> Fingerprint:
    out: Fingerprint = {}
    for episode in store.catalog.list_episodes(series_id):
        video: list[int] = []
        audio: list[int] = []
        for scene in store.catalog.list_scenes(episode.id):
            take = store.takes.playable(scene.id, scene.chosen_take_id)
            assert take is not None
            video += [s.video_crc32 for s in store.takes.segments(take.id)]
            audio += [s.audio_crc32 for s in store.takes.segments(take.id)]
        out[episode.name] = (video, audio)
    return out


def _single_process(scripts: Path, config: RenderConfig) -> tuple[dict[str, Any], Fingerprint]:
    with tempfile.TemporaryDirectory(prefix="talkie-bench-series-") as tmp:
        store = Store.open(Path(tmp))
        try:
            series = store.catalog.create_series("Bench")
            speech = SpeechEngine()
            t0, cpu0 = time.perf_counter(), time.process_time()
            samples = 0
            for path in sorted(scripts.iterdir()):
                episode = store.catalog.create_episode(series.id, path.stem)
                takes = record_script(store, read_script(path), episode_id=episode.id, config=config, speech=speech)
                samples += sum(t.samples for t in takes)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            figures = {"wall_s": round(wall, 2), "realtime_factor": round(samples / SAMPLE_RATE_HZ / wall, 2),
                       "cores": round(cpu / wall, 2)}
            return figures, _fingerprint(store, series.id)
        finally:
            store.close()


def _batch(kind: str, workers: int, scripts: Path, config: RenderConfig) -> tuple[dict[str, Any], Fingerprint]:
    with tempfile.TemporaryDirectory(prefix="talkie-bench-series-") as tmp:
        store = Store.open(Path(tmp))
        try:
            series = store.catalog.create_series("Bench")
            batch = plan_render(store, series.id, read_entries(scripts), config=config)
            t0 = time.perf_counter()
            runner: Runner = RayRunner(workers=workers) if kind == "ray" else PoolRunner(workers=workers)
            try:
                for _ in run_tasks(runner, warm_up, [None] * (2 * workers), retries=0):
                    pass
                startup = time.perf_counter() - t0
                report = render_series(store, batch, runner, retries=0)
            finally:
                runner.close()
            if report.failed:
                raise RuntimeError(f"bench batch on {kind} failed: {report.failed}")
            figures = {"wall_s": round(report.wall_s, 2), "realtime_factor": round(report.media_s / report.wall_s, 2),
                       "startup_s": round(startup, 2),
                       "worker_cores": round(sum(d["cpu_s"] for d in report.done) / report.wall_s, 2)}
            return figures, _fingerprint(store, series.id)
        finally:
            store.close()


def bench_series(
    *, seconds: float = 60.0, scripts: int = 8, width_px: int = 512, height_px: int = 512, voice_backend: str = "natural"
) -> dict[str, Any]:
    """Render ``scripts`` scripts of ``seconds`` each as a batch with 1 and 2 workers; report speed."""
    config = RenderConfig(width_px=width_px, height_px=height_px, voice_backend=voice_backend)
    report: dict[str, Any] = {"scripts": scripts, "script_s": seconds, "size": f"{width_px}x{height_px}",
                              "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="talkie-bench-scripts-") as folder:
        scripts_dir = Path(folder)
        _write_scripts(scripts_dir, count=scripts, seconds=seconds)
        prints = []
        for kind, name in (("pool", "process_pool"), ("ray", "ray")):
            if kind == "ray" and not ray_available():
                report[name] = "not installed (pip install 'talkie[ray]')"
                continue
            runs: dict[str, Any] = {}
            for workers in (2, 1):  # back to back, so both see the same machine
                runs[f"workers_{workers}"], fingerprint = _batch(kind, workers, scripts_dir, config)
                prints.append(fingerprint)
            runs["speedup_2_vs_1"] = round(runs["workers_1"]["wall_s"] / runs["workers_2"]["wall_s"], 2)
            report[name] = runs
        report["single_process"], reference = _single_process(scripts_dir, config)
        report["identical"] = {
            "frames": all({k: v[0] for k, v in p.items()} == {k: v[0] for k, v in reference.items()} for p in prints),
            "samples": all({k: v[1] for k, v in p.items()} == {k: v[1] for k, v in reference.items()} for p in prints),
        }
    return report
