"""Access-token checks shared by every route that needs one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

Handler = Callable[[Request], Awaitable[Any]]


def json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def token_guard(handler: Handler, *, authorised: Callable[[HTTPConnection], bool]) -> Handler:
    """``handler`` behind the token check: an unauthorised request gets 401 and a reason."""

    async def guarded(request: Request) -> Response:
        if not authorised(request):
            return json_error(401, "unauthorised", "a valid access token is required")
        response: Response = await handler(request)
        return response

    return guarded
