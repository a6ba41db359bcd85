"""A scene's lines placed on one timeline: mixed audio, per-character mouth tracks, line events.

Every line starts on a frame boundary, so a line's mouth track drops into the scene's frames
without resampling. Dual-dialogue lines start together; the next line waits for the longer one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lipsync.audio import frame_rms, to_int16
from lipsync.mixer import limit, mix_into
from lipsync.speech import Utterance
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, frames_for_samples
from lipsync.visemes import N_VISEMES, SIL


@dataclass(frozen=True, slots=True)
class TimelineConfig:
    lead_in_ms: int = 400
    gap_ms: int = 280
    tail_ms: int = 800
    max_duration_s: float = 3 * 3600.0


@dataclass(frozen=True, slots=True)
class LineEvent:
    """Line ``index`` by ``speaker`` plays over samples ``[start_sample, end_sample)``."""

    index: int
    speaker: str
    text: str
    start_sample: int
    end_sample: int
    source_line: int | None = None

    @property
    def start_frame(self) -> int:
        return self.start_sample // SAMPLES_PER_FRAME


@dataclass(frozen=True, slots=True)
class TimedLine:
    """What the timeline needs of a script line: who says what, and which lines overlap."""

    speaker: str
    text: str
    source_line: int | None = None
    dual_group: int | None = None


class TimelineError(ValueError):
    """The scene cannot be laid out (too long, no lines)."""


@dataclass(frozen=True)
class SceneTimeline:
    characters: tuple[str, ...]
    n_samples: int
    audio: np.ndarray  # int16 mono 48 kHz, n_samples long
    mouth: dict[str, np.ndarray]  # speaker -> (n_frames, 15) viseme weights
    voice_rms: dict[str, np.ndarray]  # speaker -> (n_frames,) RMS of that speaker's own voice
    events: tuple[LineEvent, ...]

    @property
    def n_frames(self) -> int:
        return frames_for_samples(self.n_samples)

    @property
    def duration_s(self) -> float:
        return self.n_samples / SAMPLE_RATE_HZ

    def speaking(self, speaker: str) -> np.ndarray:
        """(n_frames,) bool: frames inside one of ``speaker``'s lines."""
        out = np.zeros(self.n_frames, bool)
        for ev in self.events:
            if ev.speaker == speaker:
                out[ev.start_sample // SAMPLES_PER_FRAME : frames_for_samples(ev.end_sample)] = True
        return out


def _align_up(sample: int) -> int:
    return frames_for_samples(sample) * SAMPLES_PER_FRAME


def build_timeline(
    lines: Sequence[TimedLine],
    say: Callable[[TimedLine], Utterance],
    *,
    characters: Sequence[str] = (),
    config: TimelineConfig | None = None,
) -> SceneTimeline:
    """Synthesise each line with ``say`` and lay the scene out on one clock."""
    config = config or TimelineConfig()
    if not lines:
        raise TimelineError("the scene has no lines to speak")
    ms = SAMPLE_RATE_HZ // 1000
    cursor = _align_up(config.lead_in_ms * ms)
    placed: list[tuple[TimedLine, Utterance, int]] = []
    i = 0
    while i < len(lines):
        group = [lines[i]]
        if lines[i].dual_group is not None:
            while i + len(group) < len(lines) and lines[i + len(group)].dual_group == lines[i].dual_group:
                group.append(lines[i + len(group)])
        longest = 0
        for line in group:
            utt = say(line)
            placed.append((line, utt, cursor))
            longest = max(longest, utt.n_samples)
        cursor = _align_up(cursor + longest + config.gap_ms * ms)
        i += len(group)
    n_samples = _align_up(cursor - config.gap_ms * ms + config.tail_ms * ms)
    if n_samples > config.max_duration_s * SAMPLE_RATE_HZ:
        raise TimelineError(
            f"the scene would last {n_samples / SAMPLE_RATE_HZ:.0f} s; the limit is {config.max_duration_s:.0f} s"
        )

    names = list(dict.fromkeys([*characters, *(line.speaker for line, _, _ in placed)]))
    n_frames = frames_for_samples(n_samples)
    mix = np.zeros(n_samples, np.float32)
    voices = {name: np.zeros(n_samples, np.float32) for name in names}
    mouth = {name: np.zeros((n_frames, N_VISEMES), np.float32) for name in names}
    for track in mouth.values():
        track[:, SIL] = 1.0
    events: list[LineEvent] = []
    for index, (line, utt, start) in enumerate(placed):
        mix_into(mix, utt.pcm, offset=start)
        mix_into(voices[line.speaker], utt.pcm, offset=start, gain=1.0)
        f0 = start // SAMPLES_PER_FRAME
        rows = min(utt.mouth.shape[0], n_frames - f0)
        mouth[line.speaker][f0 : f0 + rows] = utt.mouth[:rows]
        events.append(LineEvent(index, line.speaker, line.text, start, start + utt.n_samples, line.source_line))
    return SceneTimeline(
        characters=tuple(names),
        n_samples=n_samples,
        audio=to_int16(limit(mix)),
        mouth=mouth,
        voice_rms={name: frame_rms(v) for name, v in voices.items()},
        events=tuple(events),
    )
