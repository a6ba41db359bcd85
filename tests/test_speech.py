"""Speech synthesis, phoneme events and mouth tracks: timing on content, not on mocks."""

from __future__ import annotations

import numpy as np
import pytest

from lipsync.audio import frame_rms, resample, to_float
from lipsync.espeak import UnknownLanguageError
from lipsync.mouth_track import MouthTrackConfig, segments_from_phonemes
from lipsync.phonemes import visemes_for_phoneme
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from lipsync.visemes import JAW_OPEN, SIL, VISEME_INDEX, VISEMES
from lipsync.voices import VoiceSpec, auto_voice

TEXT = "Where were you last night? I waited for hours, Maya. Bob brought me maps."


def test_events_are_ordered_and_inside_the_audio(speech: SpeechEngine) -> None:
    utt = speech.say(TEXT, VoiceSpec())
    starts = [p.start_sample for p in utt.phonemes]
    assert starts == sorted(starts)
    assert starts[0] >= 0 and starts[-1] <= utt.n_samples
    assert len(utt.words) == len(TEXT.split())
    # 48 kHz: a 14-word sentence lasts a few seconds.
    assert 2.0 < utt.n_samples / SAMPLE_RATE_HZ < 8.0
    assert utt.mouth.shape == (-(-utt.n_samples // SAMPLES_PER_FRAME), len(VISEMES))
    np.testing.assert_allclose(utt.mouth.sum(axis=1), 1.0, atol=1e-5)


def test_word_events_point_at_the_words(speech: SpeechEngine) -> None:
    utt = speech.say(TEXT, VoiceSpec())
    words = [TEXT[w.text_start : w.text_start + w.text_length] for w in utt.words]
    assert words[:3] == ["Where", "were", "you"]


@pytest.mark.parametrize(
    ("language", "text"),
    [("en-us", "Hello there, friend."), ("cmn", "广州市房地产中介协会分析"), ("ko", "안녕하세요, 반갑습니다")],
)
def test_languages_speak_and_move_the_mouth(speech: SpeechEngine, language: str, text: str) -> None:
    utt = speech.say(text, VoiceSpec(language=language))
    assert utt.n_samples > SAMPLE_RATE_HZ  # over a second of speech
    assert np.abs(utt.pcm).max() > 3000
    open_frames = (utt.mouth[:, SIL] < 0.5).sum()
    assert open_frames > 10


def test_unknown_language_is_a_clear_error(speech: SpeechEngine) -> None:
    with pytest.raises(UnknownLanguageError, match="xx-nowhere"):
        speech.say("hi", VoiceSpec(language="xx-nowhere"))


def test_voice_parameters_are_bounded() -> None:
    with pytest.raises(ValueError, match="rate_wpm"):
        VoiceSpec(rate_wpm=1000)


def test_auto_voice_is_deterministic_and_case_insensitive() -> None:
    assert auto_voice("Zed") == auto_voice("ZED")
    voices = {auto_voice(name) for name in ["ANNA", "BORIS", "CHEN", "DANA", "EMIL", "FARAH"]}
    assert len(voices) >= 5


def test_viseme_onsets_follow_phoneme_events_within_one_frame(speech: SpeechEngine) -> None:
    utt = speech.say(TEXT, VoiceSpec())
    cfg = MouthTrackConfig()
    min_len = cfg.min_shape_ms * SAMPLE_RATE_HZ / 1000
    dominant = utt.mouth.argmax(axis=1)
    checked = 0
    for i, ph in enumerate(utt.phonemes[:-1]):
        vis = visemes_for_phoneme(ph.phoneme)
        duration = utt.phonemes[i + 1].start_sample - ph.start_sample
        if not vis or duration < min_len:
            continue
        f = ph.start_sample // SAMPLES_PER_FRAME
        window = dominant[max(0, f - 1) : f + 2]
        assert vis[0] in window, (
            f"phoneme {ph.phoneme!r} at frame {f} wants {VISEMES[vis[0]]}, "
            f"frames {f - 1}..{f + 1} show {[VISEMES[v] for v in window]}"
        )
        checked += 1
    assert checked >= 10


def test_lips_close_ahead_of_bilabials(speech: SpeechEngine) -> None:
    utt = speech.say("Bob brought me maps, mum.", VoiceSpec())
    pp = VISEME_INDEX["PP"]
    bilabials = [p for p in utt.phonemes if visemes_for_phoneme(p.phoneme)[:1] == (pp,)]
    assert len(bilabials) >= 4
    for p in bilabials:
        f = p.start_sample // SAMPLES_PER_FRAME
        closed = [k for k in range(max(0, f - 1), f + 2) if utt.mouth[k, pp] == 1.0]
        assert closed, f"no fully closed frame around bilabial {p.phoneme!r} at frame {f}"
        assert min(closed) <= f + 1


def test_shapes_hold_a_minimum_duration_and_rest_in_pauses() -> None:
    sr = SAMPLE_RATE_HZ
    # a, i, u quickly, then a long pause, then "ma": the short ones must not flicker.
    phonemes = [("a", 0), ("i", int(0.03 * sr)), ("a", int(0.06 * sr)), ("u", int(0.25 * sr)),
                ("", int(0.40 * sr)), ("m", int(0.90 * sr)), ("a", int(1.0 * sr))]
    cfg = MouthTrackConfig()
    segs = segments_from_phonemes(phonemes, int(1.3 * sr), config=cfg)
    for s in segs[:-1]:
        assert (s.end - s.start) >= cfg.min_shape_ms * sr / 1000 or s.viseme == VISEME_INDEX["PP"]
    pause = [s for s in segs if s.start <= int(0.6 * sr) < s.end][0]
    assert pause.viseme == SIL


def test_mouth_opening_follows_speech_energy(speech: SpeechEngine) -> None:
    utt = speech.say(TEXT, VoiceSpec())
    opening = utt.mouth @ np.asarray(JAW_OPEN)
    energy = frame_rms(to_float(utt.pcm))
    assert np.corrcoef(opening, energy)[0, 1] > 0.5


def test_resample_keeps_exact_length_and_pitch() -> None:
    sr_in = 22050
    t = np.arange(sr_in) / sr_in
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    out = resample(tone, from_hz=sr_in)
    assert out.shape[0] == SAMPLE_RATE_HZ
    spectrum = np.abs(np.fft.rfft(out.astype(np.float32)))
    assert abs(np.argmax(spectrum) - 440) <= 1


def test_same_text_gives_the_same_samples_whatever_came_before(speech: SpeechEngine) -> None:
    first = speech.say("Where were you last night?", VoiceSpec())
    speech.say("Something else entirely, in another voice.", VoiceSpec(variant="f3", pitch=70))
    again = speech.say("Where were you last night?", VoiceSpec())
    np.testing.assert_array_equal(first.pcm, again.pcm)
    assert first.phonemes == again.phonemes


def test_two_engines_in_one_process_do_not_share_state(speech: SpeechEngine) -> None:
    other = SpeechEngine()
    a = speech.say("Where were you last night?", VoiceSpec())
    other.say("Some other words first.", VoiceSpec(variant="m3"))
    b = other.say("Where were you last night?", VoiceSpec())
    c = speech.say("Where were you last night?", VoiceSpec())
    np.testing.assert_array_equal(a.pcm, b.pcm)
    np.testing.assert_array_equal(a.pcm, c.pcm)
