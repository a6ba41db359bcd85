"""Neck, shoulders and clothes (t-shirt, hoodie, blazer, sweater, collared shirt).

Drawn on a card taller than the sprite (down to ``BODY_BOTTOM``) so breathing can lift the body
without its lower edge coming into view.
"""

from __future__ import annotations

from PIL import Image

from avatar.colors import skin_shadow_rgb
from avatar.draw import Canvas, Point, catmull_rom, shade
from avatar.face import FaceGeom
from avatar.spec import Look

BODY_BOTTOM = 106.0
SHOULDER_Y = 64.5


BUILD_WIDTH = {"slim": 0.86, "average": 1.0, "broad": 1.13}
"""Shoulder and chest width per ``Look.build`` (broad shoulders reach the sprite's edges)."""


def _torso_points(build: str = "average") -> list[Point]:
    """Outline of the shoulders and chest, x relative to the centre line, left to right."""
    y = SHOULDER_Y
    k = BUILD_WIDTH[build]
    half = [
        (6.5, y),
        (15.5, y + 2.2),
        (23.5, y + 5.4),
        (28.2, y + 10.5),
        (30.2, y + 19.0),
        (30.8, BODY_BOTTOM + 4),
    ]
    # the neck end stays put; the shoulders widen or narrow with the build
    half = [(x if i == 0 else 6.5 + (x - 6.5) * k, yy) for i, (x, yy) in enumerate(half)]
    return [(-x, yy) for x, yy in half[::-1]] + half


def _torso(c: Canvas, cx: float, build: str = "average") -> Image.Image:
    return c.poly(catmull_rom([(cx + x, y) for x, y in _torso_points(build)], closed=False, steps=8))


def draw_body(c: Canvas, g: FaceGeom, look: Look) -> None:
    cx = g.cx
    skin = look.skin_rgb
    cloth = look.clothes_rgb
    nw = 0.31 * g.rx
    style = look.clothes_style
    if style == "hoodie":
        hood = c.poly(
            catmull_rom(
                [
                    (cx - 12.5, SHOULDER_Y + 2.0),
                    (cx - 10.0, SHOULDER_Y - 3.2),
                    (cx, SHOULDER_Y - 4.4),
                    (cx + 10.0, SHOULDER_Y - 3.2),
                    (cx + 12.5, SHOULDER_Y + 2.0),
                    (cx, SHOULDER_Y + 5.0),
                ],
                closed=True,
            )
        )
        c.fill(hood, shade(cloth, 0.78))
    neck = c.rect(cx - nw, g.cy + 5.0, cx + nw, SHOULDER_Y + 8.0, radius=1.0)
    c.fill(neck, shade(skin, 0.95))
    chin_drop = c.poly([(x, y + 2.6) for x, y in g.outline()])
    c.fill(c.clip(c.blur(chin_drop, 1.2), neck), skin_shadow_rgb(skin), 0.85)
    torso = _torso(c, cx, look.build)
    opening = c.ellipse(cx, SHOULDER_Y + 0.2, nw + 1.6, 4.0)
    if style == "blazer":
        opening = c.poly(
            [
                (cx - nw - 1.2, SHOULDER_Y - 1.0),
                (cx + nw + 1.2, SHOULDER_Y - 1.0),
                (cx + 1.0, SHOULDER_Y + 7.0),
                (cx - 1.0, SHOULDER_Y + 7.0),
            ]
        )
    if style == "collared":
        opening = c.poly(
            [
                (cx - nw - 0.6, SHOULDER_Y - 1.0),
                (cx + nw + 0.6, SHOULDER_Y - 1.0),
                (cx, SHOULDER_Y + 5.5),
            ]
        )
    body = c.cut(torso, opening)
    c.fill(body, cloth)
    # form: shadowed flanks, a lit upper chest, arm seams
    inner = c.poly([(cx + x * 0.86, y + 3.0) for x, y in _torso_points(look.build)])
    c.fill(c.clip(c.blur(c.cut(body, inner), 2.0), body), shade(cloth, 0.8), 0.7)
    c.fill(
        c.clip(c.blur(c.ellipse(cx - 7.0, SHOULDER_Y + 6.0, 12.0, 4.0), 2.0), body),
        shade(cloth, 1.12),
        0.5,
    )
    for sd in (-1, 1):
        seam = catmull_rom(
            [
                (cx + sd * 22.0, SHOULDER_Y + 4.6),
                (cx + sd * 20.4, SHOULDER_Y + 14.0),
                (cx + sd * 21.2, BODY_BOTTOM),
            ],
            closed=False,
        )
        c.fill(c.clip(c.stroke(seam, 0.45), body), shade(cloth, 0.72), 0.8)
    _clothes_details(c, g, look, body=body, nw=nw)


def _clothes_details(c: Canvas, g: FaceGeom, look: Look, *, body: Image.Image, nw: float) -> None:
    cx, y = g.cx, SHOULDER_Y
    cloth, accent = look.clothes_rgb, look.accent_rgb
    dark = shade(cloth, 0.72)
    style = look.clothes_style
    if style == "tshirt":
        rim = c.cut(c.ellipse(cx, y + 0.2, nw + 2.6, 5.0), c.ellipse(cx, y + 0.2, nw + 1.6, 4.0))
        c.fill(c.clip(rim, body), shade(cloth, 0.86))
    elif style == "hoodie":
        rim = c.cut(c.ellipse(cx, y + 0.2, nw + 2.8, 5.2), c.ellipse(cx, y + 0.2, nw + 1.6, 4.0))
        c.fill(c.clip(rim, body), shade(cloth, 0.86))
        for sd in (-1, 1):
            x = cx + sd * 3.2
            c.fill(
                c.stroke(
                    catmull_rom(
                        [(x, y + 3.8), (x + sd * 0.4, y + 9.0), (x + sd * 0.2, y + 14.0)],
                        closed=False,
                    ),
                    0.55,
                ),
                accent,
            )
            c.fill(
                c.rect(x + sd * 0.2 - 0.55, y + 13.6, x + sd * 0.2 + 0.55, y + 16.0, radius=0.3),
                shade(accent, 0.8),
            )
    elif style == "sweater":
        rim = c.cut(c.ellipse(cx, y + 0.2, nw + 3.2, 5.6), c.ellipse(cx, y + 0.2, nw + 1.6, 4.0))
        c.fill(c.clip(rim, body), shade(cloth, 0.84))
        for k in range(-6, 7):
            c.fill(
                c.clip(
                    c.stroke([(cx + k * 1.3, y + 2.0), (cx + k * 1.5, y + 5.4)], 0.22),
                    c.clip(rim, body),
                ),
                shade(cloth, 0.7),
                0.6,
            )
        stripe = c.clip(c.rect(cx - 40, y + 16.0, cx + 40, y + 19.5), body)
        c.fill(stripe, accent)
        c.fill(c.clip(c.rect(cx - 40, y + 21.0, cx + 40, y + 22.0), body), accent)
    elif style == "blazer":
        shirt = c.poly(
            [
                (cx - nw - 1.2, y - 1.0),
                (cx + nw + 1.2, y - 1.0),
                (cx + 7.0, y + 4.0),
                (cx, y + 22.0),
                (cx - 7.0, y + 4.0),
            ]
        )
        c.fill(c.clip(shirt, body), accent)
        c.fill(
            c.clip(c.blur(c.ellipse(cx, y + 3.0, 6.0, 3.0), 1.0), c.clip(shirt, body)),
            shade(accent, 0.85),
            0.7,
        )
        for sd in (-1, 1):
            lapel = c.poly(
                [
                    (cx + sd * (nw + 1.4), y - 0.6),
                    (cx + sd * 10.5, y + 3.2),
                    (cx + sd * 8.0, y + 8.5),
                    (cx + sd * 10.0, y + 10.0),
                    (cx + sd * 0.6, y + 24.0),
                    (cx + sd * 7.0, y + 4.0),
                ]
            )
            c.fill(c.clip(lapel, body), shade(cloth, 0.86))
            c.fill(
                c.clip(c.stroke([(cx + sd * 7.0, y + 4.0), (cx + sd * 0.6, y + 24.0)], 0.35), body),
                dark,
                0.9,
            )
        c.fill(c.ellipse(cx + 1.8, y + 28.0, 0.9, 0.9), shade(cloth, 0.6))
    elif style == "collared":
        for sd in (-1, 1):
            wing = c.poly(
                catmull_rom(
                    [
                        (cx + sd * (nw + 0.9), y - 1.6),
                        (cx + sd * (nw + 2.6), y + 1.8),
                        (cx + sd * 5.6, y + 5.4),
                        (cx + sd * 0.2, y + 5.6),
                    ],
                    closed=True,
                    steps=4,
                )
            )
            c.fill(wing, shade(cloth, 1.14))
            c.fill(c.stroke([(cx + sd * 5.6, y + 5.4), (cx + sd * 0.2, y + 5.6)], 0.3), dark, 0.7)
        c.fill(c.clip(c.stroke([(cx, y + 5.5), (cx, BODY_BOTTOM)], 0.35), body), dark, 0.7)
        for by in (y + 10.0, y + 17.0, y + 24.0):
            c.fill(c.ellipse(cx + 0.9, by, 0.62, 0.62), accent)
        pocket = c.cut(
            c.rect(cx + 8.0, y + 12.0, cx + 15.0, y + 20.0, radius=1.0),
            c.rect(cx + 8.35, y + 12.35, cx + 14.65, y + 19.65, radius=0.8),
        )
        c.fill(c.clip(pocket, body), dark, 0.7)
