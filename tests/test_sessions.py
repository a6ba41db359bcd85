"""Sessions end when their peer never connects, their control needs their secret, and a stock
aiortc client on this machine connects to a loopback server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
import websockets
from aiortc import RTCPeerConnection
from support import start_server

from stream.live.config import ServerConfig
from stream.live.engine import Engine
from stream.tools.client import ScenePeer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HERE = Path(__file__).resolve().parent


async def silent_offer() -> tuple[RTCPeerConnection, dict[str, str]]:
    """An offer from a peer that never arrives: no candidates, and it never takes the answer,
    so the server's ICE waits (as for trickled candidates) and never connects nor fails."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = "\r\n".join(ln for ln in pc.localDescription.sdp.splitlines() if not ln.startswith("a=candidate:"))
    return pc, {"sdp": sdp + "\r\n", "type": "offer"}


async def test_offers_that_never_connect_expire_and_free_their_places(engine: Engine, tmp_path: Path) -> None:
    # The bound outlasts making 8 sessions (~0.5 s each here), so all 8 are there at the 9th offer.
    config = ServerConfig(data_dir=tmp_path / "data", max_sessions=8, connect_timeout_s=8.0)
    app, url, stop = await start_server(config, engine)
    peers: list[RTCPeerConnection] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            for _ in range(8):
                pc, body = await silent_offer()
                peers.append(pc)
                assert (await http.post("/offer", json=body)).status_code == 200
            pc, body = await silent_offer()
            peers.append(pc)
            full = await http.post("/offer", json=body)
            assert full.status_code == 503 and full.json()["error"] == "session_limit"
            for _ in range(200):  # the bound, plus a margin for a loaded machine
                if not app.state.sessions.sessions:
                    break
                await asyncio.sleep(0.1)
            assert app.state.sessions.sessions == {}
            assert (await http.post("/offer", json=body)).status_code == 200
    finally:
        for pc in peers:
            await pc.close()
        await stop()


async def test_driving_or_ending_a_session_needs_its_secret(engine: Engine, tmp_path: Path) -> None:
    app, url, stop = await start_server(ServerConfig(data_dir=tmp_path / "data"), engine)
    ws_url = url.replace("http", "ws", 1)
    peer = ScenePeer(keep_video=False)
    try:
        answer = await peer.connect(url)
        assert answer.status_code == 200 and len(answer.json()["secret"]) >= 20
        await peer.event("hello")
        sid = peer.session_id
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            listed = (await http.get("/api/sessions")).json()["sessions"]
            assert [s["session_id"] for s in listed] == [sid]  # the id is public; it is not enough
            for request in (
                http.delete(f"/sessions/{sid}"),
                http.delete(f"/sessions/{sid}", headers={"X-Talkie-Secret": "guess"}),
                http.post(f"/api/sessions/{sid}/record", json={"scene_id": "sc_x"}),
                http.delete(f"/api/sessions/{sid}/record"),
            ):
                refused = await request
                assert refused.status_code == 403 and refused.json()["error"] == "bad_secret", refused.text
            for query in ("", "?secret=guess"):
                with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                    async with websockets.connect(f"{ws_url}/ws/{sid}{query}") as ws:
                        await ws.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 4403
            async with websockets.connect(f"{ws_url}/ws/{sid}?secret={peer.secret}") as ws:
                assert json.loads(await ws.recv())["type"] == "hello"
                await ws.send(json.dumps({"type": "ping"}))
                while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "pong":
                    pass
            assert sid in app.state.sessions.sessions  # nothing refused above touched it
            assert (await http.delete(f"/sessions/{sid}", headers=peer.credential)).status_code == 204
            assert sid not in app.state.sessions.sessions
    finally:
        await peer.close()
        await stop()


async def test_a_stock_aiortc_client_connects_to_a_loopback_server(engine: Engine, tmp_path: Path) -> None:
    # The client runs in its own process: this one's aioice is patched to gather loopback only.
    app, url, stop = await start_server(ServerConfig(data_dir=tmp_path / "data"), engine)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "stock_client.py"), url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, err.decode()[-2000:]
        report = json.loads(out.decode().strip().splitlines()[-1])
        assert report["frames"] == 10 and report["state"] == "connected", report
        assert report["pts"] == [0, 3600, 7200]  # frames in order, one frame of 90 kHz apart
    finally:
        await stop()
