"""The Starlette app: the studio page, WebRTC signalling, the control WebSocket and a small API.

State (the engine and the sessions) lives in the lifespan and ``app.state``, never in module
globals. When a token is configured, every route except the page and its static files needs
it, as ``Authorization: Bearer TOKEN`` or ``?token=TOKEN``. Routes raise ``ClientError``; one
handler (``stream.web.errors``) answers them all as ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from stream.errors import ClientError, OfferError
from stream.export.jobs import ExportJobs
from stream.live.config import ServerConfig
from stream.live.control import check_cast, check_set
from stream.live.engine import Engine
from stream.live.ice import use_loopback_candidates
from stream.live.inputs.bindings import InputHub
from stream.live.sessions import SessionManager
from stream.record.recorder import Recordings
from stream.store import Store
from stream.web.api import api_routes
from stream.web.auth import authorised, holds_secret, require_session, token_guard
from stream.web.errors import client_error_response, read_json
from stream.web.openapi import openapi_route
from stream.web.origin import OriginGuard
from stream.web.studio import scene_play
from stream.web.whep import WhepViewers, whep_routes
from stream.web.whip import whip_routes

logger = logging.getLogger(__name__)

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client_demo"


async def index(request: Request) -> Response:
    return FileResponse(CLIENT_DIR / "index.html")


def _offer_fields(data: dict[str, Any]) -> tuple[str, str, list[str] | None, str | None, str | None]:
    """``sdp``, ``type``, ``cast``, ``set`` and ``scene_id`` of an offer body, each checked."""
    sdp, type_ = data.get("sdp"), data.get("type")
    if not isinstance(sdp, str) or not isinstance(type_, str):
        raise OfferError("the body needs string fields 'sdp' and 'type'")
    try:  # the same checks as the control protocol's ``scene`` message
        cast, set_name = check_cast(data.get("cast")), check_set(data.get("set"))
    except ClientError as exc:
        raise OfferError(str(exc)) from None
    scene_id = data.get("scene_id")
    if scene_id is not None and not isinstance(scene_id, str):
        raise OfferError("'scene_id' must be a scene id string such as sc_0123456789abcdef")
    return sdp, type_, cast, set_name, scene_id


async def offer(request: Request) -> Response:
    manager: SessionManager = request.app.state.sessions
    config: ServerConfig = request.app.state.config
    try:
        data = await read_json(request, max_bytes=config.max_sdp_bytes, what="request body")
    except ClientError as exc:
        # /offer's contract: any unusable body, even an oversized one, is a 400 ``bad_offer``
        # (where the store API says 413 ``too_large`` or ``bad_json``).
        raise OfferError(str(exc)) from None
    sdp, type_, cast, set_name, scene_id = _offer_fields(data)
    body: dict[str, Any] = {}
    characters = None
    if scene_id is not None:
        # A scene of a series plays the series: its cast (PNG art and photos included) and set,
        # so a take can always be recorded into it.
        play = await asyncio.to_thread(
            scene_play, request.app.state.store, scene_id, default_names=cast or ["MAYA", "LEO"]
        )
        characters, cast, set_name = play.cast, cast or play.names, set_name or play.set_name
        body = {"scene_id": scene_id, "series_id": play.series_id}
    session, answer = await manager.create(
        sdp=sdp, type_=type_, cast=cast, set_name=set_name, characters=characters
    )
    return JSONResponse(
        {"sdp": answer.sdp, "type": answer.type, "session_id": session.id, "secret": session.secret, **body}
    )


async def delete_session(request: Request) -> Response:
    session = require_session(request)
    await request.app.state.sessions.close(session.id)
    return Response(status_code=204)


async def list_sessions(request: Request) -> Response:
    manager: SessionManager = request.app.state.sessions
    return JSONResponse({"sessions": [s.stats() for s in manager.sessions.values()]})


async def health(request: Request) -> Response:
    manager: SessionManager = request.app.state.sessions
    body: dict[str, Any] = {"ok": True, "sessions": len(manager.sessions)}
    if manager.engine.faces is not None:
        body["neural"] = manager.engine.faces.stats()
    body["video_mouths"] = manager.engine.video_mouths.stats()
    return JSONResponse(body)


async def control_socket(websocket: WebSocket) -> None:
    # Accept first so a refusal carries its code and reason (closing before accept is a bare 403).
    await websocket.accept()
    if not authorised(websocket):
        await websocket.close(code=4401, reason="a valid access token is required")
        return
    manager: SessionManager = websocket.app.state.sessions
    session = manager.sessions.get(websocket.path_params["session_id"])
    if session is None or session.closed:
        await websocket.close(code=4404, reason="unknown session")
        return
    if not holds_secret(websocket, session):
        await websocket.close(code=4403, reason="this session's secret is required: ?secret=SECRET")
        return
    detach = session.attach(websocket.send_text)
    session.emit(session.hello())
    try:
        while not session.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text, data = message.get("text"), message.get("bytes")
            await session.handle(text if text is not None else (data or b""), session.limiter)
    except WebSocketDisconnect:
        pass
    finally:
        detach()


def create_app(config: ServerConfig, *, engine: Engine | None = None) -> Starlette:
    """The app for ``config``; pass an ``engine`` to share one (tests do)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = engine is None
        if config.is_loopback:
            use_loopback_candidates()
        # The episode store: opened (migrated, crash-recovered) before anything can record.
        store = await asyncio.to_thread(Store.open, config.data_dir)
        eng = engine or Engine(config)
        if own and config.live.voice == "natural":  # the model loads now (seconds), not on the first line
            await asyncio.to_thread(eng.speech.warm_up)
        app.state.config = config
        app.state.engine = eng
        app.state.sessions = SessionManager(eng, config)
        app.state.store = store
        app.state.recordings = app.state.sessions.recordings = Recordings(store)
        app.state.exports = ExportJobs(store)
        # Live audio inputs (mic, WHIP, files): their models load once here.
        app.state.sessions.audio_inputs = await asyncio.to_thread(
            InputHub.load, cast=eng.cast, audio_dir=config.data_dir / "audio"
        )
        app.state.whep = WhepViewers(bounds=config.connection_bounds)
        app.state.playback_locks = {}  # take id -> the lock of its playback file being made
        try:
            yield
        finally:
            await app.state.whep.close_all()
            await app.state.sessions.close_all()
            app.state.sessions.audio_inputs.close()
            await app.state.recordings.stop_all()
            await asyncio.to_thread(app.state.exports.close)
            store.close()
            if own:
                eng.close()

    routes = [
        Route("/", index),
        Route("/offer", token_guard(offer), methods=["POST"]),
        Route("/sessions/{session_id}", token_guard(delete_session), methods=["DELETE"]),
        Route("/api/sessions", token_guard(list_sessions)),
        Route("/api/health", health),
        WebSocketRoute("/ws/{session_id}", control_socket),
        openapi_route(),
        *api_routes(),
        *whip_routes(),
        *whep_routes(),
        Mount("/client", app=StaticFiles(directory=CLIENT_DIR), name="client"),
    ]
    # Starlette finds a handler along the exception's MRO: every ClientError subclass lands here.
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={ClientError: client_error_response},
        # Outermost: a foreign Host or Origin is refused before any route, token or body is read.
        middleware=[Middleware(OriginGuard, config=config)],
    )
