"""Streamer output: WHEP (RFC 9725's egress twin) for the scene, and the bare ``/view`` page.

- ``POST /whep`` (``application/sdp``; optional ``?cast=MAYA,LEO&set=%2300ff00``): a new scene
  session whose peer connection is this viewer. ``201``, answer, ``Location:
  /whep/{session_id}?secret=...``. ``DELETE`` there ends the session (only sessions made here).
- ``POST /whep/{session_id}`` with the session's secret (optional ``?set=...``): one more viewer
  of an existing session (the streamer drives it from the page; OBS shows it). ``201``,
  ``Location: /whep/{session_id}/{viewer_id}?secret=...``; ``DELETE`` there ends this viewer only.
- ``GET /view?session=ID&secret=SECRET&bg=%2300ff00``: a page for an OBS browser source: the
  stream, full window, autoplaying, no controls; ``bg`` turns the set into that solid colour.

A viewer that has not connected within the server's bounds, or stays disconnected, is removed.

A viewer of an existing session gets exactly the frames the session streams (same pixels, same
pts): its tracks are fed copies by a media tap on the session, nothing is rendered twice. Its
queues hold 200 ms of video and audio; a viewer that falls behind loses the oldest frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

import av
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from avatar.sets import check_set_name
from stream.errors import ClientError
from stream.live.expiry import ConnectionBounds, ConnectionWatch
from stream.live.offers import answer_viewer
from stream.live.session import Session
from stream.live.sessions import SessionManager
from stream.web.auth import require_session, token_guard
from stream.web.errors import read_sdp

logger = logging.getLogger(__name__)

VIEW_PAGE = Path(__file__).resolve().parents[2] / "client_demo" / "view.html"
QUEUE_FRAMES = {"video": 5, "audio": 10}  # 200 ms each


class TapTrack(MediaStreamTrack):
    """Frames a session streams, handed on to one more peer connection (bounded, drop oldest)."""

    def __init__(self, kind: str, session: Session) -> None:
        super().__init__()
        self.kind = kind
        self._session = session
        self._queue: asyncio.Queue[av.VideoFrame | av.AudioFrame] = asyncio.Queue(maxsize=QUEUE_FRAMES[kind])
        self.dropped = 0

    def put(self, frame: av.VideoFrame | av.AudioFrame) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(frame)

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        while self.readyState == "live" and not self._session.closed:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(self._queue.get(), timeout=0.5)
        raise MediaStreamError


class Viewer:
    """One extra viewer of a session: a media tap feeding two tap tracks into its own peer connection."""

    def __init__(self, viewer_id: str, session: Session, pc: RTCPeerConnection) -> None:
        self.id = viewer_id
        self.session = session
        self.pc = pc
        self.video_track = TapTrack("video", session)
        self.audio_track = TapTrack("audio", session)
        self.untap: Callable[[], None] = lambda: None  # set once the viewer is added to the session

    # MediaTap: called on the event loop for every frame the session streams, before the
    # session's own encoder sees it. Each viewer encodes a copy: two encoder threads must not
    # share a frame (PyAV caches one swscale context per frame for ``reformat``).
    def video(self, frame: av.VideoFrame) -> None:
        copy = av.VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)
        copy.pts, copy.time_base = frame.pts, frame.time_base
        self.video_track.put(copy)

    def audio(self, frame: av.AudioFrame) -> None:
        copy = av.AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name)
        copy.sample_rate, copy.pts, copy.time_base = frame.sample_rate, frame.pts, frame.time_base
        self.audio_track.put(copy)

    def line_started(self, line_id: str, speaker: str, text: str, sample: int) -> None:
        pass  # the session's own channels carry the events

    def line_ended(self, line_id: str, sample: int, *, interrupted: bool) -> None:
        pass

    async def close(self) -> None:
        self.untap()
        self.video_track.stop()
        self.audio_track.stop()
        await self.pc.close()


class WhepViewers:
    """Every extra viewer of the server (``app.state.whep``), closed with it."""

    def __init__(self, *, bounds: ConnectionBounds | None = None) -> None:
        self.viewers: dict[str, Viewer] = {}
        self.bounds = bounds or ConnectionBounds()  # a viewer not connected by then is removed
        self._watches: dict[str, ConnectionWatch] = {}

    async def add(self, session: Session, sdp: str, *, loopback: bool) -> tuple[Viewer, str]:
        pc = RTCPeerConnection()
        viewer = Viewer(f"v{secrets.token_hex(6)}", session, pc)
        try:
            answer = await answer_viewer(
                pc, sdp, video=viewer.video_track, audio=viewer.audio_track, local_only=loopback
            )
        except BaseException:
            await pc.close()
            raise
        self.viewers[viewer.id] = viewer
        viewer.untap = session.add_tap(viewer)
        self._watches[viewer.id] = ConnectionWatch(
            pc, bounds=self.bounds, on_end=lambda _: self.remove(viewer.id),
            label=f"session {session.id}: WHEP viewer {viewer.id}",
        )
        return viewer, answer.sdp

    async def remove(self, viewer_id: str) -> bool:
        viewer = self.viewers.pop(viewer_id, None)
        if viewer is None:
            return False
        watch = self._watches.pop(viewer_id, None)
        if watch is not None:
            watch.stop()
        await viewer.close()
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(self.remove(v) for v in list(self.viewers)))


async def _sdp_body(request: Request) -> str:
    return await read_sdp(request, max_bytes=request.app.state.config.max_sdp_bytes, what="WHEP offer")


def _set_name(request: Request) -> str | None:
    name = request.query_params.get("set") or request.query_params.get("bg")
    if name is None:
        return None
    try:
        check_set_name(name)
    except ValueError as exc:
        raise ClientError("bad_scene", str(exc)) from None
    return name


def _sdp_response(sdp: str, location: str) -> Response:
    return Response(sdp, status_code=201, media_type="application/sdp", headers={"Location": location})


async def whep_new(request: Request) -> Response:
    manager: SessionManager = request.app.state.sessions
    sdp = await _sdp_body(request)
    cast = [n for n in request.query_params.get("cast", "").split(",") if n.strip()] or None
    session, answer = await manager.create(
        sdp=sdp, type_="offer", cast=cast, set_name=_set_name(request), via="whep"
    )
    # The resource URL carries the session's secret: a WHEP client DELETEs exactly this URL.
    return _sdp_response(answer.sdp, f"/whep/{session.id}?secret={session.secret}")


async def whep_view(request: Request) -> Response:
    session = require_session(request)
    sdp = await _sdp_body(request)
    set_name = _set_name(request)
    viewer, answer = await request.app.state.whep.add(session, sdp, loopback=request.app.state.config.is_loopback)
    if set_name is not None and set_name != session.scene.view.set_name:
        await session.handle(json.dumps({"type": "scene", "set": set_name}))  # announced like any change
    return _sdp_response(answer, f"/whep/{session.id}/{viewer.id}?secret={session.secret}")


async def whep_end_session(request: Request) -> Response:
    session = require_session(request)
    if session.via != "whep":  # a session made with /offer is ended by its own page
        raise ClientError("unknown_session", f"session {session.id} is not a WHEP resource", http_status=404)
    await request.app.state.sessions.close(session.id)
    return Response(status_code=200)


async def whep_end_viewer(request: Request) -> Response:
    require_session(request)
    viewer_id = request.path_params["viewer_id"]
    viewer = request.app.state.whep.viewers.get(viewer_id)
    if viewer is None or viewer.session.id != request.path_params["session_id"]:
        raise ClientError("unknown_viewer", f"no viewer {viewer_id!r} of this session", http_status=404)
    await request.app.state.whep.remove(viewer.id)
    return Response(status_code=200)


async def view_page(request: Request) -> Response:
    return FileResponse(VIEW_PAGE)


def whep_routes() -> list[Route]:
    """The WHEP routes behind the access token, and the public ``/view`` page (it passes its
    ``?token=`` on, like the demo page)."""
    return [
        Route("/whep", token_guard(whep_new), methods=["POST"]),
        Route("/whep/{session_id}", token_guard(whep_view), methods=["POST"]),
        Route("/whep/{session_id}", token_guard(whep_end_session), methods=["DELETE"]),
        Route("/whep/{session_id}/{viewer_id}", token_guard(whep_end_viewer), methods=["DELETE"]),
        Route("/view", view_page),
    ]
