"""A line synthesised chunk by chunk, readable while it is still being made.

espeak-ng hands over PCM in blocks of about 100 ms; each block is resampled to 48 kHz as it
arrives (one stateful resampler per line, so block edges leave no clicks) and its phoneme
events are moved onto the 48 kHz clock. Readers ask for audio samples and mouth-track rows;
a row is final once ``lookahead_ms`` of later speech exists (the mouth track needs to know
what comes next), or once the line is complete.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import av
import numpy as np

from lipsync.espeak import PhonemeEvent
from lipsync.mouth_track import MouthTrackConfig, mouth_track
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, frames_for_samples
from lipsync.visemes import N_VISEMES, SIL
from lipsync.voices import VoiceSpec


@dataclass(frozen=True, slots=True)
class StreamingConfig:
    lookahead_ms: int = 120
    mouth: MouthTrackConfig = MouthTrackConfig()


class StreamingUtterance:
    """PCM (int16, 48 kHz) and phoneme events of one line, growing while synthesis runs.

    Written by one synthesis thread, read by the frame producer; all access holds ``_lock``.
    """

    def __init__(self, *, text: str, voice: VoiceSpec, config: StreamingConfig | None = None) -> None:
        self.text = text
        self.voice = voice
        self.config = config or StreamingConfig()
        self._lock = threading.Lock()
        self._blocks: list[np.ndarray] = []
        self._pcm = np.zeros(0, np.int16)
        self._phonemes: list[PhonemeEvent] = []
        self._done = False
        self._cancelled = False
        self._error: BaseException | None = None
        self._in_samples = 0
        self._in_rate = 0
        self._resampler: av.AudioResampler | None = None
        self._mouth_cache: tuple[int, bool, np.ndarray] | None = None
        self.ready = threading.Event()  # set once the first chunk (or the whole line) exists
        self.finished = threading.Event()  # set once synthesis has ended (done, cancelled or failed)

    # -- writer side (the synthesis thread) ------------------------------------------------

    def synthesize(self, speech: SpeechEngine, *, first_chunk_samples: int) -> None:
        """Run espeak-ng for this line (blocking); stops early once ``cancel()`` was called."""
        espeak = speech.espeak
        self._in_rate = espeak.sample_rate_hz
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        ratio = SAMPLE_RATE_HZ / self._in_rate

        def sink(block: np.ndarray, phonemes: list[PhonemeEvent], _words: list) -> bool:
            out = self._resample(block)
            with self._lock:
                self._phonemes += [PhonemeEvent(p.phoneme, round(p.start_sample * ratio)) for p in phonemes]
                self._append(out)
                if self._pcm.shape[0] >= first_chunk_samples:
                    self.ready.set()
                return self._cancelled

        try:
            espeak.stream(self.text, self.voice, sink)
            tail = self._resample(None)
            with self._lock:
                self._append(tail)
                exact = round(self._in_samples * ratio)
                if self._pcm.shape[0] < exact:
                    self._append(np.zeros(exact - self._pcm.shape[0], np.int16))
                self._pcm = self._pcm[:exact] if not self._cancelled else self._pcm
                self._done = True
        except BaseException as exc:
            with self._lock:
                self._error = exc
                self._done = True
            raise
        finally:
            self.ready.set()
            self.finished.set()

    def _resample(self, block: np.ndarray | None) -> np.ndarray:
        assert self._resampler is not None
        if block is None:
            frames = self._resampler.resample(None)
        else:
            if block.shape[0] == 0:
                return np.zeros(0, np.int16)
            self._in_samples += block.shape[0]
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = self._in_rate
            frames = self._resampler.resample(frame)
        parts = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def _append(self, samples: np.ndarray) -> None:
        if samples.shape[0]:
            self._pcm = np.concatenate([self._pcm, samples])

    def cancel(self) -> None:
        """Ask synthesis to stop at its next block."""
        with self._lock:
            self._cancelled = True

    # -- reader side (the frame producer) ---------------------------------------------------

    @property
    def done(self) -> bool:
        with self._lock:
            return self._done

    @property
    def error(self) -> BaseException | None:
        with self._lock:
            return self._error

    @property
    def n_samples(self) -> int:
        """Samples made so far (the final length once ``done``)."""
        with self._lock:
            return int(self._pcm.shape[0])

    def audio(self, start: int, n: int) -> np.ndarray:
        """Samples ``[start, start + n)``; zeros past what exists."""
        with self._lock:
            part = self._pcm[max(0, start) : max(0, start + n)]
        if part.shape[0] < n:
            part = np.pad(part, (0, n - part.shape[0]))
        return part

    def mouth_row(self, j: int) -> np.ndarray | None:
        """Viseme weights for frame ``j`` of the line, or None if that row is not final yet."""
        with self._lock:
            n, done = int(self._pcm.shape[0]), self._done
            phonemes = list(self._phonemes)
            cached = self._mouth_cache
        if cached is None or cached[0] != n or cached[1] != done:
            track = mouth_track([(p.phoneme, p.start_sample) for p in phonemes], n, config=self.config.mouth)
            cached = (n, done, track)
            with self._lock:
                self._mouth_cache = cached
        track = cached[2]
        stable = n if done else n - self.config.lookahead_ms * SAMPLE_RATE_HZ // 1000
        if (j + 1) * SAMPLES_PER_FRAME > stable and not done:
            return None
        if j >= track.shape[0]:
            row = np.zeros(N_VISEMES, np.float32)
            row[SIL] = 1.0
            return row
        return track[j]

    @property
    def n_frames(self) -> int:
        return frames_for_samples(self.n_samples)
