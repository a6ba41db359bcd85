"""Credentials: the server's access token, and each session's own secret.

When the server's config holds a token, a request must carry it as ``Authorization: Bearer
TOKEN`` or ``?token=TOKEN``. HTTP routes refuse with ``unauthorised`` (401) through the app's
error handler; the control WebSocket asks ``authorised`` and closes with its own code.

A route that drives or ends one session (its WebSocket, recording, inputs, extra viewers,
DELETE) also needs that session's secret, returned with its answer, as ``X-Talkie-Secret:
SECRET`` or ``?secret=SECRET``: a session id, which ``/api/sessions`` lists, is not enough.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from stream.errors import ClientError
from stream.live.session import Session

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


def holds_secret(conn: HTTPConnection, session: Session) -> bool:
    """True when ``conn`` carries ``session``'s secret (header or query)."""
    given = (conn.headers.get("x-talkie-secret", ""), conn.query_params.get("secret", ""))
    # Either may hold it: a resource URL carries its own, beside a client's default header.
    return any(hmac.compare_digest(g.encode(), session.secret.encode()) for g in given if g)


def require_session(conn: HTTPConnection) -> Session:
    """The live session named by the path's ``session_id``, if ``conn`` holds its secret:
    else ``unknown_session`` (404) or ``bad_secret`` (403)."""
    session_id = conn.path_params["session_id"]
    session: Session | None = conn.app.state.sessions.sessions.get(session_id)
    if session is None or session.closed:
        raise ClientError("unknown_session", f"no session {session_id!r}", http_status=404)
    if not holds_secret(conn, session):
        raise ClientError(
            "bad_secret",
            f"session {session_id} needs its secret (returned with its answer) as X-Talkie-Secret or ?secret=",
            http_status=403,
        )
    return session
