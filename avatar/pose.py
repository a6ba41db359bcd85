"""``Pose``: what a character's face and body do on one frame, and how poses are quantized.

Renderers cache by the quantized pose, so two poses that quantize alike render identically:
mouth blends in steps of 1/8, eyes open/half/closed, gaze and brows in five steps each, head
offsets in whole pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipsync.visemes import N_VISEMES, SIL

MOUTH_BLEND_STEPS = 8
MouthKey = tuple[int, int, int]
"""(viseme a, viseme b, q) with a <= b; b's weight is q / MOUTH_BLEND_STEPS; pure: (a, a, 0)."""


@dataclass(frozen=True, slots=True)
class Pose:
    """One frame of a character.

    mouth: one or two (viseme index, weight) pairs, weights summing to 1 (a blend of two shapes).
    eyes_open: 1 open, 0.5 half, 0 closed. gaze_x: -1 looks left .. 1 right (screen directions).
    head_dx_px / head_dy_px: head offset in sprite pixels (+x right, +y down), rounded when drawn.
    head_tilt_deg: carried for renderers that roll the head; the rig ignores it (offsets only).
    breath: 0..1, the chest and shoulders rise at 1. brow_raise: -1 frown .. 1 raised.
    """

    mouth: tuple[tuple[int, float], ...] = ((SIL, 1.0),)
    eyes_open: float = 1.0
    gaze_x: float = 0.0
    head_dx_px: float = 0.0
    head_dy_px: float = 0.0
    head_tilt_deg: float = 0.0
    breath: float = 0.0
    brow_raise: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= len(self.mouth) <= 2:
            raise ValueError(
                f"pose mouth needs one or two (viseme, weight) pairs, got {self.mouth!r}"
            )
        for v, w in self.mouth:
            if not 0 <= v < N_VISEMES:
                raise ValueError(f"pose mouth viseme index must be 0..{N_VISEMES - 1}, got {v}")
            if w < 0.0:
                raise ValueError(f"pose mouth weights must be >= 0, got {w}")
        total = sum(w for _, w in self.mouth)
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"pose mouth weights must sum to 1, got {total:.4f} in {self.mouth!r}")

    @classmethod
    def rest(cls) -> Pose:
        """Neutral: mouth closed (sil), eyes open, looking ahead, head centred."""
        return cls()

    def mouth_key(self) -> MouthKey:
        """The mouth blend quantized to steps of 1/MOUTH_BLEND_STEPS."""
        if len(self.mouth) == 1 or self.mouth[0][0] == self.mouth[1][0]:
            v = self.mouth[0][0]
            return (v, v, 0)
        (a, wa), (b, wb) = sorted(self.mouth)
        q = round(wb / (wa + wb) * MOUTH_BLEND_STEPS)
        if q == 0:
            return (a, a, 0)
        if q == MOUTH_BLEND_STEPS:
            return (b, b, 0)
        return (a, b, q)

    def eyes_level(self) -> int:
        """2 open, 1 half, 0 closed."""
        return 2 if self.eyes_open >= 0.75 else (1 if self.eyes_open >= 0.25 else 0)

    def gaze_level(self) -> int:
        """-2..2: gaze_x in five steps."""
        return round(min(1.0, max(-1.0, self.gaze_x)) * 2)

    def brow_level(self) -> int:
        """-2..2: brow_raise in five steps."""
        return round(min(1.0, max(-1.0, self.brow_raise)) * 2)


def pose_mouth_from_weights(weights: np.ndarray) -> tuple[tuple[int, float], ...]:
    """The two strongest visemes of a (15,) weight row, renormalised to sum to 1.

    An all-zero row (or one with a single non-zero weight) gives one shape; all zeros is sil.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (N_VISEMES,):
        raise ValueError(f"mouth weights must have shape ({N_VISEMES},), got {w.shape}")
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    order = np.argsort(-w, kind="stable")
    a, b = int(order[0]), int(order[1])
    wa, wb = float(w[a]), float(w[b])
    if wa <= 0.0:
        return ((SIL, 1.0),)
    if wb <= 1e-6 * wa:
        return ((a, 1.0),)
    return ((a, wa / (wa + wb)), (b, wb / (wa + wb)))
