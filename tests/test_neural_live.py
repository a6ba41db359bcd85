"""The neural backend live: one shared model, one scheduler batching every session's mouths."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from support import start_server

from avatar.measure import mouth_opening
from avatar.neural.renderer import NeuralFaceRenderer
from avatar.scene import Compositor, SceneLayout
from avatar.spec import Cast
from lipsync.neural.weights import load_cast_models
from lipsync.speech import SpeechEngine
from stream.live.config import ServerConfig
from stream.live.engine import Engine
from stream.live.faces import FaceService, FaceServiceConfig
from stream.live.scene import LiveConfig
from stream.tools.client import ScenePeer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MAYA = Cast.builtin().get("MAYA")


@pytest.fixture(scope="module")
def models() -> dict:
    return load_cast_models(["MAYA", "LEO"])


@pytest.fixture
def service(models: dict) -> Iterator[FaceService]:
    faces = FaceService(models, config=FaceServiceConfig(gather_ms=100.0))
    yield faces
    faces.close()


def maya_frames(n: int) -> tuple[Compositor, list[np.ndarray], list[np.ndarray]]:
    """Rig frames of MAYA (and LEO) with MAYA saying a line; her drive windows per frame."""
    assert MAYA is not None
    utt = SpeechEngine().say("Where were you last night?", MAYA.voice)
    comp = Compositor(
        layout=SceneLayout.for_count(2, width_px=320, height_px=256),
        characters=[MAYA, Cast.builtin().get("LEO")],
    )
    from avatar.director import SceneDirector

    director = SceneDirector.for_compositor(comp)
    rest = utt.mouth[-1] * 0
    rest[0] = 1.0
    frames, drives = [], []
    for k in range(n):
        mouth = utt.mouth[min(k, len(utt.mouth) - 1)]
        poses = director.poses(k, mouths=[mouth, rest], speaking=[True, False])
        frames.append(comp.compose(poses))
        drives.append([np.repeat(mouth[:, None], 5, axis=1), np.repeat(rest[:, None], 5, axis=1)])
    return comp, frames, drives


def test_scheduled_paint_equals_direct_paint_and_batches_sessions(service: FaceService, models: dict) -> None:
    comp, frames, drives = maya_frames(12)
    direct = NeuralFaceRenderer(compositor=comp, models=models)
    painter = service.painter(comp)
    expected = [direct.paint(f.copy(), d) for f, d in zip(frames, drives, strict=True)]

    results: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def session(key: str) -> None:
        for f, d in zip(frames, drives, strict=True):
            barrier.wait()  # both sessions' frames arrive together, as at the same display time
            out = f.copy()
            # Due in 1 s: the worker's gather window (100 ms) closes well before the deadline.
            shown = time.monotonic() + 1.0
            assert service.paint(out, painter, d, session_key=key, shown_at_s=shown) == 0
            results[key].append(out)

    threads = [threading.Thread(target=session, args=(k,)) for k in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for key in results:
        assert len(results[key]) == len(frames)
        for got, want in zip(results[key], expected, strict=True):
            # The same pixels whether the mouth ran alone or batched with another session's.
            assert np.abs(got.astype(np.int16) - want).max() <= 1
    stats = service.stats()
    # The shipped cast model serves both characters: MAYA and LEO of both sessions, one pass.
    assert {"MAYA", "LEO"} <= set(stats["characters"]) and stats["models"] == 1
    assert stats["painted"] == 2 * 2 * len(frames)
    assert stats["max_batch_seen"] == 4, stats


def test_a_late_mouth_keeps_the_rig_mouth_and_the_frame_goes_out(service: FaceService) -> None:
    comp, frames, drives = maya_frames(1)
    painter = service.painter(comp)
    out = frames[0].copy()
    # Due long ago: the scheduler drops the request instead of running it.
    kept = service.paint(out, painter, drives[0], session_key="late", shown_at_s=time.monotonic() - 10)
    assert kept == 2
    assert np.array_equal(out, frames[0])
    assert service.stats()["dropped_late"] == 2  # MAYA's and LEO's


def test_a_failed_batch_keeps_the_rig_mouth_and_is_counted(
    service: FaceService, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(jobs: list) -> list:
        raise RuntimeError("model exploded")

    service.scheduler._runners = {key: broken for key in service.scheduler._runners}
    comp, frames, drives = maya_frames(1)
    painter = service.painter(comp)
    out = frames[0].copy()
    with caplog.at_level("ERROR", logger="stream.live.faces"):
        kept = service.paint(out, painter, drives[0], session_key="broken", shown_at_s=time.monotonic() + 1.0)
    assert kept == 2  # MAYA and LEO keep the rig's mouths
    assert np.array_equal(out, frames[0])  # the frame goes out, exactly the rig's
    stats = service.stats()
    assert stats["failed"] == 2 and stats["painted"] == 0
    assert "model exploded" in caplog.text


def test_no_models_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no trained models"):
        FaceService({})


async def test_server_neural_backend_streams_painted_mouths(speech: SpeechEngine) -> None:
    config = ServerConfig(max_sessions=2, live=LiveConfig(backend="neural"))
    engine = Engine(config, speech=speech)
    assert engine.faces is not None
    app, url, stop = await start_server(config, engine)
    peers = [ScenePeer(), ScenePeer(keep_video=False)]
    try:
        for peer in peers:
            assert (await peer.connect(url)).status_code == 200
            await peer.event("hello")
        await peers[0].wait_for(lambda: len(peers[0].video) >= 10)
        for peer in peers:
            peer.send({"type": "say", "speaker": "MAYA", "text": "Where were you last night?"})
        started = await peers[0].event("line_started")
        ended = await peers[0].event("line_ended")
        await peers[1].event("line_ended")
        v0 = peers[0].video[0][0]
        await peers[0].wait_for(lambda: (peers[0].video[-1][0] - v0) / 90000 > ended["media_time_s"] + 0.3)
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"{url}/api/health")).json()
    finally:
        for peer in peers:
            await peer.close()
        await stop()
        engine.close()
    neural = health["neural"]
    assert neural["painted"] > 20 and neural["batches"] > 0
    # MAYA's (repainted) mouth opens during her line, and stays shut outside it.
    box = Compositor(
        layout=SceneLayout.for_count(2), characters=[MAYA, Cast.builtin().get("LEO")]
    ).mouth_boxes()[0]
    t = np.array([(p - v0) / 90000 for p, _ in peers[0].video])
    opening = np.array([mouth_opening(f, box) for _, f in peers[0].video])
    during = (t >= started["media_time_s"]) & (t < ended["media_time_s"])
    quiet = (t < started["media_time_s"] - 0.1) | (t > ended["media_time_s"] + 0.2)
    assert opening[during].mean() > 2 * max(opening[quiet].mean(), 1e-3), (opening[during].mean(), opening[quiet].mean())


def test_live_drive_window_looks_ahead_like_the_offline_one(speech: SpeechEngine, service: FaceService) -> None:
    """Live drive windows hold rows k-2 .. k+2 once the speech for them exists (as offline)."""
    from concurrent.futures import ThreadPoolExecutor

    from lipsync.neural.data import viseme_windows
    from stream.live.scene import LiveScene

    with ThreadPoolExecutor(max_workers=1) as pool:
        scene = LiveScene(
            cast=Cast.builtin(), speech=speech, synth_executor=pool,
            config=LiveConfig(width_px=320, height_px=256, backend="neural"), faces=service,
        )
        [scene.produce(k) for k in range(5)]
        line = scene.say("MAYA", "Where were you last night? I waited for hours.", received_at=time.monotonic())
        assert line.utt.finished.wait(10.0)  # all speech exists: every look-ahead row is known
        states = [scene.produce(k) for k in range(5, 5 + 100)]
    maya = scene.view.names.index("MAYA")
    track = np.stack([s.mouths[maya] for s in states])  # (N, 15)
    start = next(i for i, s in enumerate(states) if s.speaking[maya])
    end = start + int(np.ceil(line.utt.n_samples / 1920))
    want = viseme_windows(track)  # the offline windows of the same rows
    for i in range(start + 2, end - 2):
        assert np.array_equal(states[i].drives[maya], want[i]), i
    # A silent listener's window is its rest row, repeated.
    leo = scene.view.names.index("LEO")
    assert all(np.array_equal(s.drives[leo], np.repeat(s.mouths[leo][:, None], 5, axis=1)) for s in states)
