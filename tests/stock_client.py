"""A stock aiortc client, run in a process of its own (no patches: it gathers the host
candidates of this machine's interfaces, never loopback), connecting to a talkie server.

Prints one JSON line: how many video frames arrived, their first pts and the connection state.
Usage: python tests/stock_client.py http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription


async def main(url: str) -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    frames: list[int] = []
    done = asyncio.Event()

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def pump() -> None:
            while len(frames) < 10:
                f = await track.recv()
                if track.kind == "video":
                    frames.append(f.pts)
            done.set()

        if track.kind == "video":
            asyncio.ensure_future(pump())
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient() as http:
        r = await http.post(url + "/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"})
    r.raise_for_status()
    ans = r.json()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=ans["sdp"], type=ans["type"]))
    try:
        await asyncio.wait_for(done.wait(), 20)
        print(json.dumps({"frames": len(frames), "pts": frames[:3], "state": pc.connectionState}))
    except TimeoutError:
        print(json.dumps({"frames": len(frames), "state": pc.connectionState, "ice": pc.iceConnectionState}))
    await pc.close()

if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
