"""Live audio inputs: a voice (browser mic, WHIP publisher, audio file) driving one character.

An ``AudioInput`` is the scene's ``LiveInput``. Its feeder (a worker thread, in order) pushes
48 kHz audio through the audio → mouth tracker (``lipsync.audio_mouth``): resample to 16 kHz,
silero-vad, openness and shape. The producer thread calls ``frame(k)`` once per video frame and
gets the next 40 ms of the input's audio with the mouth decided for exactly those samples.

Delay: a 40 ms frame can be decided once its samples and the tracker's 20 ms lookahead (+1 ms
resampling filter) have arrived; playback starts when a further ``jitter_ms`` margin has
arrived (rounded up to a 10 ms hop), and from then on every sample is played
``D = 40 + 20 + 1 + jitter_ms + 0..10`` ms after it came in (71-81 ms), mouth and voice alike.

Inputs of one session share a ``Room`` (``stream.live.inputs.room``): each frame, the room takes
every input's hops and decides which carry another input's voice (cross-talk), so a character
whose microphone only hears the other person keeps its mouth shut, at no extra delay.

Buffer policy (live): underflow → silence and a closed mouth, counted, then wait for the
margin again; more than ``max_lag_ms`` behind (a network burst, a sender's fast clock) → skip
hops back to the margin, counted. Files play every frame in order and never skip.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

import av
import numpy as np

from lipsync.audio_mouth import AudioMouthConfig, HopDecision, MouthTracker, frame_weights
from lipsync.audio_mouth_net import ShapeNet
from lipsync.features import HOPS_PER_FRAME
from lipsync.lip_drive import LipDrive, LipTracker
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from lipsync.vad import SileroVad
from stream.errors import ClientError

logger = logging.getLogger(__name__)

InputKind = Literal["mic", "whip", "file"]
_HOP_48K = SAMPLES_PER_FRAME // HOPS_PER_FRAME  # 480: one 10 ms analysis hop
_LOOKAHEAD_SAMPLES = SAMPLES_PER_FRAME // 2  # 20 ms: the tracker's two hops
_AHEAD_HOPS = 2  # decided hops after a frame that the room may look at (no extra delay)


class InputError(ClientError):
    """An audio input that cannot be used (undecodable, too big, no audio, unknown character)."""


@dataclass(frozen=True, slots=True)
class InputConfig:
    jitter_ms: float = 10.0
    max_lag_ms: float = 200.0
    max_upload_bytes: int = 20 * 1024 * 1024
    max_file_s: float = 600.0
    max_inputs_per_session: int = 4
    file_read_ahead_s: float = 2.0
    mouth: AudioMouthConfig = field(default_factory=AudioMouthConfig)

    @property
    def delay_ms(self) -> float:
        """Added delay of live inputs, from a sample's arrival to its playing with its mouth on
        screen: frame + lookahead + filter + jitter margin + half a hop (the start's rounding)."""
        return 1000.0 * (SAMPLES_PER_FRAME + _LOOKAHEAD_SAMPLES + _HOP_48K / 2) / SAMPLE_RATE_HZ + 1.0 + self.jitter_ms


class AudioModels:
    """The voice-activity and shape models, loaded once per server and shared by every input;
    the face drive (``lipsync.lip_drive``, for photo characters) is loaded on first use."""

    def __init__(self, *, vad: SileroVad, shape: ShapeNet | None, config: InputConfig | None = None) -> None:
        self.vad = vad
        self.shape = shape
        self.config = config or InputConfig()
        self._face_drive: LipDrive | None = None
        self._face_lock = threading.Lock()

    @classmethod
    def load(cls, *, config: InputConfig | None = None, weights: Path | None = None) -> AudioModels:
        """silero-vad from its wheel; the shape network from ``weights`` (default: the shipped
        file) unless the configured estimator is "signal"."""
        cfg = config or InputConfig()
        shape = None
        if cfg.mouth.estimator != "signal":
            shape = ShapeNet.load(weights) if weights is not None else ShapeNet.load()
        return cls(vad=SileroVad.load(), shape=shape, config=cfg)

    def tracker(self, *, face: bool = False) -> MouthTracker:
        """The rig's tracker, or with ``face`` the photo face's (lips opened by the sounds
        recognised and by ``LipNet``, 140 ms more lookahead: ``lipsync.lip_drive.LipTracker``);
        ``LipDriveError`` names a missing weights file."""
        if face:
            return LipTracker(self.face_drive())
        return MouthTracker(vad=self.vad, shape=self.shape, config=self.config.mouth)

    def face_drive(self) -> LipDrive:
        with self._face_lock:
            if self._face_drive is None:
                self._face_drive = LipDrive.load(vad=self.vad, shape=self.shape or ShapeNet.load())
            return self._face_drive


class Room(Protocol):
    """Where the inputs of one session are heard together (``stream.live.inputs.room.Room``)."""

    def frame(self, source: AudioInput, k: int) -> tuple[np.ndarray, np.ndarray | None]: ...


@dataclass(frozen=True, slots=True)
class PlayedFrame:
    """What an input plays in one frame: 1920 samples and their four decided hops (none while
    it waits or has run dry), plus up to two decided hops after them."""

    audio: np.ndarray
    hops: tuple[HopDecision, ...]
    ahead: tuple[HopDecision, ...]


@dataclass
class InputStats:
    """``bleed_frames``: frames whose voice gate was open but whose voice was another input's
    (mouth kept shut); ``bleed_db``: how much quieter the loudest other input's voice reaches
    this one (learned in the room; None alone or before it was heard)."""

    frames_played: int = 0
    speech_frames: int = 0
    bleed_frames: int = 0
    bleed_db: float | None = None
    waiting_frames: int = 0
    underflows: int = 0
    skipped_hops: int = 0
    received_s: float = 0.0
    cpu_s: float = 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "frames_played": self.frames_played, "speech_frames": self.speech_frames,
            "bleed_frames": self.bleed_frames, "bleed_db": self.bleed_db,
            "waiting_frames": self.waiting_frames, "underflows": self.underflows,
            "skipped_hops": self.skipped_hops, "received_s": round(self.received_s, 3),
            "cpu_ms_per_s": round(1000.0 * self.cpu_s / self.received_s, 2) if self.received_s else 0.0,
        }


class AudioInput:
    """One voice bound to one character; ``feed`` from one feeder thread, ``frame`` from the producer.

    The read position moves in 10 ms hops: a frame is the next four decided hops and their
    1920 samples, so the buffer can start, and catch up, to within one hop of its target.
    """

    def __init__(
        self, *, input_id: str, kind: InputKind, character: str, models: AudioModels, live: bool = True,
        room: Room | None = None, face: bool = False,
    ) -> None:
        """``face``: the character is a photo face, driven by ``AudioModels.tracker(face=True)``."""
        self.id = input_id
        self.kind = kind
        self.character = character
        self.live = live
        self.config = models.config
        self.stats = InputStats()
        self.on_end: Callable[[AudioInput], None] | None = None
        self.room = room
        self.played_from = 0  # input sample of the last played frame's first sample
        self._taken: tuple[int, PlayedFrame] | None = None  # producer thread only
        self._tracker = models.tracker(face=face)
        self._estimator = self._tracker.config.estimator
        # Samples a frame waits for past its own: the tracker's lookahead (more for a face).
        self._lookahead = int(round(self._tracker.lookahead_ms * SAMPLE_RATE_HZ / 1000))
        self._lock = threading.Lock()
        # Stream position p = input sample p - delay (the analysis filter's delay): hop h's
        # audio is samples [480 h, 480 h + 480) of this buffer and matches hop h's decision.
        self._audio = np.zeros(self._tracker.delay_samples_48k, np.int16)
        self._audio_base = 0  # stream position of self._audio[0]
        self._written = 0  # input samples received
        self._hops: list[HopDecision] = []  # decided, index = hop - self._hop_base
        self._hop_base = 0
        self._next = 0  # next hop to play
        self._playing = False
        self._finished = False
        self._ended = False
        self._jitter = int(self.config.jitter_ms * SAMPLE_RATE_HZ / 1000) if live else 0
        self._max_lag = int(self.config.max_lag_ms * SAMPLE_RATE_HZ / 1000)
        self._resampler: av.AudioResampler | None = None

    # -- feeder side (one thread at a time, in order) -------------------------------------------

    def feed_frame(self, frame: av.AudioFrame) -> None:
        """Feed a decoded audio frame of any format and rate (converted to mono 48 kHz)."""
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        parts = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if parts:
            self.feed(np.concatenate(parts).astype(np.int16, copy=False))

    def feed(self, pcm: np.ndarray) -> None:
        """Feed mono 48 kHz int16 samples."""
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"feed expects mono int16 PCM, got {pcm.dtype} {pcm.shape}")
        t0 = time.thread_time()
        decided = self._tracker.push(pcm.astype(np.float32) / 32768.0)
        with self._lock:
            self._audio = np.concatenate([self._audio, pcm])
            self._written += pcm.shape[0]
            self._hops.extend(decided)
            if self.live and self._margin() > 2 * self._max_lag:
                self._skip_to_target()  # nobody is reading: do not grow without bound
        self.stats.received_s += pcm.shape[0] / SAMPLE_RATE_HZ
        self.stats.cpu_s += time.thread_time() - t0

    def feed_end(self) -> None:
        """The audio has ended (a file's last block, a track that stopped): feed the tracker its
        lookahead's worth of silence after it, so the last sounds are decided and played too.
        The feeder's thread, after its last ``feed``; then ``finish``."""
        self.feed(np.zeros(self._lookahead + HOPS_PER_FRAME * _HOP_48K, np.int16))

    def finish(self) -> None:
        """No more audio is coming: what is buffered plays out, then the input ends."""
        with self._lock:
            self._finished = True

    # -- buffer --------------------------------------------------------------------------------

    def _margin(self) -> int:
        """Samples received beyond what the next frame needs to be decided (negative: not yet)."""
        return self._written - (self._next + HOPS_PER_FRAME) * _HOP_48K - self._lookahead

    def margin_samples(self) -> int:
        with self._lock:
            return self._margin()

    def _skip_to_target(self) -> None:
        """Skip whole hops so the margin comes back to within one hop above the jitter target."""
        n = max(0, (self._margin() - self._jitter) // _HOP_48K)
        if n:
            self._next += n
            self.stats.skipped_hops += n
            self._trim()

    def _trim(self) -> None:
        drop = min(self._next - self._hop_base, len(self._hops))
        if drop > 0:
            del self._hops[:drop]
            self._hop_base += drop
        start = self._next * _HOP_48K - self._audio_base
        if start > 0:
            self._audio = self._audio[start:]
            self._audio_base += start

    # -- producer side ------------------------------------------------------------------------

    @property
    def delay_ms(self) -> float:
        extra = 1000.0 * (self._lookahead - _LOOKAHEAD_SAMPLES) / SAMPLE_RATE_HZ
        return self.config.delay_ms + extra if self.live else 0.0

    @property
    def ended(self) -> bool:
        with self._lock:
            return self._ended

    def frame(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame ``k``'s audio and mouth; in a ``Room`` the mouth also depends on the other inputs."""
        if self.room is not None:
            return self.room.frame(self, k)
        return self.mouth(self.take(k), None)

    def take(self, k: int) -> PlayedFrame:
        """The hops and samples this input plays in frame ``k`` (taken once; asking again for the
        same ``k`` gives the same frame)."""
        if self._taken is not None and self._taken[0] == k:
            return self._taken[1]
        end_now = False
        with self._lock:
            ready = self._hop_base + len(self._hops) - self._next >= HOPS_PER_FRAME
            if self._playing and not ready:
                self._playing = False  # ran dry: wait for the margin again
                self.stats.underflows += not self._finished
            if not self._playing and ready and (self._margin() >= self._jitter or self._finished):
                self._playing = True
                if self.live:
                    self._skip_to_target()  # start as close to the target delay as one hop allows
            elif self._playing and self.live and self._margin() > self._max_lag + self._jitter:
                self._skip_to_target()  # a burst after a stall, or a sender's fast clock
            if self._playing:
                start = self._next * _HOP_48K - self._audio_base
                audio = self._audio[start : start + SAMPLES_PER_FRAME].copy()
                first = self._next - self._hop_base
                hops = tuple(self._hops[first : first + HOPS_PER_FRAME])
                ahead = tuple(self._hops[first + HOPS_PER_FRAME : first + HOPS_PER_FRAME + _AHEAD_HOPS])
                self.played_from = self._next * _HOP_48K - self._tracker.delay_samples_48k
                self._next += HOPS_PER_FRAME
                self._trim()
                self.stats.frames_played += 1
                played = PlayedFrame(audio, hops, ahead)
            else:
                played = PlayedFrame(np.zeros(SAMPLES_PER_FRAME, np.int16), (), ())
                if self._finished and not ready and not self._ended:
                    self._ended = end_now = True
                elif not self._finished:
                    self.stats.waiting_frames += 1
        self._taken = (k, played)
        if end_now and self.on_end is not None:
            self.on_end(self)
        return played

    def mouth(self, played: PlayedFrame, own: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """(audio, weights) of a taken frame; ``own[i]`` False: hop i carries another input's voice
        (its mouth stays shut for it). Counts the frame's speech and bleed."""
        if not played.hops:
            return played.audio, None
        weights = frame_weights(played.hops, self._estimator)
        if own is not None and not own.all() and weights is not None:
            hops = [h if o else replace(h, openness=0.0, speech=False) for h, o in zip(played.hops, own, strict=True)]
            weights = frame_weights(hops, self._estimator)
            self.stats.bleed_frames += weights is None
        self.stats.speech_frames += weights is not None
        return played.audio, weights


# -- decoding files -----------------------------------------------------------------------------


def decode_audio(source: bytes | Path, *, config: InputConfig, name: str = "upload") -> np.ndarray:
    """A whole audio file (wav, mp3, ogg/opus, m4a, ... anything FFmpeg reads) as mono 48 kHz int16.

    Blocking; call it in a worker. Raises ``InputError`` naming what is wrong.
    """
    if isinstance(source, bytes) and len(source) > config.max_upload_bytes:
        raise InputError(
            "too_large", f"{name} is {len(source)} bytes; the limit is {config.max_upload_bytes}", http_status=413
        )
    max_samples = int(config.max_file_s * SAMPLE_RATE_HZ)
    parts: list[np.ndarray] = []
    total = 0
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError("bad_audio", f"{name} is not an audio file FFmpeg can read: {exc}") from None
    with container:
        if not container.streams.audio:
            raise InputError("bad_audio", f"{name} has no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1)
                    parts.append(pcm)
                    total += pcm.shape[0]
                if total > max_samples:
                    raise InputError(
                        "too_long", f"{name} is longer than the limit of {config.max_file_s:g} s"
                    )
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except av.FFmpegError as exc:
            raise InputError("bad_audio", f"{name} could not be decoded: {exc}") from None
    if not parts or sum(p.shape[0] for p in parts) == 0:
        raise InputError("bad_audio", f"{name} holds no audio samples")
    return np.concatenate(parts).astype(np.int16, copy=False)
