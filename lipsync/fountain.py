"""Fountain screenplay syntax (https://fountain.io/syntax): the reading half of ``lipsync.script``.

This module knows the markup: notes and boneyard, the title page, headings, cues, parentheticals,
dual dialogue, transitions, centered text, lyrics and emphasis. It reports what it finds to a
``SceneSink`` and builds nothing itself; ``lipsync.script`` owns the result types and the errors.
Rows are ``(1-based source line, text)`` pairs, so every element keeps its true line number.
"""

from __future__ import annotations

import re
from typing import Protocol

Rows = list[tuple[int, str]]

# Boneyard runs to the end when unterminated; a note may not hold another "[[" or a blank line
# (a line of exactly two spaces is allowed), so a stray "[[" cannot swallow the script.
_COMMENT_RE = re.compile(r"/\*.*?(?:\*/|\Z)|\[\[(?:(?!\[\[|\n(?!  \n)[ \t]*\n).)*?\]\]", re.DOTALL)
_HEADING_RE = re.compile(r"(?:int\.?/ext|i/e|int|ext|est)[.\s]", re.IGNORECASE)
_SCENE_NUMBER_RE = re.compile(r"#[\w.\-]+#$")
_TITLE_KEY_RE = re.compile(r"(?P<key>[^\W\d_][\w .'\-]{0,39}?)\s*:\s*(?P<value>.*)")
_EXTENSIONS_RE = re.compile(r"(?:\([^()]*\)\s*)*")
_PAREN_RE = re.compile(r"\(([^()]*)\)")
_LEADING_PAREN_RE = re.compile(r"\(([^)]*)\)\s*")
_PAGE_BREAK_RE = re.compile(r"={3,}")
# Every pattern below scans at most to the next marker or line, so a hostile 200 kB line
# costs linear time, not quadratic.
_EMPHASIS_RES = (
    re.compile(r"\*\*\*(?=\S)([^*]+?)(?<=\S)\*\*\*"),
    re.compile(r"\*\*(?=\S)((?:[^*]|\*(?!\*))+?)(?<=\S)\*\*"),
    re.compile(r"\*(?=\S)([^*]+?)(?<=\S)\*"),
    # Underline only at word edges, so snake_case_names survive.
    re.compile(r"(?<![^\W_])_(?=\S)([^_]+?)(?<=\S)_(?![^\W_])"),
)
TITLE_KEYS = frozenset(
    {"title", "credit", "author", "authors", "source", "draft date", "date", "contact",
     "copyright", "notes", "revision"}
)  # fmt: skip


class SceneSink(Protocol):
    """What a parser reports to, in source order."""

    def heading(self, text: str, line: int) -> None: ...

    def action_text(self, text: str, line: int) -> None:
        """One line of the current action paragraph."""

    def end_paragraph(self) -> None: ...

    def interrupt(self) -> None:
        """A transition: not kept, but it ends the paragraph and separates dialogue."""

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
        """One speech; ``source`` is its raw text, kept as action if the speech has no words."""


def clean_text(text: str) -> str:
    """Remove paired emphasis markers (``\\*`` and ``\\_`` stay literal); collapse whitespace."""
    star = under = ""
    if "\\" in text:
        free = (chr(c) for c in range(0xE000, 0xF900) if chr(c) not in text)
        star, under = next(free), next(free)
        text = text.replace("\\*", star).replace("\\_", under)
    for pattern in _EMPHASIS_RES:
        text = pattern.sub(r"\1", text)
    if star:
        text = text.replace(star, "*").replace(under, "_")
    return " ".join(text.split())


def is_heading(text: str) -> bool:
    """Whether ``text`` starts like a scene heading: INT. EXT. EST. INT./EXT. I/E (any case)."""
    return _HEADING_RE.match(text) is not None


def heading_text(text: str) -> str:
    """A heading without its scene number (``#12A#``) and emphasis."""
    return clean_text(_SCENE_NUMBER_RE.sub("", text.rstrip()))


def extension_text(parens: str) -> str | None:
    """``"(v.o.) (CONT’D)"`` -> ``"V.O. CONT'D"``; None when there are none."""
    parts = [" ".join(p.split()).upper().replace("’", "'") for p in _PAREN_RE.findall(parens)]
    return " ".join(p for p in parts if p) or None


def split_name(head: str) -> tuple[str, str | None] | None:
    """``"MAYA (V.O.)"`` -> ``("MAYA", "V.O.")``; None when text follows the extensions."""
    paren = head.find("(")
    if paren < 0:
        return " ".join(head.split()), None
    if not _EXTENSIONS_RE.fullmatch(head, paren, len(head.rstrip())):
        return None
    return " ".join(head[:paren].split()), extension_text(head[paren:])


def split_parentheticals(text: str) -> tuple[list[str], str]:
    """Peel leading ``(...)`` groups off a dialogue line: ``(beat) Go.`` -> (["beat"], "Go.")."""
    found: list[str] = []
    pos = 0
    while match := _LEADING_PAREN_RE.match(text, pos):
        found.append(match[1])
        pos = match.end()
    return found, text[pos:].strip()


def logical_lines(text: str, *, notes: list[tuple[int, str]] | None = None) -> Rows:
    """Split into rows with notes ``[[..]]`` and boneyard ``/*..*/`` removed.

    A removal spanning lines joins the text around it into one row numbered by the line it
    started on, so later rows keep their true numbers. A row emptied only by a removal is
    dropped: a note on its own line must not end a dialogue block. ``notes``, when given,
    receives each note's (line, text inside the brackets).
    """
    rows: Rows = []
    current: list[str] = []
    start = line_no = 1
    removed = False
    pos = 0
    while True:
        match = _COMMENT_RE.search(text, pos)
        first, *rest = text[pos : match.start() if match else len(text)].split("\n")
        current.append(first)
        for piece in rest:
            _keep_row(rows, start, "".join(current), removed)
            line_no += 1
            start, current, removed = line_no, [piece], False
        if match is None:
            _keep_row(rows, start, "".join(current), removed)
            return rows
        if notes is not None and match.group().startswith("[["):
            notes.append((line_no, match.group()[2:-2].strip()))
        line_no += match.group().count("\n")
        removed = True
        pos = match.end()


def _keep_row(rows: Rows, line_no: int, text: str, removed: bool) -> None:
    if not (removed and not text.strip()):
        rows.append((line_no, text))


def _title_pair(raw: str) -> tuple[str, str] | None:
    match = _TITLE_KEY_RE.fullmatch(raw.rstrip())
    if match is None or is_heading(raw):
        return None
    return " ".join(match["key"].split()).lower(), match["value"].strip()


def split_title(rows: Rows, *, any_key: bool) -> tuple[dict[str, str], Rows]:
    """Take the title page (``key: value`` lines up to the first blank line) off the top.

    Keys are lower-cased; indented lines continue the value before them (joined by newlines).
    Fountain allows any key; ``any_key=False`` asks for a first key in ``TITLE_KEYS``.
    """
    i = 0
    while i < len(rows) and not rows[i][1].strip():
        i += 1
    first = _title_pair(rows[i][1]) if i < len(rows) else None
    if first is None or not (any_key or first[0] in TITLE_KEYS):
        return {}, rows
    values: dict[str, list[str]] = {}
    key = first[0]
    while i < len(rows) and rows[i][1].strip():
        raw = rows[i][1]
        pair = None if raw[:1].isspace() else _title_pair(raw)
        if pair is not None:
            key = pair[0]
            values.setdefault(key, [])
        value = pair[1] if pair is not None else raw.strip()
        if value:
            values[key].append(clean_text(value))
        i += 1
    return {k: "\n".join(v) for k, v in values.items()}, rows[i:]


def _is_blank(raw: str) -> bool:
    # A line of exactly two spaces is Fountain's deliberate "not blank".
    return raw != "  " and not raw.strip()


def _parse_cue(text: str) -> tuple[str, str | None, bool] | None:
    """``(name, extension, dual)`` when ``text`` can be a character cue, else None."""
    forced = text.startswith("@")
    body = text[1:].strip() if forced else text
    dual = body.endswith("^")
    if dual:
        body = body[:-1].rstrip()
    split = split_name(body)
    if split is None or not split[0]:
        return None
    name, extension = split
    if not forced and (
        name != name.upper() or not any(c.isalpha() for c in name) or name.endswith(":")
    ):
        return None
    return name, extension, dual


def _read_speech(rows: Rows, start: int) -> tuple[list[str], list[str], int]:
    """Read dialogue rows from ``start`` up to a blank line: (parentheticals, text, next index)."""
    parentheticals: list[str] = []
    pieces: list[str] = []
    i = start
    unclosed_until = start  # rows before this cannot close a wrapped parenthetical
    while i < len(rows) and not _is_blank(rows[i][1]):
        text = rows[i][1].strip()
        if text.startswith("(") and ")" not in text and i >= unclosed_until:
            end = i + 1  # a parenthetical wrapped over lines, closed by a line ending in ")"
            while end < len(rows) and not _is_blank(rows[end][1]) and ")" not in rows[end][1]:
                end += 1
            if end < len(rows) and rows[end][1].rstrip().endswith(")"):
                wrapped = " ".join(row[1].strip() for row in rows[i : end + 1])
                parentheticals.append(wrapped[1:-1])
                i = end + 1
                continue
            unclosed_until = end
        found, text = split_parentheticals(text)
        parentheticals += found
        text = text[1:] if text.startswith("~") else text  # lyrics are sung dialogue
        if text.strip():
            pieces.append(text.strip())
        i += 1
    return parentheticals, pieces, i


def parse_fountain(rows: Rows, out: SceneSink) -> None:
    """Walk the body rows (title page already taken off) and report each element to ``out``.

    Sections ``#``, synopses ``=`` and page breaks ``===`` are outline only and reported to
    nobody; transitions are reported as ``interrupt()``; centered text, forced action ``!`` and
    standalone lyrics ``~`` are action.
    """
    i = 0
    after_blank = True  # cues, headings and transitions need a blank line (or a heading) before
    while i < len(rows):
        number, raw = rows[i]
        text = raw.strip()
        i += 1
        if _is_blank(raw):
            out.end_paragraph()
            after_blank = True
            continue
        if _PAGE_BREAK_RE.fullmatch(text) or text.startswith(("=", "#")):
            continue
        forced_heading = text.startswith(".") and text[1:2].isalnum()
        if forced_heading or (after_blank and is_heading(text)):
            out.heading(heading_text(text[1:] if forced_heading else text), number)
            after_blank = True
            continue
        if text.startswith(">") and text.endswith("<"):
            out.action_text(text[1:-1].strip(), number)
            after_blank = False
            continue
        if text.startswith(">") or (after_blank and text.endswith("TO:") and text == text.upper()):
            out.interrupt()
            after_blank = True
            continue
        next_blank = i >= len(rows) or _is_blank(rows[i][1])
        cue = None if text.startswith(("!", "~")) else _parse_cue(text)
        if cue is not None and after_blank and not next_blank:
            name, extension, dual = cue
            parentheticals, pieces, end = _read_speech(rows, i)
            out.dialogue(
                name=name,
                extension=extension,
                parentheticals=parentheticals,
                pieces=pieces,
                line=number,
                dual=dual,
                source="\n".join(row[1].strip() for row in rows[i - 1 : end]),
            )
            i = end
            after_blank = False
            continue
        out.action_text(text[1:] if text.startswith(("!", "~")) else text, number)
        after_blank = False
