"""Procedural backgrounds ("sets"), drawn deterministically at any size.

Each set is drawn in units of 1/100 of the frame height (x runs to 100 * width / height), at twice
the size and box-filtered down, then softly blurred so the characters in front stand out. A name
like ``"#00ff00"`` gives a solid colour (for chroma keying).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from avatar.draw import Rgb, shade

_SS = 2


class _SetPainter:
    def __init__(self, width_px: int, height_px: int) -> None:
        self.w, self.h = width_px * _SS, height_px * _SS
        self.u = self.h / 100.0
        self.wu = 100.0 * width_px / height_px  # frame width in units
        self.img = Image.new("RGB", (self.w, self.h))
        self.d = ImageDraw.Draw(self.img, "RGBA")

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (x * self.u, y * self.u)

    def gradient(self, stops: list[tuple[float, Rgb]]) -> None:
        """Vertical gradient: (y in units, colour) stops."""
        ys = np.arange(self.h, dtype=np.float32) / self.u
        pos = np.array([s for s, _ in stops], np.float32)
        cols = np.array([c for _, c in stops], np.float32)
        rgb = np.stack([np.interp(ys, pos, cols[:, i]) for i in range(3)], axis=-1)
        arr = np.broadcast_to(rgb[:, None, :], (self.h, self.w, 3))
        self.img.paste(Image.fromarray(np.rint(arr).astype(np.uint8)))
        self.d = ImageDraw.Draw(self.img, "RGBA")

    def rect(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        fill: Rgb,
        *,
        alpha: int = 255,
        radius: float = 0.0,
    ) -> None:
        self.d.rounded_rectangle(
            (*self.p(x0, y0), *self.p(x1, y1)), radius=radius * self.u, fill=(*fill, alpha)
        )

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, fill: Rgb, *, alpha: int = 255
    ) -> None:
        self.d.ellipse((*self.p(cx - rx, cy - ry), *self.p(cx + rx, cy + ry)), fill=(*fill, alpha))

    def poly(self, pts: list[tuple[float, float]], fill: Rgb, *, alpha: int = 255) -> None:
        self.d.polygon([self.p(x, y) for x, y in pts], fill=(*fill, alpha))

    def leaf(
        self, x: float, y: float, angle: float, length: float, width: float, fill: Rgb
    ) -> None:
        """A pointed leaf from (x, y) in direction ``angle`` (radians, 0 = right, screen y down)."""
        ca, sa = math.cos(angle), math.sin(angle)
        pts = []
        for i in range(13):
            t = i / 12
            half = width / 2 * math.sin(math.pi * t)
            pts.append((x + ca * length * t - sa * half, y + sa * length * t + ca * half))
        for i in range(11, 0, -1):
            t = i / 12
            half = width / 2 * math.sin(math.pi * t)
            pts.append((x + ca * length * t + sa * half, y + sa * length * t - ca * half))
        self.poly(pts, fill)

    def plant(self, x: float, pot_top: float, *, size: float, pot: Rgb) -> None:
        for k in range(9):
            ang = math.pi * (1.12 + 0.76 * k / 8)
            green = (86, 150, 96) if k % 2 else (108, 172, 108)
            self.leaf(x, pot_top, ang, size * (0.8 + 0.3 * ((k * 5) % 3) / 2), size * 0.32, green)
        self.rect(
            x - size * 0.36,
            pot_top - size * 0.05,
            x + size * 0.36,
            pot_top + size * 0.7,
            pot,
            radius=size * 0.08,
        )

    def line(
        self, pts: list[tuple[float, float]], fill: Rgb, width: float, *, alpha: int = 255
    ) -> None:
        self.d.line(
            [self.p(x, y) for x, y in pts], fill=(*fill, alpha), width=max(1, round(width * self.u))
        )

    def glow(self, cx: float, cy: float, r: float, colour: Rgb, strength: float) -> None:
        """A soft radial light (or shadow, with a dark colour)."""
        arr = np.asarray(self.img, np.float32)
        yy, xx = np.mgrid[0 : self.h, 0 : self.w].astype(np.float32) / self.u
        d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (r * r)
        a = (strength * np.exp(-d2 * 2.0))[..., None]
        arr = arr * (1 - a) + np.array(colour, np.float32) * a
        self.img = Image.fromarray(np.rint(arr).astype(np.uint8))
        self.d = ImageDraw.Draw(self.img, "RGBA")

    def finish(self, *, blur_units: float, vignette: float) -> np.ndarray:
        img = self.img.reduce(_SS)
        if blur_units > 0:
            img = img.filter(ImageFilter.GaussianBlur(blur_units * self.u / _SS))
        arr = np.asarray(img, np.float32)
        if vignette > 0:
            h, w = arr.shape[:2]
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            r2 = ((xx - w / 2) / (w / 2)) ** 2 * 0.7 + ((yy - h * 0.45) / (h / 2)) ** 2
            arr *= (1.0 - vignette * np.clip(r2 - 0.35, 0, None) ** 1.2)[..., None]
        return np.ascontiguousarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def _studio(p: _SetPainter) -> np.ndarray:
    p.gradient([(0, (196, 208, 222)), (60, (168, 184, 204)), (100, (138, 154, 180))])
    p.glow(p.wu / 2, 40, 55, (246, 242, 236), 0.75)
    for i, (fx, fy, r) in enumerate(((0.12, 18, 9), (0.86, 26, 12), (0.7, 8, 6), (0.25, 70, 14))):
        p.ellipse(p.wu * fx, fy, r, r, (255, 255, 255) if i % 2 else (232, 222, 250), alpha=34)
    return p.finish(blur_units=1.2, vignette=0.35)


def _kitchen(p: _SetPainter) -> np.ndarray:
    wall, tile_line = (242, 232, 214), (226, 214, 196)
    p.gradient([(0, wall), (100, shade(wall, 0.92))])
    for row in range(0, 11):  # subway tiles between cabinets and counter
        y = 25 + row * 3.6
        p.line([(0, y), (p.wu, y)], tile_line, 0.35)
        off = 0 if row % 2 else 3.8
        for k in range(int(p.wu / 7.6) + 2):
            x = off + k * 7.6
            p.line([(x, y), (x, y + 3.6)], tile_line, 0.35)
    sage = (140, 168, 148)
    p.rect(-1, -1, p.wu + 1, 22, sage)
    p.rect(-1, 21, p.wu + 1, 23, shade(sage, 0.8))
    door = 16.0
    n = int(p.wu / door) + 1
    for k in range(n):
        x = k * door + (p.wu - n * door) / 2
        p.rect(x + 0.8, 1, x + door - 0.8, 20, shade(sage, 1.06), radius=0.8)
        p.rect(x + door / 2 - 2.5, 16.5, x + door / 2 + 2.5, 17.6, (214, 180, 110), radius=0.5)
    wx = p.wu * 0.2
    p.rect(wx - 13, 28, wx + 13, 56, (250, 250, 246), radius=1.0)
    p.rect(wx - 11.8, 29.2, wx + 11.8, 54.8, (190, 222, 240))
    p.ellipse(wx - 4, 55, 7.8, 4.6, (142, 190, 130))
    p.ellipse(wx + 5, 55.5, 6.5, 3.6, (124, 178, 118))
    p.rect(wx - 0.6, 29, wx + 0.6, 55, (250, 250, 246))
    p.rect(wx - 12, 41.4, wx + 12, 42.6, (250, 250, 246))
    p.rect(wx - 14, 54.8, wx + 14, 57.0, (250, 250, 246), radius=0.5)
    p.glow(wx, 40, 18, (255, 252, 236), 0.35)
    p.rect(-1, 60, p.wu + 1, 64.5, (198, 152, 106))
    p.rect(-1, 64, p.wu + 1, 65.5, (160, 118, 80))
    low = (126, 154, 134)
    p.rect(-1, 65.5, p.wu + 1, 101, low)
    for k in range(int(p.wu / 20) + 1):
        x = k * 20 + 1
        p.rect(x + 1, 68, x + 18, 99, shade(low, 1.06), radius=0.8)
        p.rect(x + 8, 70, x + 11, 71, (214, 180, 110), radius=0.5)
    p.plant(p.wu * 0.8, 55.0, size=7.0, pot=(214, 112, 84))
    kx = p.wu * 0.62
    p.ellipse(kx, 56, 5, 4.5, (232, 96, 80))
    p.rect(kx - 4.5, 56, kx + 4.5, 60, (232, 96, 80))
    p.rect(kx - 2, 50.6, kx + 2, 52, (60, 60, 66), radius=0.6)
    return p.finish(blur_units=0.45, vignette=0.22)


def _park(p: _SetPainter) -> np.ndarray:
    p.gradient([(0, (136, 192, 234)), (55, (208, 232, 244)), (100, (208, 232, 244))])
    p.glow(p.wu * 0.82, 10, 22, (255, 248, 220), 0.6)
    for cx, cy, s in ((0.15, 14, 1.0), (0.55, 8, 0.8), (0.9, 22, 0.7)):
        x = p.wu * cx
        for dx, dy, r in ((-5, 1, 4.0), (0, -1.5, 5.2), (5.5, 0.8, 4.2), (1, 2, 4.6)):
            p.ellipse(x + dx * s, cy + dy * s, r * s * 1.3, r * s, (255, 255, 255), alpha=230)
    far = [
        (x, 50 - 4 * math.sin(x / 13.0) - 2 * math.sin(x / 5.3))
        for x in np.linspace(-2, p.wu + 2, 60)
    ]
    p.poly([*far, (p.wu + 2, 101), (-2, 101)], (166, 206, 156))
    near = [(x, 58 - 3 * math.sin(x / 17.0 + 1.0)) for x in np.linspace(-2, p.wu + 2, 60)]
    p.poly([*near, (p.wu + 2, 101), (-2, 101)], (128, 186, 112))
    for fx, s in ((0.08, 1.1), (0.3, 0.8), (0.72, 0.9), (0.95, 1.2)):
        x, base = p.wu * fx, 62
        p.rect(x - 1.2 * s, base - 16 * s, x + 1.2 * s, base, (124, 88, 62))
        for dx, dy, r, c in (
            (-4, -18, 6, (84, 150, 88)),
            (4, -19, 6, (84, 150, 88)),
            (0, -24, 7, (98, 170, 98)),
            (-2, -20, 5, (112, 182, 108)),
        ):
            p.ellipse(x + dx * s, base + dy * s, r * s, r * s, c)
    p.rect(-2, 70, p.wu + 2, 101, (122, 182, 98))
    path = [(p.wu * 0.42, 58.5), (p.wu * 0.58, 58.5), (p.wu * 0.85, 101), (p.wu * 0.15, 101)]
    p.poly(path, (230, 212, 176))
    for i in range(40):
        x = (i * 37.7) % p.wu
        y = 72 + (i * 13.3) % 26
        p.ellipse(x, y, 0.7, 0.7, ((250, 240, 120), (250, 170, 190), (255, 255, 255))[i % 3])
    return p.finish(blur_units=0.55, vignette=0.18)


def _office(p: _SetPainter) -> np.ndarray:
    p.gradient([(0, (226, 230, 236)), (100, (200, 208, 218))])
    wx0, wx1 = p.wu * 0.52, p.wu * 0.97
    p.rect(wx0, 10, wx1, 66, (246, 248, 250), radius=0.8)
    p.rect(wx0 + 1.2, 11.2, wx1 - 1.2, 64.8, (186, 214, 236))
    for i in range(int((wx1 - wx0) / 5.5)):
        x = wx0 + 1.2 + i * 5.5
        top = 34 + 18 * ((i * 7919) % 11) / 11.0
        p.rect(x, top, x + 4.6, 64.8, (156, 184, 212))
        for wy in np.arange(top + 2, 62, 3.2):
            p.rect(x + 1.0, wy, x + 1.8, wy + 1.2, (220, 236, 248))
    for x in np.linspace(wx0, wx1, 4):
        p.rect(x - 0.5, 10, x + 0.5, 66, (246, 248, 250))
    p.glow((wx0 + wx1) / 2, 30, 30, (255, 255, 255), 0.25)
    sx0, sx1 = p.wu * 0.03, p.wu * 0.3
    book_cols = [
        (214, 96, 84),
        (70, 130, 180),
        (236, 190, 90),
        (96, 160, 120),
        (150, 110, 170),
        (226, 140, 70),
    ]
    for shelf_y in (26, 46, 66):
        p.rect(sx0, shelf_y, sx1, shelf_y + 1.6, (170, 128, 92))
        x, i = sx0 + 1.0, int(shelf_y)
        while x < sx1 - 3:
            w = 1.6 + (i * 7 % 5) * 0.35
            hgt = 9 + (i * 11 % 6)
            if i % 9 != 4:
                p.rect(x, shelf_y - hgt, x + w, shelf_y, book_cols[i % len(book_cols)])
            x += w + 0.25
            i += 1
    fx = p.wu * 0.4
    p.rect(fx - 6, 14, fx + 6, 28, (250, 250, 250))
    p.rect(fx - 5, 15, fx + 5, 27, (240, 196, 120))
    p.ellipse(fx + 1.5, 21, 3, 3, (220, 110, 90))
    p.plant(p.wu * 0.44, 64.0, size=11.0, pot=(96, 100, 112))
    p.rect(-2, 80, p.wu + 2, 101, (176, 150, 124))
    return p.finish(blur_units=0.6, vignette=0.2)


def _newsroom(p: _SetPainter) -> np.ndarray:
    p.gradient([(0, (18, 30, 64)), (60, (30, 54, 108)), (100, (20, 36, 76))])
    p.glow(p.wu / 2, 38, 45, (70, 120, 210), 0.5)
    cols = max(2, round(p.wu / 34))
    span = p.wu / cols
    for k in range(cols):
        x = k * span
        p.rect(x + 1.5, 12, x + span - 1.5, 42, (44, 84, 160), radius=1.0)
        p.rect(x + 2.5, 13, x + span - 2.5, 41, (58, 108, 196), radius=0.8)
        pts = [
            (x + 3.5 + j * (span - 7) / 7, 34 - 12 * abs(math.sin(k * 1.7 + j * 0.9)))
            for j in range(8)
        ]
        p.line(pts, (170, 220, 255), 0.5, alpha=200)
    for y, a in ((48, 120), (51, 70), (72, 90)):
        p.rect(-1, y, p.wu + 1, y + 0.5, (120, 200, 255), alpha=a)
    for i in range(24):
        p.ellipse(
            (i * 41.3) % p.wu,
            4 + (i * 17.9) % 90,
            1.5 + i % 3,
            1.5 + i % 3,
            (150, 190, 255),
            alpha=40,
        )
    p.rect(-2, 82, p.wu + 2, 101, (14, 24, 52))
    p.rect(-2, 81.5, p.wu + 2, 82.5, (90, 170, 240), alpha=200)
    return p.finish(blur_units=0.5, vignette=0.3)


_SETS: dict[str, Callable[[_SetPainter], np.ndarray]] = {
    "studio": _studio,
    "kitchen": _kitchen,
    "park": _park,
    "office": _office,
    "newsroom": _newsroom,
}
SET_NAMES: tuple[str, ...] = tuple(_SETS)


def parse_colour(name: str) -> Rgb | None:
    """``"#rgb"`` or ``"#rrggbb"`` → (r, g, b); None when ``name`` is not a colour."""
    s = name.strip().lower()
    if not s.startswith("#"):
        return None
    digits = s[1:]
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    if len(digits) != 6 or any(ch not in "0123456789abcdef" for ch in digits):
        raise ValueError(f"bad colour {name!r}: write it as #rgb or #rrggbb")
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def check_set_name(name: str) -> None:
    """Raise ValueError naming the known sets when ``name`` is neither a set nor a colour."""
    if parse_colour(name) is None and name.strip().lower() not in _SETS:
        raise ValueError(
            f"unknown set {name!r}; known sets: {', '.join(SET_NAMES)}, or a colour like '#00ff00'"
        )


def render_set(name: str, *, width_px: int, height_px: int) -> np.ndarray:
    """The set ``name`` as a C-contiguous (height_px, width_px, 3) uint8 RGB image."""
    if not (8 <= width_px <= 4096 and 8 <= height_px <= 4096):
        raise ValueError(f"set size must be 8..4096 pixels each way, got {width_px}x{height_px}")
    check_set_name(name)
    colour = parse_colour(name)
    if colour is not None:
        return np.full((height_px, width_px, 3), colour, np.uint8)
    return _SETS[name.strip().lower()](_SetPainter(width_px, height_px))
