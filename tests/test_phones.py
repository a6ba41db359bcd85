"""The phone recogniser (``lipsync.phones``): p/b/m heard as shut lips and open vowels as open,
silence as silence, the same decisions however the audio is chunked, bounded utterances, and a
missing model said plainly (the faces' lips then follow ``LipNet`` alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lipsync.features import Decimator
from lipsync.lip_drive import LIP_OPEN_BY_INDEX, LipDrive
from lipsync.phonemes import visemes_for_phoneme
from lipsync.phones import HOP_16K, PhoneConfig, PhoneModel, PhoneModelError, phone_viseme
from lipsync.speech import SpeechEngine
from lipsync.visemes import SIL, VISEME_INDEX
from lipsync.voices import VoiceSpec

_DECIMATOR_DELAY = 48


@pytest.fixture(scope="module")
def model() -> PhoneModel:
    return PhoneModel.load()


def _x16(pcm: np.ndarray) -> np.ndarray:
    return Decimator().push(pcm.astype(np.float32) / 32768.0)


def _decide(model: PhoneModel, x16: np.ndarray, block: int) -> np.ndarray:
    stream = model.stream()
    x16 = np.concatenate([x16, np.zeros(HOP_16K * (model.config.settle_hops + 1), np.float32)])
    return np.concatenate([stream.push(x16[i : i + block]) for i in range(0, x16.shape[0], block)])


def test_arpabet_phones_map_to_visemes() -> None:
    assert phone_viseme("P") == phone_viseme("B") == phone_viseme("M") == VISEME_INDEX["PP"]
    assert phone_viseme("F") == VISEME_INDEX["FF"]
    assert phone_viseme("AA") == VISEME_INDEX["aa"]
    assert phone_viseme("SIL") == phone_viseme("+NSN+") == SIL


@pytest.mark.parametrize("voice", [VoiceSpec(variant="f2"), VoiceSpec(variant="m3", rate_wpm=150)])
def test_lips_shut_for_p_b_m_and_open_for_the_open_vowels(speech: SpeechEngine, model: PhoneModel, voice: VoiceSpec) -> None:
    utt = speech.synthesize("Papa bought a bomb. Mom calmed Bob and Pam. Father pop, mop the barn.", voice)
    lead = 9600
    pcm = np.concatenate([np.zeros(lead, np.int16), utt.pcm, np.zeros(24_000, np.int16)])
    opening = LIP_OPEN_BY_INDEX[_decide(model, _x16(pcm), 320)]
    assert (opening[: lead // 480 - 3] == 0).all()  # silence before the line
    by: dict[str, list[float]] = {}
    events = list(utt.phonemes)
    for event, after in zip(events, events[1:], strict=False):
        vis = visemes_for_phoneme(event.phoneme)
        a = (event.start_sample + lead + _DECIMATOR_DELAY) // 480
        b = (after.start_sample + lead + _DECIMATOR_DELAY) // 480
        if len(vis) != 1 or b - a < 4:
            continue
        span = opening[a:b]
        name = "PP" if vis[0] == VISEME_INDEX["PP"] else "open" if vis[0] in (VISEME_INDEX["aa"], VISEME_INDEX["oh"]) else None
        if name is not None:
            by.setdefault(name, []).append(float(span.min() if name == "PP" else span.max()))
    print(f"\nopen vowels {np.mean(by['open']):.2f} ({len(by['open'])}), p/b/m {np.mean(by['PP']):.2f} ({len(by['PP'])})")
    assert len(by["open"]) >= 5 and len(by["PP"]) >= 5
    assert np.mean(by["open"]) > 0.5
    assert np.mean(by["PP"]) < 0.2


def test_the_same_decisions_however_the_audio_comes(speech: SpeechEngine, model: PhoneModel) -> None:
    x16 = _x16(speech.synthesize("Where were you last night, Bob?", VoiceSpec(variant="f3")).pcm)
    a, b, c = _decide(model, x16, 320), _decide(model, x16, 1337), _decide(model, x16, 320)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert a.shape[0] == x16.shape[0] // HOP_16K + 1  # every hop, settle_hops behind the audio


def test_a_long_stream_restarts_in_its_pauses_and_keeps_deciding(speech: SpeechEngine) -> None:
    config = PhoneConfig(quiet_hops=20, min_utterance_hops=60)
    model = PhoneModel.load(config)
    line = speech.synthesize("Mama made a map.", VoiceSpec(variant="m2")).pcm
    pause = np.zeros(19_200, np.int16)  # 400 ms
    x16 = _x16(np.concatenate([line, pause, line, pause, line, pause]))
    stream = model.stream()
    visemes = np.concatenate([stream.push(x16[i : i + 320]) for i in range(0, x16.shape[0], 320)])
    assert stream.hops_decided == visemes.shape[0] == x16.shape[0] // HOP_16K - config.settle_hops
    assert stream._start > 0  # it began a new utterance in a pause
    n = line.shape[0] // 480 + pause.shape[0] // 480
    thirds = [visemes[i * n : i * n + line.shape[0] // 480] for i in range(3)]
    for third in thirds:  # each saying of the line opens the mouth wide and nearly shuts it between
        opening = LIP_OPEN_BY_INDEX[third]
        first, last = np.flatnonzero(opening > 0)[[0, -1]]
        assert opening.max() > 0.5 and opening[first:last].min() <= 0.1, third


def test_a_missing_model_is_said_and_the_lips_follow_lipnet_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pocketsphinx

    monkeypatch.setattr(pocketsphinx, "get_model_path", lambda: str(tmp_path))
    with pytest.raises(PhoneModelError, match="missing .*mdef"):
        PhoneModel.load()
    drive = LipDrive.load()
    assert drive.phones is None
    from lipsync.lip_drive import LipTracker

    assert LipTracker(drive).lookahead_ms == pytest.approx(60.0)
