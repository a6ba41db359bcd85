"""Live audio over the network: a WHIP publisher, the page's microphone, uploads, WHEP viewers."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator

import av
import httpx
import numpy as np
import pytest
import uvicorn
from aiortc import RTCPeerConnection

from avatar.measure import mouth_opening
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, TICKS_PER_FRAME
from lipsync.voices import VoiceSpec
from stream.live.config import ServerConfig
from stream.live.engine import Engine
from stream.live.inputs.audio_input import InputConfig
from stream.live.scene import LiveConfig
from stream.tools.bench_audio import PcmTrack, WhipPublisher, lag_correlation
from stream.tools.client import ScenePeer
from stream.web.app import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CONFIG = ServerConfig(max_sessions=4, live=LiveConfig(width_px=320, height_px=240))


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    eng = Engine(CONFIG)
    yield eng
    eng.close()


class Server:
    def __init__(self, app: object, server: uvicorn.Server) -> None:
        self.app = app
        self.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

    def session(self, session_id: str | None) -> object:
        return self.app.state.sessions.sessions[session_id]  # type: ignore[attr-defined]


@pytest.fixture
async def server(engine: Engine) -> AsyncIterator[Server]:
    app = create_app(CONFIG, engine=engine)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    yield Server(app, srv)
    srv.should_exit = True
    await task


@pytest.fixture(scope="module")
def voice(speech: SpeechEngine) -> np.ndarray:
    pcm = speech.synthesize("Where were you last night? I waited for hours.", VoiceSpec(variant="f2")).pcm
    return np.concatenate([np.zeros(SAMPLE_RATE_HZ // 2, np.int16), pcm])


async def viewer(server: Server, **extra: object) -> ScenePeer:
    peer = ScenePeer()
    response = await peer.connect(server.url, **extra)
    assert response.status_code == 200, response.text
    await peer.event("hello")
    await peer.wait_for(lambda: len(peer.video) >= 5)
    return peer


def openings(server: Server, peer: ScenePeer) -> dict[str, np.ndarray]:
    scene = server.session(peer.session_id).scene  # type: ignore[attr-defined]
    boxes = dict(zip(scene.view.names, scene.view.compositor.mouth_boxes(), strict=True))
    return {n: np.array([mouth_opening(f, b) for _, f in peer.video]) for n, b in boxes.items()}


def frame_energy(peer: ScenePeer) -> np.ndarray:
    """Received audio RMS per video frame, both tracks counted from their first pts."""
    v0, a0 = peer.video[0][0], peer.audio[0][0]
    n = len(peer.video)
    energy, count = np.zeros(n), np.zeros(n)
    for pts, samples in peer.audio:
        k = ((pts - a0) // SAMPLES_PER_FRAME) - 0
        if 0 <= k < n:
            energy[k] += float(np.mean((samples.astype(np.float32) / 32768) ** 2))
            count[k] += 1
    assert (peer.video[1][0] - v0) == TICKS_PER_FRAME
    return np.sqrt(energy / np.maximum(count, 1))


async def test_a_whip_publisher_drives_its_character_in_sync(server: Server, voice: np.ndarray) -> None:
    peer = await viewer(server)
    track = PcmTrack(voice)
    publisher = WhipPublisher(track)
    response = await publisher.publish(server.url, peer.session_id or "", "maya", secret=peer.secret)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/sdp")
    assert publisher.location and publisher.location.startswith(f"/whip/{peer.session_id}/")
    bound = await peer.event("input_bound")
    assert bound["character"] == "MAYA" and bound["kind"] == "whip" and bound["delay_ms"] <= 90
    await peer.wait_for(lambda: len(track.sent_at) * 960 > voice.shape[0] + 48_000, timeout=20)
    await publisher.stop(server.url)
    ended = await peer.event("input_ended")
    assert ended["reason"] == "deleted" and ended["stats"]["speech_frames"] > 20
    await peer.close()

    mouths = openings(server, peer)
    energy = frame_energy(peer)
    speaking = energy > 0.01
    assert speaking.sum() > 25, "the publisher's voice reached the viewer"
    maya, leo = mouths["MAYA"], mouths["LEO"]
    assert (maya[speaking] > 0).mean() > 0.4
    quiet = ~np.convolve(speaking, np.ones(9), mode="same").astype(bool)  # 160 ms away from any voice
    assert maya[quiet].max() == 0 and leo.max() == 0
    lags = lag_correlation(maya, energy, max_lag=4)
    best = max(lags, key=lambda k: lags[k])
    print(f"\nWHIP: mouth vs received voice r={lags[0]:.2f} at lag 0, best lag {best} frames")
    assert abs(best) <= 1 and lags[0] > 0.4


async def test_bad_ingest_gets_clear_errors_and_everything_goes_on(server: Server, voice: np.ndarray) -> None:
    peer = await viewer(server)
    other = await viewer(server)
    sid = peer.session_id
    server.app.state.sessions.audio_inputs.config = InputConfig(max_upload_bytes=200_000)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=server.url, timeout=20, headers=peer.credential) as http:
        r = await http.post("/whip/nope?character=MAYA", content=b"v=0", headers={"Content-Type": "application/sdp"})
        assert r.status_code == 404 and r.json()["error"] == "unknown_session"
        r = await http.post(f"/whip/{sid}?character=MAYA", json={"sdp": "x"})
        assert r.status_code == 415 and "application/sdp" in r.json()["message"]
        video_only = RTCPeerConnection()
        video_only.addTransceiver("video", direction="sendonly")
        await video_only.setLocalDescription(await video_only.createOffer())
        r = await http.post(f"/whip/{sid}?character=MAYA", content=video_only.localDescription.sdp.encode(), headers={"Content-Type": "application/sdp"})
        await video_only.close()
        assert r.status_code == 400 and r.json()["error"] == "no_audio" and "audio" in r.json()["message"]
        publisher = WhipPublisher(PcmTrack(voice))
        r = await publisher.publish(server.url, sid or "", "NOBODY", secret=peer.secret)
        await publisher.stop()
        assert r.status_code == 400 and r.json()["error"] == "unknown_character" and "NOBODY" in r.json()["message"]
        r = await http.post(f"/sessions/{sid}/inputs?character=LEO", content=b"definitely not audio" * 50)
        assert r.status_code == 400 and r.json()["error"] == "bad_audio"
        r = await http.post(f"/sessions/{sid}/inputs?character=LEO", content=b"\0" * 300_000)
        assert r.status_code == 413 and "200000" in r.json()["message"]
        r = await http.delete(f"/whip/{sid}/in999")
        assert r.status_code == 404
        # A good upload still works, and plays to its end.
        wav = io.BytesIO()
        with av.open(wav, mode="w", format="wav") as out:
            stream = out.add_stream("pcm_s16le", rate=16_000, layout="mono")
            frame = av.AudioFrame.from_ndarray(voice[::3].reshape(1, -1).copy(), format="s16", layout="mono")
            frame.sample_rate = 16_000
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        r = await http.post(f"/sessions/{sid}/inputs?character=LEO", content=wav.getvalue())
        assert r.status_code == 201, r.text
        assert r.json()["character"] == "LEO" and abs(r.json()["duration_s"] - voice.shape[0] / 48_000) < 0.05
    bound = await peer.event("input_bound")
    assert bound["kind"] == "file"
    ended = await peer.event("input_ended", timeout=20)
    assert ended["reason"] == "ended" and ended["stats"]["speech_frames"] > 10
    # Both sessions kept streaming throughout.
    for p in (peer, other):
        n = len(p.video)
        await p.wait_for(lambda p=p, n=n: len(p.video) > n + 5)
        await p.close()


async def test_the_pages_microphone_drives_a_character_on_request(server: Server, voice: np.ndarray) -> None:
    peer = ScenePeer()
    track = PcmTrack(np.concatenate([voice, voice]))
    audio = next(t for t in peer.pc.getTransceivers() if t.kind == "audio")
    audio.direction = "sendrecv"
    audio.sender.replaceTrack(track)
    assert (await peer.connect(server.url)).status_code == 200
    await peer.event("hello")
    peer.send({"type": "mic", "character": "nobody"})
    error = await peer.event("error")
    assert error["code"] == "unknown_character"
    peer.send({"type": "mic", "character": "leo"})
    bound = await peer.event("input_bound")
    assert bound["character"] == "LEO" and bound["kind"] == "mic"
    start = len(peer.video)
    await peer.wait_for(lambda: len(peer.video) > start + 75, timeout=20)
    peer.send({"type": "mic", "character": None})
    ended = await peer.event("input_ended")
    assert ended["character"] == "LEO"
    await peer.close()
    mouths = openings(server, peer)
    assert (mouths["LEO"][start:] > 0).mean() > 0.2 and mouths["MAYA"].max() == 0


async def test_whep_viewers_and_the_view_page(server: Server) -> None:
    peer = await viewer(server)
    sid = peer.session_id
    watcher = ScenePeer()
    await watcher.pc.setLocalDescription(await watcher.pc.createOffer())
    async with httpx.AsyncClient(base_url=server.url, timeout=20, headers=peer.credential) as http:
        r = await http.post(f"/whep/{sid}", params={"bg": "#00ff00"}, content=watcher.pc.localDescription.sdp.encode(), headers={"Content-Type": "application/sdp"})
        assert r.status_code == 201, r.text
        location = r.headers["location"]
        assert location.startswith(f"/whep/{sid}/")
        from aiortc import RTCSessionDescription

        await watcher.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        scene = await peer.event("scene")
        assert scene["set"] == "#00ff00"
        await watcher.wait_for(lambda: len(watcher.video) >= 10 and len(watcher.audio) >= 10)
        corner = watcher.video[-1][1]
        assert corner is not None and corner[2, 2, 1] > 200 and corner[2, 2, 0] < 60  # the chroma green
        assert (await http.delete(location)).status_code == 200
        n = len(peer.video)
        await peer.wait_for(lambda: len(peer.video) > n + 5)  # the session itself goes on
        # A WHEP viewer can also open a scene of its own; DELETE ends it.
        fresh = ScenePeer(keep_video=False)
        await fresh.pc.setLocalDescription(await fresh.pc.createOffer())
        r = await http.post("/whep", params={"cast": "IRIS"}, content=fresh.pc.localDescription.sdp.encode(), headers={"Content-Type": "application/sdp"})
        assert r.status_code == 201 and r.headers["location"].startswith("/whep/")
        new_id = r.headers["location"].split("?")[0].rsplit("/", 1)[1]
        assert server.session(new_id).scene.view.names == ("IRIS",)  # type: ignore[attr-defined]
        assert (await http.delete(r.headers["location"])).status_code == 200
        assert new_id not in server.app.state.sessions.sessions  # type: ignore[attr-defined]
        page = await http.get("/view", params={"session": sid, "bg": "#00ff00"})
        assert page.status_code == 200 and "autoplay" in page.text and "controls" not in page.text.split("<video")[1].split(">")[0]
        script = await http.get("/client/view.js")
        assert script.status_code == 200 and "/whep" in script.text
    await watcher.close()
    await fresh.close()
    await peer.close()


async def test_server_side_files_play_on_request_and_cannot_leave_their_folder(
    server: Server, voice: np.ndarray, tmp_path: object
) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    with av.open(str(folder / "line.wav"), mode="w") as out:
        stream = out.add_stream("pcm_s16le", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(voice.reshape(1, -1).copy(), format="s16", layout="mono")
        frame.sample_rate = 48_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    (folder.parent / "secret.wav").write_bytes((folder / "line.wav").read_bytes())
    server.app.state.sessions.audio_inputs.audio_dir = folder  # type: ignore[attr-defined]
    peer = await viewer(server)
    peer.send({"type": "play", "character": "LEO", "file": "../secret.wav"})
    assert (await peer.event("error"))["code"] == "unknown_file"
    peer.send({"type": "play", "character": "LEO", "file": "line.wav"})
    bound = await peer.event("input_bound")
    assert bound["kind"] == "file" and bound["character"] == "LEO"
    peer.send({"type": "play", "character": "LEO", "file": "line.wav"})
    busy = await peer.event("error", after=len(peer.events))
    assert busy["code"] == "busy" and "LEO" in busy["message"]
    peer.send({"type": "unbind", "character": "leo"})
    ended = await peer.event("input_ended")
    assert ended["reason"] == "unbound" and ended["kind"] == "file"
    peer.send({"type": "unbind", "character": "leo"})
    assert (await peer.event("error", after=len(peer.events)))["code"] == "not_bound"
    await peer.close()
