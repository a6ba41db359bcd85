"""Audio ingest over HTTP: WHIP publishers (RFC 9725) and uploaded audio files.

- ``POST /whip/{session_id}?character=NAME`` with an ``application/sdp`` offer holding audio:
  ``201 Created``, the answer (``application/sdp``) and a ``Location`` for the publisher. Video
  in the offer is declined (inactive). No trickle ICE: the answer carries every candidate, and
  ``PATCH`` answers 405.
- ``DELETE /whip/{session_id}/{input_id}``: the publisher is gone; its character stops.
- ``POST /sessions/{session_id}/inputs?character=NAME`` with an audio file as the body (wav,
  mp3, ogg/opus, m4a, ...): ``201`` with ``{"input_id", "character", "duration_s"}``.

Errors are JSON ``{"error": code, "message": ...}``: 400 (bad offer, no audio, unknown character,
undecodable audio), 401, 404 (session, publisher), 409 (character busy, scene full), 413 (too
large), 415 (not SDP), 503 (live audio unavailable). Each leaves other inputs and sessions alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stream.errors import ClientError
from stream.live.ice import keep_loopback_candidates
from stream.live.inputs.bindings import SessionInputs
from stream.web.auth import Handler, token_guard

logger = logging.getLogger(__name__)

_STATUS = {
    "unknown_character": 400, "bad_audio": 400, "no_audio": 400, "bad_offer": 400, "too_long": 400,
    "busy": 409, "scene_full": 409, "too_many_inputs": 409, "too_large": 413,
    "audio_unavailable": 503, "session_closed": 404,
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _client_error(exc: ClientError) -> JSONResponse:
    return _error(_STATUS.get(exc.code, 400), exc.code, str(exc))


def _session_inputs(request: Request) -> SessionInputs | JSONResponse:
    session = request.app.state.sessions.sessions.get(request.path_params["session_id"])
    if session is None:
        return _error(404, "unknown_session", f"no session {request.path_params['session_id']!r}")
    inputs: SessionInputs | None = getattr(session, "inputs", None)
    if inputs is None:
        return _error(503, "audio_unavailable", "this server takes no live audio inputs")
    return inputs


async def _body(request: Request, *, max_bytes: int, what: str) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ClientError("too_large", f"the {what} is {declared} bytes; the limit is {max_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ClientError("too_large", f"the {what} is over the limit of {max_bytes} bytes")
    return bytes(body)


def _character(request: Request) -> str:
    name = request.query_params.get("character") or request.headers.get("x-talkie-character") or ""
    if not name.strip():
        raise ClientError("unknown_character", "name the character to drive: ?character=NAME")
    return name


async def whip_publish(request: Request) -> Response:
    inputs = _session_inputs(request)
    if isinstance(inputs, JSONResponse):
        return inputs
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        return _error(415, "not_sdp", f"a WHIP offer is application/sdp, not {content_type or 'nothing'!r}")
    config = request.app.state.config
    pc = RTCPeerConnection()
    handed_over = False
    try:
        character = inputs.character(_character(request))
        sdp = (await _body(request, max_bytes=config.max_sdp_bytes, what="SDP offer")).decode("utf-8", "replace")
        if config.is_loopback:
            sdp = keep_loopback_candidates(sdp)
        tracks: list[MediaStreamTrack] = []
        pc.on("track", lambda track: tracks.append(track) if track.kind == "audio" else None)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except ValueError as exc:
            raise ClientError("bad_offer", f"the SDP offer is not valid: {exc}") from None
        if not tracks:
            raise ClientError("no_audio", "the WHIP offer sends no audio; publish an audio track")
        for transceiver in pc.getTransceivers():
            if transceiver.kind != "audio":
                transceiver.direction = "inactive"
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription.sdp
        source = await inputs.add_publisher(pc, tracks[0], character)
        handed_over = True  # the session's inputs close it from here
    except ClientError as exc:
        return _client_error(exc)
    finally:
        if not handed_over:
            await pc.close()
    return Response(
        answer, status_code=201, media_type="application/sdp",
        headers={"Location": f"/whip/{inputs.session_id}/{source.id}"},
    )


async def whip_end(request: Request) -> Response:
    inputs = _session_inputs(request)
    if isinstance(inputs, JSONResponse):
        return inputs
    input_id = request.path_params["input_id"]
    source = inputs.inputs.get(input_id)
    if source is None or source.kind != "whip":
        return _error(404, "unknown_publisher", f"no WHIP publisher {input_id!r} in this session")
    await inputs.remove(input_id, reason="deleted")
    return Response(status_code=200)


async def upload(request: Request) -> Response:
    inputs = _session_inputs(request)
    if isinstance(inputs, JSONResponse):
        return inputs
    try:
        character = inputs.character(_character(request))
        data = await _body(request, max_bytes=inputs.hub.config.max_upload_bytes, what="upload")
        if not data:
            raise ClientError("bad_audio", "the upload is empty; send an audio file as the body")
        player, duration_s = await inputs.play(data, character, name="the upload")
    except ClientError as exc:
        return _client_error(exc)
    return JSONResponse(
        {"input_id": player.id, "character": player.character, "duration_s": round(duration_s, 3)},
        status_code=201,
    )


def whip_routes(*, authorised: Callable[[HTTPConnection], bool]) -> list[Route]:
    """The ingest routes, each behind ``authorised`` (the app's token check)."""

    def guard(handler: Handler) -> Handler:
        return token_guard(handler, authorised=authorised)

    return [
        Route("/whip/{session_id}", guard(whip_publish), methods=["POST"]),
        Route("/whip/{session_id}/{input_id}", guard(whip_end), methods=["DELETE"]),
        Route("/sessions/{session_id}/inputs", guard(upload), methods=["POST"]),
    ]
