"""Speech on the session clock: espeak-ng synthesis resampled to 48 kHz with events in 48 kHz samples."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from lipsync.audio import resample
from lipsync.espeak import Espeak, PhonemeEvent, WordEvent
from lipsync.mouth_track import MouthTrackConfig, mouth_track
from lipsync.timebase import SAMPLE_RATE_HZ
from lipsync.visemes import N_VISEMES
from lipsync.voices import VoiceSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One spoken line at 48 kHz: PCM, its events, and the mouth track that goes with it.

    ``mouth`` has one row of viseme weights per 25 fps frame, frame 0 starting at sample 0.
    """

    text: str
    voice: VoiceSpec
    pcm: np.ndarray  # int16, mono, 48 kHz
    phonemes: tuple[PhonemeEvent, ...]
    words: tuple[WordEvent, ...]
    mouth: np.ndarray  # (n_frames, 15) float32

    @property
    def n_samples(self) -> int:
        return int(self.pcm.shape[0])


class SpeechEngine:
    """Turns text into ``Utterance``s; thread-safe (espeak-ng calls are serialised inside)."""

    def __init__(self, *, espeak: Espeak | None = None, mouth_config: MouthTrackConfig | None = None) -> None:
        self._espeak = espeak or Espeak()
        self._mouth_config = mouth_config or MouthTrackConfig()

    @property
    def espeak(self) -> Espeak:
        return self._espeak

    def synthesize(self, text: str, voice: VoiceSpec) -> Utterance:
        """Speech at 48 kHz with events; ``mouth`` is left empty (see ``with_mouth``)."""
        speech = self._espeak.synthesize(text, voice)
        ratio = SAMPLE_RATE_HZ / speech.sample_rate_hz
        pcm = resample(speech.pcm, from_hz=speech.sample_rate_hz)
        phonemes = tuple(PhonemeEvent(p.phoneme, round(p.start_sample * ratio)) for p in speech.phonemes)
        words = tuple(
            WordEvent(w.text_start, w.text_length, round(w.start_sample * ratio)) for w in speech.words
        )
        empty = np.zeros((0, N_VISEMES), np.float32)
        return Utterance(text=text, voice=voice, pcm=pcm, phonemes=phonemes, words=words, mouth=empty)

    def with_mouth(self, utt: Utterance) -> Utterance:
        """The utterance with its mouth track filled in from its phoneme events."""
        mouth = mouth_track(
            [(p.phoneme, p.start_sample) for p in utt.phonemes], utt.n_samples, config=self._mouth_config
        )
        return replace(utt, mouth=mouth)

    def say(self, text: str, voice: VoiceSpec) -> Utterance:
        """Synthesise ``text`` in ``voice`` with its mouth track; blocks (call it from a worker thread when live)."""
        return self.with_mouth(self.synthesize(text, voice))
