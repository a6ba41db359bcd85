"""The shot planner: who is on stage when, where they stand, and which shot shows each moment.

A pure function of the scene (its lines on the frame clock, entrances and exits, shot notes):
the same scene always gets the same cut. The grammar is a TV drama's:

- The scene opens on a wide of everyone present (at most ``MAX_ON_SCREEN``), held through the
  first line.
- A voice over or off screen (``Beat.unseen``) is heard over whatever the camera shows: its
  line neither cuts nor brings its speaker on stage.
- Then each line cuts to its speaker on the line's first frame: a medium single, a close-up for
  an exclamation, a slow push-in on a long speech. A two-shot when the exchange is too quick for
  singles (a shot lasts at least ``min_shot_frames``) or for dual dialogue.
- A long line addressed to someone may cut to that listener (a reaction shot) at a pause
  between words, well after the speaker was seen.
- Cuts land only on a line's first frame or on a pause inside a line: never inside a word.
- Everyone keeps one place on the stage for the whole scene (the 180-degree rule: a
  character's side relative to anyone they talk to never flips), and the same place as in the
  previous scene on the same set where possible (``Geography``).

Writers override with notes, ``[[shot: close MAYA]]``, which set the shot of the next line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_ON_SCREEN = 4
SHOT_KINDS: tuple[str, ...] = ("wide", "two", "medium", "close")
_KIND_WORDS: Mapping[str, str] = {
    "wide": "wide", "ws": "wide", "establishing": "wide", "master": "wide",
    "two": "two", "two-shot": "two", "twoshot": "two", "2shot": "two", "2-shot": "two",
    "medium": "medium", "single": "medium", "mcu": "medium", "ms": "medium",
    "close": "close", "closeup": "close", "close-up": "close", "cu": "close",
}  # fmt: skip


class ShotError(ValueError):
    """A shot note that cannot be used; ``line`` is the source line of the note."""

    def __init__(self, message: str, *, line: int | None) -> None:
        self.reason = message
        self.line = line
        super().__init__(message if line is None else f"line {line}: {message}")


@dataclass(frozen=True, slots=True)
class DirectorConfig:
    """The director's taste, in frames at 25 fps."""

    min_shot_frames: int = 30
    """No shot is shorter than this (1.2 s), except the last one of a scene."""
    push_in_frames: int = 150
    """A line at least this long (6 s) on a single gets a slow push-in."""
    reaction_line_frames: int = 125
    """A line at least this long (5 s) with an addressee may cut to them at a pause."""
    reaction_after_frames: int = 38
    """A reaction shot starts at least this far (1.5 s) into the line."""
    max_reaction_frames: int = 75


@dataclass(frozen=True, slots=True)
class Beat:
    """One line as the director sees it: who speaks, over which frames, to whom."""

    speaker: str
    start_frame: int
    end_frame: int  # exclusive
    addressee: str | None = None
    dual_group: int | None = None
    exclaim: bool = False
    pauses: tuple[int, ...] = ()
    """Frames inside the line where the speaker is silent: places a cut may land."""
    unseen: bool = False
    """A voice over or off screen (``(V.O.)``, ``(O.S.)``): heard, never cut to, not on stage."""


@dataclass(frozen=True, slots=True)
class StageCue:
    """``name`` enters (or exits) the stage at ``frame``."""

    frame: int
    name: str
    enters: bool


@dataclass(frozen=True, slots=True)
class ShotNote:
    """A writer's shot for the first line starting at or after ``frame``."""

    frame: int
    kind: str
    subjects: tuple[str, ...]
    source_line: int | None = None


@dataclass(frozen=True, slots=True)
class Shot:
    """Frames ``[start_frame, end_frame)`` seen as ``kind`` of ``subjects`` (left to right)."""

    start_frame: int
    end_frame: int
    kind: str
    subjects: tuple[str, ...]
    push_in: bool = False
    noted: bool = False

    @property
    def label(self) -> str:
        """``"close MAYA"``, ``"two LEO+MAYA"``: the shot as an editor's marker names it."""
        return f"{self.kind} {'+'.join(self.subjects)}"


@dataclass(frozen=True, slots=True)
class ShotPlan:
    """A scene's cut: its shots back to back over ``n_frames``, and where everyone stands."""

    n_frames: int
    marks: Mapping[str, float]
    """Stage position per character (only the order matters: left to right)."""
    shots: tuple[Shot, ...]

    def shot_index(self) -> list[int]:
        """Per frame, the index of the shot showing it."""
        out: list[int] = []
        for i, shot in enumerate(self.shots):
            out += [i] * (shot.end_frame - shot.start_frame)
        return out


class Geography:
    """Where characters stood on each set, carried from scene to scene of one render."""

    def __init__(self) -> None:
        self._marks: dict[str, dict[str, float]] = {}

    def marks(self, set_name: str) -> dict[str, float]:
        return dict(self._marks.get(set_name, {}))

    def remember(self, set_name: str, marks: Mapping[str, float]) -> None:
        self._marks.setdefault(set_name, {}).update(marks)


def parse_shot_note(text: str, *, line: int | None = None) -> tuple[str, tuple[str, ...]]:
    """``"close MAYA"`` → ``("close", ("MAYA",))``; ``"two MAYA LEO"``, ``"wide"``.

    Names may be separated by spaces, commas, ``+`` or ``and``; multi-word names are not
    supported in notes. Raises ``ShotError`` naming the line for an unknown shot type or a
    wrong number of names.
    """
    words = [w for w in text.replace(",", " ").replace("+", " ").split() if w.lower() != "and"]
    if not words:
        raise ShotError("empty shot note; write e.g. [[shot: close MAYA]]", line=line)
    kind = _KIND_WORDS.get(words[0].lower())
    if kind is None:
        raise ShotError(
            f"unknown shot type {words[0]!r} in note 'shot: {text}'; use one of {', '.join(SHOT_KINDS)}",
            line=line,
        )
    names = tuple(w.upper() for w in words[1:])
    want = {"wide": (0, MAX_ON_SCREEN), "two": (0, 2), "medium": (0, 1), "close": (0, 1)}[kind]
    if not want[0] <= len(names) <= want[1]:
        raise ShotError(f"a {kind} shot names at most {want[1]} characters, got {len(names)}", line=line)
    return kind, names


def assign_marks(order: Sequence[str], remembered: Mapping[str, float]) -> dict[str, float]:
    """A stage position per character: remembered ones keep theirs; the first new one stands
    left of centre, the next right, then further out on alternating sides."""
    marks = {n: float(remembered[n]) for n in order if n in remembered}
    side = 1 if marks else -1
    for name in order:
        if name in marks:
            continue
        if not marks:
            marks[name] = -0.5
        elif len(marks) == 1 and side == -1:
            marks[name] = max(marks.values()) + 1.0
        else:
            marks[name] = (max(marks.values()) + 1.0) if side > 0 else (min(marks.values()) - 1.0)
        side = -side
    return marks


class _Presence:
    """Who is on stage at a frame, and who matters most (recent speakers first)."""

    def __init__(
        self, beats: Sequence[Beat], cues: Sequence[StageCue], n_frames: int, names: Sequence[str]
    ) -> None:
        cued = {c.name for c in cues if c.enters}
        self._events: list[tuple[int, str, bool]] = sorted(
            [(c.frame, c.name, c.enters) for c in cues]
            + [(b.start_frame, b.speaker, True) for b in beats if not b.unseen]
            + [(0, n, True) for n in names if n not in cued],
            key=lambda e: (e[0], not e[2]),
        )
        self._beats = beats
        self.n_frames = n_frames

    def present(self, frame: int) -> list[str]:
        here: dict[str, None] = {}
        for f, name, enters in self._events:
            if f > frame:
                break
            if enters:
                here[name] = None
            else:
                here.pop(name, None)
        return list(here)

    def relevant(self, frame: int, limit: int) -> list[str]:
        """At most ``limit`` present characters: latest speakers and arrivals first."""
        here = self.present(frame)
        recency = {name: -1 for name in here}
        for f, name, enters in self._events:
            if f <= frame and enters and name in recency:
                recency[name] = f
        for b in self._beats:
            if b.start_frame <= frame + 1 and b.speaker in recency and not b.unseen:
                recency[b.speaker] = max(recency[b.speaker], b.start_frame)
        return sorted(here, key=lambda n: -recency[n])[:limit]


def plan_shots(
    beats: Sequence[Beat],
    *,
    n_frames: int,
    cues: Sequence[StageCue] = (),
    notes: Sequence[ShotNote] = (),
    marks: Mapping[str, float],
    config: DirectorConfig | None = None,
) -> ShotPlan:
    """The scene's cut. ``beats`` in time order (dual-dialogue lines share a start frame);
    ``marks`` from ``assign_marks`` for everyone who appears; anyone without an entrance in
    ``cues`` is on stage from the start. Raises ``ShotError`` for a note naming someone not in
    the scene."""
    cfg = config or DirectorConfig()
    if n_frames < 1:
        raise ValueError(f"a scene needs at least one frame, got {n_frames}")
    for given in notes:
        for name in given.subjects:
            if name not in marks:
                raise ShotError(
                    f"shot note names {name}, who is not in this scene ({', '.join(sorted(marks))})",
                    line=given.source_line,
                )
    presence = _Presence(beats, cues, n_frames, list(marks))
    order = sorted(marks, key=lambda n: marks[n])

    def in_order(names: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(dict.fromkeys(names), key=order.index))

    def wide_at(frame: int, must: Sequence[str] = ()) -> tuple[str, ...]:
        keep = list(dict.fromkeys(must))[:MAX_ON_SCREEN]
        for name in presence.relevant(frame, MAX_ON_SCREEN):
            if len(keep) < MAX_ON_SCREEN and name not in keep:
                keep.append(name)
        return in_order(keep) or in_order(order[:1])

    groups = _group(beats)
    cuts: list[tuple[int, str, tuple[str, ...], bool, bool]] = []  # (frame, kind, subjects, push, noted)
    first_start = groups[0][0].start_frame if groups else 0
    cuts.append((0, "wide", wide_at(first_start), False, False))
    pending = sorted(notes, key=lambda n: n.frame)
    for gi, group in enumerate(groups):
        start = group[0].start_frame
        end = max(b.end_frame for b in group)
        next_start = groups[gi + 1][0].start_frame if gi + 1 < len(groups) else n_frames
        speakers = [b.speaker for b in group if not b.unseen]
        note: ShotNote | None = None
        while pending and pending[0].frame <= start:
            note = pending.pop(0)
        last_frame, last_kind, last_subjects, _, _ = cuts[-1]
        if not speakers and (note is None or (note.kind != "wide" and not note.subjects)):
            continue  # a voice over: heard over whatever the camera shows, never cut to
        if note is not None:
            subjects = in_order(note.subjects) if note.subjects else (
                wide_at(start, speakers) if note.kind == "wide" else in_order(speakers[:1])
            )
            if note.kind == "two" and len(subjects) < 2:
                partner = _partner(group[0], beats, presence, start)
                subjects = in_order([*subjects, *speakers, *([partner] if partner else [])][:2])
            cuts.append((start, note.kind, subjects, False, True))
            continue
        if gi == 0:
            continue  # the opening wide plays the first line
        if all(s in last_subjects for s in speakers) and (
            last_kind in ("medium", "close") or next_start - start < cfg.min_shot_frames
        ):
            continue  # the speaker is already on screen in their own shot, or the line is quick
        if len(group) > 1:
            kind, subjects = ("two", in_order(speakers)) if len(speakers) == 2 else ("wide", wide_at(start, speakers))
            cuts.append((start, kind, subjects, False, False))
            continue
        beat = group[0]
        partner = _partner(beat, beats, presence, start)
        quick = next_start - start < cfg.min_shot_frames
        if quick or start - last_frame < cfg.min_shot_frames:
            # Too quick for a single: a shot holding the speaker and whoever they answer.
            if start - last_frame < cfg.min_shot_frames and cuts[-1][4]:
                continue
            if start - last_frame < cfg.min_shot_frames:
                # the previous shot would be too short: widen it to hold this speaker too
                prev = [*last_subjects, beat.speaker]
                kind = "two" if len(set(prev)) == 2 else "wide"
                subj = in_order(prev) if kind == "two" else wide_at(start, prev)
                cuts[-1] = (last_frame, kind, subj, False, False)
                continue
            pair = [beat.speaker, *([partner] if partner else [])]
            kind = "two" if len(pair) == 2 else "medium"
            cuts.append((start, kind, in_order(pair), False, False))
            continue
        kind = "close" if beat.exclaim else "medium"
        push = kind == "medium" and end - start >= cfg.push_in_frames
        cuts.append((start, kind, (beat.speaker,), push, False))
        if (
            partner is not None
            and not push
            and end - start >= cfg.reaction_line_frames
            and partner in presence.present(start)
        ):
            at = _reaction_cut(beat, end, next_start, cfg)
            if at is not None:
                cuts.append((at, "medium", (partner,), False, False))
    return ShotPlan(n_frames=n_frames, marks=dict(marks), shots=_shots(cuts, n_frames))


def _group(beats: Sequence[Beat]) -> list[list[Beat]]:
    """Beats grouped: a dual-dialogue pair (same group, same start) is one group."""
    groups: list[list[Beat]] = []
    for b in beats:
        if groups and b.dual_group is not None and groups[-1][0].dual_group == b.dual_group:
            groups[-1].append(b)
        else:
            groups.append([b])
    return groups


def _partner(beat: Beat, beats: Sequence[Beat], presence: _Presence, frame: int) -> str | None:
    """Who ``beat`` is said to: the addressee named, else the last other speaker present."""
    here = presence.present(frame)
    if beat.addressee and beat.addressee != beat.speaker and beat.addressee in here:
        return beat.addressee
    for b in reversed([b for b in beats if b.start_frame < beat.start_frame and not b.unseen]):
        if b.speaker != beat.speaker and b.speaker in here:
            return b.speaker
    others = [n for n in here if n != beat.speaker]
    return others[0] if others else None


def _reaction_cut(beat: Beat, end: int, next_start: int, cfg: DirectorConfig) -> int | None:
    """The pause inside ``beat`` to cut to a listener at, or None."""
    for at in sorted(beat.pauses, reverse=True):
        if (
            at - beat.start_frame >= max(cfg.reaction_after_frames, cfg.min_shot_frames)
            and next_start - at >= cfg.min_shot_frames
            and end - at <= cfg.max_reaction_frames
        ):
            return at
    return None


def _shots(cuts: list[tuple[int, str, tuple[str, ...], bool, bool]], n_frames: int) -> tuple[Shot, ...]:
    """Cuts to back-to-back shots; a cut to the same framing is no cut."""
    merged: list[tuple[int, str, tuple[str, ...], bool, bool]] = []
    for cut in sorted(cuts, key=lambda c: c[0]):
        if cut[0] >= n_frames:
            continue
        if merged and merged[-1][0] == cut[0]:
            merged[-1] = cut
        elif merged and merged[-1][1:3] == cut[1:3] and not cut[3]:
            continue
        else:
            merged.append(cut)
    out = []
    for i, (start, kind, subjects, push, noted) in enumerate(merged):
        end = merged[i + 1][0] if i + 1 < len(merged) else n_frames
        out.append(Shot(start, end, kind, subjects, push, noted))
    return tuple(out)
