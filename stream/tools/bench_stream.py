"""``talkie bench stream``: first-frame latency through a real peer, and session capacity.

Latency: one session on a loopback server with a real aiortc peer; each line is sent once the
previous one has ended, and latency is measured from the line's receipt to the first frame of
that line handed to the encoder.

Capacity: N sessions at once, each the real server session (live scene, clocked tracks) with
its frames encoded by aiortc's own VP8 and Opus encoders in the default executor, exactly as
its RTP sender does; the viewers' decoding (which happens on their machines) is left out.
A level is sustained when every session delivers at least 24.5 fps with no skipped frames.

Walk-ons (``talkie bench walk-on``): the first line of a character who walks on with a lone
``say`` against a line of someone on stage, as a real aiortc client hears them, with the
session's cast drawn ahead and without, in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from stream.live.config import LiveConfig, ServerConfig
from stream.live.engine import Engine
from stream.live.scene import LiveScene
from stream.live.session import Session

LINES = (
    ("MAYA", "Where were you last night?"),
    ("LEO", "Out by the harbour, watching the boats."),
    ("MAYA", "All night? You could have called."),
    ("LEO", "My phone died. I am sorry."),
    ("MAYA", "You always say that."),
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.asynccontextmanager
async def _loopback_server(engine: Engine, config: ServerConfig) -> AsyncIterator[tuple[Any, str]]:
    """The app served by uvicorn on a free loopback port: (the app, its URL)."""
    import uvicorn

    from stream.web.app import create_app

    app = create_app(config, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _latency_with_peer(engine: Engine, config: ServerConfig, n_lines: int) -> dict[str, Any]:
    from stream.tools.client import ScenePeer

    async with _loopback_server(engine, config) as (_, url):
        return await _latency_lines(ScenePeer(keep_video=False), url, n_lines)


async def _latency_lines(peer: Any, url: str, n_lines: int) -> dict[str, Any]:
    try:
        response = await peer.connect(url)
        response.raise_for_status()
        await peer.event("hello")
        await peer.wait_for(lambda: len(peer.video) > 25)
        latencies = []
        for i in range(n_lines):
            mark = len(peer.events)
            speaker, text = LINES[i % len(LINES)]
            peer.send({"type": "say", "speaker": speaker, "text": text})
            started = await peer.event("line_started", after=mark)
            await peer.event("line_ended", after=mark)
            latencies.append(started["latency_ms"])
            await asyncio.sleep(0.2 + 0.1 * (i % 4))  # idle between lines, as a writer would
        t0 = len(peer.video)
        await asyncio.sleep(2.0)
        received_fps = (len(peer.video) - t0) / 2.0
    finally:
        await peer.close()
    return {
        "first_frame_latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
            "lines": len(latencies),
        },
        "received_fps": round(received_fps, 2),
    }


WALK_ON_TEXT = "Sorry I am late, the harbour road was closed."
ON_STAGE = ("MAYA", "LEO")
HEARD_RMS = 300.0  # int16 RMS of a received 20 ms audio frame that carries speech


async def _until_heard(peer: Any, start: int, t0: float, *, timeout_s: float = 10.0) -> float:
    """Milliseconds from ``t0`` to the arrival of the first speech-loud audio frame the peer
    received from index ``start`` on (polled every 2 ms: arrival times are within ~2 ms)."""
    seen = start
    while time.monotonic() - t0 < timeout_s:
        frames = peer.audio[seen:]
        for _, samples in frames:
            if float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > HEARD_RMS:
                return (time.monotonic() - t0) * 1000
        seen += len(frames)
        await asyncio.sleep(0.002)
    raise TimeoutError(f"no speech arrived within {timeout_s} s")


async def _timed_line(peer: Any, speaker: str, text: str) -> tuple[float, float]:
    """(ms from sending the line to hearing it at the peer, the server's first-frame latency)."""
    mark, heard_from = len(peer.events), len(peer.audio)
    t0 = time.monotonic()
    peer.send({"type": "say", "speaker": speaker, "text": text})
    heard_ms = await _until_heard(peer, heard_from, t0)
    started = await peer.event("line_started", after=mark)
    await peer.event("line_ended", after=mark, timeout=30)
    return heard_ms, float(started["latency_ms"])


async def _walk_ons_with_peer(engine: Engine, config: ServerConfig, trials: int) -> dict[str, Any]:
    """A fresh session of MAYA and LEO on a loopback server with a real aiortc peer: each trial
    puts the cast back to the two of them, then times a line of one of them and the first line
    of someone who walks on (a built-in character not seen yet), sent with a lone ``say``."""
    from stream.tools.client import ScenePeer

    walkers = [n for n in engine.cast.names() if n not in ON_STAGE][:trials]
    heard: dict[str, list[float]] = {"walk_on": [], "on_stage": []}
    served: dict[str, list[float]] = {"walk_on": [], "on_stage": []}
    async with _loopback_server(engine, config) as (app, url):
        peer = ScenePeer(keep_video=False)
        try:
            await _walk_ons(app, peer, url, config, walkers, heard, served)
        finally:
            await peer.close()

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50": round(statistics.median(values), 1), "max": round(max(values), 1)}

    return {
        "lines_each": len(walkers),
        "heard_by_client_ms": {kind: summary(v) for kind, v in heard.items()},
        "server_first_frame_ms": {kind: summary(v) for kind, v in served.items()},
    }


async def _walk_ons(
    app: Any, peer: Any, url: str, config: ServerConfig, walkers: list[str],
    heard: dict[str, list[float]], served: dict[str, list[float]],
) -> None:
    """Connect with MAYA and LEO on stage, wait for the drawing ahead, then time the lines."""
    response = await peer.connect(url, cast=list(ON_STAGE))
    response.raise_for_status()
    await peer.event("hello")
    await peer.wait_for(lambda: len(peer.video) > 25)
    # the session's drawing ahead (when on) has had its turn: a writer starts typing later
    scene = app.state.sessions.sessions[peer.session_id].scene
    if config.live.draw_ahead_characters:
        ahead = scene.cast_names()[: config.live.draw_ahead_characters]
        await peer.wait_for(lambda: all(scene.drawing_request(n) is None for n in ahead), timeout=120)
    else:
        await asyncio.sleep(1.0)
    for i, walker in enumerate(walkers):
        mark = len(peer.events)
        peer.send({"type": "scene", "cast": list(ON_STAGE)})
        await peer.event("scene", after=mark)
        await asyncio.sleep(0.5)
        for kind, speaker, text in (("on_stage", ON_STAGE[i % 2], LINES[i % len(LINES)][1]), ("walk_on", walker, WALK_ON_TEXT)):
            heard_ms, latency_ms = await _timed_line(peer, speaker, text)
            heard[kind].append(heard_ms)
            served[kind].append(latency_ms)
            await asyncio.sleep(0.4)


async def _walk_on_run(trials: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ahead in (False, True):  # both in one run: a shared machine's noise hits both alike
        # espeak-ng speaks: these figures are the picture pipeline's (a natural voice is `bench voice`'s).
        live = LiveConfig(voice="espeak") if ahead else LiveConfig(voice="espeak", draw_ahead_characters=0)
        config = ServerConfig(live=live)
        engine = Engine(config)
        try:
            out["cast_drawn_ahead" if ahead else "drawn_on_demand"] = await _walk_ons_with_peer(engine, config, trials)
        finally:
            engine.close()
    return out


def bench_walk_on(*, trials: int = 5) -> dict[str, Any]:
    """First line of a walk-on character vs a line of someone on stage, as a real client hears
    them (line sent on the control channel -> first audio frame with speech received), with the
    session's cast drawn ahead and without."""
    from stream.live.ice import use_loopback_candidates

    use_loopback_candidates()
    return {"bench": "walk_on", "cpu_count": os.cpu_count(), **asyncio.run(_walk_on_run(trials))}


async def _encode_video(session: Session, stop: asyncio.Event) -> None:
    encoder = get_encoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000))
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        frame = await session.video.recv()
        await loop.run_in_executor(None, encoder.encode, frame, False)


async def _encode_audio(session: Session, stop: asyncio.Event) -> None:
    encoder = get_encoder(RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2))
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        frame = await session.audio.recv()
        await loop.run_in_executor(None, encoder.encode, frame, False)


async def _talk(session: Session, stop: asyncio.Event, offset: int) -> None:
    """Keep the scene talking: a new line shortly after the last one ended.

    Waiting out the scene's gap between lines keeps that scheduled pause out of the latency.
    """
    i = offset
    gap_s = session.scene.config.gap_ms / 1000 + 0.1
    while not stop.is_set():
        if session.scene.pending() == 0:
            await asyncio.sleep(gap_s)
            speaker, text = LINES[i % len(LINES)]
            await session.handle(f'{{"type": "say", "speaker": "{speaker}", "text": "{text}"}}')
            i += 1
        await asyncio.sleep(0.1)


async def _capacity_level(engine: Engine, config: ServerConfig, n: int, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    sessions = []
    for _ in range(n):
        scene = await loop.run_in_executor(
            engine.synth_executor,
            lambda: LiveScene(
                cast=engine.cast, speech=engine.speech, synth_executor=engine.synth_executor,
                config=config.live, faces=engine.faces,
            ),
        )
        sessions.append(Session(engine=engine, config=config, scene=scene))
    stop = asyncio.Event()
    tasks = []
    for i, s in enumerate(sessions):
        tasks += [
            asyncio.create_task(_encode_video(s, stop)),
            asyncio.create_task(_encode_audio(s, stop)),
            asyncio.create_task(_talk(s, stop, i)),
        ]
    await asyncio.sleep(2.0)  # warm up: layers rendered, caches filled
    start = [(s.video.frames_sent, s.video.frames_skipped) for s in sessions]
    faces0 = _face_counts(engine)
    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    neural = _neural_level(faces0, _face_counts(engine))
    fps = [(s.video.frames_sent - a) / elapsed for s, (a, _) in zip(sessions, start, strict=True)]
    skipped = [s.video.frames_skipped - b for s, (_, b) in zip(sessions, start, strict=True)]
    latencies = [x for s in sessions for x in s.scene.stats.latencies_ms]
    stop.set()
    for s in sessions:
        await s.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "sessions": n,
        "min_fps": round(min(fps), 2),
        "mean_fps": round(sum(fps) / n, 2),
        "frames_skipped": sum(skipped),
        "cpu_cores_busy": round(cpu / elapsed, 2),
        "first_frame_latency_p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        # Sustained: full frame rate, no picture skipped, no neural mouth late.
        "sustained": min(fps) >= 24.5 and sum(skipped) == 0 and not neural.get("neural_mouths_late"),
        **neural,
    }


def _face_counts(engine: Engine) -> tuple[int, int, int] | None:
    """(mouths painted, rig mouths kept, batches) so far; None for the rig backend."""
    if engine.faces is None:
        return None
    st = engine.faces.stats()
    return st["painted"], st["kept_rig_mouth"], st["batches"]


def _neural_level(before: tuple[int, int, int] | None, after: tuple[int, int, int] | None) -> dict[str, Any]:
    if before is None or after is None:
        return {}
    painted, kept, batches = (b - a for a, b in zip(before, after, strict=True))
    return {
        "neural_mouths_painted": painted,
        "neural_mouths_late": kept,  # shown with the rig's mouth instead
        "neural_mean_batch": round(painted / batches, 2) if batches else None,
    }


async def _run(levels: list[int], seconds: float, n_lines: int, backend: str) -> dict[str, Any]:
    config = ServerConfig(max_sessions=max(levels) + 1, live=LiveConfig(backend=backend, voice="espeak"))
    engine = Engine(config)
    try:
        latency = await _latency_with_peer(engine, config, n_lines)
        results = []
        for n in levels:
            level = await _capacity_level(engine, config, n, seconds)
            results.append(level)
            if not level["sustained"]:
                break
    finally:
        engine.close()
    sustained = [r["sessions"] for r in results if r["sustained"]]
    return {
        "bench": "stream",
        "backend": backend,
        "size": f"{config.live.width_px}x{config.live.height_px}",
        "characters": 2,
        **latency,
        "max_sustained_sessions": max(sustained) if sustained else 0,
        "levels": results,
        "cpu_count": os.cpu_count(),
    }


def bench_stream(
    *, levels: list[int] | None = None, seconds: float = 6.0, lines: int = 20, backend: str = "rig"
) -> dict[str, Any]:
    from stream.live.ice import use_loopback_candidates

    use_loopback_candidates()
    return asyncio.run(_run(levels or [1, 2, 4, 6, 8, 10, 12, 16, 20], seconds, lines, backend))

