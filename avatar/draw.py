"""Supersampled vector drawing in design units, and premultiplied-RGBA compositing.

Characters are designed on a 64 x 100 unit card (the rig sprite); ``Canvas`` maps design units to
pixels of one box of the sprite, draws with Pillow at ``ss`` times the resolution and box-filters
down, which antialiases every edge. Everything here is deterministic: no randomness, no fonts.

Layers leave this module as float32 premultiplied RGBA arrays in 0..1, shape (h, w, 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

DESIGN_W = 64.0
DESIGN_H = 100.0

Point = tuple[float, float]
Rgb = tuple[int, int, int]


def mix(a: Rgb, b: Rgb, t: float) -> Rgb:
    """Linear blend of two colours: t=0 gives a, t=1 gives b."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def shade(c: Rgb, factor: float) -> Rgb:
    """Darker (factor < 1) or lighter towards white (factor > 1) version of a colour."""
    if factor <= 1.0:
        return (round(c[0] * factor), round(c[1] * factor), round(c[2] * factor))
    return mix(c, (255, 255, 255), min(1.0, factor - 1.0))


def catmull_rom(points: Sequence[Point], *, closed: bool, steps: int = 10) -> list[Point]:
    """A smooth curve through ``points`` (centripetal-free uniform Catmull-Rom)."""
    pts = list(points)
    n = len(pts)
    if n < 3:
        return pts
    out: list[Point] = []
    last = n if closed else n - 1
    for i in range(last):
        p0 = pts[(i - 1) % n] if closed or i > 0 else pts[0]
        p1, p2 = pts[i], pts[(i + 1) % n]
        p3 = pts[(i + 2) % n] if closed or i + 2 < n else pts[-1]
        for s in range(steps):
            t = s / steps
            t2, t3 = t * t, t * t * t
            out.append(
                tuple(  # type: ignore[arg-type]
                    0.5
                    * (
                        2 * p1[j]
                        + (-p0[j] + p2[j]) * t
                        + (2 * p0[j] - 5 * p1[j] + 4 * p2[j] - p3[j]) * t2
                        + (-p0[j] + 3 * p1[j] - 3 * p2[j] + p3[j]) * t3
                    )
                    for j in range(2)
                )
            )
    if not closed:
        out.append(pts[-1])
    return out


def tapered(points: Sequence[Point], widths: Sequence[float]) -> list[Point]:
    """Outline polygon of a stroke along ``points`` whose width varies per point."""
    left: list[Point] = []
    right: list[Point] = []
    n = len(points)
    for i, (x, y) in enumerate(points):
        ax, ay = points[max(0, i - 1)]
        bx, by = points[min(n - 1, i + 1)]
        dx, dy = bx - ax, by - ay
        norm = max(1e-9, (dx * dx + dy * dy) ** 0.5)
        nx, ny = -dy / norm, dx / norm
        h = widths[i] / 2
        left.append((x + nx * h, y + ny * h))
        right.append((x - nx * h, y - ny * h))
    return left + right[::-1]


class Canvas:
    """A transparent supersampled RGBA surface covering ``box_px`` of the sprite.

    Coordinates given to the drawing methods are design units of the whole sprite card; masks are
    Pillow "L" images at the supersampled size, combined with ``union``/``clip``/``cut``.
    """

    def __init__(self, *, box_px: tuple[int, int, int, int], px_per_unit: float, ss: int) -> None:
        x0, y0, x1, y1 = box_px
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"empty canvas box {box_px}")
        self.box_px = box_px
        self.ss = ss
        self.k = px_per_unit * ss
        self.size = ((x1 - x0) * ss, (y1 - y0) * ss)
        self.img = Image.new("RGBA", self.size, (0, 0, 0, 0))
        self._ox = x0 * ss
        self._oy = y0 * ss

    def xy(self, x: float, y: float) -> Point:
        return (x * self.k - self._ox, y * self.k - self._oy)

    def units(self, u: float) -> float:
        """Design units → supersampled pixels."""
        return u * self.k

    def empty(self) -> Image.Image:
        return Image.new("L", self.size, 0)

    def poly(self, points: Sequence[Point]) -> Image.Image:
        m = self.empty()
        ImageDraw.Draw(m).polygon([self.xy(x, y) for x, y in points], fill=255)
        return m

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> Image.Image:
        m = self.empty()
        (ax, ay), (bx, by) = self.xy(cx - rx, cy - ry), self.xy(cx + rx, cy + ry)
        ImageDraw.Draw(m).ellipse((ax, ay, bx, by), fill=255)
        return m

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, *, radius: float = 0.0
    ) -> Image.Image:
        m = self.empty()
        (ax, ay), (bx, by) = self.xy(x0, y0), self.xy(x1, y1)
        ImageDraw.Draw(m).rounded_rectangle((ax, ay, bx, by), radius=self.units(radius), fill=255)
        return m

    def stroke(self, points: Sequence[Point], width: float) -> Image.Image:
        """A round-capped line of constant ``width`` (design units) through ``points``."""
        m = self.empty()
        d = ImageDraw.Draw(m)
        pts = [self.xy(x, y) for x, y in points]
        w = max(1.0, self.units(width))
        d.line(pts, fill=255, width=round(w), joint="curve")
        r = w / 2
        for px, py in (pts[0], pts[-1]):
            d.ellipse((px - r, py - r, px + r, py + r), fill=255)
        return m

    def blur(self, mask: Image.Image, radius: float) -> Image.Image:
        """``mask`` softened by a Gaussian of ``radius`` design units (only around its content)."""
        bbox = mask.getbbox()
        if bbox is None:
            return mask
        r = self.units(radius)
        pad = int(3 * r) + 2
        W, H = self.size
        box = (
            max(0, bbox[0] - pad),
            max(0, bbox[1] - pad),
            min(W, bbox[2] + pad),
            min(H, bbox[3] + pad),
        )
        out = self.empty()
        out.paste(mask.crop(box).filter(ImageFilter.GaussianBlur(r)), box[:2])
        return out

    @staticmethod
    def union(*masks: Image.Image) -> Image.Image:
        out = masks[0]
        for m in masks[1:]:
            out = ImageChops.lighter(out, m)
        return out

    @staticmethod
    def clip(mask: Image.Image, to: Image.Image) -> Image.Image:
        """The part of ``mask`` inside ``to``."""
        a, b = mask.getbbox(), to.getbbox()
        out = Image.new("L", mask.size, 0)
        if a is None or b is None:
            return out
        box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
        if box[2] > box[0] and box[3] > box[1]:
            out.paste(ImageChops.multiply(mask.crop(box), to.crop(box)), box[:2])
        return out

    @staticmethod
    def cut(mask: Image.Image, away: Image.Image) -> Image.Image:
        """``mask`` with ``away`` removed."""
        return ImageChops.subtract(mask, away)

    def fill(self, mask: Image.Image, rgb: Rgb, opacity: float = 1.0) -> None:
        """Paint ``rgb`` through ``mask`` over what is already on the canvas."""
        bbox = mask.getbbox()
        if bbox is None:
            return
        m = mask.crop(bbox)
        if opacity < 1.0:
            m = m.point(lambda v: round(v * opacity))
        layer = Image.new("RGBA", m.size, (*rgb, 0))
        layer.putalpha(m)
        self.img.alpha_composite(layer, dest=(bbox[0], bbox[1]))

    def premul(self) -> np.ndarray:
        """The canvas box-filtered to pixel size: float32 premultiplied RGBA, (h, w, 4)."""
        ss = self.ss
        out = np.zeros((self.size[1] // ss, self.size[0] // ss, 4), np.float32)
        bbox = self.img.getchannel("A").getbbox()
        if bbox is None:
            return out
        # only the pixel blocks that hold something: premultiply ("RGBa"), then box-average
        x0, y0 = bbox[0] // ss, bbox[1] // ss
        x1, y1 = -(-bbox[2] // ss), -(-bbox[3] // ss)
        small = self.img.crop((x0 * ss, y0 * ss, x1 * ss, y1 * ss)).convert("RGBa").reduce(ss)
        out[y0:y1, x0:x1] = np.asarray(small, dtype=np.float32) / np.float32(255.0)
        return out


def over(dst: np.ndarray, src: np.ndarray, *, x: int = 0, y: int = 0) -> None:
    """Composite premultiplied RGBA ``src`` over ``dst`` in place, ``src`` at (x, y).

    ``dst`` is premultiplied RGBA, or opaque RGB (3 channels). Parts of ``src`` outside ``dst``
    are dropped.
    """
    h, w = src.shape[:2]
    H, W = dst.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    s = src[y0 - y : y1 - y, x0 - x : x1 - x]
    d = dst[y0:y1, x0:x1]
    d *= 1.0 - s[..., 3:4]
    d += s[..., : d.shape[-1]]


@dataclass(frozen=True, slots=True)
class Flat:
    """A premultiplied layer split for fast in-place compositing onto opaque RGB:
    ``rgb`` (h, w, 3) premultiplied colour and ``keep`` (h, w, 1) = 1 - alpha."""

    rgb: np.ndarray
    keep: np.ndarray

    @classmethod
    def of(cls, premul: np.ndarray) -> Flat:
        return cls(
            np.ascontiguousarray(premul[..., :3]), np.ascontiguousarray(1.0 - premul[..., 3:4])
        )

    def rows(self, y0: int, y1: int) -> Flat:
        return Flat(self.rgb[y0:y1], self.keep[y0:y1])


def over_rgb(dst: np.ndarray, src: Flat, *, x: int = 0, y: int = 0) -> None:
    """``over`` for an opaque float RGB ``dst`` and a ``Flat`` source at (x, y), in place."""
    h, w = src.rgb.shape[:2]
    H, W = dst.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    d = dst[y0:y1, x0:x1]
    np.multiply(d, src.keep[y0 - y : y1 - y, x0 - x : x1 - x], out=d)
    np.add(d, src.rgb[y0 - y : y1 - y, x0 - x : x1 - x], out=d)


def straight_u8(premul: np.ndarray) -> np.ndarray:
    """Premultiplied float RGBA → straight-alpha uint8 RGBA."""
    a = premul[..., 3:4]
    rgb = np.where(a > 1e-6, premul[..., :3] / np.maximum(a, 1e-6), 0.0)
    out = np.concatenate([rgb, a], axis=-1)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def rgb_u8(premul: np.ndarray) -> np.ndarray:
    """RGB of an opaque premultiplied float layer as uint8 (alpha ignored)."""
    return np.clip(np.rint(premul[..., :3] * 255.0), 0, 255).astype(np.uint8)
