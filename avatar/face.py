"""The head: face shapes and where features sit, and drawing of skin, ears, nose, eyes, brows,
facial hair and accessories. Everything is in design units of the 64 x 100 sprite card."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from avatar.colors import (
    EYE_WHITE_RGB,
    LINE_RGB,
    PUPIL_RGB,
    blush_rgb,
    brow_rgb,
    skin_shadow_rgb,
)
from avatar.draw import Canvas, Point, catmull_rom, mix, shade, tapered
from avatar.spec import Look

# (rx, ry_top, ry_bot, n_top, n_bot, chin taper): superellipse halves, narrower towards the chin.
_SHAPES: dict[str, tuple[float, float, float, float, float, float]] = {
    "oval": (15.6, 18.6, 19.4, 2.2, 2.15, 0.10),
    "round": (17.0, 17.8, 18.6, 2.3, 2.4, 0.06),
    "square": (16.2, 18.2, 18.6, 2.6, 3.3, 0.10),
    "heart": (16.9, 18.2, 19.8, 2.5, 2.2, 0.22),
    "long": (14.8, 19.6, 21.0, 2.4, 2.5, 0.10),
}

GAZE_SHIFT_UNITS = 1.05
BROW_RAISE_UNITS = 1.4


@dataclass(frozen=True, slots=True)
class FaceGeom:
    """Head outline and feature anchors for one face shape (design units)."""

    rx: float
    ry_top: float
    ry_bot: float
    n_top: float
    n_bot: float
    taper: float
    cx: float = 32.0
    cy: float = 39.5

    @classmethod
    def for_shape(cls, shape: str) -> FaceGeom:
        return cls(*_SHAPES[shape])

    def outline(self, *, grow: float = 0.0, n: int = 180) -> list[Point]:
        """The face contour, optionally grown outwards by ``grow`` units."""
        pts: list[Point] = []
        for i in range(n):
            t = 2 * math.pi * i / n
            c, s = math.cos(t), math.sin(t)
            lower = s > 0
            e = 2.0 / (self.n_bot if lower else self.n_top)
            ry = (self.ry_bot if lower else self.ry_top) + grow
            x = (self.rx + grow) * math.copysign(abs(c) ** e, c)
            y = ry * math.copysign(abs(s) ** e, s)
            if lower:
                x *= 1.0 - self.taper * (y / ry) ** 2
            pts.append((self.cx + x, self.cy + y))
        return pts

    def half_width(self, y: float) -> float:
        """Half the face width at height ``y`` (0 above the crown or below the chin)."""
        lower = y > self.cy
        ry = self.ry_bot if lower else self.ry_top
        v = abs(y - self.cy) / ry
        if v >= 1.0:
            return 0.0
        n = self.n_bot if lower else self.n_top
        w = self.rx * (1.0 - v**n) ** (1.0 / n)
        return w * (1.0 - self.taper * v * v) if lower else w

    @property
    def top(self) -> float:
        return self.cy - self.ry_top

    @property
    def chin(self) -> float:
        return self.cy + self.ry_bot

    @property
    def eye_y(self) -> float:
        return self.cy + 1.6

    @property
    def eye_dx(self) -> float:
        return 0.42 * self.rx

    @property
    def brow_y(self) -> float:
        return self.eye_y - 5.4

    @property
    def nose_y(self) -> float:
        return self.cy + 6.4

    @property
    def mouth_y(self) -> float:
        return self.cy + 10.0

    @property
    def ear_y(self) -> float:
        return self.eye_y + 2.2


def draw_face_base(
    c: Canvas, g: FaceGeom, look: Look, *, hair_front: Image.Image | None
) -> Image.Image:
    """Ears, skin with soft shading, nose, blush, facial hair under the mouth.

    Returns the face mask.
    """
    skin = look.skin_rgb
    dark = skin_shadow_rgb(skin)
    for side in (-1, 1):
        ex = g.cx + side * (g.half_width(g.ear_y) - 0.4)
        ear = c.ellipse(ex, g.ear_y, 2.5, 3.6)
        c.fill(ear, shade(skin, 0.97))
        c.fill(c.clip(c.ellipse(ex + side * 0.3, g.ear_y + 0.2, 1.3, 2.2), ear), dark, 0.8)
    face = c.poly(g.outline())
    c.fill(face, skin)
    # light from the upper left: a soft shadow crescent along the right and lower edge
    lit = c.poly([(x - 2.6, y - 2.0) for x, y in g.outline()])
    c.fill(c.clip(c.blur(c.cut(face, lit), 1.6), face), dark, 0.55)
    c.fill(
        c.clip(c.blur(c.ellipse(g.cx - 5.0, g.cy - 6.0, 7.0, 5.5), 3.0), face),
        shade(skin, 1.08),
        0.45,
    )
    for side in (-1, 1):
        cheek = c.ellipse(g.cx + side * 0.62 * g.rx, g.mouth_y - 3.2, 2.9, 1.7)
        c.fill(c.blur(cheek, 1.1), blush_rgb(skin), 0.38 if sum(skin) > 500 else 0.26)
    if hair_front is not None:
        drop = Image.new("L", c.size, 0)
        drop.paste(hair_front, (0, round(c.units(1.1))))
        c.fill(c.clip(c.blur(drop, 0.9), face), dark, 0.6)
    # nose: soft shadow under the tip and a small rounded line
    c.fill(c.blur(c.ellipse(g.cx + 0.5, g.nose_y + 0.5, 1.8, 0.9), 0.5), dark, 0.75)
    nose_line = catmull_rom(
        [
            (g.cx - 1.4, g.nose_y - 0.1),
            (g.cx - 0.4, g.nose_y + 0.75),
            (g.cx + 0.9, g.nose_y + 0.65),
            (g.cx + 1.5, g.nose_y - 0.2),
        ],
        closed=False,
    )
    c.fill(c.stroke(nose_line, 0.42), shade(skin, 0.68), 0.8)
    c.fill(c.blur(c.ellipse(g.cx - 0.5, g.nose_y - 0.8, 0.6, 0.45), 0.3), shade(skin, 1.15), 0.7)
    _draw_age(c, g, look, face)
    _draw_facial_hair_under(c, g, look, face)
    return face


def _draw_age(c: Canvas, g: FaceGeom, look: Look, face: Image.Image) -> None:
    """Lines that age a face: soft smile folds and crow's feet from "middle", forehead lines and
    under-eye creases for "old"; a child's face gets rounder, rosier cheeks instead."""
    if look.age == "child":
        for side in (-1, 1):
            cheek = c.ellipse(g.cx + side * 0.6 * g.rx, g.mouth_y - 2.6, 3.6, 2.3)
            c.fill(c.blur(cheek, 1.4), blush_rgb(look.skin_rgb), 0.3)
        return
    if look.age not in ("middle", "old"):
        return
    line = shade(look.skin_rgb, 0.72)
    strength = 0.45 if look.age == "middle" else 0.75
    for side in (-1, 1):
        fold = catmull_rom(
            [
                (g.cx + side * 3.9, g.nose_y - 0.2),
                (g.cx + side * 5.3, g.mouth_y - 1.2),
                (g.cx + side * 5.6, g.mouth_y + 1.6),
            ],
            closed=False,
        )
        c.fill(c.clip(c.blur(c.stroke(fold, 0.45), 0.25), face), line, strength)
        ex = g.cx + side * (g.eye_dx + 5.6)
        for dy in (-0.9, 0.5):
            crow = [(ex, g.eye_y + dy * 0.5), (ex + side * 1.6, g.eye_y + dy * 1.4)]
            c.fill(c.clip(c.stroke(crow, 0.3), face), line, strength * 0.8)
    if look.age == "old":
        for side in (-1, 1):
            bag = catmull_rom(
                [(g.cx + side * (g.eye_dx - 2.4), g.eye_y + 3.2), (g.cx + side * g.eye_dx, g.eye_y + 3.9),
                 (g.cx + side * (g.eye_dx + 2.4), g.eye_y + 3.2)],
                closed=False,
            )  # fmt: skip
            c.fill(c.clip(c.blur(c.stroke(bag, 0.35), 0.2), face), line, 0.55)
        for i in range(2):
            y = g.brow_y - 3.2 - 1.5 * i
            brow_line = catmull_rom([(g.cx - 5.5, y + 0.3), (g.cx, y - 0.2), (g.cx + 5.5, y + 0.3)], closed=False)
            c.fill(c.clip(c.blur(c.stroke(brow_line, 0.3), 0.2), face), line, 0.45)


def _beard_mask(c: Canvas, g: FaceGeom) -> Image.Image:
    grown = c.poly(g.outline(grow=1.0))
    half = [
        (g.rx + 3.0, g.ear_y - 3.0),
        (g.rx - 0.6, g.ear_y - 2.0),
        (g.rx - 2.2, g.nose_y + 0.5),
        (g.rx - 5.0, g.nose_y + 2.6),
        (5.5, g.mouth_y - 2.4),
        (2.0, g.mouth_y - 2.9),
    ]
    line = [(g.cx - x, y) for x, y in half] + [(g.cx + x, y) for x, y in half[::-1]]
    curve = catmull_rom(line, closed=False, steps=8)
    below = c.poly([*curve, (g.cx + g.rx + 4, g.chin + 5), (g.cx - g.rx - 4, g.chin + 5)])
    return c.clip(grown, below)


def _draw_facial_hair_under(c: Canvas, g: FaceGeom, look: Look, face: Image.Image) -> None:
    hair = look.hair_rgb
    if look.facial_hair == "beard":
        beard = _beard_mask(c, g)
        c.fill(beard, shade(hair, 0.92))
        c.fill(
            c.clip(
                c.blur(c.cut(beard, c.poly([(x - 1.6, y - 1.6) for x, y in g.outline()])), 0.8),
                beard,
            ),
            shade(hair, 0.75),
            0.6,
        )
        c.fill(
            c.clip(c.blur(c.ellipse(g.cx - 4, g.chin - 3.0, 4.0, 1.6), 0.8), beard),
            shade(hair, 1.22),
            0.35,
        )
    elif look.facial_hair == "stubble":
        c.fill(c.clip(c.blur(_beard_mask(c, g), 1.0), face), mix(look.skin_rgb, hair, 0.5), 0.28)


def draw_facial_hair_over(c: Canvas, g: FaceGeom, look: Look) -> None:
    """Moustache: drawn above the mouth so it covers the upper lip."""
    if look.facial_hair not in ("beard", "moustache"):
        return
    y = g.mouth_y - 1.6
    pts = catmull_rom(
        [
            (g.cx - 5.6, y + 1.6),
            (g.cx - 3.0, y - 0.5),
            (g.cx, y - 1.1),
            (g.cx + 3.0, y - 0.5),
            (g.cx + 5.6, y + 1.6),
        ],
        closed=False,
    )
    widths = [0.5 + 1.4 * math.sin(math.pi * i / (len(pts) - 1)) for i in range(len(pts))]
    m = c.poly(tapered(pts, widths))
    c.fill(m, shade(look.hair_rgb, 0.95))
    c.fill(
        c.clip(c.blur(c.ellipse(g.cx - 1.5, y - 1.2, 3.0, 0.6), 0.4), m),
        shade(look.hair_rgb, 1.3),
        0.4,
    )


def eye_centers(g: FaceGeom) -> tuple[Point, Point]:
    return (g.cx - g.eye_dx, g.eye_y), (g.cx + g.eye_dx, g.eye_y)


def draw_eyes(c: Canvas, g: FaceGeom, look: Look, *, openness: int, gaze: float) -> None:
    """Both eyes. ``openness``: 2 open, 1 half, 0 closed; ``gaze`` -1..1 moves the irises."""
    rx, ry = 3.0, 3.35
    for side, (ex, ey) in zip((-1, 1), eye_centers(g), strict=True):
        if openness == 0:
            arc = catmull_rom(
                [(ex - rx - 0.2, ey + 0.2), (ex, ey + 1.3), (ex + rx + 0.2, ey + 0.2)], closed=False
            )
            c.fill(c.stroke(arc, 0.7), LINE_RGB)
            if look.lashes:
                ox = ex + side * (rx + 0.1)
                c.fill(c.stroke([(ox, ey + 0.3), (ox + side * 1.1, ey - 0.4)], 0.45), LINE_RGB)
            continue
        white = c.ellipse(ex, ey, rx, ry)
        c.fill(white, EYE_WHITE_RGB)
        lid_shadow = c.clip(
            c.blur(c.cut(white, c.ellipse(ex, ey + 1.0, rx + 0.4, ry)), 0.35), white
        )
        ix, iy = ex + gaze * GAZE_SHIFT_UNITS, ey + 0.25
        iris = c.clip(c.ellipse(ix, iy, 2.35, 2.45), white)
        c.fill(iris, shade(look.eye_rgb, 0.72))
        c.fill(c.clip(c.ellipse(ix, iy + 0.15, 2.0, 2.1), white), look.eye_rgb)
        c.fill(c.clip(c.ellipse(ix, iy, 1.15, 1.2), white), PUPIL_RGB)
        c.fill(lid_shadow, shade(look.skin_rgb, 0.55), 0.35)
        c.fill(c.clip(c.ellipse(ix + 0.75, iy - 0.85, 0.72, 0.72), white), (255, 255, 255))
        c.fill(c.clip(c.ellipse(ix - 0.8, iy + 0.9, 0.32, 0.32), white), (255, 255, 255), 0.85)
        top_y = ey - ry
        if openness == 1:
            lid_y = ey + 0.1
            lid = c.clip(c.rect(ex - rx - 1, top_y - 1, ex + rx + 1, lid_y), white)
            c.fill(lid, shade(look.skin_rgb, 0.95))
            line = catmull_rom(
                [(ex - rx - 0.1, ey + 0.25), (ex, lid_y - 0.25), (ex + rx + 0.1, ey + 0.25)],
                closed=False,
            )
            c.fill(c.stroke(line, 0.75), LINE_RGB)
        else:
            line = [
                (ex + rx * math.cos(a), ey - ry * math.sin(a))
                for a in (math.radians(d) for d in range(160, 19, -10))
            ]
            widths = [
                0.45 + 0.45 * math.sin(math.pi * i / (len(line) - 1)) for i in range(len(line))
            ]
            c.fill(c.poly(tapered(line, widths)), LINE_RGB)
        if look.lashes:
            ox, oy = ex + side * (rx - 0.2), (ey - 0.5 if openness == 2 else ey + 0.2)
            flick = [(ox, oy), (ox + side * 0.9, oy - 0.7), (ox + side * 1.5, oy - 1.4)]
            c.fill(c.poly(tapered(flick, [0.75, 0.5, 0.15])), LINE_RGB)


_BROWS: dict[str, tuple[tuple[Point, ...], tuple[float, ...]]] = {
    # inner → outer, relative to the eye centre x and the brow line y; widths per point
    "soft": (((-2.7, 0.35), (-0.2, -0.55), (2.9, 0.45)), (1.05, 0.95, 0.45)),
    "straight": (((-2.9, 0.05), (0.0, -0.25), (3.1, 0.15)), (1.25, 1.1, 0.65)),
    "arched": (((-2.7, 0.6), (0.6, -1.05), (3.1, 0.65)), (0.85, 0.8, 0.35)),
    "thick": (((-3.0, 0.2), (0.0, -0.45), (3.2, 0.3)), (1.75, 1.6, 1.0)),
    "thin": (((-2.6, 0.35), (0.3, -0.7), (2.9, 0.35)), (0.6, 0.55, 0.3)),
}


def draw_brows(c: Canvas, g: FaceGeom, look: Look, *, raise_: float) -> None:
    """Both brows; ``raise_`` -1 (frown, inner ends down) .. 1 (raised)."""
    pts, widths = _BROWS[look.brow_style]
    colour = brow_rgb(look.hair_rgb)
    for side, (ex, _) in zip((-1, 1), eye_centers(g), strict=True):
        placed: list[Point] = []
        for i, (px, py) in enumerate(pts):
            inner = 1.0 - i / (len(pts) - 1)
            lift = -BROW_RAISE_UNITS * raise_
            if raise_ < 0:
                lift += 0.9 * -raise_ * inner
            placed.append((ex - side * px, g.brow_y + py + lift))
        curve = catmull_rom(placed, closed=False, steps=8)
        w = [
            widths[0] + (widths[-1] - widths[0]) * (j / (len(curve) - 1)) for j in range(len(curve))
        ]
        w = [wi * (1.0 + 0.15 * math.sin(math.pi * j / (len(curve) - 1))) for j, wi in enumerate(w)]
        c.fill(c.poly(tapered(curve, w)), colour)


def draw_glasses(c: Canvas, g: FaceGeom, look: Look) -> None:
    if look.accessory not in ("glasses", "round_glasses"):
        return
    rnd = look.accessory == "round_glasses"
    frame = (150, 96, 52) if rnd else (40, 38, 48)
    lw = 0.5 if rnd else 0.7
    for side, (ex, ey) in zip((-1, 1), eye_centers(g), strict=True):
        ey += 0.3
        if rnd:
            outer, inner = c.ellipse(ex, ey, 4.2, 4.2), c.ellipse(ex, ey, 4.2 - lw, 4.2 - lw)
        else:
            outer = c.rect(ex - 4.5, ey - 3.4, ex + 4.5, ey + 3.4, radius=1.8)
            inner = c.rect(ex - 4.5 + lw, ey - 3.4 + lw, ex + 4.5 - lw, ey + 3.4 - lw, radius=1.3)
        c.fill(inner, (255, 255, 255), 0.14)  # neutral: a bluish tint would read as teeth
        glare = c.clip(
            c.poly(
                [
                    (ex - 2.8, ey + 1.5),
                    (ex + 0.2, ey - 3.5),
                    (ex + 1.6, ey - 3.5),
                    (ex - 1.4, ey + 1.5),
                ]
            ),
            inner,
        )
        c.fill(glare, (255, 255, 255), 0.35)
        c.fill(c.cut(outer, inner), frame)
        hx = ex + side * (4.2 if rnd else 4.5)
        arm_to = g.cx + side * (g.half_width(ey) + 0.5)
        c.fill(c.stroke([(hx, ey - 1.2), (arm_to, ey - 1.6)], lw), frame)
    bridge = catmull_rom(
        [(g.cx - g.eye_dx + 4.0, g.eye_y), (g.cx, g.eye_y - 0.9), (g.cx + g.eye_dx - 4.0, g.eye_y)],
        closed=False,
    )
    c.fill(c.stroke(bridge, lw), frame)


def draw_earrings(c: Canvas, g: FaceGeom, look: Look) -> None:
    if look.accessory != "earrings":
        return
    gold = (236, 188, 70)
    for side in (-1, 1):
        ex = g.cx + side * (g.half_width(g.ear_y) - 0.1)
        ey = g.ear_y + 3.9
        ring = c.cut(c.ellipse(ex, ey + 1.2, 1.35, 1.6), c.ellipse(ex, ey + 1.2, 0.85, 1.1))
        c.fill(ring, gold)
        c.fill(c.ellipse(ex, ey, 0.55, 0.55), shade(gold, 1.2))


def skull_shine(c: Canvas, g: FaceGeom, look: Look, face: Image.Image) -> None:
    """A soft highlight on a bald head."""
    c.fill(
        c.clip(c.blur(c.ellipse(g.cx - 4.5, g.top + 4.0, 5.0, 2.4), 1.4), face),
        shade(look.skin_rgb, 1.22),
        0.55,
    )
