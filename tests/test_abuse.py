"""Hostile input: every bad message or body gets a JSON error, never a closed channel or a 500.

Property tests (hypothesis, derandomized, few examples) feed valid-ish and hostile control
messages to ``parse_message`` and to a live ``Session.handle``, and hostile bodies to the REST
routes; regression tests send each bad thing a tester found over a real peer's data channel and
WebSocket, then check both still answer ``ping`` with ``pong``. Loopback only.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from aiortc import RTCPeerConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import start_server

from stream.errors import ClientError
from stream.live.config import ServerConfig
from stream.live.control import MAX_NAME_CHARS, Command, check_cast, check_set, parse_message
from stream.live.engine import Engine
from stream.live.json_input import MAX_DEPTH, JsonInputError, parse_json
from stream.live.scene import LiveConfig, LiveScene
from stream.live.session import Session
from stream.tools.client import ScenePeer
from stream.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette would rather its test client used httpx2
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL = LiveConfig(width_px=320, height_px=240)
FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ---------------------------------------------------------------------------------

HOSTILE_TEXT = (
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\udc00\ud800", "é", "MAYA", "maya", " leo ",
    "../x", "a/b", "a\\b", "..", "x" * 65, "x" * 300, "ß" * 40, "#00ff00", "#zzz", "kitchen", "nope",
    "\u202e", "\n", "LEO\nMAYA", "\x7f", "sc_1", "start", "stop",
)
texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=3), max_leaves=10
)
TYPES = ("say", "script", "interrupt", "scene", "stats", "ping", "record", "mic", "play", "unbind", "dance", "")
FIELDS = ("speaker", "text", "cut_in", "overlap", "cast", "set", "action", "scene_id", "take_name", "character", "file")
anything = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.one_of(st.sampled_from(TYPES), scalars),
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=4),
)


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = values) -> st.SearchStrategy[Any]:
    """``good`` four times in five, else ``bad`` (by default any value at all)."""
    return st.integers(0, 4).flatmap(lambda k: bad if k == 0 else good)


names = _mostly(
    st.sampled_from(["MAYA", "LEO", "iris", " omar ", "Zed"]) | st.text(min_size=1, max_size=12),
    st.sampled_from(["x" * 65, "\ud800", "", "A\nB", "ß" * 40]) | values,
)
lines = _mostly(
    st.sampled_from(["Hello.", "Where were you?", "안녕하세요.", "你好。"]) | st.text(min_size=1, max_size=40),
    st.sampled_from([" ", "\ud800", "x" * 1_001, "a\x00"]) | values,
)
files = _mostly(st.just("line.wav"), st.sampled_from(["", "../x.wav", "a\x00b", "x" * 300, "..", "a/b.wav"]) | values)
sets = _mostly(st.sampled_from(["kitchen", "park", "#00ff00", "#0f0"]), st.sampled_from(["moon", "", "#zz0000"]) | values)
flags = _mostly(st.booleans())
plausible = st.one_of(
    st.fixed_dictionaries({"type": st.just("say"), "speaker": names, "text": lines},
                          optional={"cut_in": flags, "overlap": flags}),
    st.fixed_dictionaries({"type": st.just("script"), "text": _mostly(st.sampled_from([
        "MAYA: Hi.\nLEO: Out.", "INT. KITCHEN\n\nMAYA\nHello.\n", "nonsense", "", "X" * 70 + ": Hi."]))}),
    st.fixed_dictionaries({"type": st.just("scene")},
                          optional={"cast": _mostly(st.lists(names, max_size=6)), "set": sets}),
    st.fixed_dictionaries({"type": st.sampled_from(["interrupt", "stats", "ping"])}),
    st.fixed_dictionaries({"type": st.just("record"), "action": _mostly(st.sampled_from(["start", "stop", "pause"]))},
                          optional={"scene_id": _mostly(st.just("sc_1")), "take_name": names}),
    st.fixed_dictionaries({"type": st.sampled_from(["mic", "unbind"]), "character": names}),
    st.fixed_dictionaries({"type": st.just("play"), "character": names, "file": files}),
)
messages = _mostly(plausible, anything)


def _nested(depth: int, opener: str) -> str:
    """A ping carrying ``depth`` levels of lists (``[``) or objects (``{``)."""
    inner = "[" * depth + "]" * depth if opener == "[" else '{"a":' * depth + "1" + "}" * depth
    return f'{{"type": "ping", "x": {inner}}}'


RAW_HOSTILE = st.one_of(
    st.sampled_from([
        "", "null", "[]", "7", '"ping"', "NaN", "Infinity", "-Infinity", '{"type": "ping", "x": NaN}',
        '{"type": "ping", "x": 1e999}', '{"type": "ping", "x": ' + "9" * 5000 + "}",
        '{"type": "say", "speaker": "MAYA", "text": "\\ud800"}', '{"\\u0000": 1, "type": "ping"}',
        '{"type": "ping"', "[" * 20_000, "{" * 20_000, '"\\\\' + "[" * 100, b"\xed\xa0\x80", b"\xff\xfe",
    ]),
    st.integers(min_value=MAX_DEPTH - 2, max_value=5_000).map(lambda n: _nested(n, "[")),
    st.integers(min_value=MAX_DEPTH - 2, max_value=2_000).map(lambda n: _nested(n, "{")),
    st.binary(max_size=64),
    st.text(max_size=64),
)


def _encode(message: Any, how: str) -> str | bytes:
    """A message as a client could send it: ASCII JSON (surrogates escaped, NaN written), or
    raw text or UTF-8 bytes carrying the surrogates themselves."""
    if how == "ascii":
        return json.dumps(message)
    text = json.dumps(message, ensure_ascii=False)
    return text if how == "text" else text.encode("utf-8", "surrogatepass")


encoded = st.builds(_encode, messages, st.sampled_from(["ascii", "ascii", "text", "bytes"]))
raw_messages = st.integers(0, 3).flatmap(lambda k: RAW_HOSTILE if k == 0 else encoded)  # 1 in 4 hostile


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _strings(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _strings(getattr(value, name))


# -- the parser -----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=200)  # the parser alone is quick
@given(raw=raw_messages)
def test_every_message_parses_to_commands_or_a_client_error(raw: str | bytes) -> None:
    try:
        commands: list[Command] = parse_message(raw)
    except ClientError as exc:
        assert exc.code and str(exc)
        str(exc).encode("utf-8")  # the error event itself is sendable
        return
    for text in _strings(commands):
        text.encode("utf-8")
        assert "\x00" not in text


def test_the_strict_reader_names_each_refusal() -> None:
    def refused(raw: str | bytes, *words: str, code: str = "bad_json") -> None:
        with pytest.raises(JsonInputError) as info:
            parse_json(raw, max_bytes=65_536, what="body")
        assert info.value.code == code and all(w in str(info.value) for w in words), str(info.value)

    refused("[" * 100_000, "100000 bytes", code="too_large")
    refused("[" * 60_000, f"deeper than {MAX_DEPTH}")
    refused('{"a": ' * 40 + "1" + "}" * 40, "deeper")
    refused('{"x": NaN}', "NaN")
    refused('{"x": -Infinity}', "-Infinity")
    refused('{"x": 1e400}', "overflows")
    refused('{"x": ' + "9" * 5000 + "}", "5000 digits")
    refused('{"x": "\\ud800"}', "x", "surrogate")
    refused('{"x": ["ok", {"y": "a\\u0000"}]}', "x[1].y", "NUL")
    refused('{"\\udfff": 1}', "key", "surrogate")
    refused(b'{"x": "\xed\xa0\x80"}', "not UTF-8")
    refused("{nope", "not JSON")
    # Brackets inside strings do not count; escaped quotes do not end a string.
    assert parse_json('{"a": "[[[[\\"[[[[' + "[" * 100 + '"}', max_bytes=65_536) == {"a": '[[[["[[[[' + "[" * 100}
    nested: Any = 1
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    assert parse_json(json.dumps({"x": nested}), max_bytes=65_536) == {"x": nested}


def test_names_files_casts_and_sets_are_bounded() -> None:
    def code_of(message: dict[str, Any]) -> str:
        with pytest.raises(ClientError) as info:
            parse_message(json.dumps(message))
        return f"{info.value.code}: {info.value}"

    assert code_of({"type": "play", "character": "LEO", "file": ""}).startswith("bad_message: 'file' is empty")
    assert code_of({"type": "play", "character": "LEO", "file": "x" * 300}).startswith("bad_message: 'file' is 300")
    assert code_of({"type": "play", "character": "LEO", "file": "a\x00.wav"}).startswith("bad_json")
    assert "file" in code_of({"type": "play", "character": "LEO", "file": "a\x00.wav"})
    assert code_of({"type": "play", "character": "LEO", "file": "../x.wav"}).startswith("unknown_file")
    assert code_of({"type": "play", "character": "LEO", "file": "sub/x.wav"}).startswith("unknown_file")
    assert code_of({"type": "say", "speaker": "x" * (MAX_NAME_CHARS + 1), "text": "hi"}).startswith("bad_message")
    assert code_of({"type": "say", "speaker": "ß" * 40, "text": "hi"}).startswith("bad_message")  # SS once upper
    assert code_of({"type": "say", "speaker": "A\nB", "text": "hi"}).startswith("bad_message: 'speaker' holds")
    assert code_of({"type": "mic", "character": "\ud800"}).startswith("bad_json")
    assert code_of({"type": "scene", "cast": ["MAYA"] * 17}).startswith("bad_message: 'cast' names 17")
    assert code_of({"type": "scene", "cast": ["MAYA", 7]}).startswith("bad_message: 'cast[1]'")
    assert code_of({"type": "scene", "set": "moon"}).startswith("bad_scene: unknown set 'moon'")
    assert code_of({"type": "scene", "set": "#" + "0" * 100}).startswith("bad_message: 'set' is 101")
    assert code_of({"type": "script", "text": "X" * 70 + ": Hello."}).startswith("bad_script")
    assert parse_message(json.dumps({"type": "play", "character": " leo ", "file": "line.wav"}))[0].character == "leo"
    # The validators the /offer body shares.
    assert check_cast(None) is None and check_cast([" maya ", "LEO"]) == ["maya", "LEO"]
    assert check_set(None) is None and check_set("#00ff00") == "#00ff00" and check_set("Kitchen") == "Kitchen"
    for bad_cast in ("MAYA", ["x" * 65], [None], ["\x00"]):
        with pytest.raises(ClientError):
            check_cast(bad_cast)
    for bad_set in (7, "moon", "x" * 65, "\ud800"):
        with pytest.raises(ClientError):
            check_set(bad_set)


# -- a live session ------------------------------------------------------------------------------


class LiveSession:
    """A session without a peer, driven on its own event loop; ``sent`` holds what it emitted."""

    def __init__(self, engine: Engine) -> None:
        self.loop = asyncio.new_event_loop()
        self.sent: list[str] = []
        scene = LiveScene(
            cast=engine.cast, speech=engine.speech, synth_executor=engine.synth_executor,
            config=SMALL, names=["MAYA", "LEO"], faces=engine.faces,
        )
        self.session = self.run(self._make(engine, scene))

    async def _make(self, engine: Engine, scene: LiveScene) -> Session:
        session = Session(engine=engine, config=ServerConfig(live=SMALL), scene=scene)

        async def send(text: str) -> None:
            self.sent.append(text)

        session.attach(send)
        return session

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def flush(self) -> None:
        self.run(asyncio.sleep(0.01))  # let the event pump deliver

    def close(self) -> None:
        self.run(self.session.close())
        self.loop.close()


@pytest.fixture(scope="module")
def live(engine: Engine) -> Iterator[LiveSession]:
    session = LiveSession(engine)
    yield session
    session.close()


@FUZZ
@given(raw=raw_messages)
def test_a_live_session_answers_every_message_and_goes_on(live: LiveSession, raw: str | bytes) -> None:
    live.sent.clear()
    live.run(live.session.handle(raw))  # raises if anything but a ClientError escaped
    live.session.scene.interrupt()  # keep the synthesis queue short between examples
    live.run(live.session.handle('{"type": "ping"}'))
    live.flush()
    events = [json.loads(text) for text in live.sent]
    assert all(text.isascii() for text in live.sent)
    assert events and events[-1] == {"type": "pong"}, events


def test_a_stray_surrogate_or_a_failed_send_does_not_stop_event_delivery(live: LiveSession) -> None:
    session = live.session
    delivered: list[str] = []
    failures = [ValueError("payload refused")]

    async def flaky(text: str) -> None:
        if failures:
            raise failures.pop()
        delivered.append(text)

    async def attach_and_emit(send: Any, *events: dict[str, Any]) -> Any:
        detach = session.attach(send)
        for event in events:
            session.emit(event)
        await asyncio.sleep(0.01)
        return detach

    note = {"type": "note", "text": "lone \ud800 surrogate"}
    detach = live.run(attach_and_emit(flaky, note, note, {"type": "pong"}))  # the first send fails
    detach()
    assert [json.loads(t) for t in delivered] == [{"type": "note", "text": "lone \ud800 surrogate"}, {"type": "pong"}]
    assert all(t.isascii() for t in delivered)

    async def closed(text: str) -> None:
        raise ConnectionResetError("gone")

    before = len(session._outboxes)
    live.run(attach_and_emit(closed, {"type": "pong"}))
    assert len(session._outboxes) == before  # a closed channel leaves; the others stay


# -- REST bodies -----------------------------------------------------------------------------------


class Rest:
    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.series = http.post("/api/series", json={"name": "Fuzz"}).json()["id"]
        self.episode = http.post(f"/api/series/{self.series}/episodes", json={"name": "Pilot"}).json()["id"]
        self.scene = http.post(f"/api/episodes/{self.episode}/scenes", json={"name": "Cold open"}).json()["id"]


@pytest.fixture(scope="module")
def rest(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("abuse") / "data", live=SMALL)
    with TestClient(create_app(config, engine=engine), base_url="http://127.0.0.1") as http:
        yield Rest(http)


def _answered_in_json(response: httpx.Response) -> None:
    assert response.status_code < 500 and response.status_code in range(200, 500), response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["error"], str) and isinstance(body["message"], str), body
    elif response.content:
        response.json()


ROUTES = (
    ("POST", "/api/series"),
    ("POST", "/api/series/{series}/characters"),
    ("POST", "/api/series/{series}/sets"),
    ("POST", "/api/series/{series}/episodes"),
    ("PATCH", "/api/series/{series}"),
    ("PATCH", "/api/episodes/{episode}"),
    ("POST", "/api/episodes/{episode}/scenes"),
    ("PATCH", "/api/scenes/{scene}"),
    ("POST", "/api/sessions/nope/record"),
)
LOOK_KEYS = ("face_shape", "skin_rgb", "hair_style", "hair_rgb", "lashes", "accessory", "wings")
VOICE_KEYS = ("language", "variant", "pitch", "pitch_range", "rate_wpm", "volume")
characters = st.fixed_dictionaries(
    {"name": texts},
    optional={
        "look": st.dictionaries(st.sampled_from(LOOK_KEYS), values, max_size=3) | values,
        "voice": st.dictionaries(st.sampled_from(VOICE_KEYS), values | st.sampled_from(["../../x", "English", "f9"]), max_size=3),
        "seed": values,
    },
)
BODY_FIELDS = ("name", "backdrop", "position", "transition_ms", "chosen_take_id", "scene_id", "take_name")
bodies = st.one_of(
    st.builds(_encode, st.dictionaries(st.sampled_from(BODY_FIELDS), values, max_size=3) | characters | values,
              st.sampled_from(["ascii", "bytes"])),
    RAW_HOSTILE,
)


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_every_rest_body_gets_a_json_answer(rest: Rest, route: tuple[str, str], body: str | bytes) -> None:
    method, path = route
    url = path.format(series=rest.series, episode=rest.episode, scene=rest.scene)
    content = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    _answered_in_json(rest.http.request(method, url, content=content, headers={"Content-Type": "application/json"}))


offer_bodies = st.fixed_dictionaries(
    {"sdp": _mostly(st.sampled_from(["v=0\r\n", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", ""]) | texts)},
    optional={"type": _mostly(st.just("offer")), "cast": _mostly(st.lists(names, max_size=5)), "set": sets},
)


@FUZZ
@given(body=offer_bodies, how=st.sampled_from(["ascii", "bytes"]))
def test_every_offer_body_gets_a_json_answer(rest: Rest, body: dict[str, Any], how: str) -> None:
    """Waits on ``/offer`` checking ``cast`` and ``set`` (``check_cast``, ``check_set``) and on
    ``SessionManager.create`` answering through ``stream.live.offers``."""
    content = _encode(body, how)
    r = rest.http.post("/offer", content=content if isinstance(content, bytes) else content.encode())
    _answered_in_json(r)
    assert r.status_code >= 400  # none of these offers can be answered


def test_the_rest_bodies_that_were_500s_are_json_400s(rest: Rest) -> None:
    http = rest.http
    for raw, words in (
        (b'{"name": "\\ud800"}', "surrogate"),
        (b'{"name": Infinity}', "Infinity"),
        (b'{"name": NaN}', "NaN"),
        (b'{"name": "a\\u0000b"}', "NUL"),
        (b'{"name": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "deeper"),
        (b'{"name": ' + b"9" * 5_000 + b"}", "digits"),
    ):
        for url in ("/api/series", f"/api/series/{rest.series}/characters"):
            r = http.post(url, content=raw)
            assert r.status_code == 400 and r.json()["error"] == "bad_json" and words in r.json()["message"], r.text
        r = http.post("/offer", content=raw)  # /offer says bad_offer for any unusable body
        assert r.status_code == 400 and r.json()["error"] == "bad_offer" and words in r.json()["message"], r.text


def test_character_voice_and_look_fields_are_checked_at_the_edge(rest: Rest) -> None:
    url = f"/api/series/{rest.series}/characters"
    for fields, words in (
        ({"voice": {"language": "../../x"}}, "'voice.language'"),
        ({"voice": {"language": 7}}, "'voice.language'"),
        ({"voice": {"variant": "f9"}}, "'voice.variant'"),
        ({"voice": {"pitch": 50.5}}, "'voice.pitch'"),
        ({"voice": {"rate_wpm": True}}, "'voice.rate_wpm'"),
        ({"voice": {"pitch_range": 500}}, "pitch_range"),
        ({"look": {"skin_rgb": [1, 2]}}, "'look.skin_rgb'"),
        ({"look": {"lashes": "yes"}}, "'look.lashes'"),
        ({"look": {"face_shape": ["oval"]}}, "'look.face_shape'"),
        ({"seed": -1}, "'seed'"),
        ({"seed": 2**64}, "'seed'"),
    ):
        r = rest.http.post(url, json={"name": "Nell", **fields})
        assert r.status_code == 400 and r.json()["error"] == "bad_character" and words in r.json()["message"], r.text
    made = rest.http.post(url, json={"name": "Ines", "voice": {"language": "English", "variant": "f3"}})
    assert made.status_code == 201 and made.json()["spec"]["voice"]["language"] == "en-us", made.text


# -- a real peer: the control channels --------------------------------------------------------------


class Running:
    def __init__(self, app: Any, url: str) -> None:
        self.app = app
        self.url = url
        self.ws_url = url.replace("http://", "ws://")

    @property
    def sessions(self) -> dict[str, Session]:
        sessions: dict[str, Session] = self.app.state.sessions.sessions
        return sessions


@pytest.fixture
async def server(engine: Engine) -> AsyncIterator[Running]:
    app, url, stop = await start_server(ServerConfig(max_sessions=4, live=SMALL), engine)
    yield Running(app, url)
    await stop()


async def _ws_event(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if event["type"] == kind:
            return event


async def _both_answer_ping(peer: ScenePeer, ws: Any) -> None:
    n = len(peer.events)
    peer.send({"type": "ping"})
    await peer.event("pong", after=n)
    await _ws_event(ws, "pong")
    n = len(peer.events)
    await ws.send(json.dumps({"type": "ping"}))
    await _ws_event(ws, "pong")
    await peer.event("pong", after=n)


async def test_bad_control_messages_leave_both_channels_working(server: Running) -> None:
    peer = ScenePeer(keep_video=False)
    assert (await peer.connect(server.url)).status_code == 200
    await peer.event("hello")
    bad = (
        ('{"type": "say", "speaker": "MAYA", "text": "lone \\ud800 surrogate"}', "bad_json", "text"),
        ('{"type": "ping", "x": ' + "[" * 3_000 + "]" * 3_000 + "}", "bad_json", "deeper"),
        ('{"type": "ping", "x": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}", "bad_json", "deeper"),
        (json.dumps({"type": "play", "character": "LEO", "file": "a\x00.wav"}), "bad_json", "file"),
        (json.dumps({"type": "play", "character": "LEO", "file": "x" * 300}), "bad_message", "'file'"),
        (json.dumps({"type": "play", "character": "LEO", "file": ""}), "bad_message", "'file'"),
        ('{"type": "say", "speaker": "\\ud800", "text": "Hello."}', "bad_json", "speaker"),
        ('{"type": "mic", "character": "x\\udfff"}', "bad_json", "character"),
        ('{"type": "ping", "x": NaN}', "bad_json", "NaN"),
    )
    async with websockets.connect(f"{server.ws_url}/ws/{peer.session_id}?secret={peer.secret}") as ws:
        await _ws_event(ws, "hello")
        for raw, code, words in bad:
            await ws.send(raw)
            error = await _ws_event(ws, "error")
            assert error["code"] == code and words in error["message"], (raw[:80], error)
            n = len(peer.events)
            peer.channel.send(raw)
            error = await peer.event("error", after=n)
            assert error["code"] == code and words in error["message"], (raw[:80], error)
            await _ws_event(ws, "error")  # every channel of the session hears every event
            await _both_answer_ping(peer, ws)
            await asyncio.sleep(0.1)  # stay inside the session's message budget
        # An event holding a lone surrogate (however one arose) is sent escaped and changes nothing.
        n = len(peer.events)
        server.sessions[str(peer.session_id)].emit({"type": "note", "text": "lone \ud800"})
        assert (await peer.event("note", after=n))["text"] == "lone \ud800"
        assert (await _ws_event(ws, "note"))["text"] == "lone \ud800"
        await _both_answer_ping(peer, ws)
    await peer.close()


# -- a real peer: SDP offers ---------------------------------------------------------------------------


async def _offer_sdp(*, whip: bool = False) -> str:
    pc = RTCPeerConnection()
    if whip:
        pc.addTransceiver("audio", direction="sendonly")
    else:
        pc.createDataChannel("control")
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def _broken(sdp: str) -> dict[str, tuple[str, str]]:
    """Each way a tester broke an offer: (the SDP, a word the refusal must hold)."""
    return {
        "bogus a=setup": (re.sub(r"a=setup:\w+", "a=setup:bogus", sdp), "a=setup:bogus"),
        "no fingerprint": (re.sub(r"a=fingerprint:[^\r\n]*\r\n", "", sdp), "fingerprint"),
        "no common codec": (
            re.sub(r"a=rtpmap:(\d+) (VP8|H264|rtx|opus|PCMU|PCMA|G722)/", r"a=rtpmap:\1 FOO/", sdp), "codec"
        ),
    }


async def test_broken_sdp_is_a_json_400_on_whep_viewers_and_whip(server: Running) -> None:
    """/whep/{session} (an extra viewer) and /whip/{session}: answered by ``stream.live.offers``."""
    peer = ScenePeer(keep_video=False)
    assert (await peer.connect(server.url)).status_code == 200
    await peer.event("hello")
    sdp_headers = {"Content-Type": "application/sdp", **peer.credential}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        for where, (sdp, words) in _broken(await _offer_sdp()).items():
            r = await http.post(f"/whep/{peer.session_id}", content=sdp.encode(), headers=sdp_headers)
            assert r.status_code == 400 and r.json()["error"] == "bad_offer" and words in r.json()["message"], (where, r.text)
        for where, (sdp, words) in _broken(await _offer_sdp(whip=True)).items():
            r = await http.post(
                f"/whip/{peer.session_id}", params={"character": "LEO"}, content=sdp.encode(), headers=sdp_headers
            )
            assert r.status_code == 400 and r.json()["error"] == "bad_offer" and words in r.json()["message"], (where, r.text)
        # The session is untouched: it still answers.
        n = len(peer.events)
        peer.send({"type": "ping"})
        await peer.event("pong", after=n)
    await peer.close()


async def test_broken_sdp_is_a_json_400_on_offer_and_new_whep_sessions(server: Running) -> None:
    """/offer and /whep make sessions through ``SessionManager.create`` (wired to
    ``stream.live.offers`` by its owner); a refused offer leaves no session behind."""
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        for where, (sdp, words) in _broken(await _offer_sdp()).items():
            r = await http.post("/offer", json={"sdp": sdp, "type": "offer"})
            assert r.status_code == 400 and r.json()["error"] == "bad_offer" and words in r.json()["message"], (where, r.text)
            r = await http.post("/whep", content=sdp.encode(), headers={"Content-Type": "application/sdp"})
            assert r.status_code == 400 and r.json()["error"] == "bad_offer" and words in r.json()["message"], (where, r.text)
    assert server.sessions == {}


async def test_offer_cast_and_set_are_checked_before_a_session_is_made(server: Running) -> None:
    """The /offer body's ``cast`` and ``set`` go through ``check_cast`` / ``check_set``."""
    sdp = await _offer_sdp()
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        for extra, words in (
            ({"set": "moon"}, "unknown set"),
            ({"set": "x" * 1_000}, "'set'"),
            ({"set": 7}, "'set'"),
            ({"cast": ["x" * 100]}, "cast[0]"),
            ({"cast": ["MAYA"] * 50}, "'cast'"),
            ({"cast": ["MAYA", 7]}, "cast[1]"),
            ({"cast": "MAYA"}, "'cast'"),
        ):
            r = await http.post("/offer", json={"sdp": sdp, "type": "offer", **extra})
            assert 400 <= r.status_code < 500 and words in r.json()["message"], (extra, r.text)
    assert server.sessions == {}

