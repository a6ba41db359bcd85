"""Speech on the session clock: each voice's synthesis resampled to 48 kHz, events in 48 kHz samples.

A voice speaks through its backend: the natural voice (Kokoro, ``lipsync.natural``) where the
voice asks for it and it can speak the language (English, Mandarin), else espeak-ng with the
voice's espeak-ng settings. The natural voice's model is loaded once, on first use or by
``warm_up``; if it cannot be loaded every line is spoken by espeak-ng and the engine says so
once, with the reason.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Literal

import av
import numpy as np

from lipsync.audio import resample
from lipsync.espeak import BlockSink, Espeak, PhonemeEvent, Speech, WordEvent
from lipsync.kokoro import KokoroConfig, NaturalVoiceError
from lipsync.mouth_track import MouthTrackConfig, mouth_track
from lipsync.natural import NaturalConfig, NaturalVoices
from lipsync.timebase import SAMPLE_RATE_HZ
from lipsync.visemes import N_VISEMES
from lipsync.voices import VoiceSpec, natural_voice

logger = logging.getLogger(__name__)

VoiceBackendChoice = Literal["natural", "espeak"]
VOICE_BACKEND_ENV = "TALKIE_VOICE_BACKEND"


@dataclass(frozen=True, slots=True)
class Utterance:
    """One spoken line at 48 kHz: PCM, its events, and the mouth track that goes with it.

    ``mouth`` has one row of viseme weights per 25 fps frame, frame 0 starting at sample 0.
    ``backend`` says which synthesiser spoke it ("kokoro" or "espeak").
    """

    text: str
    voice: VoiceSpec
    pcm: np.ndarray  # int16, mono, 48 kHz
    phonemes: tuple[PhonemeEvent, ...]
    words: tuple[WordEvent, ...]
    mouth: np.ndarray  # (n_frames, 15) float32
    backend: str = "espeak"

    @property
    def n_samples(self) -> int:
        return int(self.pcm.shape[0])


class SpeechEngine:
    """Turns text into ``Utterance``s with any voice; thread-safe, shared by every session.

    ``voice_backend="espeak"`` speaks every voice with espeak-ng (the fast path; the natural
    model is never loaded); None takes the environment's ``TALKIE_VOICE_BACKEND`` (``natural``
    when unset), so a whole process (a test run, a batch worker) can be put on the fast path.
    ``kokoro``: where the natural voice's files are (tests point it at broken ones)."""

    def __init__(
        self,
        *,
        espeak: Espeak | None = None,
        mouth_config: MouthTrackConfig | None = None,
        voice_backend: VoiceBackendChoice | None = None,
        kokoro: KokoroConfig | None = None,
        natural_config: NaturalConfig | None = None,
    ) -> None:
        if voice_backend is None:
            voice_backend = os.environ.get(VOICE_BACKEND_ENV) or "natural"  # type: ignore[assignment]
        if voice_backend not in ("natural", "espeak"):
            raise ValueError(
                f"voice_backend must be 'natural' or 'espeak', got {voice_backend!r} (check {VOICE_BACKEND_ENV})"
            )
        self._espeak = espeak or Espeak()
        self._mouth_config = mouth_config or MouthTrackConfig()
        self.voice_backend = voice_backend
        self._kokoro_config = kokoro or KokoroConfig()
        self._natural_config = natural_config or NaturalConfig()
        self._natural: NaturalVoices | None = None
        self._natural_error: str | None = None
        self._natural_lock = threading.Lock()
        self._broken_voices: set[str] = set()

    # -- backends -----------------------------------------------------------------------------

    @property
    def espeak_engine(self) -> Espeak:
        """The espeak-ng library itself."""
        return self._espeak

    @property
    def voices(self) -> StreamingVoices:
        """Every voice as one streaming synthesiser at 48 kHz (what live lines are made with)."""
        return StreamingVoices(self)

    @property
    def espeak(self) -> StreamingVoices:
        """What ``lipsync.streaming`` drives (``stream`` and ``sample_rate_hz``): every backend
        at 48 kHz, not only espeak-ng. Kept under this name for it; prefer ``voices``."""
        return self.voices

    @property
    def natural_error(self) -> str | None:
        """Why the natural voice cannot speak (None while it can, or has not been tried)."""
        return self._natural_error

    def natural(self) -> NaturalVoices | None:
        """The natural voice, loading it on first call; None (said once) when it cannot load."""
        if self.voice_backend == "espeak":
            return None
        with self._natural_lock:
            if self._natural is None and self._natural_error is None:
                try:
                    from lipsync.g2p import Phonemizer
                    from lipsync.kokoro import KokoroModel

                    model = KokoroModel(self._kokoro_config)
                    # Its own espeak-ng for phonemes: translating never waits for, nor resets, synthesis.
                    self._natural = NaturalVoices(
                        model=model, phonemizer=Phonemizer(espeak=Espeak()), config=self._natural_config
                    )
                    logger.info("natural voice (Kokoro-82M int8) loaded in %.1f s", model.load_s)
                except (NaturalVoiceError, ImportError, OSError) as exc:
                    self._natural_error = str(exc)
                    logger.warning("natural voices are unavailable, every line is spoken by espeak-ng: %s", exc)
            return self._natural

    def warm_up(self) -> None:
        """Load the natural voice and its Mandarin dictionaries now, not on the first line."""
        natural = self.natural()
        if natural is not None:
            natural.phonemizer.warm_up()

    def backend_for(self, voice: VoiceSpec) -> tuple[NaturalVoices, str] | None:
        """The natural voice and Kokoro voice id that speak ``voice``, or None for espeak-ng."""
        voice_id = natural_voice(voice)
        if voice_id is None:
            return None
        natural = self.natural()
        if natural is None:
            return None
        try:
            natural.model.voice(voice_id)  # loaded and checked once; a damaged file speaks espeak-ng
        except NaturalVoiceError as exc:
            with self._natural_lock:
                if voice_id not in self._broken_voices:
                    self._broken_voices.add(voice_id)
                    logger.warning("natural voice %s is unavailable, its lines are spoken by espeak-ng: %s", voice_id, exc)
            return None
        return natural, voice_id

    # -- whole lines ----------------------------------------------------------------------------

    def synthesize(self, text: str, voice: VoiceSpec, *, live: bool = False) -> Utterance:
        """Speech at 48 kHz with events; ``mouth`` is left empty (see ``with_mouth``).

        ``live``: the natural voice cuts the line as it does live (first words first), so the
        samples are those a live session streams; offline it speaks whole lines per call."""
        natural = self.backend_for(voice)
        if natural is not None:
            voices, voice_id = natural
            speech = voices.synthesize(
                text, language=voice.language, voice_id=voice_id, speed=voice.speed, live=live
            )
            backend = "kokoro"
        else:
            speech = self._espeak.synthesize(text, voice.as_espeak())
            backend = "espeak"
        return _to_session_clock(text, voice, speech, backend=backend)

    def with_mouth(self, utt: Utterance) -> Utterance:
        """The utterance with its mouth track filled in from its phoneme events."""
        mouth = mouth_track(
            [(p.phoneme, p.start_sample) for p in utt.phonemes], utt.n_samples, config=self._mouth_config
        )
        return replace(utt, mouth=mouth)

    def say(self, text: str, voice: VoiceSpec) -> Utterance:
        """Synthesise ``text`` in ``voice`` with its mouth track; blocks (call it from a worker thread when live)."""
        return self.with_mouth(self.synthesize(text, voice))


def _to_session_clock(text: str, voice: VoiceSpec, speech: Speech, *, backend: str) -> Utterance:
    ratio = SAMPLE_RATE_HZ / speech.sample_rate_hz
    pcm = resample(speech.pcm, from_hz=speech.sample_rate_hz)
    phonemes = tuple(PhonemeEvent(p.phoneme, round(p.start_sample * ratio)) for p in speech.phonemes)
    words = tuple(WordEvent(w.text_start, w.text_length, round(w.start_sample * ratio)) for w in speech.words)
    empty = np.zeros((0, N_VISEMES), np.float32)
    return Utterance(text=text, voice=voice, pcm=pcm, phonemes=phonemes, words=words, mouth=empty, backend=backend)


class StreamingVoices:
    """Any voice as a stream of 48 kHz blocks with events on the 48 kHz clock.

    The same contract as ``Espeak.stream``: ``sink(block, phonemes, words)`` returning True
    stops synthesis. espeak-ng hands blocks of ~100 ms; the natural voice one block per model
    call (its first words first, then growing runs of clauses), each as soon as it is made."""

    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, engine: SpeechEngine) -> None:
        self._engine = engine

    def stream(self, text: str, voice: VoiceSpec, sink: BlockSink) -> None:
        """Synthesise ``text`` (blocking: run it in a worker) into ``sink`` at 48 kHz."""
        natural = self._engine.backend_for(voice)
        if natural is not None:
            voices, voice_id = natural
            clock = _Resampled(sink, in_rate_hz=voices.sample_rate_hz)
            voices.stream(
                text, language=voice.language, voice_id=voice_id, speed=voice.speed, sink=clock.block, live=True
            )
        else:
            espeak = self._engine.espeak_engine
            clock = _Resampled(sink, in_rate_hz=espeak.sample_rate_hz)
            espeak.stream(text, voice.as_espeak(), clock.block)
        clock.finish()


class _Resampled:
    """A sink wrapper that moves blocks and events to 48 kHz, block by block, with one stateful
    resampler (no clicks at block edges) and exactly round(n * 48000 / rate) samples in all."""

    def __init__(self, sink: BlockSink, *, in_rate_hz: int) -> None:
        self._sink = sink
        self._in_rate = in_rate_hz
        self._ratio = SAMPLE_RATE_HZ / in_rate_hz
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        self._in_samples = 0
        self._out_samples = 0
        self._stopped = False

    def block(self, pcm: np.ndarray, phonemes: list[PhonemeEvent], words: list[WordEvent]) -> bool:
        out = self._resample(pcm) if pcm.shape[0] else np.zeros(0, np.int16)
        self._out_samples += out.shape[0]
        moved = [PhonemeEvent(p.phoneme, round(p.start_sample * self._ratio)) for p in phonemes]
        moved_words = [WordEvent(w.text_start, w.text_length, round(w.start_sample * self._ratio)) for w in words]
        self._stopped = bool(self._sink(out, moved, moved_words))
        return self._stopped

    def finish(self) -> None:
        """Hand over what the resampler still holds, padded or cut to the exact length."""
        if self._stopped:
            return
        frames = self._resampler.resample(None)
        tail = [f.to_ndarray().reshape(-1) for f in frames]
        rest = np.concatenate(tail) if tail else np.zeros(0, np.int16)
        exact = round(self._in_samples * self._ratio)
        need = exact - self._out_samples
        rest = rest[: max(0, need)]
        if rest.shape[0] < need:
            rest = np.pad(rest, (0, need - rest.shape[0]))
        if rest.shape[0]:
            self._out_samples += rest.shape[0]
            self._sink(rest, [], [])

    def _resample(self, pcm: np.ndarray) -> np.ndarray:
        self._in_samples += pcm.shape[0]
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._in_rate
        parts = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)
