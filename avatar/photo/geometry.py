"""The face's own frame, measured once from its landmarks: where the mouth, jaw and eyes are.

Everything the puppet moves is described in face coordinates: ``u`` along the line through the
mouth corners (right on screen), ``v`` across it (down the face), origin midway between the
corners, in photo pixels. A tilted head therefore opens its mouth along its own axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.photo.landmarks import (
    CHIN,
    FOREHEAD,
    JAW,
    LEFT_BROW,
    LEFT_EYE_LOWER,
    LEFT_EYE_UPPER,
    LIP_CORNERS,
    LOWER_INNER,
    LOWER_OUTER,
    NOSE_BASE,
    RIGHT_BROW,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_UPPER,
    UPPER_INNER,
    FaceLandmarks,
)


@dataclass(frozen=True, slots=True)
class Curve:
    """v as a function of u, sampled at increasing u (held flat beyond its ends)."""

    u: np.ndarray
    v: np.ndarray

    @classmethod
    def of(cls, uv: np.ndarray) -> Curve:
        order = np.argsort(uv[:, 0], kind="stable")
        u, v = uv[order, 0], uv[order, 1]
        u = u + np.arange(u.size) * 1e-4  # strictly increasing for interp
        return cls(u.astype(np.float32), v.astype(np.float32))

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.u, self.v).astype(np.float32)


@dataclass(frozen=True, slots=True)
class EyeGeometry:
    """One eye: lid lines between its corners and how far above them the lid's skin reaches."""

    upper: Curve
    lower: Curve
    u0: float
    u1: float
    lid_skin_px: float
    """Height of the skin strip above the upper lid that stretches down when the eye closes."""


@dataclass(frozen=True, slots=True)
class FaceGeometry:
    """A face measured from its landmarks, in photo pixels."""

    origin: np.ndarray  # (2,) x, y midway between the mouth corners
    ex: np.ndarray  # (2,) unit, along the mouth (screen right)
    ey: np.ndarray  # (2,) unit, down the face
    face_height_px: float  # upper forehead to chin
    half_width_px: float  # mouth corner to the middle
    split: Curve  # the line between the lips (midway between the inner lips)
    gap: Curve  # the photo's own opening between the inner lips (>= 0)
    jaw: Curve  # the jaw line below the mouth
    jaw_u: tuple[float, float]  # the jaw's angles (u of the left and right)
    chin_v: float
    lower_lip_v: float  # the lower lip's outer edge in the middle (the top of the chin below it)
    nose_v: float  # the base of the nose (negative: above the mouth)
    eyes: tuple[EyeGeometry, EyeGeometry]
    face_centre: np.ndarray  # (2,) x, y
    face_radii_px: tuple[float, float]  # half width, half height of the face

    @classmethod
    def of(cls, face: FaceLandmarks) -> FaceGeometry:
        p = face.points.astype(np.float64)
        a, b = p[LIP_CORNERS[0]], p[LIP_CORNERS[1]]
        origin = (a + b) / 2
        ex = (b - a) / max(1e-6, float(np.linalg.norm(b - a)))
        ey = np.array([-ex[1], ex[0]])

        def local(idx: tuple[int, ...] | int) -> np.ndarray:
            d = p[list(idx) if isinstance(idx, tuple) else [idx]] - origin
            return np.stack([d @ ex, d @ ey], axis=1)

        up, lo = local(UPPER_INNER), local(LOWER_INNER)
        mid = (up + lo) / 2
        gap = np.stack([mid[:, 0], np.maximum(0.0, lo[:, 1] - up[:, 1])], axis=1)
        jaw = local(JAW)
        below = jaw[jaw[:, 1] > 0]
        half = float(np.linalg.norm(b - a) / 2)
        eyes = []
        for upper_idx, lower_idx, brow_idx in (
            (LEFT_EYE_UPPER, LEFT_EYE_LOWER, LEFT_BROW),
            (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, RIGHT_BROW),
        ):
            upper, lower, brow = local(upper_idx), local(lower_idx), local(brow_idx)
            height = float(np.max(lower[:, 1]) - np.min(upper[:, 1]))
            brow_gap = float(np.min(upper[:, 1]) - np.max(brow[:, 1]))
            eyes.append(EyeGeometry(
                Curve.of(upper), Curve.of(lower), float(upper[:, 0].min()), float(upper[:, 0].max()),
                lid_skin_px=max(1.5, min(0.8 * brow_gap, 1.2 * height)),
            ))
        x0, y0, x1, y1 = face.box()
        return cls(
            origin=origin.astype(np.float32), ex=ex.astype(np.float32), ey=ey.astype(np.float32),
            face_height_px=float(np.linalg.norm(p[CHIN] - p[FOREHEAD])), half_width_px=half,
            split=Curve.of(mid), gap=Curve.of(gap), jaw=Curve.of(below),
            jaw_u=(float(local(172)[0, 0]), float(local(397)[0, 0])),
            chin_v=float(local(CHIN)[0, 1]), lower_lip_v=float(np.max(local(LOWER_OUTER)[:, 1])),
            nose_v=float(local(NOSE_BASE)[0, 1]),
            eyes=(eyes[0], eyes[1]),
            face_centre=np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32),
            face_radii_px=((x1 - x0) / 2, (y1 - y0) / 2),
        )

    def to_local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - self.origin[0], y - self.origin[1]
        return dx * self.ex[0] + dy * self.ex[1], dx * self.ey[0] + dy * self.ey[1]

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            self.origin[0] + u * self.ex[0] + v * self.ey[0],
            self.origin[1] + u * self.ex[1] + v * self.ey[1],
        )
