"""A Python client for talkie: an aiortc peer that receives the scene and speaks the protocol.

Used by the tests and ``talkie bench stream``, and handy for scripting a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class ScenePeer:
    """Connects to ``POST /offer``, keeps every decoded frame with its pts, and collects events."""

    def __init__(self, *, keep_video: bool = True) -> None:
        self.pc = RTCPeerConnection()
        self.video: list[tuple[int, np.ndarray | None]] = []
        self.audio: list[tuple[int, np.ndarray]] = []
        self.events: list[dict[str, Any]] = []
        self.session_id: str | None = None
        self.secret: str | None = None  # the session's credential, for routes that drive or end it
        self._keep_video = keep_video
        self._event_arrived = asyncio.Event()
        self._pumps: list[asyncio.Task[None]] = []
        self.channel = self.pc.createDataChannel("control")
        self.channel.on("message", self._on_message)
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.on("track", self._on_track)

    def _on_message(self, message: str | bytes) -> None:
        self.events.append(json.loads(message))
        self._event_arrived.set()

    def _on_track(self, track: Any) -> None:
        self._pumps.append(asyncio.ensure_future(self._pump(track)))

    async def _pump(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    pixels = frame.to_ndarray(format="rgb24") if self._keep_video else None
                    self.video.append((frame.pts, pixels))
                else:
                    samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                    self.audio.append((frame.pts, samples.copy()))

    async def connect(self, base_url: str, *, token: str | None = None, **extra: Any) -> httpx.Response:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type, **extra}
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
            response = await http.post("/offer", json=body, headers=headers)
        if response.status_code == 200:
            answer = response.json()
            self.session_id = answer["session_id"]
            self.secret = answer["secret"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        return response

    @property
    def credential(self) -> dict[str, str]:
        """The header that proves this peer's session is its own (``X-Talkie-Secret``)."""
        return {"X-Talkie-Secret": self.secret} if self.secret else {}

    def send(self, message: dict[str, Any]) -> None:
        self.channel.send(json.dumps(message))

    async def event(self, kind: str, *, timeout: float = 15.0, after: int = 0) -> dict[str, Any]:
        """The first event of type ``kind`` (from index ``after`` on), waiting for it."""
        async def find() -> dict[str, Any]:
            while True:
                for event in self.events[after:]:
                    if event["type"] == kind:
                        return event
                self._event_arrived.clear()
                await self._event_arrived.wait()

        return await asyncio.wait_for(find(), timeout)

    async def wait_for(self, predicate: Any, *, timeout: float = 15.0) -> None:
        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), timeout)

    async def close(self) -> None:
        await self.pc.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
