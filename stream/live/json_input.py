"""The one strict JSON reader for what clients send: control messages and REST bodies.

``json.loads`` alone lets through what later breaks the server far from the input: nesting deep
enough to raise ``RecursionError``, ``NaN``/``Infinity`` (which no JSON encoder writes back),
integers too long to convert, lone UTF-16 surrogates (``"\\ud800"``, which no UTF-8 channel can
send back) and NUL characters (which paths and C libraries refuse). ``parse_json`` refuses each
before the value reaches a handler, with a ``JsonInputError`` naming what was wrong:

- the size is bounded before anything is parsed (``too_large``, HTTP 413);
- the nesting depth is counted by a scan of the text before parsing (``bad_json``);
- ``NaN``, ``Infinity``, numbers that overflow a float and integers of more than
  ``MAX_INT_DIGITS`` digits are refused while parsing (``bad_json``);
- every key and string value, at any depth, must be valid Unicode without NUL (``bad_json``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from stream.errors import ClientError

MAX_DEPTH = 32
MAX_INT_DIGITS = 32  # 64-bit seeds have 20; nothing a client sends needs more

# Only these characters change the nesting depth or the in-a-string state.
_STRUCTURE = re.compile(r'[\[\]{}"\\]')


class JsonInputError(ClientError):
    """Client JSON that is too large, malformed or holds a value the server refuses."""

    def __init__(self, message: str, *, code: str = "bad_json", http_status: int | None = None) -> None:
        super().__init__(code, message, http_status=http_status)


def parse_json(raw: str | bytes, *, max_bytes: int, what: str = "message", max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``raw`` (UTF-8 bytes or text), checked as the module says; ``what``
    names the input in error messages ("message", "request body")."""
    size = _byte_size(raw, max_bytes)
    if size > max_bytes:
        raise JsonInputError(f"the {what} is {size} bytes; the limit is {max_bytes}", code="too_large", http_status=413)
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError(f"the {what} is not UTF-8: {exc.reason} at byte {exc.start}") from None
    else:
        text = raw
    _check_depth(text, max_depth=max_depth, what=what)
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except JsonInputError as exc:
        raise JsonInputError(f"the {what} holds {exc}") from None
    except ValueError as exc:  # JSONDecodeError, and anything else the decoder refuses
        raise JsonInputError(f"the {what} is not JSON: {exc}") from None
    _check_strings(value, what=what, path="")
    return value


def check_text(value: str, *, field: str) -> str:
    """``value`` if it is valid Unicode without NUL; else ``JsonInputError`` naming ``field``."""
    problem = _text_problem(value)
    if problem is not None:
        raise JsonInputError(f"'{field}' {problem}")
    return value


def _byte_size(raw: str | bytes, max_bytes: int) -> int:
    if isinstance(raw, bytes) or len(raw) > max_bytes:
        return len(raw)  # a character is at least one byte: over the limit either way
    if len(raw) * 4 <= max_bytes or raw.isascii():
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))


def _check_depth(text: str, *, max_depth: int, what: str) -> None:
    """Refuse nesting deeper than ``max_depth``, counting brackets outside strings.

    The decoder recurses once per level; refusing first keeps it far from the recursion limit.
    Malformed text is left for the decoder to name, except that it may count as deep here.
    """
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _STRUCTURE.finditer(text):
        i = match.start()
        if i == escaped_at:
            continue
        ch = text[i]
        if in_string:
            if ch == "\\":
                escaped_at = i + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise JsonInputError(f"the {what} nests deeper than {max_depth} levels")
        elif ch in "]}":
            depth -= 1


def _no_constant(name: str) -> Any:
    raise JsonInputError(f"{name}, which JSON does not allow; send a finite number or null")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JsonInputError(f"the number {literal[:40]} that overflows a float")
    return value


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonInputError(f"an integer of {len(literal.lstrip('-'))} digits; at most {MAX_INT_DIGITS}")
    return int(literal)


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "holds a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"is not valid Unicode (a lone surrogate {value[exc.start]!a} at character {exc.start})"
    return None


def _where(path: str) -> str:
    return (path if len(path) <= 80 else path[:77] + "...") if path else "the top"


def _check_strings(value: Any, *, what: str, path: str) -> None:
    """Every key and string in ``value`` is sendable text (the depth is bounded already)."""
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem is not None:
            raise JsonInputError(f"the {what}'s string at {_where(path)} {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = _text_problem(key)
            if problem is not None:
                raise JsonInputError(f"the {what}'s key {key[:40]!a} at {_where(path)} {problem}")
            _check_strings(item, what=what, path=f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, what=what, path=f"{path}[{i}]")
