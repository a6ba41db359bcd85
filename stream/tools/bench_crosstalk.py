"""Cross-talk figures: two microphones in one room, each hearing the other person quieter.

Each speaker's microphone is built with ``lipsync.conversation.room_mics`` (own track, the
other's voice at -20 or -15 dB through a short room echo, a -60 dBFS noise floor) and played
through live inputs exactly as a session does (20 ms packets, one frame per 40 ms), with and
without the session's ``Room``. Per speaker and bleed level:

- ``leakage_pct``: of the frames where only the *other* person talks (by the turns), the share in
  which this character's mouth is open;
- ``motion_pct``: this character's mouth opening summed over those frames, as a share of its
  opening summed over the frames where only this person talks;
- ``overlap_open_pct``: of the frames where both talk, the share with this mouth open;
- ``own_open_pct``: of the frames where only this person talks, the share with the mouth open.

Frames within 80 ms of a turn's edge are left out (an RTTM's edges are only so precise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lipsync.audio_mouth import jaw_of
from lipsync.conversation import (
    RoomConfig,
    Turn,
    activity,
    espeak_conversation,
    read_rttm,
    room_mics,
    speaker_tracks,
    speakers,
)
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from stream.live.inputs.audio_input import AudioInput, AudioModels, decode_audio
from stream.live.inputs.room import Room

PACKET_SAMPLES = 960
BLEEDS_DB = (-20.0, -15.0)
EDGE_S = 0.08


def play_room(mics: dict[str, np.ndarray], models: AudioModels, *, room: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Live inputs fed in lockstep (two 20 ms packets per 40 ms frame); per mic: (the input
    sample each played frame starts at, the frame's jaw opening)."""
    shared = Room() if room else None
    inputs = {
        name: AudioInput(input_id=name, kind="whip", character=name, models=models, room=shared) for name in mics
    }
    if shared is not None:
        for source in inputs.values():
            shared.join(source)
    n_frames = max(m.shape[0] for m in mics.values()) // SAMPLES_PER_FRAME + 10
    padded = {n: np.pad(m, (0, n_frames * SAMPLES_PER_FRAME - m.shape[0])) for n, m in mics.items()}
    starts: dict[str, list[int]] = {n: [] for n in mics}
    jaws: dict[str, list[float]] = {n: [] for n in mics}
    for k in range(n_frames):
        for half in range(2):
            i = (2 * k + half) * PACKET_SAMPLES
            for name, source in inputs.items():
                source.feed(padded[name][i : i + PACKET_SAMPLES])
        for name, source in inputs.items():
            _, weights = source.frame(k)
            if source.stats.frames_played > len(starts[name]):
                starts[name].append(source.played_from)
                jaws[name].append(jaw_of(weights))
    return {n: (np.array(starts[n]), np.array(jaws[n])) for n in mics}


def leakage(played: dict[str, tuple[np.ndarray, np.ndarray]], turns: list[Turn]) -> dict[str, dict[str, float]]:
    """The figures of the module doc, per speaker."""
    out = {}
    for name, (starts, jaw) in played.items():
        t = starts / SAMPLE_RATE_HZ
        me = activity(turns, name, t)
        others = np.zeros_like(me)
        for other in played:
            if other != name:
                others |= activity(turns, other, t)
        near_edge = np.zeros_like(me)
        for turn in turns:
            for edge in (turn.start_s, turn.end_s):
                near_edge |= np.abs(t + 0.02 - edge) < EDGE_S
        only_other, only_me, both = others & ~me & ~near_edge, me & ~others & ~near_edge, me & others & ~near_edge
        own_motion = float(jaw[only_me].sum())
        out[name] = {
            "leakage_pct": _pct((jaw[only_other] > 0).mean() if only_other.any() else 0.0),
            "motion_pct": _pct(float(jaw[only_other].sum()) / own_motion if own_motion else 0.0),
            "overlap_open_pct": _pct((jaw[both] > 0).mean() if both.any() else 0.0),
            "own_open_pct": _pct((jaw[only_me] > 0).mean() if only_me.any() else 0.0),
            "frames_only_other": int(only_other.sum()),
            "frames_both": int(both.sum()),
        }
    return out


def _pct(x: float) -> float:
    return round(100.0 * float(x), 1)


def bleed_figures(tracks: dict[str, np.ndarray], turns: list[Turn], models: AudioModels) -> dict[str, Any]:
    """Per bleed level: the figures with the room (``crosstalk``) and without it (``alone``, as
    before cross-talk), per speaker, and the mean ``leakage_pct`` over the speakers."""
    report: dict[str, Any] = {}
    for bleed in BLEEDS_DB:
        mics = room_mics(tracks, config=RoomConfig(bleed_db=bleed))
        entry: dict[str, Any] = {}
        for mode, room in (("crosstalk", True), ("alone", False)):
            per = leakage(play_room(mics, models, room=room), turns)
            entry[mode] = {
                "leakage_pct": round(float(np.mean([v["leakage_pct"] for v in per.values()])), 1),
                "motion_pct": round(float(np.mean([v["motion_pct"] for v in per.values()])), 2),
                "per_speaker": per,
            }
        report[f"{bleed:g}dB"] = entry
    return report


def conversation_figures(wav: Path, rttm: Path, models: AudioModels) -> dict[str, Any]:
    """``talkie bench audio --conversation TALK.wav --rttm TALK.rttm``: each speaker's track cut
    from the recording by the RTTM turns, the other's voice added at -20 and -15 dB."""
    turns = read_rttm(rttm)
    names = speakers(turns)
    if len(names) < 2:
        raise ValueError(f"{rttm} names one speaker ({names[0]}); cross-talk needs two or more")
    pcm = decode_audio(wav, config=models.config, name=wav.name)
    tracks = speaker_tracks(pcm, turns)
    return {
        "conversation": wav.name,
        "seconds": round(pcm.shape[0] / SAMPLE_RATE_HZ, 2),
        "speakers": names,
        "bleed": bleed_figures(tracks, turns, models),
    }


def espeak_figures(models: AudioModels) -> dict[str, Any]:
    """The figures on a conversation of two espeak-ng voices (what the tests and tuning use)."""
    tracks, turns = espeak_conversation(SpeechEngine())
    return {"seconds": round(max(t.shape[0] for t in tracks.values()) / SAMPLE_RATE_HZ, 2), "bleed": bleed_figures(tracks, turns, models)}


# Real voices nobody on the project tuned on: (speaker, file, from s, to s, pause before in s;
# negative: starts that long before the other stops).
_TESTDATA_TALK = (
    ("A", "en_jfk_16k.wav", 0.0, 5.6, 0.5),
    ("B", "zh_aishell_16k.wav", 0.0, None, 0.6),
    ("A", "en_jfk_16k.wav", 5.6, 11.0, 0.5),
    ("B", "grid_swiz3n.mpg", 0.0, None, -0.7),
    ("A", "grid_bbaf2n.mpg", 0.0, None, 0.6),
)


def cut_testdata_conversation(testdata: Path, models: AudioModels) -> tuple[np.ndarray, list[Turn]] | None:
    """A two-speaker recording cut from ``../shared/testdata`` (JFK and a GRID speaker as A,
    AISHELL and another GRID speaker as B, one stretch over each other) and its turns, or None
    when a file is missing."""
    if not all((testdata / name).is_file() for _, name, *_ in _TESTDATA_TALK):
        return None
    out = np.zeros(60 * SAMPLE_RATE_HZ, np.float32)
    turns, pos = [], int(0.5 * SAMPLE_RATE_HZ)
    for who, name, a, b, gap in _TESTDATA_TALK:
        x = decode_audio(testdata / name, config=models.config, name=name).astype(np.float32) / 32768.0
        x = x[int(a * SAMPLE_RATE_HZ) : int(b * SAMPLE_RATE_HZ) if b is not None else None]
        loud = np.nonzero(np.abs(x) > 0.02)[0]
        x = x[max(0, loud[0] - 2400) : loud[-1] + 2400]  # the turn: its speech, 50 ms either side
        start = pos + int(gap * SAMPLE_RATE_HZ)
        out[start : start + x.shape[0]] += x
        turns.append(Turn(who, start / SAMPLE_RATE_HZ, x.shape[0] / SAMPLE_RATE_HZ))
        pos = start + x.shape[0]
    pcm = np.clip(np.round(out[: pos + SAMPLE_RATE_HZ // 2] * 32768.0), -32768, 32767).astype(np.int16)
    return pcm, turns
