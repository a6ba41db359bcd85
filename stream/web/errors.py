"""The web edge's one error path, and the bounded readers of request bodies.

Handlers raise ``ClientError`` (or a subclass: store, scene, input, offer errors) and never
build error responses: ``client_error_response``, registered once on the app, answers any of
them as ``{"error": code, "message": ...}`` with the error's ``http_status``. The body readers
raise the same errors, so a route reads its body in one call and no route catches.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from stream.errors import ClientError
from stream.live.json_input import parse_json


async def client_error_response(request: Request, exc: Exception) -> Response:
    """The JSON answer to a ``ClientError`` a route raised (the app's exception handler)."""
    assert isinstance(exc, ClientError), "registered for ClientError only"
    return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=exc.http_status)


async def read_body(request: Request, *, max_bytes: int, what: str) -> bytes:
    """The request body, or ``too_large`` (413) past ``max_bytes``; ``what`` names it in messages.

    A declared Content-Length over the limit is refused before reading anything; the streamed
    bytes are counted anyway, since a client may declare less than it sends, or stream chunked.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ClientError("too_large", f"the {what} is {declared} bytes; the limit is {max_bytes}", http_status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ClientError("too_large", f"the {what} is over the limit of {max_bytes} bytes", http_status=413)
    return bytes(body)


async def read_json(request: Request, *, max_bytes: int, what: str) -> dict[str, Any]:
    """The body as a JSON object (an empty body reads as ``{}``); else ``bad_json`` (400).

    Read by the strict reader the control channel uses too (``stream.live.json_input``): no deep
    nesting, ``NaN``, lone surrogates or NUL reaches a route."""
    raw = await read_body(request, max_bytes=max_bytes, what=what)
    data = parse_json(raw or b"{}", max_bytes=max_bytes, what=what)
    if not isinstance(data, dict):
        raise ClientError("bad_json", f"the {what} must be a JSON object, not {type(data).__name__}")
    return data


async def read_sdp(request: Request, *, max_bytes: int, what: str) -> str:
    """An ``application/sdp`` body as text; another content type is ``not_sdp`` (415)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        raise ClientError(
            "not_sdp", f"a {what} is application/sdp, not {content_type or 'nothing'!r}", http_status=415
        )
    return (await read_body(request, max_bytes=max_bytes, what=what)).decode("utf-8", "replace")
