"""Mouth-shape drive: a person's model is conditioned on the mouth shape it must draw, not on sound.

The two halves are learnt apart. Sound -> mouth shape needs no footage: the live-audio estimator
(lipsync.audio_mouth) or a line's viseme track gives viseme weights per frame. Mouth shape ->
this person's pixels is learnt from their video, where face landmarks give the shape of every
frame. The shape of frame k is two numbers in face units:

  opening  inner-lip gap / face height (forehead to chin)
  width    lip-corner distance / face width (cheek to cheek)

``shape_windows`` turns a track (N, 2) into the model's drive (N, 2, 5): 5 frames centred on each
frame, scaled to about [-1, 2]. ``ShapeCalibration`` maps visemes into one person's units: their
closed and wide-open openings and neutral width, read from their own video, so jaw_open 0 (and
silence, a frame without weights) is that person's closed mouth. Two gains fitted on their video
(``fit_jaw_gain``, ``fit_width_gain``) say how far their lips part and their corners move for what
the sound's visemes say: a drive outside the range the renderer saw lets the face around the
mouth decide instead.

``DriveSwapDataset`` is how the renderer is made to follow the drive: in half of its rows the
face around the blanked mouth comes from another frame of the same clip than the mouth and the
drive, so the surrounding face (a jaw, a cheek) cannot tell the mouth's shape: only the drive can.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from lipsync.neural.data import FaceBatch, FaceClipDataset, FaceCond, _to_unit
from lipsync.visemes import MOUTH_SHAPES, N_VISEMES, VISEMES

SHAPE_CHANNELS = 2
SHAPE_WINDOW_FRAMES = 5
OPENING_SCALE = 0.1  # an "aa" opens the inner lips ~8% of the face height
WIDTH_CENTRE = 0.42  # a neutral mouth is ~40-45% of the cheek-to-cheek width
WIDTH_SCALE = 0.1
# How a viseme's width / rounding move the corners, as a share of the neutral half width (the
# photo puppet's values: avatar/photo/puppet.py SPREAD_FRAC, ROUND_FRAC).
SPREAD_FRAC = 0.28
ROUND_FRAC = 0.22


def shape_windows(track: np.ndarray, *, window_frames: int = SHAPE_WINDOW_FRAMES) -> np.ndarray:
    """Drive windows (N, 2, window_frames) float32 from a shape track (N, 2) of (opening, width).

    Window k holds frames k - w//2 .. k + w//2; frames beyond either end repeat the end frame.
    """
    track = np.asarray(track, np.float32)
    if track.ndim != 2 or track.shape[1] != SHAPE_CHANNELS or track.shape[0] < 1:
        raise ValueError(f"a shape track must be (N >= 1, 2) of (opening, width), got {track.shape}")
    if not np.isfinite(track).all():
        raise ValueError("a shape track has NaN or infinite values")
    half = window_frames // 2
    idx = np.clip(np.arange(track.shape[0])[:, None] + np.arange(-half, half + 1)[None], 0, len(track) - 1)
    scaled = np.stack(
        [track[:, 0] / OPENING_SCALE, (track[:, 1] - WIDTH_CENTRE) / WIDTH_SCALE], axis=1
    )  # (N, 2)
    return np.ascontiguousarray(scaled[idx].transpose(0, 2, 1), dtype=np.float32)  # (N, 2, w)


# A fitted jaw gain may open a viseme this far past the person's wide-open mouth, at most.
MAX_JAW = 1.25
MAX_WIDTH_GAIN = 1.5
MIN_FIT_FRAMES = 10

# Per viseme: jaw opening 0..1, and how far it moves the lip corners as a share of the neutral
# width (spread minus rounding, the photo puppet's; 0 for rest).
_JAW = np.array([MOUTH_SHAPES[v].jaw_open for v in VISEMES], np.float64)
_SPREAD = np.array(
    [2 * (SPREAD_FRAC * (MOUTH_SHAPES[v].width - 0.5) - 0.5 * ROUND_FRAC * MOUTH_SHAPES[v].round) for v in VISEMES],
    np.float64,
)


@dataclass(frozen=True)
class ShapeCalibration:
    """One person's mouth in face units: closed and wide-open inner-lip opening, neutral width;
    ``jaw_gain``: how much wider than a viseme's jaw_open this person's lips part for the same
    sound (``fit_jaw_gain``); ``width_gain``: how far their lip corners follow a viseme's spread
    and rounding, as a share of the photo puppet's (``fit_width_gain``). Both come from their own
    video, 1.0 when not fitted."""

    closed_opening: float
    open_opening: float
    neutral_width: float
    jaw_gain: float = 1.0
    width_gain: float = 1.0

    def __post_init__(self) -> None:
        if not (
            0.0 <= self.closed_opening < self.open_opening and self.neutral_width > 0 and self.jaw_gain > 0
            and self.width_gain >= 0
        ):
            raise ValueError(
                "calibration needs 0 <= closed_opening < open_opening, neutral_width > 0, jaw_gain > 0 "
                f"and width_gain >= 0, got {self}"
            )

    @classmethod
    def from_track(cls, track: np.ndarray) -> ShapeCalibration:
        """From a person's measured track (N, 2): 5th / 95th percentile opening, median width."""
        track = np.asarray(track, np.float64)
        closed = max(0.0, float(np.percentile(track[:, 0], 5)))
        wide = float(np.percentile(track[:, 0], 95))
        if wide - closed < 0.01:
            raise ValueError(
                f"the mouth barely moves in this video (opening {closed:.3f} .. {wide:.3f} of the "
                "face height): the person must talk in it"
            )
        return cls(closed_opening=closed, open_opening=wide, neutral_width=float(np.median(track[:, 1])))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ShapeCalibration:
        try:
            return cls(
                **{k: float(raw[k]) for k in ("closed_opening", "open_opening", "neutral_width")},
                jaw_gain=float(raw.get("jaw_gain", 1.0)),
                width_gain=float(raw.get("width_gain", 1.0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"unreadable shape calibration {raw!r}: {err}") from err

    def fitted(self, model_extra: Mapping[str, Any]) -> ShapeCalibration:
        """This calibration with the gains a model's build fitted (``jaw_gain`` and ``width_gain``
        in its metadata; 1.0 for one the file lacks)."""
        return replace(
            self,
            jaw_gain=float(model_extra.get("jaw_gain", 1.0)),
            width_gain=float(model_extra.get("width_gain", 1.0)),
        )

    def track_from_visemes(self, weights: Sequence[np.ndarray | None]) -> np.ndarray:
        """(N, 2) shapes for per-frame viseme weights (15,); a ``None`` frame (silence) is closed."""
        for k, w in enumerate(weights):
            if w is not None and np.shape(w) != (N_VISEMES,):
                raise ValueError(f"frame {k}: viseme weights must be ({N_VISEMES},), got {np.shape(w)}")
        jaw = np.minimum(MAX_JAW, self.jaw_gain * np.nan_to_num(viseme_jaw(weights)))
        spread = np.nan_to_num(viseme_spread(weights))
        out = np.empty((len(weights), SHAPE_CHANNELS), np.float32)
        out[:, 0] = self.closed_opening + jaw * (self.open_opening - self.closed_opening)
        out[:, 1] = self.neutral_width * (1.0 + self.width_gain * spread)
        return out


def _per_frame(weights: Sequence[np.ndarray | None], table: np.ndarray) -> np.ndarray:
    return np.array(
        [np.nan if w is None else float(np.asarray(w, np.float64) @ table / max(float(np.sum(w)), 1e-9)) for w in weights]
    )


def viseme_jaw(weights: Sequence[np.ndarray | None]) -> np.ndarray:
    """(N,) jaw opening 0..1 of per-frame viseme weights; NaN for a frame without (silence)."""
    return _per_frame(weights, _JAW)


def viseme_spread(weights: Sequence[np.ndarray | None]) -> np.ndarray:
    """(N,) how far per-frame viseme weights move the lip corners, as a share of the neutral
    width (the photo puppet's spread and rounding); NaN for a frame without (silence)."""
    return _per_frame(weights, _SPREAD)


def fit_jaw_gain(
    openings: np.ndarray, jaw: np.ndarray, calibrations: Sequence[ShapeCalibration], clip_ids: np.ndarray
) -> float:
    """How much wider than the sound's visemes say this person opens: over frames with a jaw
    value (speech), mean measured opening in units of each clip's closed..open range over mean
    jaw, in [0.5, 3]; 1.0 with fewer than 10 such frames."""
    lo = np.array([calibrations[c].closed_opening for c in clip_ids])
    hi = np.array([calibrations[c].open_opening for c in clip_ids])
    units = (np.asarray(openings, np.float64) - lo) / (hi - lo)
    ok = np.isfinite(jaw) & np.isfinite(units)
    if ok.sum() < MIN_FIT_FRAMES or jaw[ok].mean() <= 1e-6:
        return 1.0
    return float(np.clip(units[ok].mean() / jaw[ok].mean(), 0.5, 3.0))


def fit_width_gain(
    widths: np.ndarray, spread: np.ndarray, calibrations: Sequence[ShapeCalibration], clip_ids: np.ndarray
) -> float:
    """How far this person's lip corners follow the sound's visemes: over frames with a spread
    value (speech), the slope of the measured width (a share of each clip's neutral width, each
    clip's mean taken out) on the visemes' spread, in [0, 1.5]; 1.0 with fewer than 10 such
    frames. Lips whose corners hardly move, or move with something else than the sound, get a
    small gain, so the drive's width stays in the range the renderer learnt from them."""
    neutral = np.array([calibrations[c].neutral_width for c in clip_ids])
    rel = np.asarray(widths, np.float64) / neutral - 1.0
    spread = np.asarray(spread, np.float64)
    ok = np.isfinite(spread) & np.isfinite(rel)
    if ok.sum() < MIN_FIT_FRAMES:
        return 1.0
    x, y, ids = spread[ok], rel[ok], np.asarray(clip_ids)[ok]
    for c in np.unique(ids):
        x[ids == c] -= x[ids == c].mean()
        y[ids == c] -= y[ids == c].mean()
    if float(x @ x) <= 1e-12:
        return 1.0
    return float(np.clip((x @ y) / (x @ x), 0.0, MAX_WIDTH_GAIN))


class DriveSwapDataset(FaceClipDataset):
    """A ``FaceClipDataset`` whose row i shows frame ``sources[i]`` around the blanked mouth while
    its target (and drive) is frame ``targets[i]`` of the same clip.

    ``swapped(dataset, seed=...)`` makes one: every frame once with its own surroundings and once
    with a random other frame's. Rows are fixed at construction, so ``batch`` is deterministic
    (distillation relies on that).
    """

    def __init__(self, base: FaceClipDataset, *, targets: np.ndarray, sources: np.ndarray) -> None:
        if targets.shape != sources.shape or targets.ndim != 1:
            raise ValueError("targets and sources must be 1-D and the same length")
        clips = base.clip_ids.numpy()
        if (clips[targets] != clips[sources]).any():
            raise ValueError("a swapped row must take its surroundings from the same clip")
        super().__init__(
            frames=base.frames.numpy(),
            references=base.references.numpy(),
            masks=base.masks.numpy(),
            drive=base.drive.numpy(),
            clip_ids=clips,
        )
        self.targets = torch.from_numpy(targets.astype(np.int64))
        self.sources = torch.from_numpy(sources.astype(np.int64))

    @classmethod
    def swapped(cls, base: FaceClipDataset, *, seed: int) -> DriveSwapDataset:
        rng = np.random.default_rng(seed)
        clips = base.clip_ids.numpy()
        n = len(base)
        partner = np.empty(n, np.int64)
        for c in np.unique(clips):
            rows = np.flatnonzero(clips == c)
            partner[rows] = rng.permutation(rows) if rows.size > 1 else rows
        own = np.arange(n)
        return cls(base, targets=np.concatenate([own, own]), sources=np.concatenate([own, partner]))

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def batch(
        self, indices: Sequence[int] | torch.Tensor, *, device: torch.device | str = "cpu"
    ) -> FaceBatch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        tgt, src = self.targets[idx], self.sources[idx]
        clips = self.clip_ids[tgt]
        target = _to_unit(self.frames[tgt])  # (B, 3, H, W)
        around = _to_unit(self.frames[src])  # (B, 3, H, W): another frame's face
        mask = self.masks[clips][:, None]  # (B, 1, H, W)
        cond = FaceCond(
            reference=_to_unit(self.references[clips]),
            masked=around * (1.0 - mask),
            mask=mask,
            drive=self.drive[tgt],
        )
        return FaceBatch(target=target.to(device), cond=cond.to(device))
