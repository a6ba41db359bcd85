"""The control protocol: JSON messages, the same over the WebSocket and the ``control`` data channel.

Client → server::

    {"type": "say", "speaker": "MAYA", "text": "Where were you?", "cut_in": false, "overlap": false}
        (optional "voice": "espeak" (instant) or "natural" (the character's own); default: the server's --voice)
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
    {"type": "cast", "character": "BOB", "spec": "a white man, 40; hair_style=bald voice.variant=m2"}
                                              (pin a look and voice for this session: a cast file's line)
    {"type": "shot", "shot": "close MAYA"}    (hold a shot: wide | two A B | medium A | close A; "auto" lets
                                               the director cut again)

Server → client: ``hello``, ``line_queued``, ``line_started`` (with ``media_time_s`` and
``latency_ms``), ``line_ended`` (with ``interrupted``), ``scene``, ``stats``, ``pong``,
``take_started`` / ``take_stopped`` (recording) and ``error`` (with ``code`` and ``message``).
Every malformed message gets an ``error`` event and the session goes on. Messages are read by
the strict JSON reader (bounded size and depth, no NaN, lone surrogates or NUL); names are 1 to 64
characters, a ``play`` file is a plain file name of 1 to 255. ``check_cast`` and ``check_set``
check the same fields of the ``/offer`` body.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from avatar.sets import check_set_name
from lipsync.script import ScriptError, parse_script
from stream.errors import ClientError
from stream.live.json_input import JsonInputError, check_text, parse_json

MAX_MESSAGE_BYTES = 64 * 1024
MAX_SAY_CHARS = 1_000
MAX_NAME_CHARS = 64  # a character's name, as CharacterSpec allows it once upper-cased
MAX_CAST_NAMES = 16  # a scene holds fewer (the scene says how many); this bounds the work of refusing
MAX_SET_CHARS = 64
MAX_FILE_CHARS = 255  # one file name, as most file systems allow
MAX_ID_CHARS = 64

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ProtocolError(ClientError):
    """A control message that is malformed or asks for something unknown."""


@dataclass(frozen=True, slots=True)
class Say:
    speaker: str
    text: str
    cut_in: bool = False
    overlap: bool = False
    voice: str | None = None  # "espeak": spoken at once by espeak-ng; None: the character's own voice


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


@dataclass(frozen=True, slots=True)
class SetShot:
    """Hold a shot (``"close MAYA"``), or ``"auto"``: the director cuts again."""

    shot: str


@dataclass(frozen=True, slots=True)
class PinCast:
    """Pin a character's look and voice: ``spec`` is a cast file's line after ``NAME:``."""

    character: str
    spec: str


@dataclass(frozen=True, slots=True)
class Prepare:
    """Draw these characters ahead (a script names them before they speak)."""

    names: tuple[str, ...]


Command = Say | Interrupt | SetScene | GetStats | Ping | Record | BindInput | SetShot | Prepare | PinCast


def _field(msg: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    if name not in msg:
        if required:
            raise ProtocolError("bad_message", f"'{msg.get('type')}' needs a '{name}' field")
        return None
    value = msg[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError("bad_message", f"'{name}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def check_name(value: object, *, field: str) -> str:
    """A character name as sent (stripped): text of 1 to ``MAX_NAME_CHARS`` characters once
    upper-cased, without control characters; else ``bad_message`` naming ``field``."""
    if not isinstance(value, str):
        raise ProtocolError("bad_message", f"'{field}' must be a character name (str), got {type(value).__name__}")
    name = _checked_text(value, field=field).strip()
    if not name:
        raise ProtocolError("bad_message", f"'{field}' is empty")
    if len(name.upper()) > MAX_NAME_CHARS:
        raise ProtocolError(
            "bad_message", f"'{field}' is {len(name.upper())} characters; a name has at most {MAX_NAME_CHARS}"
        )
    if _CONTROL_CHARS.search(name):
        raise ProtocolError("bad_message", f"'{field}' holds a control character: {name[:MAX_NAME_CHARS]!a}")
    return name


def check_cast(value: object) -> list[str] | None:
    """A ``cast`` field: None, or a list of at most ``MAX_CAST_NAMES`` names (each ``check_name``'d,
    returned stripped); else ``bad_message``. Whether the scene has room is the scene's to say."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ProtocolError("bad_message", f"'cast' must be a list of character names, got {type(value).__name__}")
    if len(value) > MAX_CAST_NAMES:
        raise ProtocolError("bad_message", f"'cast' names {len(value)} characters; at most {MAX_CAST_NAMES}")
    return [check_name(name, field=f"cast[{i}]") for i, name in enumerate(value)]


def check_set(value: object) -> str | None:
    """A ``set`` field: None, or the name of a known set or a colour (``#00ff00``); a string of
    the wrong kind is ``bad_message``, an unknown set ``bad_scene`` naming the known ones."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError("bad_message", f"'set' must be str, got {type(value).__name__}")
    _checked_text(value, field="set")
    if len(value) > MAX_SET_CHARS:
        raise ProtocolError("bad_message", f"'set' is {len(value)} characters; at most {MAX_SET_CHARS}")
    try:
        check_set_name(value)
    except ValueError as exc:
        raise ProtocolError("bad_scene", str(exc)) from None
    return value


def check_file_name(value: object) -> str:
    """A ``play`` file: a plain name of 1 to ``MAX_FILE_CHARS`` characters in the server's audio
    folder. Empty, over-long or NUL is ``bad_message``; a path (``/``, ``\\``, ``..``) is
    ``unknown_file``, as a name outside the folder always was."""
    if not isinstance(value, str):
        raise ProtocolError("bad_message", f"'file' must be a file name (str), got {type(value).__name__}")
    name = _checked_text(value, field="file")
    if not name.strip():
        raise ProtocolError("bad_message", "'file' is empty; name a file of the server's audio folder")
    if len(name) > MAX_FILE_CHARS:
        raise ProtocolError(
            "bad_message", f"'file' is {len(name)} characters; a file name has at most {MAX_FILE_CHARS}"
        )
    if _CONTROL_CHARS.search(name):
        raise ProtocolError("bad_message", f"'file' holds a control character: {name[:40]!a}")
    if "/" in name or "\\" in name or name.strip() in (".", ".."):
        raise ProtocolError(
            "unknown_file", f"'file' must be a plain file name of the server's audio folder, not a path: {name[:80]!r}"
        )
    return name


def _checked_text(value: str, *, field: str) -> str:
    try:
        return check_text(value, field=field)
    except JsonInputError as exc:
        raise ProtocolError("bad_message", str(exc)) from None


def _bounded(value: str, *, field: str, max_chars: int) -> str:
    _checked_text(value, field=field)
    if len(value) > max_chars:
        raise ProtocolError("bad_message", f"'{field}' is {len(value)} characters; at most {max_chars}")
    return value


def parse_message(raw: str | bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> list[Command]:
    """Commands in one message (a script block gives one ``Say`` per line).

    The JSON is read strictly (``stream.live.json_input``); every field is checked here, so a
    command reaching the session holds only sendable text of bounded size."""
    try:
        msg = parse_json(raw, max_bytes=max_bytes, what="message")
    except JsonInputError as exc:
        raise ProtocolError(exc.code, str(exc)) from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_message", f"message must be a JSON object, got {type(msg).__name__}")
    kind = msg.get("type")
    if kind == "say":
        speaker = check_name(_field(msg, "speaker", str), field="speaker")
        text = _checked_text(_field(msg, "text", str), field="text")
        if len(text) > MAX_SAY_CHARS:
            raise ProtocolError("bad_line", f"the line is {len(text)} characters; the limit is {MAX_SAY_CHARS}")
        return [
            Say(
                speaker=speaker,
                text=text,
                cut_in=bool(_field(msg, "cut_in", bool, required=False)),
                overlap=bool(_field(msg, "overlap", bool, required=False)),
                voice=_voice_choice(msg),
            )
        ]
    if kind == "script":
        text = _field(msg, "text", str)
        try:
            script = parse_script(text, max_line_chars=MAX_SAY_CHARS)
        except ScriptError as exc:
            raise ProtocolError("bad_script", str(exc)) from None
        cut_in = bool(_field(msg, "cut_in", bool, required=False))
        voice = _voice_choice(msg)
        says: list[Command] = [Prepare(names=script.characters[:MAX_CAST_NAMES])]
        for i, line in enumerate(script.lines):
            try:
                check_name(line.speaker, field="speaker")
            except ProtocolError as exc:
                raise ProtocolError("bad_script", f"line {i + 1}: {exc}") from None
            dual = i > 0 and line.dual_group is not None and script.lines[i - 1].dual_group == line.dual_group
            says.append(
                Say(speaker=line.speaker, text=line.text, cut_in=cut_in and i == 0, overlap=dual, voice=voice)
            )
        return says
    if kind == "interrupt":
        return [Interrupt()]
    if kind == "cast":
        return [PinCast(character=check_name(_field(msg, "character", str), field="character"), spec=_bounded(_field(msg, "spec", str), field="spec", max_chars=MAX_SAY_CHARS))]
    if kind == "shot":
        return [SetShot(shot=_bounded(_field(msg, "shot", str), field="shot", max_chars=MAX_NAME_CHARS * 3))]
    if kind == "scene":
        cast = check_cast(msg.get("cast"))
        set_name = check_set(msg.get("set"))
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
        scene_id = _bounded(_field(msg, "scene_id", str), field="scene_id", max_chars=MAX_ID_CHARS)
        take_name = _field(msg, "take_name", str, required=False)
        if take_name is not None:
            _checked_text(take_name, field="take_name")
        return [Record(action="start", scene_id=scene_id, take_name=take_name)]
    if kind in ("mic", "play", "unbind"):
        character = msg.get("character")
        if kind == "mic" and character is None:
            return [BindInput(action="mic", character=None)]
        character = check_name(_field(msg, "character", str), field="character")
        file = check_file_name(_field(msg, "file", str)) if kind == "play" else None
        return [BindInput(action=kind, character=character, file=file)]
    raise ProtocolError(
        "unknown_type",
        f"unknown message type {kind!r}; expected say, script, interrupt, scene, stats, ping, record, "
        "mic, play or unbind",
    )


def _voice_choice(msg: dict[str, Any]) -> str | None:
    """A say's or script's optional ``voice``: "espeak" (instant) or "natural" (the character's own)."""
    voice = _field(msg, "voice", str, required=False)
    if voice not in (None, "natural", "espeak"):
        raise ProtocolError("bad_message", f"'voice' must be 'natural' or 'espeak', got {voice!r}")
    return voice


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
