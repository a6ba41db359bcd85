"""User character art: a folder of layered PNGs (the PNGtuber convention) drawn like a rig.

A folder holds ``character.json`` and the PNGs it names, all the same size (full-canvas layers
that stack on ``base``)::

    {
      "name": "PIP",
      "voice": {"language": "en-us", "variant": "f2", "pitch": 60},          (optional)
      "layers": {
        "base": "base.png",
        "eyes_open": "eyes_open.png", "eyes_closed": "eyes_closed.png",      (optional, as a pair)
        "mouths": {"closed": "mouth_closed.png", "open": "mouth_open.png"}
      }
    }

``mouths`` keys are viseme names (sil PP FF TH DD kk CH SS nn RR aa E ih oh ou) or groups
(closed, rest, mbp, open, a, e, i, o, u, w, fv, l, th, s). Each viseme uses its own image, else
its group's, else the provided mouth nearest in shape (jaw opening first, then rounding and
width), so two images (closed + open) are enough and fifteen give full lip sync. A closed and an
open mouth are required.

``SpriteCharacter`` has the surface the compositor uses from ``RigCharacter``: the art is
scaled into the rig's sprite box (bottom-centred) and bobs as a whole with head sway and breath;
eyes and mouth are small opaque patches over the base where it is opaque there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from avatar.cache import LruCache
from avatar.draw import Flat, over, rgb_u8
from avatar.pose import MOUTH_BLEND_STEPS, Pose
from avatar.rig import (
    BREATH_RISE_FRAC,
    HEAD_DX_MAX_FRAC,
    HEAD_DY_MAX_FRAC,
    Layer,
    Patch,
    PoseKey,
    RigCharacter,
    sprite_size,
)
from avatar.spec import CharacterSpec
from lipsync.visemes import MOUTH_SHAPES, VISEME_INDEX, VISEMES
from lipsync.voices import VoiceSpec, name_digest

if TYPE_CHECKING:
    from avatar.photo.character import PhotoCharacter

MANIFEST = "character.json"
MAX_SIDE_PX = 4096
MOUTH_GROUPS: dict[str, tuple[str, ...]] = {
    "closed": ("sil", "PP"), "rest": ("sil",), "mbp": ("PP",), "open": ("aa",), "a": ("aa",),
    "e": ("E", "ih"), "i": ("ih",), "o": ("oh",), "u": ("ou",), "w": ("ou",), "fv": ("FF",),
    "l": ("DD", "nn", "TH"), "th": ("TH",), "s": ("SS", "CH", "kk"),
}
Box = tuple[int, int, int, int]


class CharacterArtError(ValueError):
    """A character folder that cannot be used; the message names the folder and what is missing."""


@dataclass(frozen=True, slots=True)
class CharacterArt:
    """A loaded folder: straight-alpha RGBA uint8 images, all of one size."""

    folder: Path
    name: str
    voice: VoiceSpec
    base: np.ndarray
    eyes_open: np.ndarray | None
    eyes_closed: np.ndarray | None
    mouths: tuple[np.ndarray, ...]
    viseme_mouth: tuple[int, ...]  # per viseme, the index into ``mouths``


def _png(folder: Path, layer: str, file: object) -> np.ndarray:
    if not isinstance(file, str) or not file:
        raise CharacterArtError(f"{folder}: layer {layer!r} needs a PNG file name in {MANIFEST}")
    path = (folder / file).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise CharacterArtError(f"{folder}: layer {layer!r} file {file!r} is missing")
    try:
        with Image.open(path) as im:
            if max(im.size) > MAX_SIDE_PX:
                raise CharacterArtError(f"{folder}: layer {layer!r} ({file}) is {im.size}; at most {MAX_SIDE_PX} px a side")
            return np.asarray(im.convert("RGBA"), np.uint8).copy()
    except (OSError, SyntaxError) as exc:
        raise CharacterArtError(f"{folder}: layer {layer!r} file {file!r} is not a readable PNG: {exc}") from None


def _visemes_of(key: str, folder: Path) -> tuple[str, ...]:
    if key in VISEME_INDEX:
        return (key,)
    if key.lower() in MOUTH_GROUPS:
        return MOUTH_GROUPS[key.lower()]
    names = ", ".join((*VISEMES, *MOUTH_GROUPS))
    raise CharacterArtError(f"{folder}: unknown mouth {key!r}; use one of {names}")


def _assign(keys: list[str], folder: Path) -> tuple[int, ...]:
    """Per viseme, which provided mouth it uses (own, group, or nearest in shape)."""
    own: dict[str, int] = {}
    for i, key in enumerate(keys):  # groups first, so a viseme's own image wins
        if key not in VISEME_INDEX:
            for v in _visemes_of(key, folder):
                own.setdefault(v, i)
    for i, key in enumerate(keys):
        if key in VISEME_INDEX:
            own[key] = i
    if not any(v in own for v in ("sil", "PP")):
        raise CharacterArtError(f"{folder}: layer 'mouths' needs a closed mouth ('closed', 'rest' or 'sil')")
    if not any(MOUTH_SHAPES[v].jaw_open >= 0.3 for v in own):
        raise CharacterArtError(f"{folder}: layer 'mouths' needs an open mouth ('open', 'a', 'aa', 'E' or 'oh')")

    def distance(a: str, b: str) -> float:
        sa, sb = MOUTH_SHAPES[a], MOUTH_SHAPES[b]
        return 3 * abs(sa.jaw_open - sb.jaw_open) + abs(sa.round - sb.round) + 0.5 * abs(sa.width - sb.width)

    out = []
    for v in VISEMES:
        if v in own:
            out.append(own[v])
        else:
            out.append(own[min(own, key=lambda o: (distance(v, o), o))])
    return tuple(out)


def load_art(folder: Path) -> CharacterArt:
    """Read and check a character folder; ``CharacterArtError`` names any missing layer or file."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise CharacterArtError(f"{folder}: no {MANIFEST} (the manifest naming the layers)")
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CharacterArtError(f"{manifest} is not valid JSON: {exc}") from None
    layers = meta.get("layers") if isinstance(meta, dict) else None
    if not isinstance(layers, dict):
        raise CharacterArtError(f"{manifest}: needs a 'layers' object with base and mouths")
    name = meta.get("name") or folder.name
    if not isinstance(name, str) or not name.strip():
        raise CharacterArtError(f"{manifest}: 'name' must be a non-empty string")
    try:
        voice = VoiceSpec(**meta.get("voice", {}))
    except TypeError as exc:
        raise CharacterArtError(f"{manifest}: bad 'voice': {exc}") from None
    if "base" not in layers:
        raise CharacterArtError(f"{folder}: layer 'base' is missing from {MANIFEST}")
    base = _png(folder, "base", layers["base"])
    eyes: dict[str, np.ndarray | None] = {"eyes_open": None, "eyes_closed": None}
    given = [k for k in eyes if k in layers]
    if len(given) == 1:
        missing = "eyes_closed" if given[0] == "eyes_open" else "eyes_open"
        raise CharacterArtError(f"{folder}: layer {missing!r} is missing (eyes come as a pair)")
    for k in given:
        eyes[k] = _png(folder, k, layers[k])
    mouths_meta = layers.get("mouths")
    if not isinstance(mouths_meta, dict) or not mouths_meta:
        raise CharacterArtError(f"{folder}: layer 'mouths' is missing (at least a closed and an open mouth)")
    keys = [str(k) for k in mouths_meta]
    assignment = _assign(keys, folder)
    mouths = tuple(_png(folder, f"mouths.{k}", mouths_meta[k]) for k in keys)
    for label, img in [*((k, v) for k, v in eyes.items() if v is not None), *zip(keys, mouths, strict=True)]:
        if img.shape != base.shape:
            raise CharacterArtError(
                f"{folder}: layer {label!r} is {img.shape[1]}x{img.shape[0]}; every layer must match "
                f"the base's {base.shape[1]}x{base.shape[0]}"
            )
    return CharacterArt(folder, name.strip().upper(), voice, base, eyes["eyes_open"], eyes["eyes_closed"], mouths, assignment)


def art_spec(folder: Path) -> CharacterSpec:
    """A ``CharacterSpec`` for a character folder (checked now); the compositor draws its art.
    A photo character's folder (``avatar.photo.character``) is drawn by the photo puppet."""
    from avatar.photo.character import is_photo_folder, photo_spec

    if is_photo_folder(folder):
        return photo_spec(folder)
    art = load_art(folder)
    seed = int.from_bytes(name_digest(art.name)[16:24], "big")
    return CharacterSpec(name=art.name, voice=art.voice, seed=seed, art_dir=str(Path(folder).resolve()))


def _premul(rgba: np.ndarray) -> np.ndarray:
    x = rgba.astype(np.float32) / 255.0
    x[..., :3] *= x[..., 3:4]
    return x


def _alpha_box(px: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(px[..., 3] > 0.5 / 255.0)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


class SpriteCharacter:
    """A character folder drawn at ``height_px`` with the compositor's rig surface."""

    def __init__(self, spec: CharacterSpec, *, height_px: int, art: CharacterArt | None = None) -> None:
        if spec.art_dir is None:
            raise ValueError(f"{spec.name} has no art folder")
        self.art = art or load_art(Path(spec.art_dir))
        self.spec = spec
        self.width_px, self.height_px = sprite_size(height_px)
        self.max_head_dx_px = max(1, round(HEAD_DX_MAX_FRAC * height_px))
        self.max_head_dy_px = max(1, round(HEAD_DY_MAX_FRAC * height_px))
        self.max_rise_px = max(1, round(BREATH_RISE_FRAC * height_px))
        h0, w0 = self.art.base.shape[:2]
        scale = min((self.width_px - 2 * self.max_head_dx_px) / w0, (self.height_px - self.max_head_dy_px - self.max_rise_px) / h0)
        self._size = (max(1, round(w0 * scale)), max(1, round(h0 * scale)))
        self._x0 = (self.width_px - self._size[0]) // 2
        self._y0 = self.height_px - self._size[1]
        self._base = self._scaled(self.art.base)
        self._eyes = [self._scaled(e) for e in (self.art.eyes_closed, self.art.eyes_open) if e is not None]
        self._mouths = [self._scaled(m) for m in self.art.mouths]
        boxes = [b for b in (_alpha_box(m) for m in self._mouths) if b is not None]
        self._mouth_box = _union(boxes) if boxes else (0, 0, 1, 1)
        eye_boxes = [b for b in (_alpha_box(e) for e in self._eyes) if b is not None]
        self._eye_box = _union(eye_boxes) if eye_boxes else None
        self._patchable = all(self._opaque(b) for b in (self._mouth_box, self._eye_box) if b is not None)
        empty = np.zeros((0, 0, 4), np.float32)
        self._hair_back = Layer(0, 0, empty, Flat.of(empty))
        body = np.zeros((self.height_px + self.max_rise_px + 1, self.width_px, 4), np.float32)
        self._body = body
        self._flat_body = Flat.of(body)
        self._heads: LruCache[tuple[int, int], Layer] = LruCache(max_entries=64)
        self._patch_cache: LruCache[tuple[str, int], np.ndarray] = LruCache(max_entries=64)

    def _scaled(self, rgba: np.ndarray) -> np.ndarray:
        im = Image.fromarray(rgba, "RGBA").resize(self._size, Image.Resampling.LANCZOS)
        return _premul(np.asarray(im))

    def _opaque(self, box: Box) -> bool:
        x0, y0, x1, y1 = box
        return float(self._base[y0:y1, x0:x1, 3].min(initial=1.0)) > 0.999

    def _eye_index(self, key: PoseKey) -> int:
        if len(self._eyes) < 2:
            return 0
        return 0 if key.eyes == 0 else 1

    def _mouth_index(self, key: PoseKey) -> int:
        a, b, q = key.mouth
        viseme = b if q * 2 > MOUTH_BLEND_STEPS else a
        return self.art.viseme_mouth[viseme]

    def _with_features(self, eye: int, mouth: int) -> np.ndarray:
        px = self._base.copy()
        if self._eyes:
            over(px, self._eyes[eye])
        over(px, self._mouths[mouth])
        return px

    # -- the rig surface the compositor uses -------------------------------------------------

    def pose_key(self, pose: Pose) -> PoseKey:
        """Quantized like the rig's; gaze and brows are not drawn (always 0)."""
        dx = min(self.max_head_dx_px, max(-self.max_head_dx_px, round(pose.head_dx_px)))
        dy = min(self.max_head_dy_px, max(-self.max_head_dy_px, round(pose.head_dy_px)))
        rise = round(min(1.0, max(0.0, pose.breath)) * self.max_rise_px)
        return PoseKey(rise, dx, dy, pose.eyes_level(), 0, 0, pose.mouth_key())

    def base_key(self, key: PoseKey) -> tuple[int, ...]:
        if self._patchable:
            return (key.rise_px, key.dx_px, key.dy_px)
        return (key.rise_px, key.dx_px, key.dy_px, self._eye_index(key), self._mouth_index(key))

    def stack(self, key: PoseKey) -> tuple[Layer, Layer, Layer]:
        if self._patchable:
            features = (len(self._eyes) - 1 if self._eyes else 0, self.art.viseme_mouth[VISEME_INDEX["sil"]])
        else:
            features = (self._eye_index(key), self._mouth_index(key))
        head = self._heads.get(features)
        if head is None:
            px = self._with_features(*features)
            head = Layer(self._x0, self._y0, px, Flat.of(px))
            self._heads.put(features, head)
        body = Layer(0, 0, self._body[key.rise_px : key.rise_px + self.height_px], self._flat_body.rows(key.rise_px, key.rise_px + self.height_px))
        dy = key.dy_px - key.rise_px  # the whole figure rises as it breathes in
        return self._hair_back, body, Layer(head.x + key.dx_px, head.y + dy, head.px, head.flat)

    def patches(self, key: PoseKey) -> tuple[Patch, ...]:
        if not self._patchable:
            return ()
        out = []
        dx, dy = self._x0 + key.dx_px, self._y0 + key.dy_px - key.rise_px
        for kind, box, index in (("eyes", self._eye_box, self._eye_index(key)), ("mouth", self._mouth_box, self._mouth_index(key))):
            if box is None:
                continue
            rgb = self._patch_cache.get((kind, index))
            if rgb is None:
                x0, y0, x1, y1 = box
                px = self._base[y0:y1, x0:x1].copy()
                layer = (self._eyes if kind == "eyes" else self._mouths)[index]
                over(px, layer[y0:y1, x0:x1])
                rgb = rgb_u8(px)
                rgb.flags.writeable = False
                self._patch_cache.put((kind, index), rgb)
            out.append(self._clipped(Patch(box[0] + dx, box[1] + dy, rgb)))
        return tuple(out)

    def _clipped(self, p: Patch) -> Patch:
        """The part of a patch inside the sprite (art near an edge moves past it with the head)."""
        h, w = p.rgb.shape[:2]
        x0, y0 = max(0, p.x_px), max(0, p.y_px)
        x1, y1 = min(self.width_px, p.x_px + w), min(self.height_px, p.y_px + h)
        if (x0, y0, x1, y1) == (p.x_px, p.y_px, p.x_px + w, p.y_px + h):
            return p
        return Patch(x0, y0, p.rgb[y0 - p.y_px : y1 - p.y_px, x0 - p.x_px : x1 - p.x_px])

    def mouth_box(self) -> Box:
        x0, y0, x1, y1 = self._mouth_box
        return (x0 + self._x0, y0 + self._y0 - self.max_rise_px, x1 + self._x0, y1 + self._y0)

    def cache_info(self) -> dict[str, int]:
        return {"heads": len(self._heads), "patches": len(self._patch_cache)}


def _union(boxes: list[Box]) -> Box:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def build_character(spec: CharacterSpec, *, height_px: int) -> RigCharacter | SpriteCharacter | PhotoCharacter:
    """The renderer for ``spec``: the photo puppet for a photo folder, its PNG art for an art
    folder, else the procedural rig."""
    if spec.art_dir is not None:
        from avatar.photo.character import PhotoCharacter, is_photo_folder

        if is_photo_folder(spec.art_dir):
            return PhotoCharacter(spec, height_px=height_px)
        return SpriteCharacter(spec, height_px=height_px)
    return RigCharacter(spec, height_px=height_px)


def with_art(spec: CharacterSpec, folder: Path) -> CharacterSpec:
    """``spec`` drawn from the PNGs in ``folder`` (checked now)."""
    load_art(folder)
    return replace(spec, art_dir=str(Path(folder).resolve()))
