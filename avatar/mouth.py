"""Mouth shapes: one drawing per viseme, from the articulation in ``lipsync.visemes.MOUTH_SHAPES``.

jaw_open sets the gap between the lips, width how far apart the corners are, round narrows and
thickens the lips into an O; upper/lower teeth, tongue and lip tuck fill the opening with the
fixed interior colours of ``avatar.colors`` (flat, so the opening can be measured from pixels).
``sil`` and ``PP`` are fully closed: no interior pixel at all. ``blend_shapes`` gives the
mouth between two visemes (what live audio asks for: any opening, not a handful of sprites).
"""

from __future__ import annotations

import math

from avatar.colors import CAVITY_RGB, TEETH_RGB, TONGUE_RGB, lip_line_rgb, lip_rgb
from avatar.draw import Canvas, Point, catmull_rom, shade, tapered
from lipsync.visemes import MOUTH_SHAPES, MouthShape

OPEN_UNITS = 4.8
"""Gap between the lips at jaw_open = 1, in design units."""

# Extent of any mouth drawing around the mouth centre, design units (left, top, right, bottom).
MOUTH_EXTENT_UNITS = (-8.0, -4.2, 8.0, 6.6)


_MAX_MIN_GAP = 1.8  # design units: beyond this the mouth would outgrow the face
_LEAST_OPEN = min(m.jaw_open for m in MOUTH_SHAPES.values() if m.jaw_open > 0)


def blend_shapes(a: MouthShape, b: MouthShape, t: float) -> MouthShape:
    """The mouth part way (``t`` 0..1) from shape ``a`` to shape ``b``: every articulation
    interpolated, so the in-between is one mouth opened by the in-between jaw (not two drawings
    faded over each other, which shows a ghost of the wider one and measures as the narrower)."""
    t = min(1.0, max(0.0, float(t)))
    return MouthShape(**{
        f: (1.0 - t) * getattr(a, f) + t * getattr(b, f)
        for f in ("jaw_open", "width", "round", "upper_teeth", "lower_teeth", "tongue", "lip_tuck")
    })


def _half_width(m: MouthShape) -> float:
    return 2.7 + 4.0 * m.width - 1.4 * m.round


def _profile(u: float, p: float) -> float:
    """Superellipse height profile across the mouth, u in -1..1."""
    return max(0.0, 1.0 - abs(u) ** p) ** (1.0 / p)


def draw_mouth(
    c: Canvas,
    *,
    cx: float,
    cy: float,
    shape: MouthShape,
    skin: tuple[int, int, int],
    pressed: bool = False,
    min_gap: float = 0.0,
) -> None:
    """Draw one mouth centred at (cx, cy). ``pressed`` is the PP closure (lips pressed together).

    ``min_gap`` (design units) widens every open mouth by the same amount so that the least open
    one is at least that tall: small sprites keep a readable opening, and the order of
    openings (what ``avatar.measure`` reads) stays that of jaw_open.
    """
    lip = lip_rgb(skin)
    line = lip_line_rgb(skin)
    hw = _half_width(shape)
    smile = 0.55 * max(0.0, shape.width - 0.45) - 0.25 * shape.round
    gap = OPEN_UNITS * shape.jaw_open
    if gap > 0.0:
        gap += max(0.0, min(min_gap, _MAX_MIN_GAP) - OPEN_UNITS * _LEAST_OPEN)
    if gap <= 0.0:
        _closed(c, cx=cx, cy=cy, hw=hw, lip=lip, line=line, pressed=pressed)
        return
    p = 2.0 + 1.2 * (1.0 - shape.round)
    a_top = gap * (0.26 + 0.2 * shape.round)
    a_bot = gap - a_top
    t_up = 0.85 + 0.7 * shape.round
    t_lo = (1.05 + 0.8 * shape.round) * (0.55 if shape.lip_tuck > 0.5 else 1.0)
    n = 40

    def lift(u: float) -> float:
        return -smile * u * u

    top_edge = [
        (cx + hw * u, cy - a_top * _profile(u, p) + lift(u))
        for u in (-1 + 2 * i / n for i in range(n + 1))
    ]
    bot_edge = [
        (cx + hw * u, cy + a_bot * _profile(u, p) + lift(u))
        for u in (-1 + 2 * i / n for i in range(n + 1))
    ]
    opening = c.poly(top_edge + bot_edge[::-1])
    ow = hw + 0.55
    upper_outer: list[Point] = []
    lower_outer: list[Point] = []
    for i in range(n + 1):
        u = -1 + 2 * i / n
        prof = _profile(u, 2.0)
        bow = 0.35 * math.exp(-((u * 4.0) ** 2))  # the small dip of the cupid's bow
        upper_outer.append((cx + ow * u, cy - (a_top + t_up) * prof + bow + lift(u)))
        lower_outer.append((cx + ow * u, cy + (a_bot + t_lo) * prof + lift(u)))
    lips = c.poly(upper_outer + lower_outer[::-1])
    c.fill(lips, lip)
    c.fill(
        c.clip(c.poly(upper_outer + [(x, y + 0.2) for x, y in top_edge[::-1]]), lips),
        shade(lip, 0.9),
    )
    c.fill(opening, CAVITY_RGB)
    top_y = cy - a_top
    bot_y = cy + a_bot
    if shape.tongue > 0.0 and shape.tongue < 0.9:
        ty = bot_y - 0.25 * gap * shape.tongue
        c.fill(
            c.clip(c.ellipse(cx, ty + 1.4, hw * 0.62, 1.4 + 0.5 * gap * shape.tongue), opening),
            TONGUE_RGB,
        )
    if shape.upper_teeth > 0.0:
        # teeth never fill the whole opening: a dark gap always shows (and is what gets measured)
        depth = shape.upper_teeth * min(
            1.35, 0.45 * gap + 0.5, (0.6 if shape.lip_tuck > 0.5 else 0.5) * gap
        )
        c.fill(c.clip(c.rect(cx - hw, top_y - 2.0, cx + hw, top_y + depth), opening), TEETH_RGB)
    if shape.lower_teeth > 0.0:
        depth = shape.lower_teeth * min(1.05, 0.35 * gap + 0.4, 0.25 * gap)
        c.fill(c.clip(c.rect(cx - hw, bot_y - depth, cx + hw, bot_y + 2.0), opening), TEETH_RGB)
    if shape.tongue >= 0.9:
        # TH: the tongue tip shows between the teeth
        c.fill(
            c.clip(c.ellipse(cx, cy + 0.25 * gap + 0.7, hw * 0.55, 0.55 + 0.25 * gap), opening),
            TONGUE_RGB,
        )
    c.fill(
        c.blur(c.ellipse(cx + 0.8, bot_y + t_lo * 0.5, hw * 0.35, 0.28), 0.25),
        shade(lip, 1.25),
        0.6,
    )
    if shape.round < 0.4:
        _corners(c, cx=cx, cy=cy + lift(1.0), hw=ow, line=line)


def _closed(
    c: Canvas,
    *,
    cx: float,
    cy: float,
    hw: float,
    lip: tuple[int, int, int],
    line: tuple[int, int, int],
    pressed: bool,
) -> None:
    if pressed:
        hw *= 0.92
        c.fill(c.blur(c.ellipse(cx, cy - 0.25, hw * 0.8, 0.8), 0.2), shade(lip, 0.92), 0.9)
        c.fill(c.blur(c.ellipse(cx, cy + 0.45, hw * 0.75, 0.85), 0.2), shade(lip, 0.92), 0.9)
        pts = catmull_rom(
            [(cx - hw, cy + 0.05), (cx, cy + 0.15), (cx + hw, cy + 0.05)], closed=False
        )
        c.fill(
            c.poly(
                tapered(
                    pts,
                    [0.45 + 0.35 * math.sin(math.pi * i / (len(pts) - 1)) for i in range(len(pts))],
                )
            ),
            line,
        )
        return
    lower = catmull_rom(
        [(cx - hw * 0.62, cy + 0.35), (cx, cy + 1.55), (cx + hw * 0.62, cy + 0.35)], closed=False
    )
    c.fill(c.blur(c.poly(lower), 0.15), lip, 0.85)
    pts = catmull_rom(
        [
            (cx - hw, cy - 0.45),
            (cx - hw * 0.5, cy + 0.2),
            (cx, cy + 0.35),
            (cx + hw * 0.5, cy + 0.2),
            (cx + hw, cy - 0.45),
        ],
        closed=False,
    )
    widths = [0.3 + 0.32 * math.sin(math.pi * i / (len(pts) - 1)) for i in range(len(pts))]
    c.fill(c.poly(tapered(pts, widths)), line)


def _corners(c: Canvas, *, cx: float, cy: float, hw: float, line: tuple[int, int, int]) -> None:
    for side in (-1, 1):
        x = cx + side * hw
        crease = [(x - side * 0.1, cy + 0.1), (x + side * 0.35, cy - 0.45)]
        c.fill(c.stroke(crease, 0.28), line, 0.55)
