"""Live speech → mouth: viseme weights per 25 fps frame from audio alone, streaming, any language.

Per 10 ms hop at 16 kHz (``lipsync.features``):

1. **Voice activity** (``lipsync.vad``): silero-vad with hysteresis and a hangover. While the
   gate is shut the frame's mouth is ``None`` (closed, not speaking): noise never opens it.
2. **Openness** from the speech-band level (150-4000 Hz) between a tracked noise floor and a
   slowly falling speech peak, on an amplitude scale: 0 at the floor (+6 dB), 1 at 2 dB under
   the peak (``LevelConfig``). It follows the acoustic
   envelope, whatever the language or loudness.
3. **Shape** (optional): a small network (``ShapeNet``) trained by the project on espeak-ng
   speech with known visemes, noise and reverberation (``lipsync.audio_mouth_train``), reads
   150 ms of log-mel context and 20 ms ahead and says which viseme the mouth is making (lips
   rounded, spread, closed for p/b/m, ...). The strongest shape is then blended with rest or
   "aa" so the jaw opens exactly as much as the openness says. Without a model, the mouth climbs a ladder of visemes by openness.

Each hop is decided once ``lookahead_hops`` hops past it have arrived (20 ms); a 40 ms frame is
any four consecutive hops (``frame_weights``). Decisions depend only on the samples, never on
how they were chunked. Measured choice of estimator: ``talkie bench audio``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from lipsync.audio_mouth_net import ShapeNet, hop_features
from lipsync.features import (
    DECIMATION,
    HOP_SAMPLES,
    HOPS_PER_FRAME,
    Decimator,
    FeatureConfig,
    LogMelStream,
    band_centres_hz,
)
from lipsync.vad import CHUNK_SAMPLES, SileroVad, VadGate, VadGateConfig, VadStream
from lipsync.visemes import JAW_OPEN, N_VISEMES, SIL, VISEME_INDEX

FRAME_SAMPLES_16K = HOP_SAMPLES * HOPS_PER_FRAME  # 640
_LADDER = tuple((VISEME_INDEX[v], JAW_OPEN[VISEME_INDEX[v]]) for v in ("sil", "ih", "E", "aa"))
_AA = VISEME_INDEX["aa"]
_PARTIAL_WINDOW_HOPS = 2  # hops whose 25 ms window starts before sample 0


@dataclass(frozen=True, slots=True)
class LevelConfig:
    """How loudness becomes openness (levels in dB of the speech band's power).

    Openness is the level on an amplitude scale from the noise floor (+``floor_margin_db``) to
    ``wide_below_peak_db`` under the speech peak. The peak is held, falling slowly
    (``peak_decay_db_per_s``), so one voice keeps one scale and openness follows loudness within
    speech. It starts ``start_range_db`` over the first floor (at least ``start_peak_db``) and
    never stays more than ``peak_headroom_db`` above the loudest recent speech (which falls at
    ``recent_decay_db_per_s``), so a first word, a noisy room or a
    voice that got quieter is not drawn too small for long. Chosen on augmented espeak-ng speech;
    ``talkie bench audio`` measures real recordings, which were never used to choose."""

    band_low_hz: float = 150.0
    band_high_hz: float = 4_000.0
    floor_margin_db: float = 6.0
    min_range_db: float = 15.0
    floor_rise_per_hop: float = 0.03
    floor_fall_per_hop: float = 0.3
    floor_creep_per_hop: float = 0.0005
    peak_decay_db_per_s: float = 1.0
    wide_below_peak_db: float = 2.0
    start_range_db: float = 30.0
    start_peak_db: float = 20.0
    recent_decay_db_per_s: float = 12.0
    peak_headroom_db: float = 9.0


Estimator = Literal["signal", "network", "hybrid"]
ESTIMATORS: tuple[Estimator, ...] = ("signal", "network", "hybrid")


@dataclass(frozen=True, slots=True)
class AudioMouthConfig:
    """``estimator``: "signal" (openness on a ladder of visemes), "network" (the shape
    network's visemes as they are) or "hybrid" (the network's shape opened by the signal)."""

    estimator: Estimator = "hybrid"
    lookahead_hops: int = 2
    level: LevelConfig = field(default_factory=LevelConfig)
    gate: VadGateConfig = field(default_factory=VadGateConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)

    @property
    def lookahead_ms(self) -> float:
        return self.lookahead_hops * HOP_SAMPLES / 16.0


class LevelTracker:
    """Noise floor and speech peak, per hop; gives openness 0..1 and the level below the peak."""

    def __init__(self, config: LevelConfig) -> None:
        self.config = config
        self.floor_db: float | None = None
        self.peak_db = 0.0
        self.recent_db = 0.0  # the loudest recent speech, falling fast
        self._hops = 0

    def update(self, level_db: float, *, speech: bool) -> tuple[float, float]:
        cfg = self.config
        self._hops += 1
        if self._hops <= _PARTIAL_WINDOW_HOPS:  # the first windows reach back before the signal
            return 0.0, -cfg.min_range_db
        if self.floor_db is None:
            self.floor_db = level_db
            self.peak_db = max(level_db + cfg.start_range_db, cfg.start_peak_db)
            self.recent_db = self.peak_db - cfg.peak_headroom_db
        floor = self.floor_db
        if not speech:
            rate = cfg.floor_rise_per_hop if level_db > floor else cfg.floor_fall_per_hop
            floor += rate * (level_db - floor)
        else:  # a quieter moment within speech still shows the floor is lower (speech at the start)
            floor += (cfg.floor_fall_per_hop if level_db < floor else cfg.floor_creep_per_hop) * (level_db - floor)
            hop_s = HOP_SAMPLES / 16_000
            self.peak_db = max(level_db, self.peak_db - cfg.peak_decay_db_per_s * hop_s)
            self.recent_db = max(level_db, self.recent_db - cfg.recent_decay_db_per_s * hop_s)
            self.peak_db = min(self.peak_db, self.recent_db + cfg.peak_headroom_db)
        self.peak_db = max(self.peak_db, floor + cfg.min_range_db)
        self.floor_db = floor
        lo = floor + cfg.floor_margin_db
        hi = max(lo + 1.0, self.peak_db - cfg.wide_below_peak_db)
        amp, lo_amp, hi_amp = 10 ** (level_db / 20), 10 ** (lo / 20), 10 ** (hi / 20)
        openness = min(1.0, max(0.0, (amp - lo_amp) / (hi_amp - lo_amp)))
        return openness, level_db - self.peak_db


def speech_band_levels(mel_db: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Level (dB) of the speech band per hop, from log-mel rows."""
    power = (10.0 ** (mel_db[:, band] / 10.0)).sum(axis=1)
    return (10.0 * np.log10(power + 1e-10)).astype(np.float32)


class HopAnalyser:
    """Per hop: the voice gate, openness and level below the peak, in time order.

    VAD chunks are applied when the hop in which they end is reached, so the gate a hop sees
    depends only on the samples up to its end, never on how they were chunked.
    """

    def __init__(self, config: AudioMouthConfig) -> None:
        self.config = config
        self._gate = VadGate(config.gate)
        self._level = LevelTracker(config.level)
        centres = band_centres_hz(config.features)
        self._band = (centres >= config.level.band_low_hz) & (centres <= config.level.band_high_hz)
        self._pending: list[float] = []  # probabilities of chunks not yet applied
        self._gates: list[tuple[bool, float]] = []  # per applied chunk: (gate after it, its prob)
        self._chunk_base = 0  # chunk index of self._gates[0]
        self.hops = 0

    def add_probs(self, probs: list[float]) -> None:
        self._pending.extend(probs)

    def add_rows(self, mel_db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """New log-mel rows (in order) → per hop (openness, level below peak, gate)."""
        levels = speech_band_levels(mel_db, self._band)
        n = levels.shape[0]
        openness, rel, gates = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, bool)
        for i, level in enumerate(levels):
            end = (self.hops + 1) * HOP_SAMPLES
            applied = self._chunk_base + len(self._gates)
            while self._pending and (applied + 1) * CHUNK_SAMPLES <= end:
                p = self._pending.pop(0)
                self._gates.append((self._gate.update(p), p))
                applied += 1
            gates[i] = self.gate_at(end)[0]
            openness[i], rel[i] = self._level.update(float(level), speech=bool(gates[i]))
            self.hops += 1
        return openness, rel, gates

    def gate_at(self, sample_16k: int) -> tuple[bool, float]:
        """(gate, probability) after the last chunk that ends by ``sample_16k``."""
        c = min(sample_16k // CHUNK_SAMPLES, self._chunk_base + len(self._gates)) - 1 - self._chunk_base
        return self._gates[c] if c >= 0 else (False, 0.0)

    def forget_before(self, sample_16k: int) -> None:
        """Drop gate history no query before ``sample_16k`` can need."""
        stale = sample_16k // CHUNK_SAMPLES - 2 - self._chunk_base
        if stale > 64:
            del self._gates[:stale]
            self._chunk_base += stale


def analyse(
    samples_16k: np.ndarray, *, vad: SileroVad, config: AudioMouthConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offline, exactly as ``MouthTracker`` does live: per hop (network inputs, openness, gate).

    Used to make training data; log-mel via ``torch.stft`` (``features.log_mel``).
    """
    from lipsync.features import log_mel

    cfg = config or AudioMouthConfig()
    rows = log_mel(samples_16k, config=cfg.features)
    analyser = HopAnalyser(cfg)
    analyser.add_probs(VadStream(vad).push(samples_16k))
    openness, rel, gates = analyser.add_rows(rows)
    return hop_features(rows, rel), openness, gates


# -- openness and shape → viseme weights ---------------------------------------------------------


def ladder_weights(openness: float) -> np.ndarray:
    """Without a shape: the two visemes of the ladder sil → ih → E → aa whose jaw brackets it."""
    w = np.zeros(N_VISEMES, np.float32)
    o = min(1.0, max(0.0, openness))
    for (a, ja), (b, jb) in zip(_LADDER, _LADDER[1:], strict=False):
        if o <= jb:
            t = (o - ja) / (jb - ja)
            w[a], w[b] = 1.0 - t, t
            return w
    w[_AA] = 1.0
    return w


def shaped_weights(openness: float, shape: np.ndarray) -> np.ndarray:
    """The shape's strongest viseme (not rest), blended with rest or with "aa" so the jaw opens by
    ``openness``: quiet makes the shape smaller, loud opens it further. Two visemes at most, so a
    renderer that draws the two strongest (the rig) shows exactly this opening."""
    s = np.asarray(shape, np.float32).copy()
    s[SIL] = 0.0
    if float(s.sum()) <= 1e-6:
        return ladder_weights(openness)
    s = np.eye(N_VISEMES, dtype=np.float32)[int(np.argmax(s))]
    jaw = float(s @ np.asarray(JAW_OPEN, np.float32))
    o = min(1.0, max(0.0, openness))
    if jaw <= 1e-3:  # a closed shape (p, b, m) cannot open: the ladder decides
        return ladder_weights(o)
    if o <= jaw:
        out = s * (o / jaw)
        out[SIL] += 1.0 - o / jaw
        return out
    return _with(s, _AA, (o - jaw) / (1.0 - jaw))


def _with(s: np.ndarray, index: int, share: float) -> np.ndarray:
    share = min(1.0, max(0.0, share))
    out = s * (1.0 - share)
    out[index] += share
    return out


# -- the streaming tracker -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HopDecision:
    """What the tracker decided about one 10 ms hop, once its lookahead had arrived.

    ``speech`` is the voice gate as of the end of the lookahead; ``shape`` the network's
    viseme probabilities (None without a network); ``bands_db`` the hop's log-mel row (n_mels,),
    what ``lipsync.crosstalk`` compares between the inputs of one room."""

    openness: float
    shape: np.ndarray | None
    speech: bool
    prob: float
    bands_db: np.ndarray | None = None


def frame_weights(hops: Sequence[HopDecision], estimator: Estimator) -> np.ndarray | None:
    """A 40 ms frame's mouth from its four hops: None (closed, not speaking) unless the gate is
    open as of the last hop; else viseme weights (15,) by ``estimator``."""
    last = hops[-1]
    if not last.speech:
        return None
    openness = float(np.mean([h.openness for h in hops]))
    shapes = [h.shape for h in hops if h.shape is not None]
    if not shapes or estimator == "signal":
        return ladder_weights(openness)
    shape = np.mean(shapes, axis=0).astype(np.float32)
    return shape if estimator == "network" else shaped_weights(openness, shape)


@dataclass(frozen=True, slots=True)
class MouthFrame:
    """One frame's decision (offline): ``weights`` (15,) while the voice gate is open, else None."""

    index: int
    weights: np.ndarray | None
    openness: float
    speech_prob: float


class MouthTracker:
    """One input's audio → mouth: push 48 kHz float32 samples, get one ``HopDecision`` per 10 ms
    hop, in order, as soon as the hop's lookahead has arrived.

    Analysis sample n (16 kHz) is 48 kHz sample ``3 n - delay_samples_48k``: callers delay the
    audio they play by ``delay_samples_48k`` so hop h's decision and hop h's audio match.
    A frame is any four consecutive hops (``frame_weights``).
    """

    def __init__(
        self, *, vad: SileroVad, shape: ShapeNet | None = None, config: AudioMouthConfig | None = None
    ) -> None:
        self.config = config or AudioMouthConfig()
        cfg = self.config
        if shape is not None and shape.config.lookahead_hops > cfg.lookahead_hops:
            raise ValueError(
                f"the shape model looks {shape.config.lookahead_hops} hops ahead; "
                f"the tracker allows {cfg.lookahead_hops}"
            )
        self._decimator = Decimator()
        self.delay_samples_48k = self._decimator.delay_samples_48k
        self._mel = LogMelStream(config=cfg.features)
        self._vad = VadStream(vad)
        self._analyser = HopAnalyser(cfg)
        self._shape = shape if cfg.estimator != "signal" else None
        self._samples_16k = 0
        # Hops analysed but not yet decided, index = hop - self._hop_base.
        self._open: list[float] = []
        self._rows: list[np.ndarray] = []  # log-mel rows
        self._feat: list[np.ndarray] = []  # network inputs (with a network)
        self._hop_base = 0
        self._context = self._shape.config.context_hops if self._shape is not None else 0
        self._past = [np.zeros(cfg.features.n_mels + 1, np.float32)] * self._context  # zeros before hop 0
        self._gate_look = cfg.lookahead_hops  # the voice gate is read this far ahead of each hop

    @property
    def lookahead_ms(self) -> float:
        return self.config.lookahead_ms

    @property
    def hops_decided(self) -> int:
        return self._hop_base

    def push(self, samples_48k: np.ndarray) -> list[HopDecision]:
        x16 = self._decimator.push(samples_48k)
        self._listen(x16)
        self._analyser.add_probs(self._vad.push(x16))
        rows = self._mel.push(x16)
        self._samples_16k += x16.shape[0]
        if rows.shape[0]:
            openness, rel, _ = self._analyser.add_rows(rows)
            self._open.extend(openness.tolist())
            self._rows.extend(rows)
            if self._shape is not None:
                self._feat.extend(hop_features(rows, rel))
        return self._decide()

    def _listen(self, x16: np.ndarray) -> None:
        """Each block of 16 kHz samples as it arrives, before its hops are analysed (for trackers
        that hear more than the level and the shape network)."""

    def _decide(self) -> list[HopDecision]:
        look = self.config.lookahead_hops
        ready = len(self._open) - look  # hops whose lookahead has arrived
        if ready <= 0:
            return []
        shapes: list[np.ndarray | None] = [None] * ready
        if self._shape is not None:
            cfg = self._shape.config
            feats = self._past + self._feat
            windows = np.stack([
                np.concatenate(feats[i : i + cfg.window_hops]) for i in range(ready)
            ])  # (ready, window_hops * (n_mels + 1)): hops i - context .. i + lookahead
            shapes = list(self._shape(windows))
        out = []
        for i in range(ready):
            speech, prob = self._analyser.gate_at((self._hop_base + i + self._gate_look + 1) * HOP_SAMPLES)
            out.append(HopDecision(self._open[i], shapes[i], speech, prob, self._rows[i]))
        if self._context:
            self._past = (self._past + self._feat[:ready])[-self._context :]
        del self._open[:ready]
        del self._rows[:ready]
        del self._feat[:ready]
        self._hop_base += ready
        self._analyser.forget_before(self._hop_base * HOP_SAMPLES)
        return out


def jaw_of(weights: np.ndarray | None) -> float:
    """How open a frame's mouth is (0 closed .. 1 "aa"): the weights' mean jaw_open."""
    if weights is None:
        return 0.0
    return float(np.asarray(weights, np.float32) @ np.asarray(JAW_OPEN, np.float32))


def track_mouth(
    pcm_48k: np.ndarray, *, vad: SileroVad, shape: ShapeNet | None = None,
    config: AudioMouthConfig | None = None, block_samples: int = 960,
) -> list[MouthFrame]:
    """Run a whole 48 kHz signal through a ``MouthTracker`` in live-sized blocks (flushing the end
    with silence): one frame per 1920 samples, aligned with the signal delayed by the decimator."""
    x = np.asarray(pcm_48k)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    tracker = MouthTracker(vad=vad, shape=shape, config=config)
    n_frames = -(-x.shape[0] // (FRAME_SAMPLES_16K * DECIMATION))
    tail = (tracker.config.lookahead_hops + HOPS_PER_FRAME) * HOP_SAMPLES * DECIMATION + CHUNK_SAMPLES * DECIMATION
    x = np.concatenate([x, np.zeros(tail + n_frames * FRAME_SAMPLES_16K * DECIMATION - x.shape[0], np.float32)])
    hops: list[HopDecision] = []
    for i in range(0, x.shape[0], block_samples):
        hops.extend(tracker.push(x[i : i + block_samples]))
    frames = []
    for j in range(n_frames):
        four = hops[j * HOPS_PER_FRAME : (j + 1) * HOPS_PER_FRAME]
        weights = frame_weights(four, tracker.config.estimator)
        openness = float(np.mean([h.openness for h in four])) if weights is not None else 0.0
        frames.append(MouthFrame(j, weights, openness, four[-1].prob))
    return frames
