"""What an opening mouth shows: a dark cavity, upper and lower teeth, the tongue.

Drawn per pixel in face coordinates between the lips' new inner edges (``top`` and ``bottom``,
both functions of u), sized from the face and coloured from the photo: the cavity from the lips'
own colour, darkened; teeth from the photo's own teeth when they show, else from the whites of
its eyes; the tongue from the lips. Edges are anti-aliased against the lips.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatar.photo.geometry import FaceGeometry
from avatar.photo.landmarks import (
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LOWER_INNER,
    LOWER_OUTER,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
    UPPER_INNER,
    FaceLandmarks,
)

SCLERA_MIN_PX = 12
"""Fewer pixels inside an eye than this and its white is not read (the face is too small)."""


@dataclass(frozen=True, slots=True)
class MouthColours:
    """Float RGB 0..1 of the mouth's insides, taken from the photo."""

    cavity: np.ndarray
    teeth: np.ndarray
    tongue: np.ndarray
    photo_teeth: bool = False
    """Whether the photo's own teeth show between its parted lips (their colour is ``teeth``)."""

    @classmethod
    def sample(cls, rgb: np.ndarray, face: FaceLandmarks, geom: FaceGeometry) -> MouthColours:
        p = face.points
        img = rgb.astype(np.float32) / 255.0
        h, w = rgb.shape[:2]

        def at(points: np.ndarray) -> np.ndarray:
            xs = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
            ys = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
            return img[ys, xs]

        # The lower lip's body: midway between its outer and inner edges, middle half of the mouth.
        lower = (p[list(LOWER_OUTER[3:8])] + p[list(LOWER_INNER[3:8])]) / 2
        lip = np.median(at(lower), axis=0)
        cavity = np.clip(lip * np.array([0.5, 0.3, 0.3]) + np.array([0.04, 0.0, 0.0]), 0.0, 1.0)  # a warm dark red
        tongue = np.clip(lip * np.array([0.9, 0.6, 0.58]) + np.array([0.06, 0.0, 0.0]), 0.0, 1.0)
        # Teeth: the photo's own when the mouth is open enough to show them.
        teeth = None
        if float(geom.gap(np.zeros(1))[0]) > 2.5:  # the photo shows its teeth: take their colour
            xs = np.linspace(p[UPPER_INNER[3], 0], p[UPPER_INNER[7], 0], 9)
            y_up = np.interp(xs, *_sorted(p[list(UPPER_INNER)]))
            y_lo = np.interp(xs, *_sorted(p[list(LOWER_INNER)]))
            pts = np.concatenate([np.stack([xs, y_up + t * (y_lo - y_up)], axis=1) for t in (0.25, 0.4, 0.55, 0.7)])
            px = at(pts)
            bright = px[np.argsort(px.sum(axis=1))[-max(3, len(px) // 4) :]]
            colour = np.median(bright, axis=0)
            if colour.mean() > max(0.25, float(lip.mean())):  # brighter than the lips: teeth, not shadow
                # the few bright samples are paler than the teeth look: restore the photo's cast
                teeth = np.clip(colour.mean() + 1.6 * (colour - colour.mean()), 0.0, 1.0) * 1.05
        shown = teeth is not None
        if teeth is None:
            teeth = _sclera(img, p)
        if teeth is None:
            # Off-white in the mouth's shade: teeth are lit only through the opening, under the
            # upper lip, so at video scale they read a little darker than the cheeks, not
            # brighter (the cheeks' colour, desaturated, at 0.8 of their level).
            cheeks = at(p[[50, 280, 205, 425]]).mean(axis=0)
            teeth = np.clip(0.3 * cheeks + 0.5 * float(cheeks.mean()), 0.0, 1.0)
        return cls(cavity.astype(np.float32), np.asarray(teeth, np.float32), tongue.astype(np.float32), photo_teeth=shown)


def _sclera(img: np.ndarray, p: np.ndarray) -> np.ndarray | None:
    """The whites of the eyes (the brightest quarter inside both eyes' lids), or None when the
    eyes are too small to read: teeth are the same pale tissue under the same light, so they take
    this colour, the photo's own white balance and light included."""
    samples = []
    for upper, lower in ((LEFT_EYE_UPPER, LEFT_EYE_LOWER), (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER)):
        poly = np.concatenate([p[list(upper)], p[list(lower)][::-1]])
        filled = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(filled, [np.rint(poly).astype(np.int32)], 1)
        inside = cv2.erode(filled, np.ones((2, 2), np.uint8)) > 0  # not the lids' edges
        px = img[inside]
        if len(px) >= SCLERA_MIN_PX:
            level = px.mean(axis=1)
            samples.append(np.median(px[level >= np.quantile(level, 0.75)], axis=0))
    return np.mean(samples, axis=0) if samples else None


def _sorted(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def draw_interior(
    u: np.ndarray, v: np.ndarray, top: np.ndarray, bottom: np.ndarray, *, half_width_px: float,
    face_height_px: float, upper_teeth: float, lower_teeth: float, tongue: float, colours: MouthColours,
) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (..., 3) float 0..1, coverage (...) 0..1) of the mouth's inside at face coordinates
    ``u, v``, between the lips' inner edges ``top`` < ``bottom`` (per pixel, of its u)."""
    gap = np.maximum(0.0, bottom - top)
    cover = np.clip(v - top + 0.5, 0.0, 1.0) * np.clip(bottom - v + 0.5, 0.0, 1.0)
    cover *= np.clip(gap * 1.5, 0.0, 1.0)  # a hairline gap is a faint dark line, not a hole
    side = np.clip(np.abs(u) / max(1.0, half_width_px), 0.0, 1.5)
    depth = np.clip((v - top) / np.maximum(gap, 1.0), 0.0, 1.0)  # 0 at the upper lip, 1 at the lower
    # Cavity: darker under the upper lip and towards the corners.
    shade = (0.75 + 0.45 * depth) * (1.0 - 0.35 * _smooth(side))
    rgb = colours.cavity * shade[..., None]
    # Tongue: a soft mound rising from the floor of the mouth in the middle.
    mound = tongue * _smooth((depth - (1.0 - 0.55 * min(1.0, tongue + 0.3))) / 0.25) * (1.0 - _smooth((side - 0.35) / 0.45))
    rgb = rgb + (colours.tongue * (0.8 + 0.2 * depth)[..., None] - rgb) * mound[..., None]
    # Teeth: rows hanging from the upper lip and standing on the lower, in shadow at the sides.
    # Lips part further than the teeth do, so a small opening is mostly teeth (both rows, the
    # dark gap between their edges a sliver); only a wide one shows the cavity behind them.
    tooth_px = 0.085 * face_height_px
    for amount, edge_dist, reach, dim, share, crown in (
        (upper_teeth, v - top, 0.72, 0.9, 0.5, 1.0),
        (lower_teeth, bottom - v, 0.55, 0.75, 0.35, 0.6),
    ):
        if amount <= 0.0:
            continue
        height = min(1.0, 0.5 + amount) * np.minimum(crown * tooth_px, share * gap)
        row = np.clip(height - edge_dist + 0.5, 0.0, 1.0) * (1.0 - _smooth((side - reach) / 0.3))
        # faint gaps between the teeth, one at the middle
        pitch = 0.3 * half_width_px
        m = np.abs(u) % pitch
        seams = 1.0 - 0.08 * np.exp(-np.minimum(m, pitch - m) ** 2 / 0.6)
        # in the mouth's shade: darker to the sides and towards the cavity
        toward = np.clip(edge_dist / np.maximum(height, 1.0), 0.0, 1.0)
        lit = dim * (1.0 - 0.45 * _smooth(side / 0.9)) * (1.0 - 0.2 * toward) * seams
        rgb = rgb + (colours.teeth * lit[..., None] - rgb) * row[..., None]
    return np.clip(rgb, 0.0, 1.0), cover


def lip_shadow(u: np.ndarray, v: np.ndarray, top: np.ndarray, bottom: np.ndarray, *, half_width_px: float) -> np.ndarray:
    """A multiplier (..., ) darkening the lips' inner rims along an opening (1 elsewhere)."""
    gap = np.maximum(0.0, bottom - top)
    outside = np.maximum(top - v, v - bottom)  # > 0 on the lips, distance from the opening
    rim = np.clip(1.0 - outside / 1.8, 0.0, 1.0) * (outside > -0.5)
    along = 1.0 - _smooth((np.abs(u) / max(1.0, half_width_px) - 0.7) / 0.3)
    return 1.0 - 0.22 * rim * np.clip(gap / 2.0, 0.0, 1.0) * along
