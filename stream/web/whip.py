"""Audio ingest over HTTP: WHIP publishers (RFC 9725) and uploaded audio files.

Every route here drives one session, so it needs the session's secret (``X-Talkie-Secret`` or
``?secret=``) besides the server's token; the ``Location`` a publisher gets carries it.

- ``POST /whip/{session_id}?character=NAME`` with an ``application/sdp`` offer holding audio:
  ``201 Created``, the answer (``application/sdp``) and a ``Location`` for the publisher. Video
  in the offer is declined (inactive). No trickle ICE: the answer carries every candidate, and
  ``PATCH`` answers 405.
- ``DELETE /whip/{session_id}/{input_id}``: the publisher is gone; its character stops.
- ``POST /sessions/{session_id}/inputs?character=NAME`` with an audio file as the body (wav,
  mp3, ogg/opus, m4a, ...): ``201`` with ``{"input_id", "character", "duration_s"}``.

Errors are JSON ``{"error": code, "message": ...}``: 400 (bad offer, no audio, unknown character,
undecodable audio), 401, 403 (no secret), 404 (session, publisher), 409 (character busy, scene full), 413 (too
large), 415 (not SDP), 503 (live audio unavailable); each raise site carries its status and the
app's one handler answers. Each leaves other inputs and sessions alone.
"""

from __future__ import annotations

import logging

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stream.errors import ClientError, OfferError
from stream.live.inputs.bindings import SessionInputs
from stream.live.offers import make_answer, set_remote_offer
from stream.live.session import Session
from stream.web.auth import require_session, token_guard
from stream.web.errors import read_body, read_sdp

logger = logging.getLogger(__name__)


def _session_inputs(request: Request) -> tuple[Session, SessionInputs]:
    """The session named by the path (for a caller holding its secret) and its inputs."""
    session = require_session(request)
    if session.inputs is None:
        raise ClientError("audio_unavailable", "this server takes no live audio inputs", http_status=503)
    return session, session.inputs


def _character(request: Request) -> str:
    name = request.query_params.get("character") or request.headers.get("x-talkie-character") or ""
    if not name.strip():
        raise ClientError("unknown_character", "name the character to drive: ?character=NAME")
    return name


async def whip_publish(request: Request) -> Response:
    session, inputs = _session_inputs(request)
    config = request.app.state.config
    sdp = await read_sdp(request, max_bytes=config.max_sdp_bytes, what="WHIP offer")
    character = inputs.character(_character(request))
    pc = RTCPeerConnection()
    handed_over = False
    try:
        tracks: list[MediaStreamTrack] = []
        pc.on("track", lambda track: tracks.append(track) if track.kind == "audio" else None)
        await set_remote_offer(pc, sdp, local_only=config.is_loopback)
        if not tracks:
            raise OfferError("the WHIP offer sends no audio; publish an audio track", code="no_audio")
        for transceiver in pc.getTransceivers():
            if transceiver.kind != "audio":
                transceiver.direction = "inactive"
        answer = (await make_answer(pc)).sdp
        source = await inputs.add_publisher(pc, tracks[0], character)
        handed_over = True  # the session's inputs close it from here
    finally:
        if not handed_over:
            await pc.close()
    return Response(
        answer, status_code=201, media_type="application/sdp",
        # The resource URL carries the session's secret: a WHIP client DELETEs exactly this URL.
        headers={"Location": f"/whip/{session.id}/{source.id}?secret={session.secret}"},
    )


async def whip_end(request: Request) -> Response:
    _, inputs = _session_inputs(request)
    input_id = request.path_params["input_id"]
    source = inputs.inputs.get(input_id)
    if source is None or source.kind != "whip":
        raise ClientError("unknown_publisher", f"no WHIP publisher {input_id!r} in this session", http_status=404)
    await inputs.remove(input_id, reason="deleted")
    return Response(status_code=200)


async def upload(request: Request) -> Response:
    _, inputs = _session_inputs(request)
    character = inputs.character(_character(request))
    data = await read_body(request, max_bytes=inputs.hub.config.max_upload_bytes, what="upload")
    if not data:
        raise ClientError("bad_audio", "the upload is empty; send an audio file as the body")
    player, duration_s = await inputs.play(data, character, name="the upload")
    return JSONResponse(
        {"input_id": player.id, "character": player.character, "duration_s": round(duration_s, 3)},
        status_code=201,
    )


def whip_routes() -> list[Route]:
    """The ingest routes, each behind the access token."""
    return [
        Route("/whip/{session_id}", token_guard(whip_publish), methods=["POST"]),
        Route("/whip/{session_id}/{input_id}", token_guard(whip_end), methods=["DELETE"]),
        Route("/sessions/{session_id}/inputs", token_guard(upload), methods=["POST"]),
    ]
