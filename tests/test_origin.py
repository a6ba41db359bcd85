"""The Host and Origin guard: no page of another site and no rebound DNS name reaches a route.

Each route class (store API, signalling, ingest, egress, the control WebSocket) is tried from a
foreign Origin and under a foreign Host, and must answer the guard's 403 (or WebSocket 4403)
without doing anything; from the server's own origin, or with no Origin, the route answers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from support import start_server

from stream.live.config import ServerConfig, ServerConfigError
from stream.live.engine import Engine
from stream.tools.cli import build_parser
from stream.web.app import create_app
from stream.web.origin import WS_CLOSE_FORBIDDEN, parse_origin

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette would rather its test client used httpx2
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

OWN = "http://127.0.0.1"  # the test client's base url: Host 127.0.0.1, port 80
EVIL = "http://evil.example"
STUDIO = "https://studio.example:8443"
TEXT = {"content-type": "text/plain"}  # a "simple" body: a browser sends it with no CORS preflight
SDP = {"content-type": "application/sdp"}

# (method, path, body, headers, what the route itself answers a request the guard lets through)
ROUTES: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("POST", "/api/series", b'{"name": "Pwned"}', TEXT, 201),
    ("DELETE", "/api/series/{series}", b"", {}, 204),
    ("GET", "/api/sessions", b"", {}, 200),
    ("POST", "/offer", b"{}", TEXT, 400),  # bad_offer: no sdp
    ("POST", "/sessions/nope/inputs", b"RIFF", {"content-type": "audio/wav"}, 404),
    ("POST", "/whip/nope", b"v=0\r\n", SDP, 404),
    ("POST", "/whep", b"v=0\r\n", SDP, 400),  # bad_offer: no video
]
ROUTE_IDS = [f"{method} {path}" for method, path, *_ in ROUTES]


def client_for(config: ServerConfig, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(config, engine=engine), base_url=OWN) as http:
        yield http


@pytest.fixture(scope="module")
def client(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from client_for(ServerConfig(data_dir=tmp_path_factory.mktemp("origin") / "data"), engine)


@pytest.fixture(scope="module")
def studio(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    config = ServerConfig(
        data_dir=tmp_path_factory.mktemp("studio") / "data",
        allowed_hosts=("talkie.lan",), allowed_origins=(STUDIO,),
    )
    yield from client_for(config, engine)


def series_names(http: TestClient) -> list[str]:
    return [s["name"] for s in http.get("/api/series").json()["series"]]


def call(http: TestClient, route: tuple[str, str, bytes, dict[str, str], int], **headers: str) -> Any:
    """``route`` requested with ``headers`` added; a DELETE gets a fresh series to delete."""
    method, path, body, base, _ = route
    if "{series}" in path:
        path = path.format(series=http.post("/api/series", json={"name": "Keep"}).json()["id"])
    return http.request(method, path, content=body, headers={**base, **headers})


def refused(response: Any, code: str, *words: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == code, body
    assert all(w in body["message"] for w in words), body["message"]


def ws_close(http: TestClient, path: str, **headers: str) -> tuple[int, str]:
    """(code, reason) the control WebSocket closes with right after it opens."""
    # The test client's sockets go to ws://testserver unless given a whole url.
    with http.websocket_connect(f"ws://127.0.0.1{path}", headers=headers) as ws, pytest.raises(WebSocketDisconnect) as info:
        ws.receive_text()
    return info.value.code, info.value.reason


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_a_foreign_origin_is_refused_on_every_route(client: TestClient, route: Any) -> None:
    before = series_names(client)
    refused(call(client, route, origin=EVIL), "bad_origin", "'http://evil.example'", "--allow-origin http://evil.example")
    after = series_names(client)
    assert after == before + (["Keep"] if "{series}" in route[1] else [])  # nothing made, nothing deleted


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_a_foreign_host_is_refused_on_every_route(client: TestClient, route: Any) -> None:
    before = series_names(client)
    # DNS rebinding: the page's own origin, but the name it used now points at this machine.
    response = call(client, route, host="evil.example:8080", origin="http://evil.example:8080")
    refused(response, "bad_host", "'evil.example'", "--allow-host evil.example")
    refused(call(client, route, host="evil.example"), "bad_host", "DNS rebinding")
    assert series_names(client) == before + (["Keep"] * 2 if "{series}" in route[1] else [])


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_the_own_origin_and_no_origin_reach_every_route(client: TestClient, route: Any) -> None:
    status = route[4]
    assert call(client, route, origin=OWN).status_code == status
    assert call(client, route).status_code == status
    assert call(client, route, origin="HTTP://127.0.0.1:80").status_code == status  # the same origin, spelt out


def test_another_port_scheme_or_null_is_another_origin(client: TestClient) -> None:
    before = series_names(client)
    for origin in ("http://127.0.0.1:3000", "https://127.0.0.1", "http://localhost", "null", "file://"):
        refused(call(client, ROUTES[0], origin=origin), "bad_origin", origin)
    assert series_names(client) == before


def test_the_servers_own_names_are_accepted_and_lookalikes_are_not(client: TestClient) -> None:
    for host in ("127.0.0.1:8080", "localhost", "LOCALHOST:80", "[::1]:8080", "[0:0:0:0:0:0:0:1]"):
        assert client.get("/api/sessions", headers={"host": host}).status_code == 200, host
    for host in ("127.0.0.1.evil.example", "localhost.evil.example", "evil.example@127.0.0.1", "[::2]", ""):
        refused(client.get("/api/sessions", headers={"host": host}), "bad_host")
    # A page served under another loopback name is still same-origin with the name it used.
    assert client.get("/api/sessions", headers={"host": "localhost:8080", "origin": "http://localhost:8080"}).status_code == 200


def test_pages_open_directly_in_a_browser(client: TestClient) -> None:
    for path in ("/", "/view", "/client/live.js"):
        response = client.get(path)  # a top-level navigation sends no Origin for a GET
        assert response.status_code == 200 and response.text.strip(), path
    refused(client.get("/", headers={"host": "evil.example"}), "bad_host")


def test_allowed_origins_and_hosts_are_accepted(studio: TestClient) -> None:
    assert call(studio, ROUTES[0], origin=STUDIO).status_code == 201
    assert call(studio, ROUTES[3], origin=STUDIO).json()["error"] == "bad_offer"  # reached /offer
    for near_miss in ("https://studio.example", "http://studio.example:8443", "https://evil.studio.example:8443"):
        refused(call(studio, ROUTES[0], origin=near_miss), "bad_origin", near_miss)
    assert studio.get("/api/sessions", headers={"host": "TALKIE.lan:9000"}).status_code == 200
    own = {"host": "talkie.lan:9000", "origin": "http://talkie.lan:9000"}
    assert studio.post("/api/series", json={"name": "From the LAN"}, headers=own).status_code == 201
    refused(studio.get("/api/sessions", headers={"host": "other.lan"}), "bad_host", "--allow-host other.lan")


def test_a_wildcard_bind_takes_any_host_but_not_foreign_pages(engine: Engine, tmp_path: Path) -> None:
    token = "s3cret-token"
    config = ServerConfig(host="0.0.0.0", token=token, data_dir=tmp_path / "data")
    auth = {"authorization": f"Bearer {token}"}
    for http in client_for(config, engine):
        assert http.get("/api/sessions", headers={**auth, "host": "192.168.1.20:8080"}).status_code == 200
        assert http.get("/api/sessions", headers={"host": "192.168.1.20:8080"}).status_code == 401
        refused(http.get("/api/sessions", headers={**auth, "host": "192.168.1.20:8080", "origin": EVIL}), "bad_origin")


def test_the_control_socket_closes_4403_for_a_foreign_origin_or_host(client: TestClient) -> None:
    code, reason = ws_close(client, "/ws/nope", origin=EVIL)
    assert (code, reason.split(":")[0]) == (WS_CLOSE_FORBIDDEN, "bad_origin")
    code, reason = ws_close(client, "/ws/nope", host="evil.example", origin="http://evil.example")
    assert (code, reason.split(":")[0]) == (WS_CLOSE_FORBIDDEN, "bad_host")
    assert len(reason.encode()) <= 123
    # Let through, the socket reaches the route, which knows no session "nope".
    assert ws_close(client, "/ws/nope", origin=OWN)[0] == 4404
    assert ws_close(client, "/ws/nope")[0] == 4404


async def test_a_real_server_refuses_foreign_pages_and_names(engine: Engine, tmp_path: Path) -> None:
    _, url, stop = await start_server(ServerConfig(data_dir=tmp_path / "data"), engine)
    port = int(url.rsplit(":", 1)[1])
    ws_url = url.replace("http://", "ws://")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            response = await http.post("/api/series", content=b'{"name": "x"}', headers={**TEXT, "origin": EVIL})
            assert response.status_code == 403 and response.json()["error"] == "bad_origin"
            response = await http.get("/api/sessions", headers={"host": f"evil.example:{port}"})
            assert response.status_code == 403 and response.json()["error"] == "bad_host"
            response = await http.post("/api/series", json={"name": "ok"}, headers={"origin": url})
            assert response.status_code == 201
        for kwargs in ({"origin": EVIL}, {"uri": f"ws://evil.example:{port}/ws/nope", "host": "127.0.0.1", "port": port}):
            uri = kwargs.pop("uri", f"{ws_url}/ws/nope")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                async with websockets.connect(uri, **kwargs) as ws:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4403, kwargs
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            async with websockets.connect(f"{ws_url}/ws/nope", origin=websockets.Origin(url)) as ws:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4404
    finally:
        await stop()


@pytest.mark.parametrize("bad", [
    {"allowed_hosts": ("http://studio.example",)},
    {"allowed_hosts": ("studio.example:8080",)},
    {"allowed_hosts": ("*.example",)},
    {"allowed_hosts": ("",)},
    {"allowed_origins": ("studio.example",)},
    {"allowed_origins": ("https://studio.example/",)},
    {"allowed_origins": ("ftp://studio.example",)},
    {"allowed_origins": ("https://studio.example:99999",)},
    {"allowed_origins": ("null",)},
])
def test_bad_allowed_entries_are_refused_at_start_up(bad: dict[str, tuple[str, ...]]) -> None:
    value = next(iter(bad.values()))[0]
    with pytest.raises(ServerConfigError, match="allowed (host|origin)") as info:
        ServerConfig(**bad)  # type: ignore[arg-type]
    assert repr(value) in str(info.value)


def test_good_allowed_entries_and_the_serve_flags() -> None:
    config = ServerConfig(
        allowed_hosts=("studio.example", "10.0.0.5", "::1", "[fe80::1]", "talkie_web"),
        allowed_origins=("https://studio.example:8443", "http://[::1]:8080", "http://10.0.0.5"),
    )
    assert parse_origin(config.allowed_origins[1]) == ("http", "::1", 8080)
    assert parse_origin("https://Studio.Example") == ("https", "studio.example", 443)
    args = build_parser().parse_args(
        ["serve", "--allow-host", "a.example", "--allow-host", "b.example", "--allow-origin", STUDIO]
    )
    assert (args.allow_host, args.allow_origin) == (["a.example", "b.example"], [STUDIO])
