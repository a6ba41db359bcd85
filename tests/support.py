"""Helpers for the store, recorder, export and API tests (no tests here): synthetic takes
written through the real segment writer, and MP4 decoding."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import av
import numpy as np

from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from stream.store import Store, Take
from stream.store.segments import SegmentWriter

SIZE = 64


def tone(freq_hz: float, n_samples: int, *, amplitude: int = 8000, start: int = 0) -> np.ndarray:
    t = (np.arange(n_samples) + start) / SAMPLE_RATE_HZ
    return np.rint(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def solid(colour: tuple[int, int, int], size: int = SIZE) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.full((size, size, 3), colour, np.uint8), format="rgb24")


def synthetic_take(
    store: Store, scene_id: str, *, colour: tuple[int, int, int], freq_hz: float, frames: int,
    skip: Iterable[int] = (), lines: Iterable[tuple[str, str, int, int]] = (), name: str | None = None,
) -> Take:
    """A take of solid ``colour`` pictures and a ``freq_hz`` tone, written as a recording would be;
    ``skip`` lists slots with no picture, ``lines`` (speaker, text, start, end samples)."""
    take = store.takes.begin(scene_id, name, source="live", width_px=SIZE, height_px=SIZE, cast=["MAYA"])
    writer = SegmentWriter(store, take)
    pcm = tone(freq_hz, frames * SAMPLES_PER_FRAME)
    skipped = set(skip)
    for i, (speaker, text, start, end) in enumerate(lines):
        writer.line_started(f"L{i}", speaker, text, start)
        writer.line_ended(f"L{i}", end, interrupted=False)
    for k in range(frames):
        if k not in skipped:
            writer.video(k, solid(colour))
        writer.audio(k * SAMPLES_PER_FRAME, pcm[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME])
    return writer.finish(frames)


def decode(path: Path) -> tuple[list[np.ndarray], list[int], np.ndarray]:
    """(RGB frames, video pts, mono float audio) of an MP4."""
    with av.open(str(path)) as container:
        frames, pts = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(int(frame.pts))
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return frames, pts, audio


def mean_colour(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(axis=0)


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float32)))
    return float(np.fft.rfftfreq(pcm.shape[0], 1 / SAMPLE_RATE_HZ)[int(np.argmax(spectrum))])


async def start_server(config: Any, engine: Any) -> tuple[Any, str, Callable[[], Awaitable[None]]]:
    """An in-process server on a free loopback port: (app, base url, stop)."""
    import asyncio

    import uvicorn

    from stream.web.app import create_app

    app = create_app(config, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    port = server.servers[0].sockets[0].getsockname()[1]

    async def stop() -> None:
        server.should_exit = True
        await task

    return app, f"http://127.0.0.1:{port}", stop


def browser_in_namespace(setup: str) -> str:
    """Debian's Chromium, after checking that it, playwright and a private network namespace
    prepared by the shell command ``setup`` are all there; skips the test with the reason."""
    import shutil
    import subprocess

    import pytest

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`; `./dev test` does it as root)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed (`./dev test` installs it)")
    probe = subprocess.run(["unshare", "-n", "sh", "-c", setup, "sh", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"needs a private network namespace (`unshare -n`, as root): {probe.stderr.decode().strip()}")
    return chromium
