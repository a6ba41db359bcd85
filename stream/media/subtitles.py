"""SRT and WebVTT subtitles from line events (sample-exact times, rounded to milliseconds)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from lipsync.timebase import SAMPLE_RATE_HZ
from lipsync.timeline import LineEvent

MAX_ROW_CHARS = 42


def _ms(sample: int) -> int:
    return round(sample * 1000 / SAMPLE_RATE_HZ)


def _stamp(ms: int, sep: str) -> str:
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _rows(text: str) -> str:
    return "\n".join(textwrap.wrap(text, MAX_ROW_CHARS)) or text


def to_srt(events: Sequence[LineEvent]) -> str:
    cues = []
    for n, ev in enumerate(sorted(events, key=lambda e: (e.start_sample, e.index)), start=1):
        start, end = _stamp(_ms(ev.start_sample), ","), _stamp(_ms(ev.end_sample), ",")
        cues.append(f"{n}\n{start} --> {end}\n{_rows(f'{ev.speaker}: {ev.text}')}\n")
    return "\n".join(cues)


def to_vtt(events: Sequence[LineEvent]) -> str:
    cues = ["WEBVTT\n"]
    for ev in sorted(events, key=lambda e: (e.start_sample, e.index)):
        start, end = _stamp(_ms(ev.start_sample), "."), _stamp(_ms(ev.end_sample), ".")
        speaker = ev.speaker.replace(">", "").replace("&", "&amp;")
        text = ev.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        cues.append(f"{start} --> {end}\n<v {speaker}>{_rows(text)}\n")
    return "\n".join(cues)


def write_subtitles(events: Sequence[LineEvent], mp4_path: Path) -> tuple[Path, Path]:
    """Write ``X.srt`` and ``X.vtt`` beside ``X.mp4``; returns both paths."""
    srt, vtt = mp4_path.with_suffix(".srt"), mp4_path.with_suffix(".vtt")
    srt.write_text(to_srt(events), encoding="utf-8")
    vtt.write_text(to_vtt(events), encoding="utf-8")
    return srt, vtt
