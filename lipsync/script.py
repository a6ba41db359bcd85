"""Script parsing: Fountain screenplays and plain ``NAME: line`` text into scenes of dialogue.

``parse_script`` picks the format (plain when most lines are ``NAME: text``), then yields
``Scene``s of ordered ``Line``s. Every line keeps the 1-based source line of its cue, so an
editor can point at the line a bad input came from, also when notes or boneyard span lines.
The Fountain markup itself is read by ``lipsync.fountain``; this module owns the result types,
the plain format, names and aliases, limits and errors.

Choices the Fountain spec leaves open, made for a writer previewing dialogue:
- A cue or a heading directly under a heading or transition is accepted (no blank line needed).
- A line that is only a note or boneyard vanishes; it neither adds nor breaks a paragraph.
- A cue whose speech has no words (only a parenthetical) is kept as action, not a silent line.
- Leading ``(...)`` on a dialogue line is a parenthetical in both formats.
- A third ``^`` cue in a row joins the pair's group; a ``^`` with no dialogue just before is solo.
- Plain text reads a title page too when its first key is a Fountain one (``Title:`` ...),
  ``NAME (V.O.): text`` extensions, full-width colons (``小明：你好``), and ``//`` comments.
- Aliases resolve one step: an alias of an alias is not followed.
- Text detected as Fountain that has no cues but has ``NAME: text`` lines is read as plain.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from lipsync.fountain import (
    Rows,
    clean_text,
    heading_text,
    is_heading,
    logical_lines,
    parse_fountain,
    split_name,
    split_parentheticals,
    split_title,
)

MAX_SCRIPT_CHARS = 200_000
MAX_LINE_CHARS = 1_000

NO_DIALOGUE = "no dialogue found: expected Fountain character cues or 'NAME: line' lines"

_COLON_RE = re.compile(r"[:：]")
_SHOT_NOTE_RE = re.compile(r"shot\s*:(.*)\Z", re.IGNORECASE | re.DOTALL)
_NAME_PUNCTUATION = " .'-’"
_UNSEEN_RE = re.compile(r"\b(?:V\.?\s*O|O\.?\s*S|O\.?\s*C|OFF)\b", re.IGNORECASE)


class ScriptError(ValueError):
    """A script that cannot be used; ``line`` is the 1-based source line at fault, if any.

    ``str(error)`` reads ``"line 12: <reason>"`` when a line is known, else just the reason.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.reason = message
        self.line = line
        super().__init__(message if line is None else f"line {line}: {message}")


@dataclass(frozen=True, slots=True)
class Line:
    """One speech: who says what, how, and where it came from in the source."""

    speaker: str  # canonical: upper-case, no extension, aliases resolved
    text: str  # joined with single spaces, emphasis markers removed
    parenthetical: str | None  # without parens; several joined with "; "
    extension: str | None  # "V.O.", "O.S.", "CONT'D" ... (several joined with " ")
    source_line: int  # 1-based line of the character cue or the NAME: line
    dual_group: int | None = None  # shared by both lines of a dual-dialogue pair

    @property
    def unseen(self) -> bool:
        """A voice heard without its speaker in the picture: ``(V.O.)``, ``(O.S.)``, ``(O.C.)``, ``(OFF)``."""
        return self.extension is not None and bool(_UNSEEN_RE.search(self.extension))


@dataclass(frozen=True, slots=True)
class Action:
    """Scene text nobody speaks: a Fountain action paragraph or a plain non-dialogue line."""

    text: str
    source_line: int


@dataclass(frozen=True, slots=True)
class Note:
    """A note for the director, ``[[shot: close MAYA]]``: ``text`` is what follows ``shot:``."""

    text: str
    source_line: int


@dataclass(frozen=True, slots=True)
class Scene:
    """A heading and what happens under it; ``heading`` is None for text before any heading."""

    heading: str | None
    lines: tuple[Line, ...]
    actions: tuple[Action, ...]
    source_line: int
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed script: title page (keys lower-cased), scenes in order, and its format."""

    title: dict[str, str]
    scenes: tuple[Scene, ...]
    format: str  # "fountain" or "plain"

    @property
    def lines(self) -> tuple[Line, ...]:
        """All dialogue lines of all scenes, in order."""
        return tuple(line for scene in self.scenes for line in scene.lines)

    @property
    def characters(self) -> tuple[str, ...]:
        """Canonical speakers in order of first appearance."""
        return tuple(dict.fromkeys(line.speaker for line in self.lines))


def parse_script(
    text: str,
    *,
    aliases: Mapping[str, str] | None = None,
    max_chars: int = MAX_SCRIPT_CHARS,
    max_line_chars: int = MAX_LINE_CHARS,
) -> Script:
    """Parse a Fountain screenplay or plain ``NAME: line`` text into a ``Script``.

    ``aliases`` maps alternative names to canonical ones, both case-insensitive
    (``{"Mom": "MAYA"}`` makes ``MOM:`` speak as ``MAYA``). Raises ``ScriptError`` for text that
    is not a str, is empty, is longer than ``max_chars`` or has no dialogue, for a speech longer
    than ``max_line_chars`` after joining its lines, and for an alias with an empty name.
    """
    if max_chars < 1 or max_line_chars < 1:
        raise ValueError(f"limits must be positive, got {max_chars=} and {max_line_chars=}")
    if not isinstance(text, str):
        raise ScriptError(f"script must be a str, got {type(text).__name__}; decode it first")
    if len(text) > max_chars:
        raise ScriptError(f"script is {len(text)} characters, over the limit of {max_chars}")
    if not text.strip():
        raise ScriptError("script is empty")
    alias_map = _canonical_aliases(aliases)
    notes: list[tuple[int, str]] = []
    rows = logical_lines(text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n"), notes=notes)
    return _with_notes(_parse_rows(rows, alias_map, max_line_chars), notes)


def _with_notes(script: Script, notes: list[tuple[int, str]]) -> Script:
    """Shot notes (``[[shot: ...]]``) attached to the scene they are written in."""
    found = [(line, _SHOT_NOTE_RE.match(text)) for line, text in notes]
    shot_notes = [Note(m.group(1).strip(), line) for line, m in found if m is not None]
    if not shot_notes:
        return script
    scenes = list(script.scenes)
    for note in shot_notes:
        at = max((i for i, sc in enumerate(scenes) if sc.source_line <= note.source_line), default=0)
        scenes[at] = replace(scenes[at], notes=(*scenes[at].notes, note))
    return replace(script, scenes=tuple(scenes))


def _parse_rows(rows: Rows, alias_map: dict[str, str], max_line_chars: int) -> Script:
    plain_title, plain_body = split_title(rows, any_key=False)
    counted, matched = _count_plain(plain_body)
    if matched * 2 <= counted:
        fountain = _Builder(aliases=alias_map, max_line_chars=max_line_chars)
        title, body = split_title(rows, any_key=True)
        parse_fountain(body, fountain)
        # A mostly-prose text with a few NAME: lines and no cues is still meant as plain.
        if fountain.has_dialogue or not matched:
            return fountain.build(title=title, format="fountain")
    plain = _Builder(aliases=alias_map, max_line_chars=max_line_chars)
    _parse_plain(plain_body, plain)
    return plain.build(title=plain_title, format="plain")


def likely_aliases(names: Sequence[str]) -> list[tuple[str, str]]:
    """(cue, name) pairs where a cue holds another character's whole name as words:
    ``CYBER BOB`` holds ``BOB``, ``BOB (V.O.)`` is already ``BOB``. Reported, never merged:
    ``--alias "CYBER BOB=BOB"`` merges them."""
    out = []
    for cue in names:
        words = cue.split()
        for name in names:
            n = name.split()
            if name != cue and len(n) < len(words) and any(words[i : i + len(n)] == n for i in range(len(words))):
                out.append((cue, name))
    return out


def _canonical(name: str) -> str:
    return " ".join(name.split()).upper()


def _canonical_aliases(aliases: Mapping[str, str] | None) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for alias, name in (aliases or {}).items():
        if not isinstance(alias, str) or not isinstance(name, str):
            raise ScriptError(f"alias {alias!r} -> {name!r}: both names must be str")
        if not _canonical(alias):
            raise ScriptError(f"alias for {name!r} is an empty name")
        if not _canonical(name):
            raise ScriptError(f"alias {alias!r} maps to an empty name")
        resolved[_canonical(alias)] = _canonical(name)
    return resolved


@dataclass
class _SceneDraft:
    heading: str | None
    source_line: int
    lines: list[Line] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


class _Builder:
    """Collects scenes while a parser walks the rows (a ``lipsync.fountain.SceneSink``)."""

    def __init__(self, *, aliases: dict[str, str], max_line_chars: int) -> None:
        self._aliases = aliases
        self._max_line_chars = max_line_chars
        self._scenes: list[_SceneDraft] = []
        self._paragraph: list[str] = []
        self._paragraph_line = 0
        self._after_dialogue = False  # a "^" cue pairs only with dialogue just before it
        self._dual_groups = 0

    @property
    def has_dialogue(self) -> bool:
        return any(scene.lines for scene in self._scenes)

    def heading(self, text: str, line: int) -> None:
        self.interrupt()
        self._scenes.append(_SceneDraft(text or None, line))

    def action_text(self, text: str, line: int) -> None:
        self._after_dialogue = False
        if not self._paragraph:
            self._paragraph_line = line
        self._paragraph.append(clean_text(text))

    def end_paragraph(self) -> None:
        text = "\n".join(self._paragraph).strip("\n")
        if text:
            self._scene(self._paragraph_line).actions.append(Action(text, self._paragraph_line))
        self._paragraph = []

    def interrupt(self) -> None:
        self.end_paragraph()
        self._after_dialogue = False

    def dialogue(
        self,
        *,
        name: str,
        extension: str | None,
        parentheticals: list[str],
        pieces: list[str],
        line: int,
        dual: bool,
        source: str,
    ) -> None:
        self.end_paragraph()
        text = clean_text(" ".join(pieces))
        if not text:
            for part in source.split("\n"):
                self.action_text(part, line)
            self.end_paragraph()
            return
        if len(text) > self._max_line_chars:
            raise ScriptError(
                f"dialogue is {len(text)} characters, over the limit of {self._max_line_chars};"
                " split it into shorter lines",
                line=line,
            )
        speaker = self._aliases.get(_canonical(name), _canonical(name))
        scene = self._scene(line)
        group = None
        if dual and self._after_dialogue and scene.lines:
            group = scene.lines[-1].dual_group
            if group is None:
                self._dual_groups += 1
                group = self._dual_groups
                scene.lines[-1] = replace(scene.lines[-1], dual_group=group)
        notes = "; ".join(c for c in map(clean_text, parentheticals) if c) or None
        scene.lines.append(Line(speaker, text, notes, extension, line, group))
        self._after_dialogue = True

    def build(self, *, title: dict[str, str], format: str) -> Script:
        self.end_paragraph()
        scenes = tuple(
            Scene(d.heading, tuple(d.lines), tuple(d.actions), d.source_line) for d in self._scenes
        )
        script = Script(title=title, scenes=scenes, format=format)
        if not script.lines:
            raise ScriptError(NO_DIALOGUE)
        return script

    def _scene(self, line: int) -> _SceneDraft:
        if not self._scenes:
            self._scenes.append(_SceneDraft(None, line))
        return self._scenes[-1]


def _is_name(name: str) -> bool:
    """1-40 chars of letters (any script), digits, spaces and . ' - starting with a letter."""
    return (
        0 < len(name) <= 40
        and name[0].isalpha()
        and all(
            c.isalnum() or c in _NAME_PUNCTUATION or unicodedata.category(c).startswith("M")
            for c in name
        )
    )


def _plain_dialogue(text: str) -> tuple[str, str | None, str] | None:
    """``(name, extension, speech)`` when ``text`` is a ``NAME: speech`` line, else None."""
    colon = _COLON_RE.search(text)
    split = split_name(text[: colon.start()]) if colon else None
    if colon is None or split is None:
        return None
    (name, extension), speech = split, text[colon.end() :].strip()
    if not speech or not _is_name(name) or speech.startswith("//"):
        return None
    if name[-1].isdigit() and text[colon.end()].isdigit():
        return None  # a time or ratio such as "at 10:30", not a speaker
    return name, extension, speech


def _count_plain(rows: Rows) -> tuple[int, int]:
    """(lines that are not blank, comments or headings, how many of them are ``NAME: text``)."""
    counted = matched = 0
    for _, raw in rows:
        text = raw.strip()
        if not text or text.startswith(("#", "//")) or is_heading(text):
            continue
        counted += 1
        matched += _plain_dialogue(text) is not None
    return counted, matched


def _parse_plain(rows: Rows, out: _Builder) -> None:
    for number, raw in rows:
        text = raw.strip()
        if not text or text.startswith("//"):
            continue
        if text.startswith("#") or is_heading(text):
            if heading := heading_text(text.lstrip("#")):
                out.heading(heading, number)
            continue
        parsed = _plain_dialogue(text)
        if parsed is None:
            out.action_text(text, number)
            out.end_paragraph()
            continue
        name, extension, speech = parsed
        parentheticals, speech = split_parentheticals(speech)
        out.dialogue(
            name=name,
            extension=extension,
            parentheticals=parentheticals,
            pieces=[speech],
            line=number,
            dual=False,
            source=text,
        )
