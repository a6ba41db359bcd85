"""The access-token check shared by every route that needs one.

When the server's config holds a token, a request must carry it as ``Authorization: Bearer
TOKEN`` or ``?token=TOKEN``. HTTP routes refuse with ``unauthorised`` (401) through the app's
error handler; the control WebSocket asks ``authorised`` and closes with its own code.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from stream.errors import ClientError

Handler = Callable[[Request], Awaitable[Any]]


def authorised(conn: HTTPConnection) -> bool:
    """True when the server needs no token or ``conn`` carries the right one."""
    token: str | None = conn.app.state.config.token
    if not token:
        return True
    given = conn.query_params.get("token", "")
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        given = header[7:].strip()
    # Constant-time, so the comparison leaks nothing of the token.
    return hmac.compare_digest(given.encode(), token.encode())


def require_token(conn: HTTPConnection) -> None:
    """Raise ``unauthorised`` (401) unless ``conn`` is ``authorised``."""
    if not authorised(conn):
        raise ClientError("unauthorised", "a valid access token is required", http_status=401)


def token_guard(handler: Handler) -> Handler:
    """``handler`` behind the token check."""

    async def guarded(request: Request) -> Response:
        require_token(request)
        response: Response = await handler(request)
        return response

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    return guarded
