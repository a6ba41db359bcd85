"""Blocking: who is on stage when, read from a script scene, and its lines as the director's beats.

Everyone who speaks in a scene is on stage from its start, unless the script brings them in
later: an action line after the scene's first speech that names them in CAPS ("BOB walks in")
before they first speak. An action line with a leaving verb ("She scuttles off", "LEO exits")
takes its subject off; "he"/"she"/"they" mean the character named last in that paragraph, else
the last speaker. Someone who left and speaks again comes back for that line. A voice over or
off screen (``MAYA (V.O.)``, ``(O.S.)``) is heard without its speaker on stage: someone only
heard that way never stands on it, and one first heard that way enters at their first line in
person.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avatar.shots import Beat, ShotNote, StageCue, parse_shot_note
from lipsync.script import Scene
from lipsync.timeline import SceneTimeline

_EXIT_RE = re.compile(
    r"\b(?:exits?|exeunt|leaves|departs|disappears|vanishes|"
    r"(?:walks|storms|runs|scuttles|hurries|heads|rushes|slips|steps|wanders|goes|drives|"
    r"marches|stalks|stomps|stumbles|limps|strides|dashes|flees|backs)\s+(?:off|out|away))\b",
    re.IGNORECASE,
)
_ENTER_RE = re.compile(
    r"\b(?:enters|arrives|appears|joins|(?:comes|walks|steps|bursts|barges|wanders|strides|runs)\s+in)\b",
    re.IGNORECASE,
)
_PRONOUN_RE = re.compile(r"\b(?:he|she|they)\b", re.IGNORECASE)
_ADDRESS_RE = re.compile(r"\bto\s+([A-Z][\w'\-]*(?:\s+[A-Z][\w'\-]*)*)", re.IGNORECASE)
_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]*")
SILENT_RMS = 120.0 / 32768.0
"""A frame whose own voice RMS (a share of full scale, as ``SceneTimeline.voice_rms``; about
-49 dBFS) is below this is a pause between words."""


@dataclass(frozen=True, slots=True)
class SceneDirection:
    """What the director reads from a scene besides its lines (all on the frame clock)."""

    cues: tuple[StageCue, ...]
    notes: tuple[ShotNote, ...]
    names: tuple[str, ...]
    """Everyone who appears, in order of appearance."""


def _mentions(text: str, names: Sequence[str]) -> list[tuple[int, str]]:
    """(position, name) of each CAPS mention of a known name in ``text``."""
    found = []
    for name in names:
        for m in re.finditer(r"(?<![\w'])" + re.escape(name) + r"(?![\w'])", text):
            found.append((m.start(), name))
    return sorted(found)


def addressee(parenthetical: str | None, names: Sequence[str]) -> str | None:
    """``"to DOG"`` / ``"turning to Maya"`` → the named character, when they are in ``names``."""
    if not parenthetical:
        return None
    for m in _ADDRESS_RE.finditer(parenthetical):
        words = m.group(1).upper().split()
        for n in range(len(words), 0, -1):
            candidate = " ".join(words[:n])
            if candidate in names:
                return candidate
    return None


def read_direction(
    scene: Scene, line_frames: Sequence[tuple[int, int]], *, extra_names: Sequence[str] = ()
) -> SceneDirection:
    """Entrances, exits and shot notes of ``scene``; ``line_frames[i]`` is (start, end) frame of
    ``scene.lines[i]``. ``extra_names``: walk-ons (introduced characters who never speak).
    Raises ``avatar.shots.ShotError`` (naming the line) for a bad shot note."""
    seen = [line for line in scene.lines if not line.unseen]  # a voice over is never on stage
    speakers = list(dict.fromkeys(line.speaker for line in seen))
    heard = {line.speaker for line in scene.lines}
    names = [*speakers, *(n for n in extra_names if n not in heard)]
    first_line = scene.lines[0].source_line if scene.lines else 0
    starts = [f[0] for f in line_frames]

    def frame_at(source_line: int) -> int:
        """The frame an action at ``source_line`` happens: where the next line starts, or just
        after the last line."""
        for line, (start, _) in zip(scene.lines, line_frames, strict=True):
            if line.source_line > source_line:
                return start
        return line_frames[-1][1] if line_frames else 0

    cues: list[StageCue] = []
    first_spoken = {n: min(i for i, line in enumerate(scene.lines) if line.speaker == n and not line.unseen) for n in speakers}
    for action in scene.actions:
        frame = frame_at(action.source_line)
        last_speaker = None
        for line in scene.lines:
            if line.source_line < action.source_line:
                last_speaker = line.speaker
        named_last = last_speaker
        for sentence in _SENTENCE_RE.findall(action.text):
            mentions = _mentions(sentence, names)
            leave = _EXIT_RE.search(sentence)
            enter = _ENTER_RE.search(sentence)
            for _, name in mentions:
                before_first = name in first_spoken and action.source_line > first_line and (
                    scene.lines[first_spoken[name]].source_line > action.source_line
                )
                if before_first or (enter and name not in speakers) or (name not in speakers and mentions):
                    cues.append(StageCue(frame, name, True))
            if leave:
                subject = [n for pos, n in mentions if pos < leave.start()]
                if subject:
                    who = subject[-1]
                elif _PRONOUN_RE.search(sentence[: leave.start()]) and named_last:
                    who = named_last
                else:
                    who = None
                if who is not None:
                    cues.append(StageCue(frame, who, False))
            if mentions:
                named_last = mentions[-1][1]
    # a speaker who enters later (or is first heard as a voice over) is absent until then;
    # everyone else is there from the start
    late = {c.name for c in cues if c.enters}
    late |= {n for n in speakers if any(ln.unseen for ln in scene.lines[: first_spoken[n]] if ln.speaker == n)}
    for name in speakers:
        if name not in late:
            cues.append(StageCue(0, name, True))
    # someone who left comes back to speak (in person: a voice over stays off)
    for line, start in zip(scene.lines, starts, strict=True):
        if not line.unseen:
            cues.append(StageCue(start, line.speaker, True))
    notes = tuple(
        ShotNote(frame_at(n.source_line), *parse_shot_note(n.text, line=n.source_line), source_line=n.source_line)
        for n in scene.notes
    )
    order = sorted(names, key=lambda n: min([c.frame for c in cues if c.name == n and c.enters], default=0))
    return SceneDirection(tuple(sorted(cues, key=lambda c: (c.frame, not c.enters))), notes, tuple(order))


def beats_of(
    scene: Scene, timeline: SceneTimeline, line_frames: Sequence[tuple[int, int]], names: Sequence[str]
) -> list[Beat]:
    """The scene's lines as beats: who speaks over which frames, to whom, and where they pause."""
    beats = []
    for line, (start, end) in zip(scene.lines, line_frames, strict=True):
        rms: np.ndarray = timeline.voice_rms.get(line.speaker, np.zeros(0))
        pauses = tuple(
            int(f) for f in range(start + 1, min(end, rms.shape[0]))
            if rms[f] < SILENT_RMS and rms[f - 1] < SILENT_RMS
        )
        beats.append(
            Beat(
                speaker=line.speaker,
                start_frame=start,
                end_frame=end,
                addressee=addressee(line.parenthetical, names),
                dual_group=line.dual_group,
                exclaim=line.text.rstrip().endswith("!"),
                pauses=pauses,
                unseen=line.unseen,
            )
        )
    return beats


def line_frames_of(timeline: SceneTimeline) -> list[tuple[int, int]]:
    """(first frame, end frame exclusive) of each line event, in order."""
    from lipsync.timebase import SAMPLES_PER_FRAME

    return [
        (e.start_sample // SAMPLES_PER_FRAME, -(-e.end_sample // SAMPLES_PER_FRAME)) for e in timeline.events
    ]
