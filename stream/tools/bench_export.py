"""``talkie bench export``: export speed of a long episode, and what recording costs a live session.

Export: an episode of ``takes`` takes, ``episode_s`` seconds in all, stitched and exported to
MP4 + SRT + VTT + OTIO; the figure is media seconds per wall second. A few distinct takes are
rendered into the store (two characters, 512x512) and copied, segments and all, to make up the
count: the export reads and decodes every take's segments either way.

Recording overhead: one live session (its frames encoded by aiortc's VP8 and Opus encoders, as
its RTP sender would) runs for ``live_s`` seconds without and then with a take recording;
frame times are how late each picture leaves against its slot on the clock.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from lipsync.script import parse_script
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ
from stream.export.jobs import ExportConfig, export_timeline
from stream.export.stitch import plan_episode
from stream.record.offline import RenderConfig
from stream.record.recorder import Recordings
from stream.record.script_takes import record_script
from stream.store import Store, Take
from stream.tools.bench_render import bench_script


def _clone_take(store: Store, take: Take, scene_id: str) -> Take:
    """A new take of ``scene_id`` holding a copy of ``take``'s segments and lines."""
    copy = store.takes.begin(scene_id, None, source=take.source, width_px=take.width_px, height_px=take.height_px,
                             cast=take.cast, set_name=take.set_name)
    src, dst = store.media.take_dir(take.id), store.media.take_dir(copy.id)
    dst.mkdir(parents=True, exist_ok=True)
    lines = [replace(ln, take_id=copy.id) for ln in store.takes.lines(take.id)]
    for seg in store.takes.segments(take.id):
        for name in filter(None, (seg.video_file, seg.audio_file)):
            shutil.copyfile(src / name, dst / name)
        store.takes.add_segment(replace(seg, take_id=copy.id), lines)
        lines = []
    return store.takes.finish(copy.id)


def _episode(store: Store, takes: int, episode_s: float, distinct: int) -> str:
    series = store.catalog.create_series("Bench")
    episode = store.catalog.create_episode(series.id, "Ten minutes")
    speech = SpeechEngine()
    lines = bench_script(episode_s / takes, speech).lines
    rendered: list[Take] = []
    for i in range(takes):
        scene = store.catalog.create_scene(episode.id, f"Scene {i + 1}")
        if i < distinct:  # each distinct take starts at another line of the dialogue
            turn = lines[i % len(lines):] + lines[: i % len(lines)]
            script = parse_script("\n".join(f"{ln.speaker}: {ln.text}" for ln in turn))
            rendered += record_script(store, script, scene_id=scene.id, config=RenderConfig(), speech=speech)
        else:
            _clone_take(store, rendered[i % distinct], scene.id)
    return episode.id


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"p50": round(pick(0.5), 2), "p95": round(pick(0.95), 2), "max": round(ordered[-1], 2)}


async def _live_frame_times(store: Store, live_s: float) -> dict[str, Any]:
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from stream.live.config import ServerConfig
    from stream.live.engine import Engine
    from stream.live.scene import LiveScene
    from stream.live.session import Session
    from stream.tools.bench_stream import LINES

    config = ServerConfig()
    engine = Engine(config)
    loop = asyncio.get_running_loop()
    scene = await loop.run_in_executor(engine.synth_executor, lambda: LiveScene(
        cast=engine.cast, speech=engine.speech, synth_executor=engine.synth_executor, config=config.live))
    session = Session(engine=engine, config=config, scene=scene)
    recordings = Recordings(store)
    series = store.catalog.create_series("Live bench")
    target = store.catalog.create_scene(store.catalog.create_episode(series.id, "Live").id, "Live")
    lateness: list[float] = []
    stop = asyncio.Event()

    async def video() -> None:
        encoder = get_encoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000))
        while not stop.is_set():
            frame = await session.video.recv()
            lateness.append(1000 * -session.media.due((frame.pts or 0) / 90000))
            await loop.run_in_executor(None, encoder.encode, frame, False)

    async def audio() -> None:
        encoder = get_encoder(RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2))
        while not stop.is_set():
            await loop.run_in_executor(None, encoder.encode, await session.audio.recv(), False)

    async def talk() -> None:
        i = 0
        while not stop.is_set():
            if scene.pending() == 0:
                speaker, text = LINES[i % len(LINES)]
                await session.handle(f'{{"type": "say", "speaker": "{speaker}", "text": "{text}"}}')
                i += 1
            await asyncio.sleep(0.3)

    async def phase() -> dict[str, Any]:
        lateness.clear()
        sent, skipped, cpu0 = session.video.frames_sent, session.video.frames_skipped, time.process_time()
        await asyncio.sleep(live_s)
        return {"frame_lateness_ms": _percentiles(lateness), "frames": session.video.frames_sent - sent,
                "frames_skipped": session.video.frames_skipped - skipped,
                "cpu_cores_busy": round((time.process_time() - cpu0) / live_s, 2)}

    tasks = [asyncio.create_task(c) for c in (video(), audio(), talk())]
    try:
        await asyncio.sleep(2.0)  # warm up
        baseline = await phase()
        await recordings.start(session, scene_id=target.id)
        recording = await phase()
        take = await recordings.stop(session)
    finally:
        stop.set()
        await session.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        engine.close()
    return {"seconds_per_phase": live_s, "without_recording": baseline, "recording": recording,
            "take_frames": take.frames}


def bench_export(*, takes: int = 20, episode_s: float = 600.0, distinct: int = 4, live_s: float = 8.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "data")
        try:
            t0 = time.perf_counter()
            episode_id = _episode(store, takes, episode_s, min(distinct, takes))
            setup_s = time.perf_counter() - t0
            timeline = plan_episode(store, episode_id)
            exports = {}
            for preset in ("veryfast", "ultrafast"):
                t0 = time.perf_counter()
                result = export_timeline(store, timeline, Path(tmp) / f"episode-{preset}.mp4", config=ExportConfig(preset=preset))
                wall = time.perf_counter() - t0
                media = result.n_samples / SAMPLE_RATE_HZ
                exports[preset] = {"wall_seconds": round(wall, 2), "realtime_factor": round(media / wall, 2),
                                   "mp4_bytes": result.mp4.stat().st_size}
            store_bytes = sum(p.stat().st_size for p in store.media.takes_dir.rglob("*") if p.is_file())
            live = asyncio.run(_live_frame_times(store, live_s))
        finally:
            store.close()
    return {
        "bench": "export",
        "size": f"{timeline.width_px}x{timeline.height_px}",
        "takes": len(timeline.clips),
        "distinct_takes_rendered": min(distinct, takes),
        "media_seconds": round(timeline.n_samples / SAMPLE_RATE_HZ, 2),
        "setup_seconds": round(setup_s, 1),
        "recorded_bytes_per_minute": round(store_bytes / (timeline.n_samples / SAMPLE_RATE_HZ / 60)),
        "export": exports,
        "live_recording_overhead": live,
        "cpu_count": os.cpu_count(),
    }
