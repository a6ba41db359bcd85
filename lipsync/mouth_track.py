"""Phoneme events → a per-frame viseme track, with the timing habits of good 2D lip sync.

The track is an array of viseme weights, one row per 25 fps frame, each row summing to 1.
Habits applied, in order:
1. Each phoneme holds its viseme(s) until the next phoneme starts; diphthongs split 60/40.
2. Lips close ahead of p/b/m: a bilabial starts ``bilabial_lead_ms`` early and always gets at
   least one fully closed frame, so the closure is never blended away.
3. Shapes shorter than ``min_shape_ms`` are split between their neighbours (no flicker).
4. Pauses of ``rest_after_ms`` or more go to rest (sil); shorter gaps hold the last shape.
5. Each frame's weights are the share of the frame each shape covers, so boundaries blend
   smoothly over one frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lipsync.phonemes import visemes_for_phoneme
from lipsync.visemes import N_VISEMES, SIL, VISEME_INDEX

PP = VISEME_INDEX["PP"]


@dataclass(frozen=True, slots=True)
class MouthTrackConfig:
    frame_samples: int = 1920
    min_shape_ms: float = 70.0
    bilabial_lead_ms: float = 40.0
    rest_after_ms: float = 120.0
    sample_rate_hz: int = 48_000


@dataclass(frozen=True, slots=True)
class Segment:
    """Viseme ``viseme`` shown over samples ``[start, end)``."""

    viseme: int
    start: int
    end: int


def segments_from_phonemes(
    phonemes: Sequence[tuple[str, int]], n_samples: int, *, config: MouthTrackConfig
) -> list[Segment]:
    """(phoneme, start_sample) pairs → viseme segments covering ``[0, n_samples)``."""
    ms = config.sample_rate_hz / 1000.0
    raw: list[Segment] = []
    for i, (ph, start) in enumerate(phonemes):
        end = phonemes[i + 1][1] if i + 1 < len(phonemes) else n_samples
        start, end = max(0, min(start, n_samples)), max(0, min(end, n_samples))
        if end <= start:
            continue
        vis = visemes_for_phoneme(ph)
        if not vis:
            raw.append(Segment(SIL, start, end))
        elif len(vis) == 1:
            raw.append(Segment(vis[0], start, end))
        else:
            mid = start + int(0.6 * (end - start))
            raw.append(Segment(vis[0], start, mid))
            raw.append(Segment(vis[1], mid, end))
    segs = _fill_gaps(raw, n_samples)
    segs = _rest_in_pauses(segs, rest_after=int(config.rest_after_ms * ms))
    segs = _lead_bilabials(segs, lead=int(config.bilabial_lead_ms * ms))
    segs = _merge_short(segs, min_len=int(config.min_shape_ms * ms))
    return segs


def _fill_gaps(segs: list[Segment], n_samples: int) -> list[Segment]:
    out: list[Segment] = []
    cursor = 0
    for s in segs:
        if s.start > cursor:
            out.append(Segment(SIL, cursor, s.start))
        out.append(Segment(s.viseme, max(s.start, cursor), s.end))
        cursor = max(cursor, s.end)
    if cursor < n_samples:
        out.append(Segment(SIL, cursor, n_samples))
    return _coalesce(out)


def _coalesce(segs: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for s in segs:
        if s.end <= s.start:
            continue
        if out and out[-1].viseme == s.viseme and out[-1].end == s.start:
            out[-1] = Segment(s.viseme, out[-1].start, s.end)
        else:
            out.append(s)
    return out


def _rest_in_pauses(segs: list[Segment], *, rest_after: int) -> list[Segment]:
    """Short silences inside speech hold the previous shape; long ones stay at rest."""
    out = list(segs)
    for i, s in enumerate(out):
        inner = 0 < i < len(out) - 1
        if s.viseme == SIL and inner and s.end - s.start < rest_after:
            out[i] = Segment(out[i - 1].viseme, s.start, s.end)
    return _coalesce(out)


def _lead_bilabials(segs: list[Segment], *, lead: int) -> list[Segment]:
    out = list(segs)
    for i in range(1, len(out)):
        if out[i].viseme == PP and out[i - 1].viseme != PP:
            prev = out[i - 1]
            shift = min(lead, (prev.end - prev.start) // 2)
            out[i - 1] = Segment(prev.viseme, prev.start, prev.end - shift)
            out[i] = Segment(PP, out[i].start - shift, out[i].end)
    return _coalesce(out)


def _merge_short(segs: list[Segment], *, min_len: int) -> list[Segment]:
    """Split each too-short shape between its neighbours at its midpoint, shortest first.

    Splitting (rather than handing all of it to one side) moves no boundary by more than half
    a short shape, so onsets stay within a frame of their phonemes. Bilabials are kept.
    """
    out = list(segs)
    while len(out) > 1:
        short = [
            (s.end - s.start, i)
            for i, s in enumerate(out)
            if s.end - s.start < min_len and s.viseme != PP
        ]
        if not short:
            break
        _, i = min(short)
        s = out[i]
        if i == 0:
            out[1] = Segment(out[1].viseme, s.start, out[1].end)
        elif i == len(out) - 1:
            out[i - 1] = Segment(out[i - 1].viseme, out[i - 1].start, s.end)
        else:
            mid = (s.start + s.end) // 2
            out[i - 1] = Segment(out[i - 1].viseme, out[i - 1].start, mid)
            out[i + 1] = Segment(out[i + 1].viseme, mid, out[i + 1].end)
        del out[i]
        out = _coalesce(out)
    return out


def track_from_segments(segs: Sequence[Segment], n_frames: int, *, frame_samples: int) -> np.ndarray:
    """Per-frame viseme weights (n_frames, 15) float32: each shape's share of each frame."""
    weights = np.zeros((n_frames, N_VISEMES), np.float32)
    for s in segs:
        f0, f1 = s.start // frame_samples, min(n_frames - 1, (s.end - 1) // frame_samples)
        for f in range(f0, f1 + 1):
            lo, hi = max(s.start, f * frame_samples), min(s.end, (f + 1) * frame_samples)
            if hi > lo:
                weights[f, s.viseme] += (hi - lo) / frame_samples
    # A bilabial that touches a frame closes it fully: half-closed lips read as open.
    for s in segs:
        if s.viseme == PP:
            mid = (s.start + s.end) // 2 // frame_samples
            if 0 <= mid < n_frames:
                weights[mid] = 0.0
                weights[mid, PP] = 1.0
    total = weights.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 1e-6
    weights[empty, SIL] = 1.0
    total[empty] = 1.0
    return weights / total


def mouth_track(
    phonemes: Sequence[tuple[str, int]], n_samples: int, *, config: MouthTrackConfig | None = None
) -> np.ndarray:
    """Phoneme events at 48 kHz sample positions → (n_frames, 15) viseme weights."""
    config = config or MouthTrackConfig()
    n_frames = -(-n_samples // config.frame_samples)
    segs = segments_from_phonemes(phonemes, n_samples, config=config)
    return track_from_segments(segs, n_frames, frame_samples=config.frame_samples)
