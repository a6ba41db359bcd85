"""Scene layouts (where 1-4 characters stand) and the compositor that draws frames.

Layout: characters stand side by side, bottom-aligned and the same size, as big as the frame
allows; when a grid of panels (a "video call" of 2 x 2) makes them clearly bigger, as four in a
square frame, each character gets a panel of its own with the set drawn in it.

Compositing is cheap because almost nothing is blended per frame. For each character the
compositor caches a **tile**: the rig's base sprite (body, hair, head at one breath level and
head offset) already blended over the character's static background patch, as opaque RGB
(bounded LRU per character). A frame is then a copy of the background, one opaque tile paste per
character, and the rig's small opaque feature patches (eyes and brows, mouth) pasted on top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from avatar.cache import LruCache
from avatar.custom import SpriteCharacter, build_character
from avatar.draw import over, over_rgb
from avatar.motion import MotionConfig, MotionModel
from avatar.pose import Pose
from avatar.rig import PoseKey, RigCharacter, sprite_size
from avatar.sets import check_set_name, parse_colour, render_set
from avatar.spec import CharacterSpec
from lipsync.visemes import SIL

if TYPE_CHECKING:
    from avatar.photo.character import PhotoCharacter

MIN_WIDTH_PX, MAX_WIDTH_PX = 64, 1280
MIN_HEIGHT_PX, MAX_HEIGHT_PX = 64, 720
MAX_CHARACTERS = 4
_FILL_HEIGHT = 0.95  # a character's sprite height as a share of the frame (or panel) height
_FILL_WIDTH = 0.96  # a sprite's width as a share of its column
_GUTTER_RGB = (28, 30, 36)

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one character's sprite goes: top-left corner and size in frame pixels."""

    x_px: int
    y_px: int
    width_px: int
    height_px: int
    panel: int = -1
    """Index into ``SceneLayout.panels``, or -1 on a shared set."""


@dataclass(frozen=True, slots=True)
class SceneLayout:
    """Frame size, one slot per character, and the panels of a grid layout (empty: shared set)."""

    width_px: int
    height_px: int
    slots: tuple[Slot, ...]
    panels: tuple[Box, ...] = ()

    @classmethod
    def for_count(cls, n: int, *, width_px: int = 512, height_px: int = 512) -> SceneLayout:
        """A natural layout for ``n`` (1..4) characters in a ``width_px`` x ``height_px`` frame."""
        if not isinstance(n, int) or not 1 <= n <= MAX_CHARACTERS:
            raise ValueError(f"a scene holds 1..{MAX_CHARACTERS} characters, got {n!r}")
        if not MIN_WIDTH_PX <= width_px <= MAX_WIDTH_PX:
            raise ValueError(
                f"frame width_px must be {MIN_WIDTH_PX}..{MAX_WIDTH_PX}, got {width_px}"
            )
        if not MIN_HEIGHT_PX <= height_px <= MAX_HEIGHT_PX:
            raise ValueError(
                f"frame height_px must be {MIN_HEIGHT_PX}..{MAX_HEIGHT_PX}, got {height_px}"
            )
        row = _row(n, width_px, height_px)
        if n >= 3:
            grid = _grid(n, width_px, height_px)
            if grid.slots[0].height_px > 1.15 * row.slots[0].height_px:
                return grid
        return row

    def centers_x(self) -> list[float]:
        """Each slot's horizontal centre, -1 (left edge) .. 1 (right edge)."""
        return [2.0 * (s.x_px + s.width_px / 2) / self.width_px - 1.0 for s in self.slots]


def _sprite_height(box_w: float, box_h: float) -> int:
    """The tallest sprite that fits a column ``box_w`` wide and ``box_h`` tall."""
    aspect = sprite_size(1000)[0] / 1000
    return max(24, math.floor(min(_FILL_HEIGHT * box_h, _FILL_WIDTH * box_w / aspect)))


def row_layout(n: int, w: int, h: int) -> SceneLayout:
    """``n`` characters side by side, bottom-aligned, as big as the frame allows (no grid)."""
    return _row(n, w, h)


def _row(n: int, w: int, h: int) -> SceneLayout:
    sh = _sprite_height(w / n, h)
    sw = sprite_size(sh)[0]
    spacing = min(w / n, 1.3 * sw)  # on wide frames, stand together rather than at the edges
    slots = []
    for i in range(n):
        cx = w / 2 + (i - (n - 1) / 2) * spacing
        slots.append(Slot(x_px=round(cx - sw / 2), y_px=h - sh, width_px=sw, height_px=sh))
    return SceneLayout(w, h, tuple(slots))


def _grid(n: int, w: int, h: int) -> SceneLayout:
    gutter = max(2, round(0.008 * min(w, h)))
    pw, ph = (w - 3 * gutter) // 2, (h - 3 * gutter) // 2
    panels: list[Box] = []
    for i in range(n):
        r, c = divmod(i, 2)
        x0 = gutter + c * (pw + gutter)
        if n == 3 and i == 2:
            x0 = (w - pw) // 2  # the third panel centred under the first two
        y0 = gutter + r * (ph + gutter)
        panels.append((x0, y0, x0 + pw, y0 + ph))
    sh = _sprite_height(pw, ph)
    sw = sprite_size(sh)[0]
    slots = tuple(
        Slot(x_px=x0 + (pw - sw) // 2, y_px=y1 - sh, width_px=sw, height_px=sh, panel=i)
        for i, (x0, _, _, y1) in enumerate(panels)
    )
    return SceneLayout(w, h, slots, tuple(panels))


class _Tile(NamedTuple):
    """A character's base sprite over its background, opaque uint8 RGB: the body over the
    background at one breath level, and on it the rectangle that the head and back hair cover."""

    body: np.ndarray
    x: int
    y: int
    head: np.ndarray


class _SlotTiles:
    """One character's tiles. The body moves only with breath, so "body over background" is kept
    per breath level; a tile then holds just the rectangle the head and back hair cover.

    A slot may reach past the frame (a close-up's shoulders, a character at the edge of a
    shot): everything here covers only the ``visible`` part, in sprite coordinates."""

    def __init__(
        self, rig: RigCharacter | SpriteCharacter | PhotoCharacter, background: np.ndarray, slot: Slot, *,
        cache_mb: float,
    ) -> None:
        self.rig = rig
        h, w = slot.height_px, slot.width_px
        H, W = background.shape[:2]
        vx0, vy0 = max(0, -slot.x_px), max(0, -slot.y_px)
        vx1, vy1 = min(w, W - slot.x_px), min(h, H - slot.y_px)
        if vx1 <= vx0 or vy1 <= vy0:
            raise ValueError(f"{rig.spec.name}'s slot {slot} lies wholly outside the {W}x{H} frame")
        self.visible: Box = (vx0, vy0, vx1, vy1)
        self.bg = (
            background[slot.y_px + vy0 : slot.y_px + vy1, slot.x_px + vx0 : slot.x_px + vx1].astype(
                np.float32
            )
            / 255.0
        )
        self.body_u8: list[np.ndarray] = []
        for r in range(rig.max_rise_px + 1):
            body = rig.stack(PoseKey(r, 0, 0, 2, 0, 0, (SIL, SIL, 0)))[1].px
            rgb = self.bg.copy()
            over(rgb, body[vy0:vy1, vx0:vx1])
            self.body_u8.append(_u8(rgb))
        vh, vw = vy1 - vy0, vx1 - vx0
        entries = max(4, int(cache_mb * 2**20 // (vh * vw * 3 // 2)))
        self.tiles: LruCache[tuple[int, ...], _Tile] = LruCache(max_entries=entries)

    def tile(self, key: PoseKey) -> _Tile:
        bkey = self.rig.base_key(key)
        tile = self.tiles.get(bkey)
        if tile is not None:
            return tile
        hair_back, body, head = self.rig.stack(key)
        assert hair_back.flat is not None and body.flat is not None and head.flat is not None
        vx0, vy0, vx1, vy1 = self.visible
        movers = [lay for lay in (hair_back, head) if lay.px.size]
        x0 = max(vx0, min(lay.x for lay in movers))
        y0 = max(vy0, min(lay.y for lay in movers))
        x1 = min(vx1, max(lay.x + lay.px.shape[1] for lay in movers))
        y1 = min(vy1, max(lay.y + lay.px.shape[0] for lay in movers))
        region = self.bg[y0 - vy0 : y1 - vy0, x0 - vx0 : x1 - vx0].copy()
        if hair_back.px.size:
            over_rgb(region, hair_back.flat, x=hair_back.x - x0, y=hair_back.y - y0)
        over_rgb(region, body.flat, x=-x0, y=-y0)
        over_rgb(region, head.flat, x=head.x - x0, y=head.y - y0)
        tile = _Tile(self.body_u8[key.rise_px], x0, y0, _u8(region))
        tile.head.flags.writeable = False
        self.tiles.put(bkey, tile)
        return tile


def _paste(frame: np.ndarray, rgb: np.ndarray, x: int, y: int) -> None:
    """``rgb`` pasted at (x, y), clipped to the frame."""
    h, w = rgb.shape[:2]
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = rgb[y0 - y : y1 - y, x0 - x : x1 - x]


def _u8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in 0..1 → uint8 (scales ``rgb`` in place)."""
    rgb *= 255.0
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0.0, 255.0, out=rgb)
    return rgb.astype(np.uint8)


class Compositor:
    """Draws frames of one scene: a set and up to four characters in a layout.

    ``characters`` may be ``RigCharacter``s (built at their slot's height) or specs, which are
    built here. Not thread-safe: one compositor per rendering thread.
    """

    def __init__(
        self,
        *,
        layout: SceneLayout,
        characters: Sequence[RigCharacter | SpriteCharacter | PhotoCharacter | CharacterSpec],
        set_name: str = "studio",
        tile_cache_mb: float = 40.0,
        background: np.ndarray | None = None,
    ) -> None:
        if len(characters) != len(layout.slots):
            raise ValueError(
                f"layout has {len(layout.slots)} slots but {len(characters)} characters were given"
            )
        check_set_name(set_name)
        self.layout = layout
        self.set_name = set_name
        self.rigs: list[RigCharacter | SpriteCharacter | PhotoCharacter] = []
        for ch, slot in zip(characters, layout.slots, strict=True):
            rig = build_character(ch, height_px=slot.height_px) if isinstance(ch, CharacterSpec) else ch
            if rig.height_px != slot.height_px:
                raise ValueError(
                    f"{rig.spec.name} was built {rig.height_px} px tall; "
                    f"its slot needs {slot.height_px}"
                )
            self.rigs.append(rig)
        if background is not None and background.shape != (layout.height_px, layout.width_px, 3):
            raise ValueError(
                f"background must be {(layout.height_px, layout.width_px, 3)}, got {background.shape}"
            )
        self._background = self._draw_background() if background is None else background.copy()
        self._background.flags.writeable = False
        self._slots = [
            _SlotTiles(rig, self._background, slot, cache_mb=tile_cache_mb)
            for rig, slot in zip(self.rigs, layout.slots, strict=True)
        ]

    def _draw_background(self) -> np.ndarray:
        lay = self.layout
        if not lay.panels:
            return render_set(self.set_name, width_px=lay.width_px, height_px=lay.height_px)
        solid = parse_colour(self.set_name)
        frame = np.empty((lay.height_px, lay.width_px, 3), np.uint8)
        frame[:] = solid if solid is not None else _GUTTER_RGB
        for i, (x0, y0, x1, y1) in enumerate(lay.panels):
            panel = render_set(self.set_name, width_px=x1 - x0, height_px=y1 - y0)
            frame[y0:y1, x0:x1] = (
                panel[:, ::-1] if i % 2 else panel
            )  # mirrored neighbours vary the view
        return frame

    def background(self) -> np.ndarray:
        """The empty set as drawn behind the characters, (H, W, 3) uint8, read-only."""
        return self._background

    def compose(self, poses: Sequence[Pose], *, out: np.ndarray | None = None) -> np.ndarray:
        """One frame: (H, W, 3) uint8 RGB. A new C-contiguous array each call, or drawn into
        ``out`` (any (H, W, 3) uint8 view, e.g. a video frame's own pixels) and returned."""
        if len(poses) != len(self.rigs):
            raise ValueError(
                f"compose needs one pose per character ({len(self.rigs)}), got {len(poses)}"
            )
        if out is None:
            frame = self._background.copy()
        else:
            if out.shape != self._background.shape or out.dtype != np.uint8:
                raise ValueError(f"out must be {self._background.shape} uint8, got {out.shape} {out.dtype}")
            np.copyto(out, self._background)
            frame = out
        for i, (rig, slot, pose) in enumerate(
            zip(self.rigs, self.layout.slots, poses, strict=True)
        ):
            key = rig.pose_key(pose)
            tiles = self._slots[i]
            tile = tiles.tile(key)
            x, y = slot.x_px, slot.y_px
            vx0, vy0, vx1, vy1 = tiles.visible
            frame[y + vy0 : y + vy1, x + vx0 : x + vx1] = tile.body
            hh, hw = tile.head.shape[:2]
            frame[y + tile.y : y + tile.y + hh, x + tile.x : x + tile.x + hw] = tile.head
            for p in rig.patches(key):
                _paste(frame, p.rgb, x + p.x_px, y + p.y_px)
        return frame

    def mouth_boxes(self) -> list[Box]:
        """Per character, (x0, y0, x1, y1) in frame pixels (end-exclusive) holding its mouth
        under any head offset the rig allows."""
        out: list[Box] = []
        for rig, slot in zip(self.rigs, self.layout.slots, strict=True):
            x0, y0, x1, y1 = rig.mouth_box()
            dx, dy = rig.max_head_dx_px, rig.max_head_dy_px
            out.append(
                (
                    max(0, slot.x_px + x0 - dx),
                    max(0, slot.y_px + y0 - dy),
                    min(self.layout.width_px, slot.x_px + x1 + dx),
                    min(self.layout.height_px, slot.y_px + y1 + dy),
                )
            )
        return out

    def slot_centers_x(self) -> list[float]:
        """Each character's horizontal position, -1 (left edge) .. 1 (right edge)."""
        return self.layout.centers_x()

    def motion_models(self, *, config: MotionConfig | None = None) -> list[MotionModel]:
        """One idle-motion model per character, scaled to its sprite height."""
        return [MotionModel(r.spec, height_px=r.height_px, config=config) for r in self.rigs]

    def cache_info(self) -> list[dict[str, int]]:
        """Per character: tile cache size, hits and misses, and the rig's own caches."""
        return [
            {
                "tiles": len(t.tiles),
                "tile_hits": t.tiles.hits,
                "tile_misses": t.tiles.misses,
                **r.cache_info(),
            }
            for t, r in zip(self._slots, self.rigs, strict=True)
        ]
