"""Directing live: the shot of each frame chosen as lines arrive, with the planner's grammar.

A live scene cannot look ahead, so ``LiveCutter`` decides frame by frame: a line's first frame
cuts to its speaker (a medium single; a close-up for an exclamation; a two-shot with whoever
they answer when the current shot is younger than ``min_shot_frames``); when a line ends and
nobody follows, the camera holds, then shows the listener's reaction, then an idle scene
settles on the wide and keeps living. A writer's override (``force``) holds until cleared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from avatar.shots import MAX_ON_SCREEN, DirectorConfig, Shot

REACTION_AFTER_FRAMES = 10  # a listener's reaction follows a line's end after 0.4 s of silence
IDLE_WIDE_FRAMES = 75  # after 3 s with nobody speaking, back to the wide


class LiveCutter:
    """The shot of each live frame; call ``step`` once per frame, in order (one thread)."""

    def __init__(self, *, marks: Mapping[str, float], config: DirectorConfig | None = None) -> None:
        self.config = config or DirectorConfig()
        self._marks = dict(marks)
        self._shot = self._wide(0)
        self._since = 0
        self._last_talk = 0
        self._last_speaker: str | None = None
        self._partner: str | None = None
        self._forced: Shot | None = None

    @property
    def marks(self) -> dict[str, float]:
        return dict(self._marks)

    def _order(self, names: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(dict.fromkeys(names), key=lambda n: self._marks[n]))

    def _wide(self, k: int, must: Sequence[str] = ()) -> Shot:
        names = list(dict.fromkeys([*must, *self._marks]))[:MAX_ON_SCREEN]
        return Shot(k, k + 1, "two" if len(names) == 2 else "wide", self._order(names))

    def recast(self, marks: Mapping[str, float], k: int) -> None:
        """The people on stage changed: new marks, and the wide until the next line."""
        self._marks = dict(marks)
        if self._forced is not None and not set(self._forced.subjects) <= set(marks):
            self._forced = None
        self._cut(self._wide(k), k)

    def force(self, kind: str | None, subjects: Sequence[str], k: int) -> None:
        """Hold ``kind`` of ``subjects`` from frame ``k`` (``kind`` None: direct again)."""
        if kind is None:
            self._forced = None
            return
        for name in subjects:
            if name not in self._marks:
                raise ValueError(f"{name} is not on stage ({', '.join(self._marks)})")
        names = self._order(subjects) or (self._wide(k).subjects if kind in ("wide", "two") else ())
        if not names:
            names = (self._last_speaker or next(iter(self._marks)),)
        self._forced = Shot(k, k + 1, kind, names[: {"wide": MAX_ON_SCREEN, "two": 2}.get(kind, 1)], noted=True)
        self._cut(self._forced, k)

    def _cut(self, shot: Shot, k: int) -> None:
        if (shot.kind, shot.subjects) != (self._shot.kind, self._shot.subjects):
            self._shot, self._since = shot, k

    def step(self, k: int, *, started: Sequence[tuple[str, bool]], talkers: Sequence[str]) -> Shot:
        """The shot of frame ``k``. ``started``: (speaker, exclaims) of lines whose first frame
        is ``k``; ``talkers``: who speaks during ``k``."""
        cfg = self.config
        talkers = [t for t in talkers if t in self._marks]
        if talkers:
            self._last_talk = k
        if self._forced is not None:
            return self._shot
        for speaker, exclaim in started:
            if speaker not in self._marks:
                continue
            if speaker != self._last_speaker:
                self._partner = self._last_speaker
            self._last_speaker = speaker
            young = k - self._since < cfg.min_shot_frames
            if young and speaker in self._shot.subjects:
                continue
            if young or len(started) > 1:
                pair = [speaker, *([self._partner] if self._partner in self._marks else [])]
                pair += [s for s, _ in started if s not in pair]
                kind = "two" if len(set(pair)) == 2 else "wide"
                self._cut(
                    Shot(k, k + 1, kind, self._order(pair)) if kind == "two" else self._wide(k, pair), k
                )
                continue
            self._cut(Shot(k, k + 1, "close" if exclaim else "medium", (speaker,)), k)
        silent = k - self._last_talk
        listener = self._partner if self._partner in self._marks else None
        if (
            not talkers
            and listener is not None
            and silent == REACTION_AFTER_FRAMES
            and k - self._since >= cfg.min_shot_frames
            and self._shot.subjects == (self._last_speaker,)
        ):
            self._cut(Shot(k, k + 1, "medium", (listener,)), k)
        elif not talkers and silent >= IDLE_WIDE_FRAMES and k - self._since >= cfg.min_shot_frames:
            self._cut(self._wide(k), k)
        return self._shot
