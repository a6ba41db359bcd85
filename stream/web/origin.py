"""Who may reach the server: a Host check against DNS rebinding, an Origin check against pages
of other sites.

``OriginGuard`` wraps the whole app and looks at every HTTP request and WebSocket before any
route does. A request addressed to a name that is not the server's own (a rebound DNS name) is
refused as ``bad_host``; one that carries an ``Origin`` of another site (or ``Origin: null``) is
refused as ``bad_origin``. Requests without an Origin (curl, Python clients, OBS, WHIP tools, a
page opened by typing its address) are not cross-site and go on to the token check, if any.

HTTP refusals are ``403`` with ``{"error": code, "message": ...}``. A WebSocket is accepted and
at once closed with code ``4403`` and the code in its reason, as the control socket closes with
4401 and 4404: a browser sees a close code, where a refused handshake is only a bare 1006.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import NamedTuple

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from stream.live.config import ServerConfig

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = frozenset({"0.0.0.0", "::"})
WS_CLOSE_FORBIDDEN = 4403
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes
DEFAULT_PORTS = {"http": 80, "https": 443}

# host[:port], the host an IPv6 literal in brackets or a name without ':', '/', '@' or spaces.
_HOST_PORT = re.compile(r"(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<name>[^\[\]:/@\s]+))(?::(?P<port>[0-9]{1,5}))?")
_ORIGIN = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.+)")


class Origin(NamedTuple):
    """A web origin with its host canonical and its port explicit."""

    scheme: str
    host: str
    port: int


def canonical_host(name: str) -> str:
    """``name`` lower-cased and without brackets; an IP address in its one compressed spelling."""
    name = name.lower().removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def parse_host_port(text: str) -> tuple[str, int | None] | None:
    """(canonical host, port or None) of a Host header or an origin's authority; None if malformed."""
    match = _HOST_PORT.fullmatch(text.strip())
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else None
    return canonical_host(match["ipv6"] or match["name"]), port


def parse_origin(text: str) -> Origin | None:
    """The ``Origin`` of ``scheme://host[:port]``; None for ``null`` or anything malformed."""
    match = _ORIGIN.fullmatch(text.strip())
    authority = parse_host_port(match["rest"]) if match else None
    if match is None or authority is None:
        return None
    scheme = match["scheme"].lower()
    host, port = authority
    return Origin(scheme, host, port if port is not None else DEFAULT_PORTS.get(scheme, 0))


class OriginGuard:
    """ASGI middleware: refuse requests addressed to a foreign Host or sent from a foreign Origin."""

    def __init__(self, app: ASGIApp, *, config: ServerConfig) -> None:
        self.app = app
        # Bound to every address, the server cannot know which names reach it: any Host goes,
        # and the access token (required off loopback) guards it. Pages of other sites are
        # still refused by the Origin check.
        self.any_host = canonical_host(config.host) in WILDCARD_BINDS
        self.hosts = frozenset(canonical_host(h) for h in (*LOOPBACK_NAMES, config.host, *config.allowed_hosts))
        origins = [parse_origin(o) for o in config.allowed_origins]
        assert None not in origins, "ServerConfig validates allowed_origins"
        self.origins = frozenset(o for o in origins if o is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        code, message = refusal
        logger.warning("refused %s %s: %s", scope["type"], scope.get("path", ""), message)
        if scope["type"] == "http":
            await JSONResponse({"error": code, "message": message}, status_code=403)(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        reason = f"{code}: {message}".encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
        await websocket.close(code=WS_CLOSE_FORBIDDEN, reason=reason)

    def refusal(self, scope: Scope) -> tuple[str, str] | None:
        """``(code, message)`` when the request must be refused, else None."""
        headers = Headers(scope=scope)
        host_header = headers.get("host", "")
        addressed = parse_host_port(host_header)
        if addressed is None or not (self.any_host or addressed[0] in self.hosts):
            shown = addressed[0] if addressed else host_header
            return "bad_host", (
                f"this server does not answer to host {shown!r} (a guard against DNS rebinding); "
                f"to serve it under that name, start it with --allow-host {shown or 'NAME'}"
            )
        origin_header = headers.get("origin")
        if origin_header is None:
            return None
        origin = parse_origin(origin_header)
        if origin is None:
            return "bad_origin", (
                f"requests from origin {origin_header!r} (a sandboxed frame or a local file) are refused"
            )
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        host, port = addressed
        own = Origin(scheme, host, port if port is not None else DEFAULT_PORTS[scheme])
        if origin == own or origin in self.origins:
            return None
        return "bad_origin", (
            f"requests from pages of origin {origin_header!r} are refused; "
            f"to let that page use this server, start it with --allow-origin {origin_header}"
        )
