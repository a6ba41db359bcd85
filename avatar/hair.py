"""Hair styles: a back mass (behind head and body) and a front part (over the forehead).

Each style is two masks built from the face geometry, so a style fits every face shape; painting
adds the shared soft shading (darker back, a highlight sweep and a few strands on the front).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from avatar.draw import Canvas, Point, catmull_rom, mix, shade
from avatar.face import FaceGeom
from avatar.spec import Look


@dataclass(frozen=True, slots=True)
class HairMasks:
    back: Image.Image | None
    front: Image.Image | None


def _above(c: Canvas, line: list[Point], *, smooth: bool = True) -> Image.Image:
    """Everything above a left-to-right hairline curve."""
    curve = catmull_rom(line, closed=False, steps=8) if smooth else line
    (lx, ly), (rx, ry) = curve[0], curve[-1]
    return c.poly([*curve, (rx + 30, ry), (rx + 30, -40), (lx - 30, -40), (lx - 30, ly)])


def _cap(c: Canvas, g: FaceGeom, grow: float) -> Image.Image:
    return c.poly(g.outline(grow=grow))


def _side_curtain(
    c: Canvas, g: FaceGeom, side: int, *, y0: float, y1: float, inset: float, out: float
) -> Image.Image:
    """A sheet of hair along one side of the face from y0 down to y1."""
    inner: list[Point] = []
    outer: list[Point] = []
    steps = 10
    for i in range(steps + 1):
        y = y0 + (y1 - y0) * i / steps
        hw = max(g.half_width(min(y, g.chin - 4.0)), 6.0)
        t = i / steps
        inner.append((g.cx + side * (hw - inset * (1 - 0.5 * t)), y))
        outer.append((g.cx + side * (hw + out * (0.7 + 0.5 * t)), y))
    end = (g.cx + side * (max(g.half_width(min(y1, g.chin - 4.0)), 6.0) + out * 0.3), y1 + 1.2)
    return c.poly(catmull_rom(inner, closed=False) + [end] + catmull_rom(outer[::-1], closed=False))


def hair_masks(c: Canvas, g: FaceGeom, look: Look) -> HairMasks:
    s, cx, cy, rx, top = look.hair_style, g.cx, g.cy, g.rx, g.top
    if s == "bald":
        return HairMasks(None, None)
    side_y = g.ear_y - 2.2
    if s in ("crop", "quiff"):
        base = catmull_rom(
            [
                (cx - rx - 2, side_y + 0.5),
                (cx - rx + 0.4, side_y - 1.0),
                (cx - rx + 1.8, cy - 7.0),
                (cx - 7, cy - 9.6),
                (cx - 1.5, cy - 10.4),
                (cx + 4, cy - 10.8),
                (cx + rx - 2, cy - 8.6),
                (cx + rx - 0.4, side_y - 1.0),
                (cx + rx + 2, side_y + 0.5),
            ],
            closed=False,
            steps=6,
        )
        # pointed tufts along a crop's fringe; a quiff sweeps up from a higher hairline
        lift = 2.4 if s == "quiff" else 0.0
        hairline = [
            (
                x,
                y
                - lift * max(0.0, 1 - abs(x - cx) / rx)
                + (1.1 if s == "crop" and i % 3 == 1 and abs(x - cx) < rx - 2.5 else 0.0),
            )
            for i, (x, y) in enumerate(base)
        ]
        front = c.clip(_cap(c, g, 1.2), _above(c, hairline, smooth=False))
        if s == "quiff":
            quiff = c.poly(
                catmull_rom(
                    [
                        (cx - rx + 1.2, cy - 9.0),
                        (cx - rx + 1.5, top + 1.0),
                        (cx - 6.0, top - 4.6),
                        (cx + 2.5, top - 6.6),
                        (cx + rx - 0.6, top - 2.8),
                        (cx + rx + 0.8, cy - 9.5),
                        (cx + 3.0, cy - 12.6),
                    ],
                    closed=True,
                )
            )
            front = c.union(front, quiff)
        return HairMasks(None, front)
    if s == "bob":
        back = c.poly(
            catmull_rom(
                [
                    (cx, top - 2.4),
                    (cx + rx + 3.0, cy - 9.0),
                    (cx + rx + 4.0, cy + 4.0),
                    (cx + rx + 4.6, g.mouth_y + 5.0),
                    (cx + rx - 1.0, g.mouth_y + 6.4),
                    (cx - rx + 1.0, g.mouth_y + 6.4),
                    (cx - rx - 4.6, g.mouth_y + 5.0),
                    (cx - rx - 4.0, cy + 4.0),
                    (cx - rx - 3.0, cy - 9.0),
                ],
                closed=True,
            )
        )
        fringe = [
            (cx - rx - 2, cy - 2.0),
            (cx - rx + 1.5, g.brow_y - 1.6),
            (cx - 4, g.brow_y - 1.3),
            (cx + 3, g.brow_y - 1.7),
            (cx + rx - 1.5, g.brow_y - 2.4),
            (cx + rx + 2, cy - 2.0),
        ]
        front = c.union(
            c.clip(_cap(c, g, 1.6), _above(c, fringe)),
            *(
                _side_curtain(c, g, sd, y0=cy - 6.0, y1=g.mouth_y + 5.0, inset=1.6, out=3.6)
                for sd in (-1, 1)
            ),
        )
        return HairMasks(back, front)
    if s == "long":
        back = c.poly(
            catmull_rom(
                [
                    (cx, top - 2.6),
                    (cx + rx + 3.6, cy - 8.0),
                    (cx + rx + 5.4, cy + 10.0),
                    (cx + rx + 7.6, 70.0),
                    (cx + rx + 7.0, 80.0),
                    (cx, 82.0),
                    (cx - rx - 7.0, 80.0),
                    (cx - rx - 7.6, 70.0),
                    (cx - rx - 5.4, cy + 10.0),
                    (cx - rx - 3.6, cy - 8.0),
                ],
                closed=True,
            )
        )
        part_x = cx + 2.5
        hairline = [
            (cx - rx - 2, cy + 2.0),
            (cx - rx + 1.0, cy - 5.0),
            (cx - 6.0, cy - 9.8),
            (part_x - 0.6, top + 3.2),
            (part_x + 0.6, top + 3.2),
            (cx + 8.0, cy - 10.4),
            (cx + rx - 1.0, cy - 5.5),
            (cx + rx + 2, cy + 2.0),
        ]
        front = c.union(
            c.clip(_cap(c, g, 1.7), _above(c, hairline)),
            *(
                _side_curtain(c, g, sd, y0=cy - 5.0, y1=g.chin + 6.0, inset=1.2, out=4.2)
                for sd in (-1, 1)
            ),
        )
        return HairMasks(back, front)
    if s in ("buns", "ponytail"):
        if s == "buns":
            hairline = [
                (cx - rx - 1.5, side_y),
                (cx - rx + 1.2, cy - 6.0),
                (cx - 6.0, cy - 11.4),
                (cx, cy - 12.4),
                (cx + 6.0, cy - 11.4),
                (cx + rx - 1.2, cy - 6.0),
                (cx + rx + 1.5, side_y),
            ]
            back = c.union(*(c.ellipse(cx + sd * 10.8, top + 0.8, 5.6, 5.4) for sd in (-1, 1)))
        else:
            hairline = [
                (cx - rx - 1.5, side_y),
                (cx - rx + 1.4, cy - 6.0),
                (cx - 5.0, cy - 8.8),
                (cx + 2.0, cy - 11.6),
                (cx + rx - 1.5, cy - 7.0),
                (cx + rx + 1.5, side_y),
            ]
            back = c.poly(
                catmull_rom(
                    [
                        (cx + 3.0, top - 1.0),
                        (cx + rx + 5.0, cy - 10.0),
                        (cx + rx + 8.4, cy + 2.0),
                        (cx + rx + 8.0, cy + 14.0),
                        (cx + rx + 5.0, cy + 24.0),
                        (cx + rx + 4.6, cy + 14.0),
                        (cx + rx + 3.2, cy + 2.0),
                        (cx + rx - 1.0, cy - 8.0),
                    ],
                    closed=True,
                )
            )
        front = c.clip(_cap(c, g, 1.0), _above(c, hairline))
        return HairMasks(back, front)
    if s == "afro":
        ocx, ocy, orx, ory = cx, cy - 5.5, rx + 7.2, g.ry_top + 5.2
        parts = [c.ellipse(ocx, ocy, orx, ory)]
        for i in range(18):
            a = 2 * math.pi * i / 18
            parts.append(
                c.ellipse(ocx + orx * math.cos(a) * 0.96, ocy + ory * math.sin(a) * 0.96, 3.4, 3.4)
            )
        back = c.union(*parts)
        hairline = [
            (cx - rx - 2, side_y),
            (cx - rx + 1.0, cy - 6.0),
            (cx - 6.0, cy - 10.0),
            (cx, cy - 10.8),
            (cx + 6.0, cy - 10.0),
            (cx + rx - 1.0, cy - 6.0),
            (cx + rx + 2, side_y),
        ]
        bumps = [
            c.ellipse(cx + u * (rx - 2.0), cy - 10.4 + 4.0 * u * u, 1.6, 1.6)
            for u in (-0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9)
        ]
        front = c.clip(
            c.union(c.clip(_cap(c, g, 1.4), _above(c, hairline)), *bumps), _cap(c, g, 1.4)
        )
        return HairMasks(back, front)
    raise ValueError(f"no drawing for hair style {s!r}")


def paint_hair_back(c: Canvas, masks: HairMasks, g: FaceGeom, look: Look) -> None:
    if masks.back is None:
        return
    hair = look.hair_rgb
    c.fill(masks.back, shade(hair, 0.86))
    lit = c.poly([(x - 2.0, y - 2.0) for x, y in g.outline(grow=6.0)])
    c.fill(c.clip(c.blur(c.cut(masks.back, lit), 1.5), masks.back), shade(hair, 0.62), 0.5)
    if look.hair_style == "afro":
        _curls(c, masks.back, g, shade(hair, 0.62), spread=1.0)
    if look.hair_style == "buns":
        for sd in (-1, 1):
            bx, by = g.cx + sd * 10.8, g.top + 0.8
            swirl = [
                (bx + r * math.cos(a), by + r * math.sin(a))
                for r, a in (
                    (3.8 - 0.3 * i, 0.6 * i + (0 if sd > 0 else math.pi)) for i in range(9)
                )
            ]
            c.fill(
                c.clip(c.stroke(catmull_rom(swirl, closed=False), 0.45), masks.back),
                shade(hair, 0.6),
                0.8,
            )
            hl = c.clip(c.blur(c.ellipse(bx - 1.8, by - 2.2, 2.0, 1.0), 0.5), masks.back)
            c.fill(hl, _highlight(hair), 0.45)
    if look.hair_style == "ponytail":
        tie_x, tie_y = g.cx + g.rx + 2.6, g.cy - 9.0
        c.fill(c.ellipse(tie_x, tie_y, 1.9, 1.3), look.accent_rgb)


def _highlight(hair: tuple[int, int, int]) -> tuple[int, int, int]:
    return mix(hair, (255, 250, 240), 0.28 if sum(hair) > 300 else 0.22)


def _curls(
    c: Canvas, mask: Image.Image, g: FaceGeom, colour: tuple[int, int, int], *, spread: float
) -> None:
    for i in range(26):
        # a fixed golden-angle scatter: the same curls on every render
        a = i * 2.39996
        r = 3.0 + 19.0 * math.sqrt((i + 0.5) / 26) * spread
        x, y = g.cx + r * math.cos(a), g.cy - 6.0 + r * 0.8 * math.sin(a)
        arc = [(x + 1.1 * math.cos(t), y + 1.1 * math.sin(t)) for t in (0.2, 1.2, 2.2, 3.0)]
        c.fill(c.clip(c.stroke(arc, 0.35), mask), colour, 0.7)


def paint_hair_front(c: Canvas, masks: HairMasks, g: FaceGeom, look: Look) -> None:
    if masks.front is None:
        return
    hair = look.hair_rgb
    front = masks.front
    c.fill(front, hair)
    lit = c.poly([(x - 1.8, y - 1.8) for x, y in g.outline(grow=1.0)])
    c.fill(c.clip(c.blur(c.cut(front, lit), 1.0), front), shade(hair, 0.78), 0.55)
    sweep = [
        (g.cx + (g.rx - 2.0) * math.cos(a), g.cy - (g.ry_top - 1.2) * math.sin(a))
        for a in (math.radians(d) for d in range(150, 95, -8))
    ]
    c.fill(c.clip(c.blur(c.stroke(sweep, 1.6), 0.6), front), _highlight(hair), 0.6)
    if look.hair_style == "afro":
        _curls(c, front, g, shade(hair, 0.7), spread=0.7)
        return
    strands: list[list[Point]] = []
    if look.hair_style in ("long", "bob"):
        for sd in (-1, 1):
            x0 = g.cx + sd * (g.rx + 1.0)
            strands.append(
                [(g.cx + sd * 4.0, g.top + 2.0), (x0 - sd * 1.5, g.cy - 4.0), (x0, g.cy + 10.0)]
            )
    elif look.hair_style in ("buns", "ponytail"):
        for u in (-0.5, 0.0, 0.5):
            strands.append(
                [(g.cx + u * 10, g.cy - 11.0), (g.cx + u * 8.0, g.top + 3.0), (g.cx + u * 4, g.top)]
            )
    else:
        for u in (-0.45, 0.05, 0.5):
            strands.append(
                [
                    (g.cx + u * 12, g.cy - 9.0),
                    (g.cx + u * 12 + 2.0, g.top + 3.0),
                    (g.cx + u * 10 + 3.5, g.top),
                ]
            )
    for st in strands:
        c.fill(c.clip(c.stroke(catmull_rom(st, closed=False), 0.32), front), shade(hair, 0.7), 0.55)
