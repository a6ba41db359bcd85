"""``PhotoPuppet``: a photo whose own face moves: jaw, lips, eyelids and head, no training.

A mouth shape (``MouthParams``: the articulation of ``lipsync.visemes``, blended) becomes two
smooth displacement fields in face coordinates (``geometry``): one for everything above the line
between the lips (the upper lip lifts a little; the corners move out to spread or in to round)
and one for everything below it (the jaw drops: the lower lip and chin by the full amount, the
cheeks less towards the jaw's angles, the neck less and less below the jaw line). Each field is
inverted by fixed-point iteration and sampled with ``cv2.remap``; between the lips' new inner
edges the mouth interior is drawn (``interior``). Every field is exactly zero at the edges of a
box around the lower face, so only that box is redrawn: each state is a small opaque patch, and
every pixel outside it is the photo's own.

Blinks stretch the skin above each upper lid down over the eye (the lash line moves with it);
head motion translates the head smoothly, fading out over the background and shoulders.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatar.photo.geometry import Curve, EyeGeometry, FaceGeometry
from avatar.photo.interior import MouthColours, draw_interior, lip_shadow
from avatar.photo.landmarks import FaceLandmarks
from lipsync.visemes import MOUTH_SHAPES, VISEMES

Box = tuple[int, int, int, int]

JAW_DROP_FRAC = 0.085
"""The lower lip's drop at jaw_open 1 ("aa"), as a share of the face height (forehead to chin)."""
LIP_LIFT_FRAC = 0.024
SPREAD_FRAC = 0.28
"""Corners move out by this share of the mouth's half width from neutral (width 0.5) to 1."""
ROUND_FRAC = 0.22
MOVE_MIN_PX = 0.3
"""Displacements below this (a third of a pixel) are not drawn: the photo's pixel stays."""
NECK_FRAC = 0.32
"""Below the jaw line the jaw's motion fades out over this share of the face height."""
CHIN_SHARE = 0.6
"""The chin moves this share of the lower lip's drop: in speech the lips part more than the jaw
turns (the lower lip is pulled down on its own as well), so the chin below it moves less."""


@dataclass(frozen=True, slots=True)
class MouthParams:
    """One frame's mouth, each 0..1 (``lipsync.visemes.MouthShape`` fields)."""

    jaw_open: float = 0.0
    width: float = 0.5
    round: float = 0.0
    upper_teeth: float = 0.0
    lower_teeth: float = 0.0
    tongue: float = 0.0
    lip_tuck: float = 0.0
    shut: float = 0.0
    """The share of shapes that press the lips together ("PP": p/b/m, "FF": f/v onto the teeth):
    lips the photo shows parted close by that share; every other shape opens from the photo's own
    mouth (a closed photo's mouth closes for every shape, so there it changes nothing)."""

    @classmethod
    def blend(cls, mouth: tuple[tuple[int, float], ...]) -> MouthParams:
        """The weighted mean of the visemes' shapes (pairs of viseme index and weight)."""
        total = sum(w for _, w in mouth) or 1.0
        values = np.zeros(8, np.float64)
        for v, w in mouth:
            s = MOUTH_SHAPES[VISEMES[v]]
            values += (w / total) * np.array(
                [s.jaw_open, s.width, s.round, s.upper_teeth, s.lower_teeth, s.tongue, s.lip_tuck, VISEMES[v] in _SHUT]
            )
        return cls(*(float(x) for x in values))


_SHUT = ("PP", "FF")


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class PhotoPuppet:
    """One face of one photo (at the size it is drawn). Not thread-safe; patches are not cached here."""

    def __init__(self, rgb: np.ndarray, face: FaceLandmarks, *, matte: np.ndarray | None = None) -> None:
        """``matte``: how much each pixel is the person; given, nothing moves within a few pixels
        of the person's outline (a cut-out's edge stays where the matte says)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"a puppet needs (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        self.rgb = np.ascontiguousarray(rgb)
        self.rgb.flags.writeable = False
        self.face = face
        self.geom = g = FaceGeometry.of(face)
        self.colours = MouthColours.sample(rgb, face, g)
        self._closed_photo = float(np.max(g.gap.v)) < 0.5  # lips already together: sil is the photo
        F, w = g.face_height_px, max(2.0, g.half_width_px)
        self._w = w
        self._jaw_px = JAW_DROP_FRAC * F
        self._neck_px = NECK_FRAC * F
        self._ramp_px = max(4.0, 0.7 * (g.chin_v - 0.0))
        self._lift_reach_px = max(2.0, 0.85 * -g.nose_v)
        # The box that holds every pixel the mouth can move (face coordinates → image box).
        ul, ur = g.jaw_u
        u0, u1 = min(ul, -1.3 * w) - 2, max(ur, 1.3 * w) + 2
        v0 = g.nose_v - 2
        v1 = float(np.max(g.jaw.v)) + self._neck_px + 2
        self._uv_box = (u0, u1, v0, v1)
        self.mouth_box = self._image_box(u0, u1, v0, v1)
        self.eye_boxes = tuple(self._eye_box(e) for e in g.eyes)
        # Pixel grids of the boxes, in face coordinates (fixed).
        self._mouth_grid = self._grid(self.mouth_box)
        self._hold = None if matte is None else self._inner(matte)
        self.moving = self.moving_mask()
        self._eye_grids = tuple(self._grid(b) for b in self.eye_boxes)

    # -- boxes and grids ----------------------------------------------------------------------

    def _image_box(self, u0: float, u1: float, v0: float, v1: float) -> Box:
        us = np.array([u0, u1, u0, u1], np.float32)
        vs = np.array([v0, v0, v1, v1], np.float32)
        xs, ys = self.geom.to_image(us, vs)
        h, w = self.rgb.shape[:2]
        x0, y0 = max(0, int(np.floor(xs.min()))), max(0, int(np.floor(ys.min())))
        x1, y1 = min(w, int(np.ceil(xs.max())) + 1), min(h, int(np.ceil(ys.max())) + 1)
        return x0, y0, max(x0 + 1, x1), max(y0 + 1, y1)

    def _eye_box(self, eye: EyeGeometry) -> Box:
        top = float(np.min(eye.upper.v)) - eye.lid_skin_px - 2
        bottom = float(np.max(eye.lower.v)) + 5  # room for the lash line drawn on a shut lid
        return self._image_box(eye.u0 - 2, eye.u1 + 2, top, bottom)

    def _grid(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = box
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u, v = self.geom.to_local(xs, ys)
        return xs, ys, u.astype(np.float32), v.astype(np.float32)

    # -- the mouth ----------------------------------------------------------------------------

    def _inner(self, matte: np.ndarray) -> np.ndarray:
        """Over the mouth box: 1 well inside the person, easing to 0 a few pixels inside its outline."""
        x0, y0, x1, y1 = self.mouth_box
        reach = max(2, round(0.03 * self.geom.face_height_px))
        solid: np.ndarray = (matte[y0:y1, x0:x1] > 0.99).astype(np.uint8)
        solid = cv2.erode(solid, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)
        soft = cv2.GaussianBlur(solid.astype(np.float32), (0, 0), reach / 2)
        return np.clip((soft - 0.5) * 2.0, 0.0, 1.0) * solid

    def _window(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """1 inside the mouth box, easing to exactly 0 at its edges (so its border never moves)."""
        u0, u1, v0, v1 = self._uv_box
        m = 0.12
        su = _smooth((u - u0) / (m * (u1 - u0))) * _smooth((u1 - u) / (m * (u1 - u0)))
        sv = _smooth((v - v0) / (0.08 * (v1 - v0))) * _smooth((v1 - v) / (m * (v1 - v0)))
        return su * sv

    def _profile(self, u: np.ndarray, roundness: float) -> np.ndarray:
        """How much of the opening a point across the mouth gets: 1 in the middle, 0 at the corners."""
        x = np.clip(1.0 - (u / self._w) ** 2, 0.0, 1.0)
        return x ** (1.1 - 0.5 * roundness)

    def _lateral(self, u: np.ndarray) -> np.ndarray:
        ul, ur = self.geom.jaw_u
        edge = np.where(u < 0, -ul, ur)
        return 1.0 - _smooth((np.abs(u) - 0.45 * edge) / (0.5 * edge))

    def _fields(
        self, u: np.ndarray, v: np.ndarray, m: MouthParams, *, which: tuple[bool, bool] = (True, True)
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(du common, dv above the lips, dv below the lips) at source points (u, v); ``which``
        says which of the two dv to compute (None for the other)."""
        g, w = self.geom, self._w
        split = g.split(u)
        win = self._window(u, v)
        spread = SPREAD_FRAC * (m.width - 0.5) * 2 - ROUND_FRAC * m.round
        uw = u / w
        du = (spread * w * np.exp(0.5 - 0.5 * uw * uw - 0.5 * (v / (0.9 * w)) ** 2)) * uw * win
        prof = self._profile(u, m.round)
        # The photo's own opening is closed by ``closing`` (half by each lip), then the shape opens it.
        half_gap = 0.5 * g.gap(u)
        closing, opening = self._opening(m)
        dv_up = dv_low = None
        if which[0]:
            lift = LIP_LIFT_FRAC * g.face_height_px * (0.6 * m.upper_teeth + 0.4 * opening) * (1.0 - 0.5 * m.round)
            above = 1.0 - _smooth((split - half_gap - v) / self._lift_reach_px)
            dv_up = (closing * half_gap - lift * prof) * above * win
        if which[1]:
            jaw = self._jaw_px * opening * (1.0 - 0.6 * m.lip_tuck)
            ramp = _smooth((v - split) / self._ramp_px)
            neck = 1.0 - _smooth((v - g.jaw(u)) / self._neck_px)
            chin = 1.0 - (1.0 - CHIN_SHARE) * _smooth((v - g.lower_lip_v) / max(1.0, g.chin_v - g.lower_lip_v))
            close_low = closing * half_gap * (1.0 - _smooth((v - split - half_gap) / self._ramp_px))
            dv_low = (jaw * self._lateral(u) * np.maximum(prof, ramp) * chin * neck - close_low) * win
        return du, dv_up, dv_low

    def _opening(self, m: MouthParams) -> tuple[float, float]:
        """(closing: the share of the photo's own gap shut, 0..1; opening: the jaw's opening from
        there, 0..1) for mouth ``m``. Parted lips in the photo are its rest: only shapes that press
        the lips together close them, the rest open further from them, the photo's own teeth moving
        with the lips and the new space between drawn as the mouth's inside."""
        closing = 1.0 if self._closed_photo else min(1.0, max(0.0, m.shut))
        return closing, m.jaw_open

    def is_rest(self, m: MouthParams) -> bool:
        """Whether ``m`` shows the photo's own mouth unchanged."""
        closing, opening = self._opening(m)
        return opening <= 1e-3 and abs(m.width - 0.5) <= 1e-3 and m.round <= 1e-3 and (self._closed_photo or closing <= 1e-3)

    def _invert(self, u: np.ndarray, v: np.ndarray, m: MouthParams, which: int) -> tuple[np.ndarray, np.ndarray]:
        """Source (u, v) of the mouth box's pixels (face coordinates ``u``, ``v``): solve
        q + d(q) = p by fixed-point iteration (d held at 0 near a cut-out's outline)."""
        qu, qv = u, v
        flags = (which == 1, which == 2)
        hold = 1.0 if self._hold is None else self._hold
        for _ in range(3):
            f = self._fields(qu, qv, m, which=flags)
            dv = f[which]
            assert dv is not None
            qu, qv = u - f[0] * hold, v - dv * hold
        return qu, qv

    def mouth_patch(self, m: MouthParams) -> np.ndarray:
        """The mouth box's pixels for mouth ``m``: (h, w, 3) uint8, the photo's own at its edges."""
        x0, y0, x1, y1 = self.mouth_box
        src = self.rgb[y0:y1, x0:x1]
        if self.is_rest(m):
            return src.copy()
        g = self.geom
        _, _, u, v = self._mouth_grid
        up = self._invert(u, v, m, 1)
        low = self._invert(u, v, m, 2)
        out = np.empty(u.shape + (3,), np.float32)
        sides = []
        for qu, qv in (up, low):
            qx, qy = g.to_image(qu, qv)
            sides.append(cv2.remap(
                src, (qx - x0).astype(np.float32), (qy - y0).astype(np.float32),
                interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
            ).astype(np.float32) / 255.0)
        # The opening's new edges, as curves of output u: the lips' inner edges once the photo's
        # gap is shut, else the edges of the space opened between the photo's own lips and teeth.
        closing, opening = self._opening(m)
        us = np.linspace(-self._w, self._w, 48, dtype=np.float32)
        sv, hg = g.split(us), 0.5 * closing * g.gap(us)
        du, dv_up, _ = self._fields(us, sv - hg - 0.01, m, which=(True, False))
        _, _, dv_low = self._fields(us, sv + hg + 0.01, m, which=(False, True))
        assert dv_up is not None and dv_low is not None
        top_c = Curve(us + du, sv - hg + dv_up)
        bottom_c = Curve(us + du, np.maximum(sv + hg + dv_low, sv - hg + dv_up))
        top, bottom = top_c(u), bottom_c(u)
        mid = (top + bottom) / 2
        lower = _smooth(v - mid + 0.5)[..., None]
        out = sides[0] * (1.0 - lower) + sides[1] * lower
        half = self._w * (1.0 + 2 * (SPREAD_FRAC * (m.width - 0.5) - 0.5 * ROUND_FRAC * m.round))
        inside_u = np.abs(u) < half
        if opening > 1e-3:
            bottom = np.where(inside_u, bottom, top)
            # Between a parted photo's own teeth (they move with their lips) the jaw opens onto
            # the cavity; drawn teeth are for a mouth whose photo shows none.
            teeth = 0.0 if closing < 1.0 and self.colours.photo_teeth else 1.0
            rgb, cover = draw_interior(
                u, v, top, bottom, half_width_px=half, face_height_px=g.face_height_px,
                upper_teeth=teeth * m.upper_teeth, lower_teeth=teeth * m.lower_teeth, tongue=m.tongue,
                colours=self.colours,
            )
            out *= lip_shadow(u, v, top, bottom, half_width_px=half)[..., None]
            out += (rgb - out) * cover[..., None]
        return np.where(self.moving[..., None], _u8(out), src)

    def moving_mask(self) -> np.ndarray:
        """(h, w) bool over the mouth box: the pixels some mouth can change (the rest of the box
        always keeps the photo's own). From the extreme shapes' displacements and openings."""
        _, _, u, v = self._mouth_grid
        moving = np.zeros(u.shape, bool)
        for m in (
            MouthParams(jaw_open=1.0, width=1.0, upper_teeth=1.0), MouthParams(jaw_open=1.0, width=0.0, round=1.0),
            MouthParams(jaw_open=0.3, width=0.5, lip_tuck=1.0), MouthParams(),
        ):
            du, dv_up, dv_low = self._fields(u, v, m)
            assert dv_up is not None and dv_low is not None
            hold = 1.0 if self._hold is None else self._hold
            moving |= (np.abs(du) + np.abs(dv_up) + np.abs(dv_low)) * hold > MOVE_MIN_PX
        # one pixel more, for the interpolation's reach
        grown = moving.copy()
        grown[1:] |= moving[:-1]
        grown[:-1] |= moving[1:]
        grown[:, 1:] |= moving[:, :-1]
        grown[:, :-1] |= moving[:, 1:]
        return grown

    # -- eyes and head ------------------------------------------------------------------------

    def eye_patch(self, index: int, closed: float) -> np.ndarray:
        """Eye ``index``'s box with the lid ``closed`` (0 open .. 1 shut): (h, w, 3) uint8."""
        x0, y0, x1, y1 = self.eye_boxes[index]
        src = self.rgb[y0:y1, x0:x1]
        if closed <= 1e-3:
            return src.copy()
        eye = self.geom.eyes[index]
        _, _, u, v = self._eye_grids[index]
        lu, ll = eye.upper(u), eye.lower(u)
        inside = (u > eye.u0) & (u < eye.u1)
        ll = np.where(inside, np.maximum(ll, lu), lu)
        new_lu = lu + closed * (ll - lu)
        b = lu - eye.lid_skin_px
        # Skin from b down to just above the lashes stretches to the new lid line; below it
        # nothing moves; the lash line is drawn darker along the lid's new edge.
        top_src = lu - 0.35 * (ll - lu)
        t = (v - b) / np.maximum(new_lu - b, 1e-3)
        sv = np.where((v > b) & (v < new_lu), b + t * (top_src - b), v)
        qx, qy = self.geom.to_image(u, sv)
        out = cv2.remap(
            src, (qx - x0).astype(np.float32), (qy - y0).astype(np.float32),
            interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        ).astype(np.float32)
        lash = closed * np.clip((ll - lu) / 3.0, 0.0, 1.0) * np.exp(-((v - new_lu) ** 2) / 1.2)
        out *= (1.0 - 0.55 * lash)[..., None]
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def head_weights(self, box: Box) -> np.ndarray:
        """How much each pixel of ``box`` moves with the head: 1 over the face and the mouth box,
        fading to 0 over the background and shoulders."""
        x0, y0, x1, y1 = box
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        cx, cy = self.geom.face_centre
        rx, ry = self.geom.face_radii_px
        mx0, my0, mx1, my1 = self.mouth_box
        d = np.sqrt(((xs - cx) / (1.25 * rx)) ** 2 + ((ys - cy) / (1.2 * ry)) ** 2)
        around = 1.0 - _smooth((d - 1.0) / 0.8)
        # and all of the mouth's box (so a mouth patch moves exactly with the head), fading out
        m = 2.0 + 0.1 * self.geom.face_height_px  # head offsets up to this stay an exact shift there
        out_x = np.maximum(np.maximum(mx0 - m - xs, xs - (mx1 - 1 + m)), 0.0)
        out_y = np.maximum(np.maximum(my0 - m - ys, ys - (my1 - 1 + m)), 0.0)
        near = 1.0 - _smooth(np.hypot(out_x, out_y) / (0.35 * self.geom.face_height_px))
        return np.maximum(around, near).astype(np.float32)

    def moved(self, dx: int, dy: int, weights: np.ndarray) -> np.ndarray:
        """The whole photo with the head moved by whole pixels (``weights`` from ``head_weights``
        over the full image): (H, W, 3) uint8; under the face and mouth box an exact shift."""
        if dx == 0 and dy == 0:
            return self.rgb.copy()
        return self.moved_array(self.rgb, dx, dy, weights)

    @staticmethod
    def moved_array(img: np.ndarray, dx: int, dy: int, weights: np.ndarray) -> np.ndarray:
        """Any image of the photo's size (RGB, a matte) moved with the head."""
        if dx == 0 and dy == 0:
            return img.copy()
        h, w = img.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return cv2.remap(
            img, xs - dx * weights, ys - dy * weights,
            interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        )


def _u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
