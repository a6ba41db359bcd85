"""Speech → lip opening for faces: how far real lips part, from the sound alone.

The live estimator (``lipsync.audio_mouth``) opens a mouth as wide as the voice is loud, which
reads well on a drawn rig but follows a real face's lips poorly: lips part by *which* sound is
made (an "aa" wide, an "iy" or "uw" a little, p/b/m shut, f/v lip to teeth), lead the sound
they make and move smoothly between sounds. ``LipNet`` is a small network trained by
``lipsync.lip_drive_train`` to say, per 10 ms hop, the lip opening (``LIP_OPEN``) of the viseme
track of speech whose phoneme timing is known (Kokoro's natural voices and espeak-ng, with noise and reverb),
moved ``target_lead_ms`` earlier (lips lead the sound) and smoothed (coarticulation). It reads
the same per-hop inputs as the shape network (``lipsync.audio_mouth_net.hop_features``) over
``context_hops`` before and ``lookahead_hops`` after the hop.

A frame's mouth: while the voice gate is shut, None (closed, as in the photo); else the shape
network's strongest viseme (rounded, spread, ...) opened exactly as far as ``LipNet`` says
(``lipsync.audio_mouth.shaped_weights``). Offline: ``lip_mouths``; live: ``LipTracker``.

Weights: ``lipsync/weights/lip_drive.safetensors``, run here in numpy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lipsync.audio_mouth import AudioMouthConfig, HopDecision, MouthTracker, analyse, frame_weights
from lipsync.audio_mouth_net import ShapeNet
from lipsync.features import HOP_SAMPLES, HOPS_PER_FRAME, Decimator
from lipsync.mlp import Layers, checked_layers, config_metadata, logits, read_mlp
from lipsync.phones import PhoneModel, PhoneModelError, PhoneStream
from lipsync.vad import CHUNK_SAMPLES, SileroVad
from lipsync.visemes import N_VISEMES, SIL, VISEMES

logger = logging.getLogger(__name__)

DEFAULT_LIP_WEIGHTS = Path(__file__).resolve().parent / "weights" / "lip_drive.safetensors"

# How far the inner lips part for each viseme (0 shut .. 1 "aa"), which is what a face shows and
# not the jaw: rounded sounds ("ou", "CH", "RR") protrude the lips over a small aperture, the
# sibilants and "FF" close the lips onto the teeth, p/b/m shut them. From articulatory phonetics
# (vowel height for the vowels); ``lipsync.visemes.JAW_OPEN`` is unchanged for the rig.
LIP_OPEN: dict[str, float] = {
    "sil": 0.0, "PP": 0.0, "FF": 0.05, "TH": 0.2, "DD": 0.25, "kk": 0.35, "CH": 0.15, "SS": 0.1,
    "nn": 0.2, "RR": 0.2, "aa": 1.0, "E": 0.6, "ih": 0.35, "oh": 0.6, "ou": 0.2,
}
LIP_OPEN_BY_INDEX = np.array([LIP_OPEN[v] for v in VISEMES], np.float32)
FRAME_SAMPLES_48K = HOP_SAMPLES * HOPS_PER_FRAME * 3  # 1920


class LipDriveError(RuntimeError):
    """The lip-drive weights file is missing, unreadable or of the wrong shape."""


@dataclass(frozen=True, slots=True)
class LipNetConfig:
    """An MLP over a window of hop inputs (``hop_features``: spectral shape and level below the
    speech peak) → the lip opening (``LIP_OPEN``: 0 shut .. 1 "aa") of the hop, through a sigmoid.
    ``target_lead_ms``: how much earlier than the sound the opening was trained to come."""

    n_mels: int = 40
    context_hops: int = 20
    lookahead_hops: int = 6
    hidden: tuple[int, ...] = (64, 32)
    target_lead_ms: float = 40.0

    @property
    def window_hops(self) -> int:
        return self.context_hops + 1 + self.lookahead_hops

    @property
    def n_inputs(self) -> int:
        return self.window_hops * (self.n_mels + 1)

    @property
    def lookahead_ms(self) -> float:
        return self.lookahead_hops * HOP_SAMPLES / 16.0


class LipNet:
    """The trained lip-opening regressor, run in numpy; weights from a safetensors file."""

    def __init__(self, config: LipNetConfig, layers: Layers) -> None:
        self.config = config
        self._layers = checked_layers(layers, [config.n_inputs, *config.hidden, 1], LipDriveError)

    @classmethod
    def load(cls, path: Path = DEFAULT_LIP_WEIGHTS) -> LipNet:
        config, layers = read_mlp(
            path, config_type=LipNetConfig, error=LipDriveError, what="lip-drive",
            train="python -m lipsync.lip_drive_train",
        )
        return cls(config, layers)

    @staticmethod
    def metadata(config: LipNetConfig) -> dict[str, str]:
        return config_metadata(config)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """(n, n_inputs) → (n,) lip opening 0..1."""
        x = logits(self._layers, windows)
        return (1.0 / (1.0 + np.exp(-x[:, 0]))).astype(np.float32)


def windows(feats: np.ndarray, *, context_hops: int, lookahead_hops: int) -> np.ndarray:
    """(n, d) per-hop inputs → (n, window * d): hop i sees hops i - context .. i + lookahead,
    zeros before the start and after the end (as the live trackers pad)."""
    d = feats.shape[1]
    padded = np.concatenate([
        np.zeros((context_hops, d), np.float32), feats, np.zeros((lookahead_hops, d), np.float32)
    ])
    idx = np.arange(feats.shape[0])[:, None] + np.arange(context_hops + 1 + lookahead_hops)[None, :]
    return padded[idx].reshape(feats.shape[0], -1)


@dataclass(frozen=True, slots=True)
class PhoneMix:
    """How a face's tracker uses the recognised phones (``lipsync.phones``): ``share`` of the
    opening and of the viseme (the rest is ``LipNet``'s and the shape network's), read
    ``lead_hops`` ahead of the sound (lips lead it) and smoothed over ``radius_hops`` each side
    (a Gaussian of half that: the lips cannot jump). Measured: ``lipsync.phones``' docstring."""

    share: float = 0.5
    lead_hops: int = 2
    radius_hops: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0 or self.lead_hops < 0 or self.radius_hops < 0:
            raise ValueError(f"bad phone mix {self}: share in 0..1, lead_hops and radius_hops >= 0")

    def kernel(self) -> np.ndarray:
        r = self.radius_hops
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / max(0.5, r / 2)) ** 2)
        return (k / k.sum()).astype(np.float32)


@dataclass(frozen=True, slots=True)
class LipDrive:
    """What a face's mouth needs from audio: the voice gate (silero-vad), the shape network
    (which viseme), ``LipNet`` (how open) and the phone recogniser (which sound; None without
    pocketsphinx). ``load`` raises a clear error for missing weights."""

    vad: SileroVad
    shape: ShapeNet
    lips: LipNet
    config: AudioMouthConfig = field(default_factory=AudioMouthConfig)
    phones: PhoneModel | None = None
    mix: PhoneMix = field(default_factory=PhoneMix)

    @classmethod
    def load(
        cls, *, vad: SileroVad | None = None, shape: ShapeNet | None = None, path: Path = DEFAULT_LIP_WEIGHTS,
        phones: bool = True,
    ) -> LipDrive:
        lips = LipNet.load(path)
        model = None
        if phones:
            try:
                model = PhoneModel.load()
            except PhoneModelError as err:
                logger.warning("faces' lips follow LipNet alone: %s", err)
        return cls(vad=vad or SileroVad.load(), shape=shape or ShapeNet.load(), lips=lips, phones=model)

    @property
    def gate_lookahead_hops(self) -> int:
        """How far ahead the networks (and the voice gate) look."""
        return max(self.lips.config.lookahead_hops, self.shape.config.lookahead_hops, self.config.lookahead_hops)

    @property
    def lookahead_hops(self) -> int:
        """How far ahead a face's tracker looks: the networks', or what the phones need (their
        settling, lead and smoothing; + 2: the level analysis's window ends a hop or two after
        the phones' last sample)."""
        if self.phones is None:
            return self.gate_lookahead_hops
        phones = self.phones.config.settle_hops + self.mix.lead_hops + self.mix.radius_hops + 2
        return max(self.gate_lookahead_hops, phones)

    @property
    def lookahead_ms(self) -> float:
        return self.lookahead_hops * HOP_SAMPLES / 16.0

    def hops(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-hop inputs (n, n_mels + 1) → (lip opening (n,), viseme probabilities (n, 15))."""
        lc, sc = self.lips.config, self.shape.config
        opening = self.lips(windows(feats, context_hops=lc.context_hops, lookahead_hops=lc.lookahead_hops))
        shape = self.shape(windows(feats, context_hops=sc.context_hops, lookahead_hops=sc.lookahead_hops))
        return opening, shape


class LipTracker(MouthTracker):
    """The live tracker for faces: a ``MouthTracker`` (same voice gate, level analysis and shape
    network, hops decided in order once their lookahead has arrived) whose decisions carry the
    lip opening of ``LipNet`` and of the recognised phones, mixed by ``PhoneMix``, as their
    ``openness`` (and the phone's viseme mixed into the shape network's), so
    ``frame_weights(hops, "hybrid")`` gives the viseme opened as real lips open. It looks ahead
    as far as the phones need (160 ms: settling, lead and smoothing) or, without them,
    ``LipNet``'s lookahead (60 ms); the rig's tracker is unchanged."""

    def __init__(self, drive: LipDrive) -> None:
        self._phones: PhoneStream | None = drive.phones.stream() if drive.phones is not None else None
        self._mix = drive.mix
        super().__init__(
            vad=drive.vad, shape=drive.shape,
            config=replace(drive.config, estimator="hybrid", lookahead_hops=drive.lookahead_hops),
        )
        self._gate_look = drive.gate_lookahead_hops  # the mouth opens with the voice, not as far ahead as the phones look
        self._lips = drive.lips
        self._lip_past = [np.zeros(drive.lips.config.n_mels + 1, np.float32)] * drive.lips.config.context_hops
        self._kernel = drive.mix.kernel()
        self._visemes: list[int] = []  # decided phone visemes of hops self._viseme_base ...
        self._viseme_base = 0

    def _listen(self, x16: np.ndarray) -> None:
        if self._phones is not None:
            self._visemes.extend(self._phones.push(x16).tolist())

    def _phone_hops(self, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(opening (n,), viseme one-hots (n, 15)) of hops first .. first + n from the phones."""
        r, lead = self._mix.radius_hops, self._mix.lead_hops
        idx = np.arange(first + lead - r, first + n + lead + r) - self._viseme_base
        idx = np.minimum(idx, len(self._visemes) - 1)  # never past the phones decided (a margin keeps it so)
        known = np.array(self._visemes, np.int64)
        vis = np.where(idx >= 0, known[np.maximum(idx, 0)] if known.size else SIL, SIL)
        opening = np.convolve(LIP_OPEN_BY_INDEX[vis], self._kernel, mode="valid")
        onehots = np.eye(N_VISEMES, dtype=np.float32)[vis[r : r + n]]
        keep = first + n + lead - r - self._viseme_base  # what the next hops still read
        if keep > 0:
            del self._visemes[:keep]
            self._viseme_base += keep
        return opening.astype(np.float32), onehots

    def _decide(self) -> list[HopDecision]:
        ready = len(self._open) - self.config.lookahead_hops
        if ready <= 0:
            return []
        cfg = self._lips.config
        feats = self._lip_past + self._feat
        wins = np.stack([np.concatenate(feats[i : i + cfg.window_hops]) for i in range(ready)])
        jaw = self._lips(wins)
        used = self._feat[:ready]
        first = self._hop_base
        decided = super()._decide()
        self._lip_past = (self._lip_past + used)[-cfg.context_hops :] if cfg.context_hops else []
        if self._phones is None:
            return [replace(d, openness=float(j)) for d, j in zip(decided, jaw, strict=True)]
        s = self._mix.share
        opening, onehots = self._phone_hops(first, ready)
        return [
            replace(d, openness=float((1.0 - s) * j + s * o), shape=None if d.shape is None else (1.0 - s) * d.shape + s * h)
            for d, j, o, h in zip(decided, jaw, opening, onehots, strict=True)
        ]


def lip_mouths(pcm_48k: np.ndarray, drive: LipDrive, *, block_samples: int = 960) -> list[np.ndarray | None]:
    """Offline, per 25 fps frame (frame k = 48 kHz samples [1920 k, 1920 (k + 1)), delayed by the
    decimator's 1 ms as live), the mouth's viseme weights (None while the voice gate is shut):
    the audio run through a ``LipTracker`` in live-sized blocks, so live and offline agree."""
    x = np.asarray(pcm_48k)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    x = np.asarray(x, np.float32).reshape(-1)
    tracker = LipTracker(drive)
    n_frames = -(-x.shape[0] // FRAME_SAMPLES_48K)
    tail = (tracker.config.lookahead_hops + HOPS_PER_FRAME) * HOP_SAMPLES * 3 + CHUNK_SAMPLES * 3
    x = np.concatenate([x, np.zeros(n_frames * FRAME_SAMPLES_48K + tail - x.shape[0], np.float32)])
    hops: list[HopDecision] = []
    for i in range(0, x.shape[0], block_samples):
        hops.extend(tracker.push(x[i : i + block_samples]))
    return [frame_weights(hops[k * HOPS_PER_FRAME : (k + 1) * HOPS_PER_FRAME], "hybrid") for k in range(n_frames)]


def opening_track(pcm_48k: np.ndarray, drive: LipDrive) -> np.ndarray:
    """Per 10 ms hop, ``LipNet``'s opening (ungated): for tests and measurements."""
    x = np.asarray(pcm_48k, np.float32).reshape(-1)
    x16 = Decimator().push(x)
    feats, _openness, _gates = analyse(x16, vad=drive.vad, config=drive.config)
    return drive.hops(feats)[0]
