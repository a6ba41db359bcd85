"""Streamer output: WHEP (RFC 9725's egress twin) for the scene, and the bare ``/view`` page.

- ``POST /whep`` (``application/sdp``; optional ``?cast=MAYA,LEO&set=%2300ff00``): a new scene
  session whose peer connection is this viewer. ``201``, answer, ``Location: /whep/{session_id}``.
  ``DELETE`` there ends the session.
- ``POST /whep/{session_id}`` (optional ``?set=...``): one more viewer of an existing session
  (the streamer drives it from the page; OBS shows it). ``201``, ``Location:
  /whep/{session_id}/{viewer_id}``; ``DELETE`` there ends this viewer only.
- ``GET /view?session=ID&bg=%2300ff00``: a page for an OBS browser source: the stream, full
  window, autoplaying, no controls; ``bg`` turns the set into that solid colour to key out.

A viewer of an existing session gets exactly the frames the session streams (same pixels, same
pts): its tracks are fed copies by a media tap on the session, nothing is rendered twice. Its
queues hold 200 ms of video and audio; a viewer that falls behind loses the oldest frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from avatar.sets import check_set_name
from stream.errors import ClientError
from stream.live.ice import keep_loopback_candidates
from stream.live.scene import SceneError
from stream.live.session import OfferError, Session, SessionLimitError, SessionManager
from stream.web.auth import Handler, token_guard

logger = logging.getLogger(__name__)

VIEW_PAGE = Path(__file__).resolve().parents[2] / "client_demo" / "view.html"
QUEUE_FRAMES = {"video": 5, "audio": 10}  # 200 ms each


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


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

    def event(self, event: dict[str, Any]) -> None:
        pass

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.session.media.taps.remove(self)
        self.video_track.stop()
        self.audio_track.stop()
        await self.pc.close()


class WhepViewers:
    """Every extra viewer of the server (``app.state.whep``), closed with it."""

    def __init__(self) -> None:
        self.viewers: dict[str, Viewer] = {}
        self._ids = itertools.count(1)

    async def add(self, session: Session, sdp: str, *, loopback: bool) -> tuple[Viewer, str]:
        pc = RTCPeerConnection()
        viewer = Viewer(f"v{next(self._ids)}", session, pc)
        try:
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=keep_loopback_candidates(sdp) if loopback else sdp, type="offer")
            )
            kinds = {t.kind for t in pc.getTransceivers()}
            if "video" not in kinds:
                raise OfferError("the offer has no video; add a recvonly video transceiver")
            pc.addTrack(viewer.video_track)
            if "audio" in kinds:
                pc.addTrack(viewer.audio_track)
            await pc.setLocalDescription(await pc.createAnswer())
        except ValueError as exc:
            await pc.close()
            raise OfferError(f"the SDP offer cannot be answered: {exc}") from None
        self.viewers[viewer.id] = viewer
        session.media.taps.append(viewer)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.remove(viewer.id)

        assert pc.localDescription is not None
        return viewer, pc.localDescription.sdp

    async def remove(self, viewer_id: str) -> bool:
        viewer = self.viewers.pop(viewer_id, None)
        if viewer is None:
            return False
        await viewer.close()
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(self.remove(v) for v in list(self.viewers)))


async def _sdp_body(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        raise ClientError("not_sdp", f"a WHEP offer is application/sdp, not {content_type or 'nothing'!r}")
    limit = request.app.state.config.max_sdp_bytes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ClientError("too_large", f"the SDP offer is over the limit of {limit} bytes")
    return bytes(body).decode("utf-8", "replace")


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
    try:
        sdp = await _sdp_body(request)
        cast = [n for n in request.query_params.get("cast", "").split(",") if n.strip()] or None
        session, answer = await manager.create(sdp=sdp, type_="offer", cast=cast, set_name=_set_name(request))
    except SessionLimitError as exc:
        return _error(503, "session_limit", str(exc))
    except (OfferError, SceneError) as exc:
        return _error(400, getattr(exc, "code", "bad_offer"), str(exc))
    except ClientError as exc:
        return _error(415 if exc.code == "not_sdp" else 400, exc.code, str(exc))
    return _sdp_response(answer.sdp, f"/whep/{session.id}")


async def whep_view(request: Request) -> Response:
    session: Session | None = request.app.state.sessions.sessions.get(request.path_params["session_id"])
    if session is None or session.closed:
        return _error(404, "unknown_session", f"no session {request.path_params['session_id']!r}")
    try:
        sdp = await _sdp_body(request)
        set_name = _set_name(request)
        viewer, answer = await request.app.state.whep.add(session, sdp, loopback=request.app.state.config.is_loopback)
    except OfferError as exc:
        return _error(400, "bad_offer", str(exc))
    except ClientError as exc:
        return _error(415 if exc.code == "not_sdp" else 400, exc.code, str(exc))
    if set_name is not None and set_name != session.scene.view.set_name:
        await session.handle(json.dumps({"type": "scene", "set": set_name}))  # announced like any change
    return _sdp_response(answer, f"/whep/{session.id}/{viewer.id}")


async def whep_end_session(request: Request) -> Response:
    if not await request.app.state.sessions.close(request.path_params["session_id"]):
        return _error(404, "unknown_session", f"no session {request.path_params['session_id']!r}")
    return Response(status_code=200)


async def whep_end_viewer(request: Request) -> Response:
    viewer = request.app.state.whep.viewers.get(request.path_params["viewer_id"])
    if viewer is None or viewer.session.id != request.path_params["session_id"]:
        return _error(404, "unknown_viewer", f"no viewer {request.path_params['viewer_id']!r} of this session")
    await request.app.state.whep.remove(viewer.id)
    return Response(status_code=200)


async def view_page(request: Request) -> Response:
    return FileResponse(VIEW_PAGE)


def whep_routes(*, authorised: Callable[[HTTPConnection], bool]) -> list[Route]:
    """The WHEP routes behind ``authorised``, and the public ``/view`` page (it passes its
    ``?token=`` on, like the demo page)."""

    def guard(handler: Handler) -> Handler:
        return token_guard(handler, authorised=authorised)

    return [
        Route("/whep", guard(whep_new), methods=["POST"]),
        Route("/whep/{session_id}", guard(whep_view), methods=["POST"]),
        Route("/whep/{session_id}", guard(whep_end_session), methods=["DELETE"]),
        Route("/whep/{session_id}/{viewer_id}", guard(whep_end_viewer), methods=["DELETE"]),
        Route("/view", view_page),
    ]
