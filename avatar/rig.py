"""``RigCharacter``: a character pre-rendered once as layers, assembled per pose.

Layers, back to front: hair back (moves with the head), body and neck (rise with breath), the head
(skin, ears, nose, facial hair), the features (eyes, brows, mouth), and what lies over them
(moustache, glasses, hair front). All are drawn once at the target height, supersampled.

The features change every frame but live in two small rectangles of the face (eyes and brows;
mouth) that are opaque in every pose, so a feature state is a small opaque **patch**: the whole
head stack over that rectangle, composited once per state and cached. A pose is then
``base(breath, head offset)`` plus two patch pastes; ``avatar.scene`` composites the same way.

The rig moves the head by whole-pixel offsets only: ``Pose.head_tilt_deg`` is not drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from avatar.body import BODY_BOTTOM, draw_body
from avatar.cache import LruCache
from avatar.draw import DESIGN_H, DESIGN_W, Canvas, Flat, over, rgb_u8, straight_u8
from avatar.face import (
    FaceGeom,
    draw_brows,
    draw_earrings,
    draw_eyes,
    draw_face_base,
    draw_facial_hair_over,
    draw_glasses,
    skull_shine,
)
from avatar.hair import hair_masks, paint_hair_back, paint_hair_front
from avatar.mouth import MOUTH_EXTENT_UNITS, blend_shapes, draw_mouth
from avatar.pose import MOUTH_BLEND_STEPS, MouthKey, Pose
from avatar.spec import CharacterSpec
from lipsync.visemes import MOUTH_SHAPES, SIL, VISEMES

MIN_HEIGHT_PX = 24
MAX_HEIGHT_PX = 1440
HEAD_DX_MAX_FRAC = 0.045
"""Largest head offset sideways, as a fraction of the sprite height."""
HEAD_DY_MAX_FRAC = 0.03
BREATH_RISE_FRAC = 0.0035
MIN_MOUTH_GAP_PX = 2.5
"""The least open mouth is at least this tall, so small sprites still show an opening."""

Box = tuple[int, int, int, int]


def sprite_size(height_px: int) -> tuple[int, int]:
    """(width, height) in pixels of a rig sprite ``height_px`` tall."""
    return round(height_px * DESIGN_W / DESIGN_H), height_px


class PoseKey(NamedTuple):
    """A pose as the rig draws it: everything that changes a pixel, quantized."""

    rise_px: int
    dx_px: int
    dy_px: int
    eyes: int
    gaze: int
    brow: int
    mouth: MouthKey


class Patch(NamedTuple):
    """An opaque feature rectangle, placed at (x_px, y_px) in sprite coordinates."""

    x_px: int
    y_px: int
    rgb: np.ndarray


@dataclass(frozen=True, slots=True)
class Layer:
    """A float32 premultiplied RGBA (h, w, 4) layer whose top-left is at (x, y) in the sprite."""

    x: int
    y: int
    px: np.ndarray
    flat: Flat | None = None
    """The same pixels split for fast compositing (set on the layers ``stack`` returns)."""


def _cropped(px: np.ndarray, *, x: int = 0, y: int = 0) -> Layer:
    """The layer cut down to where it has visible coverage (faint blur tails are dropped)."""
    ys, xs = np.nonzero(px[..., 3] > 0.5 / 255.0)
    if ys.size == 0:
        return Layer(x, y, px[:0, :0])
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    return Layer(x + x0, y + y0, np.ascontiguousarray(px[y0:y1, x0:x1]))


def _resized(px: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A premultiplied layer area-resampled to ``size`` (width, height)."""
    return np.ascontiguousarray(cv2.resize(px, size, interpolation=cv2.INTER_AREA))


def _scaled_layer(layer: Layer, f: float) -> Layer:
    """``layer`` reduced by ``f``; its corner lands on the nearest pixel of the smaller grid."""
    h, w = layer.px.shape[:2]
    if h == 0 or w == 0:
        return Layer(round(layer.x * f), round(layer.y * f), layer.px)
    x0, y0 = math.floor(layer.x * f), math.floor(layer.y * f)
    x1, y1 = math.ceil((layer.x + w) * f), math.ceil((layer.y + h) * f)
    # resample the source over exactly the span the new pixels cover, so edges stay aligned
    sx0, sy0 = x0 / f, y0 / f
    sw, sh = (x1 - x0) / f, (y1 - y0) / f
    m = np.array([[1.0, 0.0, layer.x - sx0], [0.0, 1.0, layer.y - sy0]], np.float32)
    pad = cv2.warpAffine(layer.px, m, (math.ceil(sw), math.ceil(sh)), flags=cv2.INTER_LINEAR)
    return Layer(x0, y0, _resized(pad, (x1 - x0, y1 - y0)))


def _union(boxes: list[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _extent(layer: Layer) -> Box:
    return (layer.x, layer.y, layer.x + layer.px.shape[1], layer.y + layer.px.shape[0])


class RigCharacter:
    """One character drawn at ``height_px``; ``render(pose)`` gives its sprite.

    Sprites are straight-alpha RGBA uint8, ``(height_px, round(0.64 * height_px), 4)``, read-only
    and cached (bounded LRU of ``cache_entries``) by the quantized pose.
    """

    def __init__(self, spec: CharacterSpec, *, height_px: int, cache_entries: int = 64) -> None:
        if not MIN_HEIGHT_PX <= height_px <= MAX_HEIGHT_PX:
            raise ValueError(
                f"rig height_px must be {MIN_HEIGHT_PX}..{MAX_HEIGHT_PX}, got {height_px}"
            )
        self._setup(spec, height_px, cache_entries)
        self._draw_layers()
        self._draw_features()
        self._finish()

    def _setup(self, spec: CharacterSpec, height_px: int, cache_entries: int) -> None:
        self.spec = spec
        self.width_px, self.height_px = sprite_size(height_px)
        self.max_head_dx_px = max(1, round(HEAD_DX_MAX_FRAC * height_px))
        self.max_head_dy_px = max(1, round(HEAD_DY_MAX_FRAC * height_px))
        self.max_rise_px = max(1, round(BREATH_RISE_FRAC * height_px))
        self._k = height_px / DESIGN_H
        # Supersampling: 4x4 for small sprites, 3x3, then 2x2 for the tall ones (close shots,
        # and the masters smaller shots are reduced from, which gains them back the samples).
        self._ss = 4 if height_px <= 400 else 3 if height_px <= 600 else 2
        self._geom = FaceGeom.for_shape(spec.look.face_shape)
        self._sprites: LruCache[PoseKey, np.ndarray] = LruCache(max_entries=cache_entries)
        self._bases: LruCache[tuple[int, ...], np.ndarray] = LruCache(max_entries=16)
        self._patch_cache: LruCache[tuple[Box, object], np.ndarray] = LruCache(max_entries=1024)
        self._between: LruCache[MouthKey, Layer] = LruCache(max_entries=256)

    def scaled(self, height_px: int, *, cache_entries: int = 64) -> RigCharacter:
        """The same character at ``height_px`` (at most this rig's height), its layers
        area-resampled from this one's: the drawing is done once, at the largest size a scene
        shows, and every smaller shot is a cheap, sharp reduction of it."""
        if not MIN_HEIGHT_PX <= height_px <= self.height_px:
            raise ValueError(f"a scaled rig must be {MIN_HEIGHT_PX}..{self.height_px} px tall, got {height_px}")
        if height_px == self.height_px:
            return self
        rig = RigCharacter.__new__(RigCharacter)
        rig._setup(self.spec, height_px, cache_entries)
        f = rig.height_px / self.height_px
        body_h = max(rig.height_px + rig.max_rise_px + 1, math.ceil(BODY_BOTTOM * rig._k))
        rig._body = _resized(self._body, (rig.width_px, body_h))
        rig._hair_back = _scaled_layer(self._hair_back, f)
        rig._face_base = _resized(self._face_base, (rig.width_px, rig.height_px))
        rig._above = _resized(self._above, (rig.width_px, rig.height_px))
        rig._eyes = {key: _scaled_layer(layer, f) for key, layer in self._eyes.items()}
        rig._brows = {key: _scaled_layer(layer, f) for key, layer in self._brows.items()}
        rig._mouths = [_scaled_layer(layer, f) for layer in self._mouths]
        rig._finish()
        return rig

    # -- building ---------------------------------------------------------------------------

    def _canvas(self, box: Box | None = None) -> Canvas:
        return Canvas(
            box_px=box or (0, 0, self.width_px, self.height_px), px_per_unit=self._k, ss=self._ss
        )

    def _box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        k = self._k
        return (math.floor(x0 * k), math.floor(y0 * k), math.ceil(x1 * k), math.ceil(y1 * k))

    def _finish(self) -> None:
        self._upper_box = _union(
            [_extent(v) for v in (*self._eyes.values(), *self._brows.values())]
        )
        self._mouth_box = _union([_extent(m) for m in self._mouths])
        self._face_box = _union([self._upper_box, self._mouth_box])
        # Patches need rectangles the head covers fully. Tiny sprites may have eyes and mouth
        # rectangles touching (one patch covers both) or reaching past the face (no patches:
        # the features are drawn into each base instead).
        split = self._upper_box[3] <= self._mouth_box[1]
        if split and self._opaque(self._upper_box) and self._opaque(self._mouth_box):
            self._patch_boxes: tuple[Box, ...] = (self._upper_box, self._mouth_box)
        elif self._opaque(self._face_box):
            self._patch_boxes = (self._face_box,)
        else:
            self._patch_boxes = ()
        self._head = self._head_with(PoseKey(0, 0, 0, 2, 0, 0, (SIL, SIL, 0)))
        self._flat_hair_back = Flat.of(self._hair_back.px)
        self._flat_head = Flat.of(self._head.px)
        self._flat_body = Flat.of(self._body)

    def _draw_layers(self) -> None:
        """Hair back, body (taller than the sprite, for breathing), head base and what lies over
        the features, each a full-sprite premultiplied layer."""
        look, g = self.spec.look, self._geom
        back = self._canvas()
        masks = hair_masks(back, g, look)
        paint_hair_back(back, masks, g, look)
        body_h = max(self.height_px + self.max_rise_px + 1, math.ceil(BODY_BOTTOM * self._k))
        body = self._canvas((0, 0, self.width_px, body_h))
        draw_body(body, g, look)
        self._body = body.premul()
        self._hair_back = self._trim_hidden(back.premul())
        base = self._canvas()
        face = draw_face_base(base, g, look, hair_front=masks.front)
        draw_earrings(base, g, look)
        if look.hair_style == "bald":
            skull_shine(base, g, look, face)
        self._face_base = base.premul()
        above = self._canvas()
        draw_facial_hair_over(above, g, look)
        draw_glasses(above, g, look)
        paint_hair_front(above, masks, g, look)
        self._above = above.premul()

    def _draw_features(self) -> None:
        """Eyes (3 openings x 5 gazes), brows (5 raises) and one mouth per viseme, each cropped."""
        look, g = self.spec.look, self._geom
        ex = g.eye_dx + 7.0
        eye_box = self._box(g.cx - ex, g.brow_y - 4.5, g.cx + ex, g.eye_y + 5.0)
        self._eyes: dict[tuple[int, int], Layer] = {}
        for level in (0, 1, 2):
            for gz in (-2, -1, 0, 1, 2) if level else (0,):
                c = self._canvas(eye_box)
                draw_eyes(c, g, look, openness=level, gaze=gz / 2)
                self._eyes[(level, gz)] = _cropped(c.premul(), x=eye_box[0], y=eye_box[1])
        self._brows: dict[int, Layer] = {}
        for lv in (-2, -1, 0, 1, 2):
            c = self._canvas(eye_box)
            draw_brows(c, g, look, raise_=lv / 2)
            self._brows[lv] = _cropped(c.premul(), x=eye_box[0], y=eye_box[1])
        left, top, right, bottom = MOUTH_EXTENT_UNITS
        mouth_box = self._box(g.cx + left, g.mouth_y + top, g.cx + right, g.mouth_y + bottom)
        self._mouths: list[Layer] = []
        for name in VISEMES:
            c = self._canvas(mouth_box)
            draw_mouth(
                c,
                cx=g.cx,
                cy=g.mouth_y,
                shape=MOUTH_SHAPES[name],
                skin=look.skin_rgb,
                pressed=name == "PP",
                min_gap=MIN_MOUTH_GAP_PX / self._k,
            )
            self._mouths.append(_cropped(c.premul(), x=mouth_box[0], y=mouth_box[1]))

    def _trim_hidden(self, hair: np.ndarray) -> Layer:
        """Drop rows of the back hair that the body hides under every head offset and breath:
        long hair reaches far down behind the shoulders, and blending it there is wasted work."""
        hair = hair.copy()
        solid = self._body[..., 3] > 0.9999
        w = self.width_px
        dx, dy, rise = self.max_head_dx_px, self.max_head_dy_px, self.max_rise_px
        for y in np.nonzero(hair[..., 3].max(axis=1) > 0)[0]:
            xs = np.nonzero(hair[y, :, 3] > 0)[0]
            x0, x1 = max(0, int(xs[0]) - dx), min(w, int(xs[-1]) + 1 + dx)
            y0, y1 = int(y) - dy, int(y) + dy + rise + 1
            if y0 >= 0 and y1 <= solid.shape[0] and solid[y0:y1, x0:x1].all():
                hair[y] = 0.0
        return _cropped(hair)

    def _opaque(self, box: Box) -> bool:
        x0, y0, x1, y1 = box
        a = self._face_base[y0:y1, x0:x1, 3]
        b = self._above[y0:y1, x0:x1, 3]
        return bool(a.size) and float((a + b * (1.0 - a)).min()) > 0.999

    def _feature_layers(self, key: PoseKey) -> list[Layer]:
        return [
            self._eyes[(key.eyes, key.gaze)],
            self._brows[key.brow],
            self._mouth_layer(key.mouth),
        ]

    def _head_with(self, key: PoseKey) -> Layer:
        head = self._face_base.copy()
        for layer in self._feature_layers(key):
            over(head, layer.px, x=layer.x, y=layer.y)
        over(head, self._above)
        return _cropped(head)

    # -- poses ------------------------------------------------------------------------------

    def pose_key(self, pose: Pose) -> PoseKey:
        """The quantized pose: head offsets clamped to the rig's range, in whole pixels."""
        # Tall sprites (close shots) move in steps of two pixels: the motion looks the same and
        # a quarter as many head positions need a tile of their own.
        step = 2 if self.height_px > 560 else 1
        dx = min(self.max_head_dx_px, max(-self.max_head_dx_px, step * round(pose.head_dx_px / step)))
        dy = min(self.max_head_dy_px, max(-self.max_head_dy_px, step * round(pose.head_dy_px / step)))
        rise = round(min(1.0, max(0.0, pose.breath)) * self.max_rise_px)
        return PoseKey(
            rise,
            dx,
            dy,
            pose.eyes_level(),
            pose.gaze_level() if pose.eyes_level() else 0,
            pose.brow_level(),
            pose.mouth_key(),
        )

    def base_key(self, key: PoseKey) -> tuple[int, ...]:
        """The part of ``key`` that ``base_premultiplied`` depends on (the rest is in patches)."""
        if self._patch_boxes:
            return (key.rise_px, key.dx_px, key.dy_px)
        return (key.rise_px, key.dx_px, key.dy_px, key.eyes, key.gaze, key.brow, *key.mouth)

    def stack(self, key: PoseKey) -> tuple[Layer, Layer, Layer]:
        """(hair back, body, head) for ``key``, back to front, placed in sprite coordinates.

        The body is the full sprite size and depends only on ``key.rise_px``; the other two move
        with the head. The head carries resting features unless the sprite is too small for
        patches. Arrays are shared: do not modify them.
        """
        hb, dx, dy, r = self._hair_back, key.dx_px, key.dy_px, key.rise_px
        if self._patch_boxes:
            hd, flat_head = self._head, self._flat_head
        else:
            hd = self._head_with(key)
            flat_head = Flat.of(hd.px)
        body = Layer(
            0, 0, self._body[r : r + self.height_px], self._flat_body.rows(r, r + self.height_px)
        )
        return (
            Layer(hb.x + dx, hb.y + dy, hb.px, self._flat_hair_back),
            body,
            Layer(hd.x + dx, hd.y + dy, hd.px, flat_head),
        )

    def base_premultiplied(self, key: PoseKey) -> np.ndarray:
        """The ``stack`` flattened: float32 premultiplied RGBA (h, w, 4), cached by ``base_key``,
        read-only."""
        bkey = self.base_key(key)
        hit = self._bases.get(bkey)
        if hit is not None:
            return hit
        out = np.zeros((self.height_px, self.width_px, 4), np.float32)
        for layer in self.stack(key):
            over(out, layer.px, x=layer.x, y=layer.y)
        out.flags.writeable = False
        self._bases.put(bkey, out)
        return out

    def patches(self, key: PoseKey) -> tuple[Patch, ...]:
        """Opaque RGB feature patches for ``key``, placed in sprite coordinates.

        Usually two (eyes and brows; mouth); one for small sprites; none for tiny ones.
        """
        out: list[Patch] = []
        for box in self._patch_boxes:
            if box == self._upper_box:
                pkey: tuple[object, ...] = (key.eyes, key.gaze, key.brow)
                layers = self._feature_layers(key)[:2]
            elif box == self._mouth_box:
                pkey = key.mouth
                layers = [self._mouth_layer(key.mouth)]
            else:
                pkey = (key.eyes, key.gaze, key.brow, key.mouth)
                layers = self._feature_layers(key)
            rgb = self._patch_cache.get((box, pkey))
            if rgb is None:
                rgb = self._compose_patch(box, layers)
                self._patch_cache.put((box, pkey), rgb)
            out.append(Patch(box[0] + key.dx_px, box[1] + key.dy_px, rgb))
        return tuple(out)

    def _mouth_layer(self, mkey: MouthKey) -> Layer:
        a, b, q = mkey
        if q == 0:
            return self._mouths[a]
        layer = self._between.get(mkey)
        if layer is None:
            layer = self._draw_between(a, b, q / MOUTH_BLEND_STEPS)
            self._between.put(mkey, layer)
        return layer

    def _draw_between(self, a: int, b: int, t: float) -> Layer:
        """The mouth part way from viseme a to b, drawn as one mouth (``blend_shapes``): its
        opening grows with the blend, where a cross-fade would show the wider one's ghost."""
        g = self._geom
        left, top, right, bottom = MOUTH_EXTENT_UNITS
        mouth_box = self._box(g.cx + left, g.mouth_y + top, g.cx + right, g.mouth_y + bottom)
        shape = blend_shapes(MOUTH_SHAPES[VISEMES[a]], MOUTH_SHAPES[VISEMES[b]], t)
        c = self._canvas(mouth_box)
        draw_mouth(
            c, cx=g.cx, cy=g.mouth_y, shape=shape, skin=self.spec.look.skin_rgb,
            pressed=VISEMES[a if t < 0.5 else b] == "PP", min_gap=MIN_MOUTH_GAP_PX / self._k,
        )
        return _cropped(c.premul(), x=mouth_box[0], y=mouth_box[1])

    def _compose_patch(self, box: Box, layers: list[Layer]) -> np.ndarray:
        x0, y0, x1, y1 = box
        px = self._face_base[y0:y1, x0:x1].copy()
        for layer in layers:
            over(px, layer.px, x=layer.x - x0, y=layer.y - y0)
        over(px, self._above[y0:y1, x0:x1])
        rgb = rgb_u8(px)
        rgb.flags.writeable = False
        return rgb

    def render(self, pose: Pose) -> np.ndarray:
        """The sprite for ``pose``: straight-alpha RGBA uint8 (height_px, width_px, 4), read-only.

        Cached (bounded LRU) by the quantized pose.
        """
        key = self.pose_key(pose)
        hit = self._sprites.get(key)
        if hit is not None:
            return hit
        sprite = straight_u8(self.base_premultiplied(key))
        for p in self.patches(key):
            h, w = p.rgb.shape[:2]
            sprite[p.y_px : p.y_px + h, p.x_px : p.x_px + w, :3] = p.rgb
            sprite[p.y_px : p.y_px + h, p.x_px : p.x_px + w, 3] = 255
        sprite.flags.writeable = False
        self._sprites.put(key, sprite)
        return sprite

    def mouth_box(self) -> Box:
        """(x0, y0, x1, y1), end-exclusive, of everything any mouth shape draws, head at rest."""
        return self._mouth_box

    def cache_info(self) -> dict[str, int]:
        return {
            "sprites": len(self._sprites),
            "sprite_hits": self._sprites.hits,
            "sprite_misses": self._sprites.misses,
            "bases": len(self._bases),
            "patches": len(self._patch_cache),
        }
