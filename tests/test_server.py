"""The live server through a real WebRTC peer: sync, interrupts, clean-up, errors and limits."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import numpy as np
import pytest
import websockets
from aiortc import RTCPeerConnection
from support import start_server

from avatar.measure import mouth_opening
from avatar.scene import Compositor, SceneLayout
from avatar.spec import Cast
from lipsync.timebase import SAMPLE_RATE_HZ, TICKS_PER_FRAME
from stream.live.config import ServerConfig, ServerConfigError
from stream.live.engine import Engine
from stream.tools.client import ScenePeer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class RunningServer:
    def __init__(self, app: object, url: str) -> None:
        self.app = app
        self.url = url
        self.ws_url = url.replace("http://", "ws://")

    @property
    def sessions(self) -> dict:
        return self.app.state.sessions.sessions  # type: ignore[attr-defined]


async def start(config: ServerConfig, engine: Engine) -> tuple[RunningServer, Callable[[], Awaitable[None]]]:
    app, url, stop = await start_server(config, engine)
    return RunningServer(app, url), stop


@pytest.fixture
async def server(engine: Engine) -> AsyncIterator[RunningServer]:
    running, stop = await start(ServerConfig(max_sessions=4), engine)
    yield running
    await stop()


def mouth_boxes(names: list[str]) -> list[tuple[int, int, int, int]]:
    specs = [Cast.builtin().resolve(n) for n in names]
    return Compositor(layout=SceneLayout.for_count(len(specs)), characters=specs).mouth_boxes()


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean((samples.astype(np.float32) / 32768) ** 2)))


async def test_a_line_plays_with_pts_sync_and_a_moving_mouth(server: RunningServer) -> None:
    peer = ScenePeer()
    response = await peer.connect(server.url)
    assert response.status_code == 200, response.text
    hello = await peer.event("hello")
    assert hello["cast"] == ["MAYA", "LEO"]
    await peer.wait_for(lambda: len(peer.video) >= 12 and len(peer.audio) >= 24)
    peer.send({"type": "say", "speaker": "Maya", "text": "Where were you last night? I waited for hours and hours."})
    started = await peer.event("line_started")
    ended = await peer.event("line_ended")
    assert started["speaker"] == "MAYA" and not ended["interrupted"]
    assert started["latency_ms"] < 2000  # a sanity bound only; the figure comes from `talkie bench stream`
    v0, a0 = peer.video[0][0], peer.audio[0][0]
    end_s = ended["media_time_s"]
    await peer.wait_for(lambda: (peer.video[-1][0] - v0) / 90000 > end_s + 0.6 and (peer.audio[-1][0] - a0) / SAMPLE_RATE_HZ > end_s + 0.6)
    await peer.close()

    video_pts = np.array([p for p, _ in peer.video])
    audio_pts = np.array([p for p, _ in peer.audio])
    assert np.all(np.diff(video_pts) == TICKS_PER_FRAME), "video pts must advance by exactly one frame"
    assert np.all(np.diff(audio_pts) == 960), "audio pts must advance by exactly 20 ms"

    # Audio: speech energy inside the line, silence outside.
    t_audio = (audio_pts - a0) / SAMPLE_RATE_HZ
    energy = np.array([rms(s) for _, s in peer.audio])
    inside = (t_audio >= started["media_time_s"]) & (t_audio < end_s)
    outside = (t_audio < started["media_time_s"] - 0.05) | (t_audio > end_s + 0.1)
    assert energy[inside].mean() > 0.02 and energy[outside].max() < 0.005
    audio_onset = t_audio[np.argmax(energy > 0.01)]

    # Video: MAYA's mouth opens during the line and only then; LEO's never does.
    maya_box, leo_box = mouth_boxes(["MAYA", "LEO"])
    t_video = (video_pts - v0) / 90000
    maya = np.array([mouth_opening(f, maya_box) for _, f in peer.video])
    leo = np.array([mouth_opening(f, leo_box) for _, f in peer.video])
    during = (t_video >= started["media_time_s"]) & (t_video < end_s)
    quiet = (t_video < started["media_time_s"] - 0.05) | (t_video > end_s + 0.1)
    assert (maya[during] > 0).mean() > 0.4
    assert maya[quiet].max() == 0 and leo.max() == 0
    video_onset = t_video[np.argmax(maya > 0)]
    # Audio and video of the same media time stay together (one frame of slack for the first phoneme).
    assert abs(video_onset - audio_onset) <= 0.08, (video_onset, audio_onset)


async def test_interrupt_silences_the_audio_within_200ms(server: RunningServer) -> None:
    peer = ScenePeer(keep_video=False)
    assert (await peer.connect(server.url)).status_code == 200
    await peer.event("hello")
    peer.send({"type": "say", "speaker": "LEO", "text": "I am going to talk for a very long time about the harbour and the boats. " * 3})
    started = await peer.event("line_started")
    await asyncio.sleep(0.8)
    peer.send({"type": "interrupt"})
    interrupted = await peer.event("interrupted")
    ended = await peer.event("line_ended")
    assert ended["interrupted"]
    assert ended["media_time_s"] - interrupted["media_time_s"] <= 0.2
    a0 = peer.audio[0][0]
    cut = ended["media_time_s"]
    await peer.wait_for(lambda: (peer.audio[-1][0] - a0) / SAMPLE_RATE_HZ > cut + 0.8)
    await peer.close()
    t = np.array([(p - a0) / SAMPLE_RATE_HZ for p, _ in peer.audio])
    energy = np.array([rms(s) for _, s in peer.audio])
    assert energy[(t > started["media_time_s"] + 0.2) & (t < cut - 0.1)].mean() > 0.02
    assert energy[t > cut + 0.05].max() < 0.005


POOL_PREFIXES = ("talkie-", "asyncio_", "ThreadPoolExecutor-")


def _threads() -> tuple[int, set[str]]:
    """Pooled worker threads (bounded, they grow lazily to their maximum) and every other thread."""
    threads = threading.enumerate()
    pooled = [t for t in threads if t.name.startswith(POOL_PREFIXES)]
    return len(pooled), {t.name for t in threads if t not in pooled}


def _live_objects(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


async def test_connect_disconnect_cycles_leave_nothing_behind(server: RunningServer) -> None:
    async def cycle() -> None:
        peer = ScenePeer(keep_video=False)
        assert (await peer.connect(server.url)).status_code == 200
        await peer.wait_for(lambda: len(peer.video) >= 1)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.delete(f"/sessions/{peer.session_id}", headers=peer.credential)).status_code == 204
        await peer.close()

    for _ in range(5):
        await cycle()
    await asyncio.sleep(0.3)
    tasks_before, (_, others_before) = len(asyncio.all_tasks()), _threads()
    for _ in range(45):
        await cycle()
    await asyncio.sleep(0.5)
    assert server.sessions == {}
    assert len(asyncio.all_tasks()) <= tasks_before
    pooled, others = _threads()
    assert others <= others_before, f"threads left behind: {others - others_before}"
    assert pooled <= 2 + 2 + 1 + min(32, (os.cpu_count() or 1) + 4)  # synth + render + unpack + asyncio's default pool
    assert _live_objects(RTCPeerConnection) == 0


async def test_bad_messages_get_errors_and_the_session_goes_on(server: RunningServer) -> None:
    peer = ScenePeer(keep_video=False)
    assert (await peer.connect(server.url)).status_code == 200
    await peer.event("hello")
    async with websockets.connect(f"{server.ws_url}/ws/{peer.session_id}?secret={peer.secret}") as ws:
        async def reply() -> dict:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if event["type"] in ("error", "pong", "scene", "line_queued"):
                    return event

        assert (json.loads(await ws.recv()))["type"] == "hello"
        await ws.send("this is not json")
        assert (await reply())["code"] == "bad_json"
        await ws.send(json.dumps({"type": "dance"}))
        assert (await reply())["code"] == "unknown_type"
        await ws.send(json.dumps({"type": "say", "speaker": "MAYA"}))
        assert "'text'" in (await reply())["message"]
        for name in ("IRIS", "OMAR"):
            await ws.send(json.dumps({"type": "say", "speaker": name, "text": "Hello."}))
            kinds = {(await reply())["type"], (await reply())["type"]}
            assert kinds == {"line_queued", "scene"}
        await ws.send(json.dumps({"type": "say", "speaker": "ZARA", "text": "Room for me?"}))
        full = await reply()
        assert full["code"] == "scene_full" and "ZARA" in full["message"]
        frames = len(peer.video)
        await ws.send(json.dumps({"type": "ping"}))
        assert (await reply())["type"] == "pong"
    await peer.wait_for(lambda: len(peer.video) > frames + 10)
    await peer.close()


async def test_unknown_session_socket_is_refused(server: RunningServer) -> None:
    with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
        async with websockets.connect(f"{server.ws_url}/ws/nope") as ws:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4404


async def test_session_limit_answers_503_with_a_reason(engine: Engine) -> None:
    running, stop = await start(ServerConfig(max_sessions=1), engine)
    try:
        first, second = ScenePeer(keep_video=False), ScenePeer(keep_video=False)
        assert (await first.connect(running.url)).status_code == 200
        refused = await second.connect(running.url)
        assert refused.status_code == 503
        assert refused.json()["error"] == "session_limit" and "limit of 1" in refused.json()["message"]
        await first.close()
        await second.close()
    finally:
        await stop()


async def test_bad_offers_are_refused_clearly(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/offer", content=b"{not json")
        assert r.status_code == 400 and "not JSON" in r.json()["message"]
        r = await http.post("/offer", json={"sdp": "v=0\r\nnonsense", "type": "offer"})
        assert r.status_code == 400 and r.json()["message"]
        r = await http.post("/offer", json={"sdp": "x" * 40_000, "type": "offer"})
        assert r.status_code == 400 and "limit" in r.json()["message"]
        r = await http.post("/offer", json={"type": "offer"})
        assert r.status_code == 400 and "'sdp'" in r.json()["message"]
    assert server.sessions == {}


def test_non_loopback_without_a_token_refuses_to_start() -> None:
    with pytest.raises(ServerConfigError, match="token"):
        ServerConfig(host="0.0.0.0")


async def test_token_is_required_when_configured(engine: Engine) -> None:
    token = "s3cret-token"
    running, stop = await start(ServerConfig(host="0.0.0.0", token=token), engine)
    try:
        async with httpx.AsyncClient(base_url=running.url) as http:
            assert (await http.get("/")).status_code == 200  # the page itself is public
            assert (await http.get("/api/sessions")).status_code == 401
            assert (await http.get("/api/sessions", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        peer = ScenePeer(keep_video=False)
        assert (await peer.connect(running.url)).status_code == 401
        await peer.close()
        peer = ScenePeer(keep_video=False)
        assert (await peer.connect(running.url, token=token)).status_code == 200
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            async with websockets.connect(f"{running.ws_url}/ws/{peer.session_id}?secret={peer.secret}") as ws:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401
        async with websockets.connect(f"{running.ws_url}/ws/{peer.session_id}?token={token}&secret={peer.secret}") as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
        await peer.close()
    finally:
        await stop()
