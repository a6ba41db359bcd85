"""A person's video as shape-driven training data: per-frame face crops that follow the head.

Input is plain arrays from a landmark pass over the video (``MouthTrack``; avatar/neural/video_track.py
fills it with mediapipe's face mesh; this module knows nothing of the tracker):

  shapes          (N, 2)  the mouth shape of frame k, (opening, width) in face units (shape_drive.py)
  nose_px         (N, 2)  the nose base in frame pixels: a point that moves with the head, not the jaw
  mouth_px        (N, 2)  the mouth centre in frame pixels
  face_height_px  (N,)    forehead to chin
  picture_change  (N,)    mean change of a small grey thumbnail from the frame before, 0..1

The video is cut into clips at shot changes (the picture changes at once, or the face jumps or
changes size between two frames) and every ``CLIP_S`` seconds. Each clip has one square region side (``REGION_FACE_FRAC`` of its median
face height) and its reference crop is its most closed training frame. Frame k's region is centred
on its nose base plus the clip's median nose-to-mouth offset (smoothed over a few frames), so the
crop follows the head without following the jaw. The mouth mask is an ellipse over mouth and
jaw, the same in every crop; pasting feathers it, so no rectangle shows.

The middle ``HELD_OUT_FRACTION`` of every clip of at least ``MIN_HELD_CLIP_FRAMES`` is held out,
with ``GUARD_FRAMES`` on either side used for nothing (drive windows span 5 frames).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from lipsync.neural.data import FaceClipDataset
from lipsync.neural.regions import FaceRegion, crop_regions, to_u8
from lipsync.neural.shape_drive import ShapeCalibration, shape_windows
from lipsync.timebase import FPS

REGION_FACE_FRAC = 0.75  # region side / face height: nostrils to below the chin
REGION_DROP_FRAC = 0.08  # region centre below the mouth centre, in face heights
# Mouth mask: an ellipse centred MASK_DROP_FRAC face heights below the mouth centre, with radii
# (across, down) in face heights: the lips at their widest and the chin when the jaw drops.
MASK_DROP_FRAC = 0.07
MASK_RADII_FRAC = (0.25, 0.22)
CUT_MOVE_FRAC = 0.25  # a jump of the nose by this share of the face height is a new shot
CUT_SCALE_FRAC = 0.2  # and so is a change of face height by this share
CUT_PICTURE_CHANGE = 0.04  # or a picture change this large (a still talker: ~0.002; a cut: 0.1)
CLIP_S = 8.0
HELD_OUT_FRACTION = 0.25
MIN_HELD_CLIP_FRAMES = 40
GUARD_FRAMES = 3
SMOOTH_FRAMES = 5
MIN_FOUND_FRACTION = 0.5


class TrackError(ValueError):
    """The face could not be followed well enough through the video to learn its mouth."""


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame landmark measurements of one face (see the module doc); ``found`` marks frames
    where the face was seen (the others were filled from their neighbours)."""

    shapes: np.ndarray
    nose_px: np.ndarray
    mouth_px: np.ndarray
    face_height_px: np.ndarray
    found: np.ndarray
    picture_change: np.ndarray

    def __post_init__(self) -> None:
        n = self.shapes.shape[0]
        for name, want in (("shapes", (n, 2)), ("nose_px", (n, 2)), ("mouth_px", (n, 2)),
                           ("face_height_px", (n,)), ("found", (n,)), ("picture_change", (n,))):
            got = getattr(self, name).shape
            if got != want:
                raise TrackError(f"mouth track {name} must be {want}, got {got}")
        if n == 0:
            raise TrackError("the mouth track has no frames")

    @property
    def n_frames(self) -> int:
        return int(self.shapes.shape[0])

    @classmethod
    def from_measurements(
        cls, rows: list[np.ndarray | None], *, source: str, picture_change: np.ndarray | None = None
    ) -> MouthTrack:
        """From per-frame rows (opening, width, nose x, nose y, mouth x, mouth y, face height) or
        ``None`` where no face was found; missing frames take the nearest found frame's values."""
        found = np.array([r is not None for r in rows], bool)
        if not rows or found.mean() < MIN_FOUND_FRACTION:
            raise TrackError(
                f"{source}: a face was found in {int(found.sum())} of {len(rows)} frames; at least "
                f"{MIN_FOUND_FRACTION:.0%} are needed (a frontal face, whole and well lit)"
            )
        have = np.flatnonzero(found)
        table = np.stack([np.asarray(rows[k], np.float32) for k in have])  # (F, 7)
        nearest = have[np.clip(np.searchsorted(have, np.arange(len(rows))), 0, len(have) - 1)]
        before = have[np.clip(np.searchsorted(have, np.arange(len(rows))) - 1, 0, len(have) - 1)]
        pick = np.where(
            np.abs(before - np.arange(len(rows))) < np.abs(nearest - np.arange(len(rows))), before, nearest
        )
        full = table[np.searchsorted(have, pick)]  # (N, 7)
        return cls(
            shapes=np.ascontiguousarray(full[:, 0:2]),
            nose_px=np.ascontiguousarray(full[:, 2:4]),
            mouth_px=np.ascontiguousarray(full[:, 4:6]),
            face_height_px=np.ascontiguousarray(full[:, 6]),
            found=found,
            picture_change=(
                np.zeros(len(rows), np.float32) if picture_change is None
                else np.asarray(picture_change, np.float32)
            ),
        )


@dataclass(frozen=True)
class VideoLayout:
    """How a video's frames were cut: clips, their references, held-out and guard frames."""

    clips: list[tuple[int, int]]
    reference_frames: list[int]
    calibrations: list[ShapeCalibration]
    split: np.ndarray  # int8 (N,): 0 train, 1 held out, 2 guard (unused)

    def clip_ids(self) -> np.ndarray:
        """(N,) which clip each frame belongs to."""
        return np.concatenate([np.full(b - a, i) for i, (a, b) in enumerate(self.clips)])

    def held_spans(self) -> list[tuple[int, int]]:
        """The held-out spans [a, b), one per clip that has one."""
        held = np.flatnonzero(self.split == 1)
        if held.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(held) > 1)
        starts = np.concatenate([[held[0]], held[breaks + 1]])
        ends = np.concatenate([held[breaks] + 1, [held[-1] + 1]])
        return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def shot_cuts(track: MouthTrack) -> list[tuple[int, int]]:
    """Spans [a, b) between shot changes, then cut every ``CLIP_S`` seconds."""
    h = track.face_height_px
    move = np.linalg.norm(np.diff(track.nose_px, axis=0), axis=1) / h[1:]
    scale = np.abs(np.diff(h)) / h[1:]
    cut = (move > CUT_MOVE_FRAC) | (scale > CUT_SCALE_FRAC) | (track.picture_change[1:] > CUT_PICTURE_CHANGE)
    cuts = [0, *(np.flatnonzero(cut) + 1).tolist(), track.n_frames]
    longest = round(CLIP_S * FPS)
    spans: list[tuple[int, int]] = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        n = -(-(b - a) // longest)
        edges = np.linspace(a, b, n + 1).round().astype(int)
        spans.extend((int(x), int(y)) for x, y in zip(edges[:-1], edges[1:], strict=True) if y > x)
    return spans


def plan_layout(
    track: MouthTrack, *, fallback: ShapeCalibration | None = None, hold_out: bool = True
) -> VideoLayout:
    """Clips, held-out middles (with ``hold_out``), each clip's closed-mouth reference and mouth
    calibration. A clip where the mouth barely moves takes the whole video's calibration, or
    ``fallback`` when the whole video barely moves (``ValueError`` without one)."""
    clips = shot_cuts(track)
    split = np.zeros(track.n_frames, np.int8)
    for a, b in clips:
        if hold_out and b - a >= MIN_HELD_CLIP_FRAMES:
            n_held = round(HELD_OUT_FRACTION * (b - a))
            h0 = a + (b - a - n_held) // 2
            split[max(a, h0 - GUARD_FRAMES) : min(b, h0 + n_held + GUARD_FRAMES)] = 2
            split[h0 : h0 + n_held] = 1
    try:
        overall = ShapeCalibration.from_track(track.shapes[split == 0])
    except ValueError:
        if fallback is None:
            raise
        overall = fallback
    refs, cals = [], []
    for a, b in clips:
        rows = np.arange(a, b)[(split[a:b] == 0) & track.found[a:b]]
        rows = rows if rows.size else np.arange(a, b)
        refs.append(int(rows[np.argmin(track.shapes[rows, 0])]))
        try:
            cals.append(ShapeCalibration.from_track(track.shapes[rows]))
        except ValueError:  # a clip where the mouth barely moves: the whole video's range
            cals.append(overall)
    return VideoLayout(clips=clips, reference_frames=refs, calibrations=cals, split=split)


def _smooth(x: np.ndarray, *, frames: int) -> np.ndarray:
    """Centred moving average along axis 0, the ends padded with the end values."""
    half = frames // 2
    padded = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], half, 0)])
    kernel = np.ones(frames) / frames
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(x.shape[1])], 1)


def mouth_mask(crop_px: int) -> np.ndarray:
    """The mouth-and-jaw ellipse (crop_px, crop_px) float32, the same in every crop."""
    yy, xx = np.mgrid[0:crop_px, 0:crop_px].astype(np.float32) + 0.5
    s = crop_px / REGION_FACE_FRAC  # crop px per face height
    cy = crop_px / 2 + (MASK_DROP_FRAC - REGION_DROP_FRAC) * s
    rx, ry = MASK_RADII_FRAC[0] * s, MASK_RADII_FRAC[1] * s
    return ((((xx - crop_px / 2) / rx) ** 2 + ((yy - cy) / ry) ** 2) <= 1.0).astype(np.float32)


def clip_region_sides(track: MouthTrack, layout: VideoLayout, *, width_px: int, height_px: int) -> list[int]:
    """Each clip's region side in frame pixels: ``REGION_FACE_FRAC`` of its median face height,
    at most the frame's shorter side."""
    return [
        min(round(REGION_FACE_FRAC * float(np.median(track.face_height_px[a:b]))), width_px, height_px)
        for a, b in layout.clips
    ]


def frame_regions(
    track: MouthTrack, layout: VideoLayout, *, crop_px: int, width_px: int, height_px: int
) -> list[FaceRegion]:
    """Frame k's face region: following the head (see the module doc)."""
    mask = mouth_mask(crop_px)
    regions: list[FaceRegion] = []
    sides = clip_region_sides(track, layout, width_px=width_px, height_px=height_px)
    for (a, b), side in zip(layout.clips, sides, strict=True):
        h = float(np.median(track.face_height_px[a:b]))
        offset = np.median(track.mouth_px[a:b] - track.nose_px[a:b], axis=0)  # (2,)
        centre = _smooth(track.nose_px[a:b].astype(np.float64), frames=SMOOTH_FRAMES) + offset
        for cx, cy in centre:
            x0 = min(max(0, round(cx - side / 2)), width_px - side)
            y0 = min(max(0, round(cy + REGION_DROP_FRAC * h - side / 2)), height_px - side)
            regions.append(FaceRegion(x0=x0, y0=y0, side=side, mask=mask))
    return regions


def shape_drive(track: MouthTrack, layout: VideoLayout) -> np.ndarray:
    """Drive windows (N, 2, 5) of the measured shapes, windowed within each clip."""
    return np.concatenate([shape_windows(track.shapes[a:b]) for a, b in layout.clips])


def shape_video_dataset(
    frames: Iterable[np.ndarray],
    track: MouthTrack,
    layout: VideoLayout,
    regions: list[FaceRegion],
    *,
    crop_px: int,
) -> tuple[FaceClipDataset, FaceClipDataset | None]:
    """(train, held-out or None when nothing is held out) shape-driven datasets from the video's
    RGB frames, row order kept."""
    n = track.n_frames
    crops = np.empty((n, crop_px, crop_px, 3), np.uint8)
    k = -1
    for k, rgb in enumerate(frames):
        if k >= n:
            break
        crops[k] = to_u8(crop_regions(rgb, [regions[k]], crop_px=crop_px))[0]
    if k + 1 < n:
        raise TrackError(f"the video gave {k + 1} frames but its track has {n}")
    clip_ids = layout.clip_ids()
    drive = shape_drive(track, layout)
    references = crops[layout.reference_frames]  # (K, c, c, 3)
    masks = np.repeat(mouth_mask(crop_px)[None], len(layout.clips), axis=0)

    def part(rows: np.ndarray) -> FaceClipDataset:
        return FaceClipDataset(
            frames=crops[rows], references=references, masks=masks, drive=drive[rows], clip_ids=clip_ids[rows]
        )

    held = layout.split == 1
    return part(layout.split == 0), (part(held) if held.any() else None)
