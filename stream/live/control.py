"""The control protocol: JSON messages, the same over the WebSocket and the ``control`` data channel.

Client → server::

    {"type": "say", "speaker": "MAYA", "text": "Where were you?", "cut_in": false, "overlap": false}
    {"type": "script", "text": "MAYA: Where were you?\\nLEO: Out."}   (Fountain or NAME: line)
    {"type": "interrupt"}
    {"type": "scene", "cast": ["MAYA", "LEO", "IRIS"], "set": "kitchen"}  (either key optional)
    {"type": "stats"}
    {"type": "ping"}
    {"type": "record", "action": "start", "scene_id": "sc_…", "take_name": "Take 3"}  (take_name optional)
    {"type": "record", "action": "stop"}
    {"type": "mic", "character": "MAYA"}      (the page's microphone drives MAYA; null: nobody)
    {"type": "play", "character": "LEO", "file": "hello.wav"}  (a file of the server's audio folder)
    {"type": "unbind", "character": "MAYA"}   (end the live input driving MAYA)

Server → client: ``hello``, ``line_queued``, ``line_started`` (with ``media_time_s`` and
``latency_ms``), ``line_ended`` (with ``interrupted``), ``scene``, ``stats``, ``pong``,
``take_started`` / ``take_stopped`` (recording) and ``error`` (with ``code`` and ``message``).
Every malformed message gets an ``error`` event and the session goes on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from lipsync.script import ScriptError, parse_script
from stream.errors import ClientError

MAX_MESSAGE_BYTES = 64 * 1024
MAX_SAY_CHARS = 1_000


class ProtocolError(ClientError):
    """A control message that is malformed or asks for something unknown."""


@dataclass(frozen=True, slots=True)
class Say:
    speaker: str
    text: str
    cut_in: bool = False
    overlap: bool = False


@dataclass(frozen=True, slots=True)
class Interrupt:
    pass


@dataclass(frozen=True, slots=True)
class SetScene:
    cast: tuple[str, ...] | None
    set_name: str | None


@dataclass(frozen=True, slots=True)
class GetStats:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Record:
    """Start a take of this session into a scene of the store, or stop the take."""

    action: str  # "start" | "stop"
    scene_id: str | None = None
    take_name: str | None = None


@dataclass(frozen=True, slots=True)
class BindInput:
    """Live audio → a character: the page's microphone ("mic", character None unbinds it),
    a server-side file ("play"), or no input at all ("unbind")."""

    action: str  # "mic" | "play" | "unbind"
    character: str | None
    file: str | None = None


Command = Say | Interrupt | SetScene | GetStats | Ping | Record | BindInput


def _field(msg: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    if name not in msg:
        if required:
            raise ProtocolError("bad_message", f"'{msg.get('type')}' needs a '{name}' field")
        return None
    value = msg[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError("bad_message", f"'{name}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def parse_message(raw: str | bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> list[Command]:
    """Commands in one message (a script block gives one ``Say`` per line)."""
    if len(raw) > max_bytes:
        raise ProtocolError("too_large", f"message is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        msg = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"message is not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_message", f"message must be a JSON object, got {type(msg).__name__}")
    kind = msg.get("type")
    if kind == "say":
        speaker = _field(msg, "speaker", str).strip()
        text = _field(msg, "text", str)
        if not speaker:
            raise ProtocolError("bad_message", "'speaker' is empty")
        if len(text) > MAX_SAY_CHARS:
            raise ProtocolError("bad_line", f"the line is {len(text)} characters; the limit is {MAX_SAY_CHARS}")
        return [
            Say(
                speaker=speaker,
                text=text,
                cut_in=bool(_field(msg, "cut_in", bool, required=False)),
                overlap=bool(_field(msg, "overlap", bool, required=False)),
            )
        ]
    if kind == "script":
        text = _field(msg, "text", str)
        try:
            script = parse_script(text, max_line_chars=MAX_SAY_CHARS)
        except ScriptError as exc:
            raise ProtocolError("bad_script", str(exc)) from None
        cut_in = bool(_field(msg, "cut_in", bool, required=False))
        says: list[Command] = []
        for i, line in enumerate(script.lines):
            dual = i > 0 and line.dual_group is not None and script.lines[i - 1].dual_group == line.dual_group
            says.append(Say(speaker=line.speaker, text=line.text, cut_in=cut_in and i == 0, overlap=dual))
        return says
    if kind == "interrupt":
        return [Interrupt()]
    if kind == "scene":
        cast = _field(msg, "cast", list, required=False)
        if cast is not None and not all(isinstance(n, str) and n.strip() for n in cast):
            raise ProtocolError("bad_message", "'cast' must be a list of character names")
        set_name = _field(msg, "set", str, required=False)
        if cast is None and set_name is None:
            raise ProtocolError("bad_message", "'scene' needs 'cast' and/or 'set'")
        return [SetScene(cast=tuple(cast) if cast is not None else None, set_name=set_name)]
    if kind == "stats":
        return [GetStats()]
    if kind == "ping":
        return [Ping()]
    if kind == "record":
        action = _field(msg, "action", str)
        if action == "stop":
            return [Record(action="stop")]
        if action != "start":
            raise ProtocolError("bad_message", f"'action' must be 'start' or 'stop', got {action!r}")
        scene_id = _field(msg, "scene_id", str)
        return [Record(action="start", scene_id=scene_id, take_name=_field(msg, "take_name", str, required=False))]
    if kind in ("mic", "play", "unbind"):
        character = msg.get("character")
        if kind == "mic" and character is None:
            return [BindInput(action="mic", character=None)]
        character = _field(msg, "character", str).strip()
        if not character:
            raise ProtocolError("bad_message", "'character' is empty")
        file = _field(msg, "file", str) if kind == "play" else None
        return [BindInput(action=kind, character=character, file=file)]
    raise ProtocolError(
        "unknown_type",
        f"unknown message type {kind!r}; expected say, script, interrupt, scene, stats, ping, record, "
        "mic, play or unbind",
    )


class RateLimiter:
    """Token bucket: ``rate_per_s`` messages a second with bursts of ``burst``."""

    def __init__(self, *, rate_per_s: float = 20.0, burst: int = 40) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
