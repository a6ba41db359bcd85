"""Two people, two microphones, one room: test material for cross-talk, from any conversation.

- ``read_rttm`` / ``parse_rttm`` / ``format_rttm``: the standard "who spoke when" files
  (``SPEAKER file 1 start duration <NA> <NA> name <NA> <NA>``).
- ``speaker_tracks``: each speaker's own track cut from one recording by its turns (soft 10 ms
  edges; where two turns overlap, both tracks carry the recording there).
- ``room_mics``: what each speaker's microphone hears: their own track, every other track
  ``bleed_db`` quieter, a few milliseconds later and coloured by a short room echo, plus a noise
  floor at ``noise_dbfs``.
- ``espeak_conversation``: a two-voice conversation made with the project's espeak-ng voices
  (turns, pauses and some talking over each other), with its turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ
from lipsync.voices import VoiceSpec


class RttmError(ValueError):
    """An RTTM file that cannot be read (the message names the line and what is wrong)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One speaker talking from ``start_s`` for ``duration_s`` seconds."""

    speaker: str
    start_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def read_rttm(path: Path) -> list[Turn]:
    """The turns of an RTTM file (``parse_rttm``); a missing file is an ``RttmError`` too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RttmError(f"cannot read the RTTM file {path}: {exc}") from None
    return parse_rttm(text)


def parse_rttm(text: str) -> list[Turn]:
    """The SPEAKER lines of an RTTM text, sorted by start."""
    turns = []
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise RttmError(f"RTTM line {n} has {len(fields)} fields; a SPEAKER line needs at least 8: {line!r}")
        try:
            start, duration = float(fields[3]), float(fields[4])
        except ValueError:
            raise RttmError(f"RTTM line {n}: start and duration must be numbers, got {fields[3]!r} {fields[4]!r}") from None
        if not (np.isfinite(start) and np.isfinite(duration)) or start < 0 or duration <= 0:
            raise RttmError(f"RTTM line {n}: need start >= 0 and duration > 0, got {start} {duration}")
        turns.append(Turn(fields[7], start, duration))
    if not turns:
        raise RttmError("the RTTM file has no SPEAKER lines")
    return sorted(turns, key=lambda t: t.start_s)


def format_rttm(turns: list[Turn], *, file_id: str = "talk") -> str:
    return "".join(
        f"SPEAKER {file_id} 1 {t.start_s:.3f} {t.duration_s:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n" for t in turns
    )


def speakers(turns: list[Turn]) -> list[str]:
    return sorted({t.speaker for t in turns})


def activity(turns: list[Turn], speaker: str, starts_s: np.ndarray, *, length_s: float = 0.04) -> np.ndarray:
    """Per window ``[start, start + length_s)``: does ``speaker`` talk in it (any overlap with one
    of their turns)? (len(starts_s),) bool."""
    starts = np.asarray(starts_s, np.float64)
    out = np.zeros(starts.shape[0], bool)
    for t in turns:
        if t.speaker == speaker:
            out |= (starts < t.end_s) & (starts + length_s > t.start_s)
    return out


def speaker_tracks(pcm: np.ndarray, turns: list[Turn], *, rate_hz: int = SAMPLE_RATE_HZ) -> dict[str, np.ndarray]:
    """float32 tracks, one per speaker, each the recording inside that speaker's turns."""
    x = np.asarray(pcm)
    x = x.astype(np.float32) / 32768.0 if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
    edge = int(0.01 * rate_hz)
    out = {}
    for name in speakers(turns):
        gain = np.zeros(x.shape[0], np.float32)
        for t in turns:
            if t.speaker != name:
                continue
            a, b = int(t.start_s * rate_hz), min(x.shape[0], int(t.end_s * rate_hz))
            if b <= a:
                continue
            gain[a:b] = 1.0
            ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
            lo, hi = max(0, a - edge), min(x.shape[0], b + edge)
            gain[lo:a] = np.maximum(gain[lo:a], ramp[edge - (a - lo) :])
            gain[b:hi] = np.maximum(gain[b:hi], ramp[::-1][: hi - b])
        out[name] = x * gain
    return out


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """How a microphone hears the other people in the room."""

    bleed_db: float = -20.0
    delay_ms: float = 4.0
    echo_ms: float = 250.0  # time for the room's echo to fall by 60 dB
    noise_dbfs: float = -60.0


def room_mics(tracks: dict[str, np.ndarray], *, config: RoomConfig | None = None, seed: int = 0,
              rate_hz: int = SAMPLE_RATE_HZ) -> dict[str, np.ndarray]:
    """Each speaker's microphone (int16): own track + the others at ``bleed_db`` + noise floor."""
    cfg = config or RoomConfig()
    rng = np.random.default_rng(seed)
    delay = int(cfg.delay_ms * rate_hz / 1000)
    n_echo = int(cfg.echo_ms * rate_hz / 1000)
    # A short room: the direct path, then decaying diffuse reflections (unit energy overall).
    echo = np.zeros(delay + n_echo, np.float32)
    echo[delay] = 1.0
    tail = rng.standard_normal(n_echo).astype(np.float32) * np.exp(-6.9 * np.arange(n_echo) / max(1, n_echo))
    echo[delay:] += 0.5 * tail / np.sqrt((tail**2).sum())
    echo /= np.sqrt((echo**2).sum())
    gain = 10.0 ** (cfg.bleed_db / 20.0)
    noise_rms = 10.0 ** (cfg.noise_dbfs / 20.0)
    n = max(t.shape[0] for t in tracks.values())
    heard = {}
    for name, track in tracks.items():
        padded = np.pad(np.asarray(track, np.float32), (0, n - track.shape[0]))
        heard[name] = np.convolve(padded, echo)[:n] * gain
    out = {}
    for name, track in tracks.items():
        mic = np.pad(np.asarray(track, np.float32), (0, n - track.shape[0]))
        for other, leak in heard.items():
            if other != name:
                mic = mic + leak
        mic = mic + rng.standard_normal(n).astype(np.float32) * noise_rms
        out[name] = np.clip(np.round(mic * 32768.0), -32768, 32767).astype(np.int16)
    return out


_LINES = (
    ("A", "Where were you last night? I waited for hours."),
    ("B", "I was at the harbour, watching the boats come in."),
    ("A", "All night long? In that weather?"),
    ("B", "The storm only started after midnight, you know that."),
    ("A", "I know nothing of the sort. Nobody tells me anything."),
    ("B", "Well, now I am telling you. The boats were late."),
    ("A", "Late boats, late nights. It is always something with you."),
    ("B", "Come on, that is not fair and you know it."),
)


def espeak_conversation(
    speech: SpeechEngine, *, voices: tuple[VoiceSpec, VoiceSpec] | None = None, n_lines: int = len(_LINES),
    overlap_every: int = 3, seed: int = 0,
) -> tuple[dict[str, np.ndarray], list[Turn]]:
    """Two espeak-ng voices taking ``n_lines`` turns (pauses of 0.3-0.9 s; every ``overlap_every``-th reply
    starts 0.6 s before the other finishes). ``speech`` is a ``lipsync.speech.SpeechEngine``.
    Returns each speaker's own track (float32, 48 kHz) and the turns (where each is loud)."""
    va, vb = voices or (VoiceSpec(variant="f2", pitch=60), VoiceSpec(variant="m3", pitch=40))
    rng = np.random.default_rng(seed)
    pieces: list[tuple[str, int, np.ndarray]] = []
    pos = int(0.5 * SAMPLE_RATE_HZ)
    if not 1 <= n_lines <= len(_LINES):
        raise ValueError(f"n_lines must be 1..{len(_LINES)}, got {n_lines}")
    for n, (who, text) in enumerate(_LINES[:n_lines]):
        pcm = speech.synthesize(text, va if who == "A" else vb).pcm.astype(np.float32) / 32768.0
        loud = np.nonzero(np.abs(pcm) > 0.01)[0]
        pcm = pcm[loud[0] : loud[-1] + 1]
        if n and n % overlap_every == 0:
            start = pos - int(0.6 * SAMPLE_RATE_HZ)
        else:
            start = pos + int(rng.uniform(0.3, 0.9) * SAMPLE_RATE_HZ)
        pieces.append((who, start, pcm))
        pos = start + pcm.shape[0]
    total = pos + int(0.5 * SAMPLE_RATE_HZ)
    tracks = {who: np.zeros(total, np.float32) for who in ("A", "B")}
    turns = []
    for who, start, pcm in pieces:
        tracks[who][start : start + pcm.shape[0]] += pcm
        turns.append(Turn(who, start / SAMPLE_RATE_HZ, pcm.shape[0] / SAMPLE_RATE_HZ))
    return tracks, turns
