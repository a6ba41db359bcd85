"""Idle life and listening behaviour as a pure function of the frame index.

``MotionModel.pose_at(frame, ...)`` depends only on the frame, the character's seed and the inputs
of that frame: no state carries from one call to the next, so a live stream, an offline render
and a re-render of frame 1234 alone all agree. Randomness is a counter-based hash (splitmix64)
of (seed, stream, index): blink k's time is a function of k, not of earlier calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avatar.pose import Pose, pose_mouth_from_weights
from avatar.spec import CharacterSpec
from lipsync.timebase import FPS
from lipsync.visemes import SIL

_MASK = (1 << 64) - 1
_BLINK, _DOUBLE, _PHASE, _NOD, _GAZE = range(5)
_BLINK_EYES = (0.5, 0.0, 0.0, 0.5)  # 4 frames at 25 fps: 160 ms


def _rand(seed: int, stream: int, k: int) -> float:
    """A uniform number in [0, 1) from (seed, stream, k): splitmix64 of a mixed counter."""
    z = (
        seed * 0x9E3779B97F4A7C15 + (stream + 1) * 0xD1B54A32D192ED03 + k * 0x94D049BB133111EB
    ) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    return z / 2.0**64


@dataclass(frozen=True, slots=True)
class MotionConfig:
    """How much a character moves. Amplitudes are fractions of the sprite height."""

    fps: int = FPS
    blink_every_s: float = 4.0
    blink_jitter_s: float = 1.0
    """Blink k happens at k * blink_every_s ± blink_jitter_s: gaps of 2..6 s."""
    double_blink_chance: float = 0.15
    breath_period_s: float = 4.0
    sway_frac: float = 0.011
    speaking_sway_gain: float = 1.0
    """Sway multiplier while speaking. Above 1, the head jumps when speech starts or stops: a
    pure function of the frame cannot ease between the two amplitudes."""
    turn_frac: float = 0.012
    """Head turn towards the speaker, listening."""
    nod_frac: float = 0.014
    nod_every_s: float = 4.5
    nod_chance: float = 0.65
    nod_s: float = 0.56


class MotionModel:
    """Deterministic idle motion for one character (seeded by its spec, or by a plain int).

    Head offsets come out in pixels of a sprite ``height_px`` tall; ``Compositor.motion_models()``
    builds models that match its characters' sizes.
    """

    def __init__(
        self,
        source: CharacterSpec | int,
        *,
        height_px: int = 360,
        config: MotionConfig | None = None,
    ) -> None:
        self.seed = source.seed if isinstance(source, CharacterSpec) else int(source)
        self.height_px = height_px
        self.config = config or MotionConfig()
        r = self._r
        # Per-character rhythm: periods and phases fixed by the seed.
        self._breath_period_s = self.config.breath_period_s * (0.9 + 0.2 * r(_PHASE, 0))
        self._phases = [2 * math.pi * r(_PHASE, i) for i in range(1, 6)]
        self._sway_periods_s = (
            6.0 + 3.0 * r(_PHASE, 7),
            3.6 + 1.6 * r(_PHASE, 8),
            5.0 + 3.0 * r(_PHASE, 9),
        )

    def _r(self, stream: int, k: int) -> float:
        return _rand(self.seed, stream, k)

    def pose_at(
        self,
        frame: int,
        *,
        mouth_weights: np.ndarray | None = None,
        speaking: bool = False,
        listen_to_x: float | None = None,
    ) -> Pose:
        """The pose on ``frame``.

        mouth_weights: this frame's (15,) viseme weights, used only while ``speaking``; a
        character who is not speaking always has the closed (sil) mouth.
        listen_to_x: where whoever is speaking is, -1 (far left) .. 1 (far right) relative to
        this character, or None; the character looks and turns that way and nods now and then.
        """
        cfg = self.config
        t = frame / cfg.fps
        h = self.height_px
        mouth = (
            pose_mouth_from_weights(mouth_weights)
            if speaking and mouth_weights is not None
            else ((SIL, 1.0),)
        )
        p = self._phases
        s1, s2, s3 = self._sway_periods_s
        sway = h * cfg.sway_frac * (cfg.speaking_sway_gain if speaking else 1.0)
        dx = sway * (
            0.65 * math.sin(2 * math.pi * t / s1 + p[0])
            + 0.35 * math.sin(2 * math.pi * t / s2 + p[1])
        )
        dy = 0.5 * sway * math.sin(2 * math.pi * t / s3 + p[2])
        brow = 0.0
        if listen_to_x is not None:
            toward = max(-1.0, min(1.0, listen_to_x))
            gaze = math.copysign(max(0.5, min(1.0, abs(toward) * 2.0)), toward) if toward else 0.0
            dx += h * cfg.turn_frac * max(-1.0, min(1.0, 1.5 * toward))
            nod = self._nod(frame)
            dy += h * cfg.nod_frac * nod
            brow = 0.5 * nod
        else:
            gaze = self._wander(frame)
        if speaking:
            # brows lift on a slow, seeded "emphasis" rhythm
            brow = max(brow, 0.6 * max(0.0, math.sin(2 * math.pi * t / 2.7 + p[3])) ** 3)
        return Pose(
            mouth=mouth,
            eyes_open=self._eyes(frame),
            gaze_x=gaze,
            head_dx_px=dx,
            head_dy_px=dy,
            head_tilt_deg=1.5 * dx / max(1e-6, h * cfg.sway_frac),
            breath=0.5 - 0.5 * math.cos(2 * math.pi * t / self._breath_period_s + p[4]),
            brow_raise=brow,
        )

    def _eyes(self, frame: int) -> float:
        cfg = self.config
        every = round(cfg.blink_every_s * cfg.fps)
        jitter = cfg.blink_jitter_s * cfg.fps
        k0 = frame // every
        for k in (k0 - 1, k0, k0 + 1):
            start = k * every + round((2 * self._r(_BLINK, k) - 1) * jitter)
            starts = [start]
            if self._r(_DOUBLE, k) < cfg.double_blink_chance:
                starts.append(start + len(_BLINK_EYES) + 2)
            for s in starts:
                if s <= frame < s + len(_BLINK_EYES):
                    return _BLINK_EYES[frame - s]
        return 1.0

    def _nod(self, frame: int) -> float:
        """0..1: how far down an occasional listening nod has the head on ``frame``."""
        cfg = self.config
        every = round(cfg.nod_every_s * cfg.fps)
        length = max(2, round(cfg.nod_s * cfg.fps))
        k0 = frame // every
        for k in (k0 - 1, k0):
            if self._r(_NOD, k) >= cfg.nod_chance:
                continue
            start = k * every + round(self._r(_NOD, k + (1 << 32)) * (every - length))
            if start <= frame < start + length:
                return math.sin(math.pi * (frame - start) / length)
        return 0.0

    def _wander(self, frame: int) -> float:
        """Idle gaze: mostly ahead, now and then a glance aside; changes only every 2.5 s."""
        span = round(2.5 * self.config.fps)
        k = frame // span
        u = self._r(_GAZE, k)
        return -0.5 if u < 0.18 else (0.5 if u > 0.82 else 0.0)
