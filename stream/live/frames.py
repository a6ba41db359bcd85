"""Frame production: what frame k sounds like and how every mouth moves in it.

``mix_frame`` takes the lines playing during frame k (audio samples ``[k * 1920, (k + 1) * 1920)``)
and the live inputs bound to characters, mixes their audio and picks each character's mouth.
For the neural backend it also gives each character its drive window: the viseme rows of
frames k-2 .. k+2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from avatar.shots import Shot
from lipsync.audio import to_int16
from lipsync.mixer import limit, mix_into
from lipsync.streaming import StreamingUtterance
from lipsync.timebase import SAMPLES_PER_FRAME
from lipsync.visemes import N_VISEMES, SIL
from stream.live.cast import SceneView
from stream.live.lines import LineNotice, LiveLine

DRIVE_FRAMES = 5  # the neural drive window: 200 ms of viseme rows centred on the frame
DRIVE_HALF = DRIVE_FRAMES // 2


class LiveInput(Protocol):
    """Live audio bound to one character (a microphone, a WHIP publisher, a file).

    ``frame(k)`` is called once per frame, in order, from the producer thread, and must not
    block: it returns that frame's audio (int16, SAMPLES_PER_FRAME samples, already delayed as
    much as the mouth) and the character's viseme weights (15,), or None for a closed mouth.
    """

    def frame(self, k: int) -> tuple[np.ndarray, np.ndarray | None]: ...


@dataclass(frozen=True, slots=True)
class FrameState:
    """Everything about frame ``index`` except its pixels."""

    index: int
    audio: np.ndarray  # int16, SAMPLES_PER_FRAME samples
    view: SceneView
    mouths: tuple[np.ndarray, ...]
    speaking: tuple[bool, ...]
    notices: tuple[LineNotice, ...] = ()
    # Per character: the viseme rows of frames k-2 .. k+2 (15, DRIVE_FRAMES), the neural
    # backend's drive window. Rows not known yet (beyond the line's synthesised speech, or a live
    # input) repeat the latest known row.
    drives: tuple[np.ndarray, ...] = ()
    shot: Shot | None = None  # the live director's shot; None: the view's whole layout


@dataclass
class SceneStats:
    frames_produced: int = 0
    lines_started: int = 0
    lines_interrupted: int = 0
    synth_underruns: int = 0
    mouths_kept_rig: int = 0  # neural mouths that missed their frame (the rig's was shown)
    last_latency_ms: float | None = None
    latencies_ms: list[float] = field(default_factory=list)


def _rest() -> np.ndarray:
    rest = np.zeros(N_VISEMES, np.float32)
    rest[SIL] = 1.0
    return rest


def line_window(utt: StreamingUtterance, j: int, row: np.ndarray) -> np.ndarray:
    """Viseme rows j-2 .. j+2 of a playing line (15, 5); ``row`` is row j. Rows before the line
    are rest; rows whose speech is not synthesised yet repeat the latest known row."""
    cols = []
    latest = np.asarray(row, np.float32)
    for i in range(j - DRIVE_HALF, j + DRIVE_HALF + 1):
        if i == j:
            r: np.ndarray | None = latest
        elif i < 0:
            r = _rest()
        else:
            r = utt.mouth_row(i)
            if r is None:  # beyond the speech synthesised so far
                r = latest
            elif i > j:
                latest = np.asarray(r, np.float32)
        cols.append(np.asarray(r, np.float32))
    return np.stack(cols, axis=1)  # (15, 5)


def mix_frame(
    k: int,
    *,
    view: SceneView,
    playing: Sequence[LiveLine],
    inputs: Sequence[tuple[str, LiveInput]],
    notices: Sequence[LineNotice],
    stats: SceneStats,
    with_drives: bool,
) -> FrameState:
    """The state of frame ``k``: mixed audio, mouths, who speaks and (``with_drives``) the drive
    windows. Calls each input's ``frame(k)``, so it runs once per frame, in order."""
    mix = np.zeros(SAMPLES_PER_FRAME, np.float32)
    rest = _rest()
    mouths = {name: rest for name in view.names}
    drives: dict[str, np.ndarray] = {}
    for line in playing:
        j = k - (line.start_frame or 0)
        mix_into(mix, line.utt.audio(j * SAMPLES_PER_FRAME, SAMPLES_PER_FRAME), offset=0)
        row = line.utt.mouth_row(j)
        if row is None:
            stats.synth_underruns += 1
            continue
        if line.speaker in mouths:
            mouths[line.speaker] = row
            if with_drives:
                drives[line.speaker] = line_window(line.utt, j, row)
    talking = {line.speaker for line in playing}
    for name, source in inputs:
        samples, weights = source.frame(k)
        mix_into(mix, samples, offset=0)
        if weights is not None and name in mouths:
            mouths[name] = weights
            talking.add(name)
    stats.frames_produced += 1
    if with_drives:
        for name in view.names:
            if name not in drives or not np.array_equal(drives[name][:, DRIVE_HALF], mouths[name]):
                drives[name] = np.repeat(np.asarray(mouths[name], np.float32)[:, None], DRIVE_FRAMES, axis=1)
    return FrameState(
        index=k,
        audio=to_int16(limit(mix)),
        view=view,
        mouths=tuple(mouths[name] for name in view.names),
        speaking=tuple(name in talking for name in view.names),
        notices=tuple(notices),
        drives=tuple(drives[name] for name in view.names) if drives else (),
    )
