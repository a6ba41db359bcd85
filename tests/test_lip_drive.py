"""The face drive (``lipsync.lip_drive``): lips open for vowels, shut for p/b/m and silence, on
synthetic speech whose phoneme timing is known; live and offline agree; the weights file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lipsync.audio_mouth import jaw_of
from lipsync.lip_drive import (
    DEFAULT_LIP_WEIGHTS,
    LipDrive,
    LipDriveError,
    LipNet,
    LipTracker,
    lip_mouths,
    opening_track,
)
from lipsync.phonemes import visemes_for_phoneme
from lipsync.speech import SpeechEngine
from lipsync.visemes import VISEME_INDEX
from lipsync.voices import VoiceSpec

_HOP_48K = 480
_DECIMATOR_DELAY = 48


@pytest.fixture(scope="module")
def drive() -> LipDrive:
    return LipDrive.load()


def _jaw_by_viseme(speech: SpeechEngine, drive: LipDrive, text: str, voice: VoiceSpec) -> dict[str, list[float]]:
    """LipNet's opening over each phoneme (its least for p/b/m, where the lips close; its most
    for vowels), grouped by the phoneme's viseme; the prediction is read ``target_lead_ms``
    earlier (lips lead the sound)."""
    utt = speech.synthesize(text, voice)
    lead = 0.3 * 48_000
    pcm = np.concatenate([np.zeros(int(lead), np.float32), utt.pcm.astype(np.float32) / 32768, np.zeros(24_000, np.float32)])
    jaw = opening_track(pcm, drive)
    shift = int(round(drive.lips.config.target_lead_ms / 10))
    out: dict[str, list[float]] = {}
    events = list(utt.phonemes)
    for i, event in enumerate(events[:-1]):
        vis = visemes_for_phoneme(event.phoneme)
        if len(vis) != 1:
            continue
        a = (event.start_sample + lead + _DECIMATOR_DELAY) / _HOP_48K
        b = (events[i + 1].start_sample + lead + _DECIMATOR_DELAY) / _HOP_48K
        if b - a < 3:
            continue
        span = jaw[max(0, int(round(a)) - shift) : max(1, int(round(b)) - shift)]
        name = next(k for k, v in VISEME_INDEX.items() if v == vis[0])
        out.setdefault(name, []).append(float(span.min() if name == "PP" else span.max()))
    return out


@pytest.mark.parametrize("voice", [VoiceSpec(variant="f2"), VoiceSpec(variant="m3", rate_wpm=150)])
def test_lips_open_for_open_vowels_and_shut_for_p_b_m(speech: SpeechEngine, drive: LipDrive, voice: VoiceSpec) -> None:
    text = "Papa bought a bomb. Mom calmed Bob and Pam. Father pop, mop the barn."
    by = _jaw_by_viseme(speech, drive, text, voice)
    open_vowels = by.get("aa", []) + by.get("oh", [])
    closed = by.get("PP", [])
    assert len(open_vowels) >= 5 and len(closed) >= 5, by.keys()
    print(f"\nopen vowels {np.mean(open_vowels):.2f}, p/b/m {np.mean(closed):.2f}")
    assert np.mean(open_vowels) > 0.5
    assert np.mean(closed) < 0.25
    assert np.mean(open_vowels) - np.mean(closed) > 0.35


def test_silence_keeps_the_lips_shut_and_speech_opens_them(speech: SpeechEngine, drive: LipDrive) -> None:
    voice = speech.synthesize("Are you calm now, father?", VoiceSpec(variant="m2")).pcm.astype(np.float32) / 32768
    gap = np.zeros(48_000, np.float32)
    x = np.concatenate([gap, voice, gap])
    mouths = lip_mouths(x, drive)
    start, end = gap.shape[0] // 1920, (gap.shape[0] + voice.shape[0]) // 1920
    assert all(w is None for w in mouths[: start - 2])
    assert all(w is None for w in mouths[end + 8 :])
    during = np.array([jaw_of(w) for w in mouths[start + 3 : end - 3]])
    assert np.mean(during > 0.05) > 0.6 and during.max() > 0.5


def test_offline_is_live_whatever_the_blocks(speech: SpeechEngine, drive: LipDrive) -> None:
    x = speech.synthesize("Where were you last night?", VoiceSpec(variant="f3")).pcm
    a = lip_mouths(x, drive, block_samples=960)
    b = lip_mouths(x, drive, block_samples=1337)
    c = lip_mouths(x, drive, block_samples=960)
    assert len(a) == len(b) == -(-x.shape[0] // 1920)
    for wa, wb, wc in zip(a, b, c, strict=True):
        assert (wa is None) == (wb is None) == (wc is None)
        if wa is not None:
            assert np.array_equal(wa, wc)  # deterministic
            assert np.abs(wa - wb).max() < 1e-4


def test_missing_or_broken_weights_say_so(tmp_path: Path) -> None:
    with pytest.raises(LipDriveError, match="not found.*lip_drive_train"):
        LipNet.load(tmp_path / "nothing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(LipDriveError, match="cannot read"):
        LipNet.load(bad)
    assert DEFAULT_LIP_WEIGHTS.is_file()


def test_a_photo_face_input_plays_the_offline_drive_with_its_lookahead_as_more_delay(speech: SpeechEngine, drive: LipDrive) -> None:
    from stream.live.inputs.audio_input import AudioInput, AudioModels

    models = AudioModels(vad=drive.vad, shape=drive.shape)
    pcm = speech.synthesize("Bob, are you calm?", VoiceSpec(variant="f1")).pcm
    pcm = np.concatenate([np.zeros(9600, np.int16), pcm, np.zeros(9600, np.int16)])
    face = AudioInput(input_id="in_face", kind="file", character="ME", models=models, live=False, face=True)
    for i in range(0, pcm.shape[0], 1000):
        face.feed(pcm[i : i + 1000])
    face.feed_end()
    face.finish()
    played = [face.frame(k)[1] for k in range(-(-pcm.shape[0] // 1920))]  # the end too: feed_end decides it
    offline = lip_mouths(pcm, drive)
    assert sum(w is not None for w in played) > 10
    for k, (a, b) in enumerate(zip(played, offline, strict=False)):
        assert (a is None) == (b is None), k
        if a is not None:
            assert np.abs(a - b).max() < 1e-4
    rig = AudioInput(input_id="in_rig", kind="mic", character="RIG", models=models)
    live_face = AudioInput(input_id="in_face2", kind="mic", character="ME", models=models, face=True)
    # the face tracker looks as far ahead as the phones need (lipsync.lip_drive.LipTracker)
    assert live_face.delay_ms - rig.delay_ms == pytest.approx(LipTracker(drive).lookahead_ms - rig._tracker.lookahead_ms)
    assert live_face.delay_ms - rig.delay_ms == pytest.approx(140.0)
    assert rig.delay_ms == pytest.approx(models.config.delay_ms)
