"""A photo character: a folder holding one photo and its landmarks, drawn like a rig character.

A folder (``talkie avatar build --photo``, or the store's ``photos/<id>/``) holds::

    character.json   {"kind": "photo", "name": "ME", "voice": {...}, "photo": "photo.png", "face": 1}
    photo.png        the photo, upright RGB
    landmarks.npy    (478, 2) float32: the chosen face's landmarks in photo pixels
    matte.png        how much each pixel is the person (selfie segmentation, 8-bit)

``PhotoCharacter`` has the compositor's rig surface (``avatar.scene``): the person, cut out of the
photo by its matte (a folder without one: the whole photo as a card), head and shoulders at the
sprite's size and aspect, whose head moves (whole pixels, smoothly fading out over the
shoulders) and whose mouth and eyes are small opaque patches drawn by the ``PhotoPuppet`` (or,
where the matte is not opaque under them, whole tiles per state). ``PhotoFrames`` draws whole photos the same way (``talkie avatar animate``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avatar.cache import LruCache
from avatar.draw import Flat
from avatar.photo.image import PhotoError, read_photo
from avatar.photo.landmarks import N_POINTS, FaceLandmarks, choose_face, find_faces, segment_person
from avatar.photo.puppet import MouthParams, PhotoPuppet
from avatar.pose import Pose
from avatar.rig import (
    BREATH_RISE_FRAC,
    HEAD_DX_MAX_FRAC,
    HEAD_DY_MAX_FRAC,
    Layer,
    Patch,
    PoseKey,
    sprite_size,
)
from avatar.spec import CharacterSpec
from lipsync.voices import VoiceSpec, name_digest

MANIFEST = "character.json"
PHOTO_FILE = "photo.png"
LANDMARKS_FILE = "landmarks.npy"
MATTE_FILE = "matte.png"
PHOTO_MOUTH_STEPS = 16
"""A photo's mouth blends in 1/16 steps (the rig's 1/4 would show as jumps on a real face)."""
HEAD_MOTION_SCALE = 0.35
"""A photo's head moves this share of a rig head's sway (a real head against a still background)."""
FACE_SHARE = 0.3
"""The face (forehead to chin) fills this share of a scene card's height."""
OPAQUE = 0.9
"""A matte this solid under a patch counts as opaque (the set would show through by 10% at most)."""
Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class PhotoFolder:
    folder: Path
    name: str
    voice: VoiceSpec
    face: int
    rgb: np.ndarray
    landmarks: FaceLandmarks
    matte: np.ndarray | None  # (H, W) float32 0..1, or None: the whole photo is the character


def is_photo_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is a photo character (its manifest says ``"kind": "photo"``)."""
    manifest = Path(folder) / MANIFEST
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == "photo"


def locate_face(rgb: np.ndarray, *, face: int | None, label: str) -> FaceLandmarks:
    """The landmarks of the chosen face (blocking: runs the landmark model)."""
    return choose_face(find_faces(rgb), face=face, label=label)


def write_photo_folder(
    folder: Path, rgb: np.ndarray, landmarks: FaceLandmarks, *, name: str, voice: VoiceSpec, face: int,
    matte: np.ndarray | None = None,
) -> Path:
    """Write a photo character folder (the photo re-encoded as PNG: no metadata kept); the matte
    is found now unless given (blocking: the segmentation model)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(folder / PHOTO_FILE)
    if matte is None:
        matte = segment_person(rgb)
    Image.fromarray(np.clip(np.rint(matte * 255.0), 0, 255).astype(np.uint8), "L").save(folder / MATTE_FILE)
    np.save(folder / LANDMARKS_FILE, landmarks.points.astype(np.float32))
    meta = {"kind": "photo", "name": name.strip().upper(), "voice": _voice_json(voice), "photo": PHOTO_FILE, "face": face}
    (folder / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder


def _voice_json(voice: VoiceSpec) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(voice)


def load_photo_folder(folder: str | Path) -> PhotoFolder:
    """Read and check a photo character folder; ``PhotoError`` names what is missing."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PhotoError("bad_photo_folder", f"{manifest} cannot be read: {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != "photo":
        raise PhotoError("bad_photo_folder", f"{manifest} is not a photo character's manifest")
    name = meta.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PhotoError("bad_photo_folder", f"{manifest}: 'name' must be a non-empty string")
    try:
        voice = VoiceSpec(**(meta.get("voice") or {}))
    except TypeError as exc:
        raise PhotoError("bad_photo_folder", f"{manifest}: bad 'voice': {exc}") from None
    rgb = read_photo(folder / PHOTO_FILE)
    try:
        points = np.load(folder / LANDMARKS_FILE, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PhotoError("bad_photo_folder", f"{folder / LANDMARKS_FILE} cannot be read: {exc}") from None
    if points.shape != (N_POINTS, 2) or not np.all(np.isfinite(points)):
        raise PhotoError("bad_photo_folder", f"{folder / LANDMARKS_FILE}: expected ({N_POINTS}, 2) finite points, got {points.shape}")
    matte = None
    if (folder / MATTE_FILE).is_file():
        try:
            with Image.open(folder / MATTE_FILE) as im:
                matte = np.asarray(im.convert("L"), np.float32) / 255.0
        except OSError as exc:
            raise PhotoError("bad_photo_folder", f"{folder / MATTE_FILE} cannot be read: {exc}") from None
        if matte.shape != rgb.shape[:2]:
            raise PhotoError("bad_photo_folder", f"{folder / MATTE_FILE} is {matte.shape[1]}x{matte.shape[0]}; the photo is {rgb.shape[1]}x{rgb.shape[0]}")
    face = meta.get("face", 1)
    return PhotoFolder(
        folder, name.strip().upper(), voice, int(face) if isinstance(face, int) else 1, rgb,
        FaceLandmarks(points.astype(np.float32)), matte,
    )


def photo_spec(folder: str | Path, *, name: str | None = None, voice: VoiceSpec | None = None) -> CharacterSpec:
    """A ``CharacterSpec`` drawn from a photo folder (checked now)."""
    photo = load_photo_folder(folder)
    canonical = (name or photo.name).strip().upper()
    seed = int.from_bytes(name_digest(canonical)[16:24], "big")
    return CharacterSpec(name=canonical, voice=voice or photo.voice, seed=seed, art_dir=str(Path(folder).resolve()))


def mouth_key(pose: Pose) -> tuple[int, int, int]:
    """The pose's mouth as (viseme a, viseme b, q) with b's weight q / PHOTO_MOUTH_STEPS."""
    if len(pose.mouth) == 1 or pose.mouth[0][0] == pose.mouth[1][0]:
        v = pose.mouth[0][0]
        return (v, v, 0)
    (a, wa), (b, wb) = sorted(pose.mouth)
    q = round(wb / (wa + wb) * PHOTO_MOUTH_STEPS)
    if q == 0:
        return (a, a, 0)
    if q == PHOTO_MOUTH_STEPS:
        return (b, b, 0)
    return (a, b, q)


def mouth_params(key: tuple[int, int, int]) -> MouthParams:
    a, b, q = key
    if a == b or q == 0:
        return MouthParams.blend(((a, 1.0),))
    t = q / PHOTO_MOUTH_STEPS
    return MouthParams.blend(((a, 1.0 - t), (b, t)))


_EYE_CLOSED = {2: 0.0, 1: 0.55, 0: 1.0}


class PhotoFrames:
    """Draws one photo's face in any state: the head moved, then mouth and eye patches on it.
    Patches and moved photos are cached (bounded). Not thread-safe."""

    def __init__(self, puppet: PhotoPuppet, *, cache_entries: int = 256) -> None:
        self.puppet = puppet
        h, w = puppet.rgb.shape[:2]
        self.weights = puppet.head_weights((0, 0, w, h))
        self._patches: LruCache[tuple[object, ...], np.ndarray] = LruCache(max_entries=cache_entries)
        self._moved: LruCache[tuple[int, int], np.ndarray] = LruCache(max_entries=32)

    def moved(self, dx: int, dy: int) -> np.ndarray:
        img = self._moved.get((dx, dy))
        if img is None:
            img = self.puppet.moved(dx, dy, self.weights)
            img.flags.writeable = False
            self._moved.put((dx, dy), img)
        return img

    def patches(self, mouth: tuple[int, int, int], eyes_level: int) -> list[tuple[Box, np.ndarray]]:
        """(box, rgb) of the mouth and both eyes for this state, in unmoved photo pixels."""
        out = []
        key: tuple[object, ...] = ("mouth", *mouth)
        px = self._patches.get(key)
        if px is None:
            px = self.puppet.mouth_patch(mouth_params(mouth))
            px.flags.writeable = False
            self._patches.put(key, px)
        out.append((self.puppet.mouth_box, px))
        closed = _EYE_CLOSED[eyes_level]
        for i, box in enumerate(self.puppet.eye_boxes):
            key = ("eye", i, eyes_level)
            px = self._patches.get(key)
            if px is None:
                px = self.puppet.eye_patch(i, closed)
                px.flags.writeable = False
                self._patches.put(key, px)
            out.append((box, px))
        return out

    def frame(self, pose: Pose, *, head_scale: float = 1.0, rise_px: float = 0.0) -> np.ndarray:
        """The whole photo in ``pose`` (head offsets in photo pixels, scaled by ``head_scale``)."""
        dx = round(pose.head_dx_px * head_scale)
        dy = round(pose.head_dy_px * head_scale - rise_px * pose.breath)
        img = self.moved(dx, dy).copy()
        for (x0, y0, _, _), px in self.patches(mouth_key(pose), pose.eyes_level()):
            _paste(img, px, x0 + dx, y0 + dy)
        return img

    def cache_info(self) -> dict[str, int]:
        return {"patches": len(self._patches), "moved": len(self._moved)}


def _paste(img: np.ndarray, px: np.ndarray, x: int, y: int) -> None:
    h, w = img.shape[:2]
    ph, pw = px.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + pw), min(h, y + ph)
    if x1 > x0 and y1 > y0:
        img[y0:y1, x0:x1] = px[y0 - y : y1 - y, x0 - x : x1 - x]


def card_of(photo: PhotoFolder, *, width_px: int, height_px: int) -> tuple[np.ndarray, np.ndarray | None, FaceLandmarks]:
    """A head-and-shoulders card of the photo at ``width_px`` x ``height_px``: RGB, its matte
    (None without one) and its landmarks."""
    rgb, face = photo.rgb, photo.landmarks
    H, W = rgb.shape[:2]
    aspect = width_px / height_px
    ch = face.height_px / FACE_SHARE
    ch = min(ch, H, W / aspect)
    cw = ch * aspect
    cx, _ = face.centre()
    top = float(face.points[10, 1]) - 0.75 * face.height_px
    x0 = min(max(0.0, cx - cw / 2), W - cw)
    y0 = min(max(0.0, top), H - ch)
    box = (x0, y0, x0 + cw, y0 + ch)
    size = (width_px, height_px)
    im = Image.fromarray(rgb, "RGB").resize(size, Image.Resampling.LANCZOS, box=box)
    matte = None
    if photo.matte is not None:
        m = Image.fromarray(photo.matte.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR, box=box)
        matte = np.clip(np.asarray(m, np.float32), 0.0, 1.0)
        matte[matte < 0.02] = 0.0  # no faint haze of the photo's background on the set
        matte[matte > 0.98] = 1.0
        # where the card cuts through shoulders at its sides, they fade out rather than stop
        edge = max(2.0, 0.03 * width_px)
        x = np.arange(width_px, dtype=np.float32) + 0.5
        matte *= np.clip(np.minimum(x, width_px - x) / edge, 0.0, 1.0)[None, :]
    scale = height_px / ch
    pts = (face.points - np.array([x0, y0], np.float32)) * scale
    return np.asarray(im, np.uint8).copy(), matte, FaceLandmarks(pts.astype(np.float32))


class PhotoCharacter:
    """A photo folder drawn at ``height_px`` with the compositor's rig surface."""

    def __init__(self, spec: CharacterSpec, *, height_px: int, photo: PhotoFolder | None = None) -> None:
        if spec.art_dir is None:
            raise ValueError(f"{spec.name} has no photo folder")
        self.photo = photo or load_photo_folder(spec.art_dir)
        self.spec = spec
        self.width_px, self.height_px = sprite_size(height_px)
        self.max_head_dx_px = max(1, round(HEAD_MOTION_SCALE * HEAD_DX_MAX_FRAC * height_px))
        self.max_head_dy_px = max(1, round(HEAD_MOTION_SCALE * HEAD_DY_MAX_FRAC * height_px))
        self.max_rise_px = max(1, round(BREATH_RISE_FRAC * height_px))
        card, matte, face = card_of(self.photo, width_px=self.width_px, height_px=self.height_px)
        self.frames = PhotoFrames(PhotoPuppet(card, face, matte=matte))
        self._matte = matte
        # Patches are pasted opaque: the mouth's is cut into the bands of its box that some mouth
        # can change, and each must lie where the person covers it (the matte moves with the head
        # as the pixels do); else whole tiles are drawn per state.
        self._mouth_bands = _bands(self.frames.puppet.mouth_box, self.frames.puppet.moving)
        boxes = (*self._mouth_bands, *self.frames.puppet.eye_boxes)
        self._patchable = matte is None or all(float(matte[y0:y1, x0:x1].min()) > OPAQUE for x0, y0, x1, y1 in boxes)
        self._mattes: LruCache[tuple[int, int], np.ndarray] = LruCache(max_entries=32)
        empty = np.zeros((0, 0, 4), np.float32)
        self._hair_back = Layer(0, 0, empty, Flat.of(empty))
        self._body = np.zeros((self.height_px + self.max_rise_px + 1, self.width_px, 4), np.float32)
        self._flat_body = Flat.of(self._body)

    def pose_key(self, pose: Pose) -> PoseKey:
        dx = min(self.max_head_dx_px, max(-self.max_head_dx_px, round(HEAD_MOTION_SCALE * pose.head_dx_px)))
        dy = min(self.max_head_dy_px, max(-self.max_head_dy_px, round(HEAD_MOTION_SCALE * pose.head_dy_px)))
        rise = round(min(1.0, max(0.0, pose.breath)) * self.max_rise_px)
        return PoseKey(rise, dx, dy, pose.eyes_level(), 0, 0, mouth_key(pose))

    def base_key(self, key: PoseKey) -> tuple[int, ...]:
        if self._patchable:
            return (key.dx_px, key.dy_px - key.rise_px)
        return (key.dx_px, key.dy_px - key.rise_px, key.eyes, *key.mouth)

    def _moved_matte(self, dx: int, dy: int) -> np.ndarray:
        assert self._matte is not None
        m = self._mattes.get((dx, dy))
        if m is None:
            m = self.frames.puppet.moved_array(self._matte, dx, dy, self.frames.weights)
            self._mattes.put((dx, dy), m)
        return m

    def stack(self, key: PoseKey) -> tuple[Layer, Layer, Layer]:
        dx, dy = key.dx_px, key.dy_px - key.rise_px
        card = self.frames.moved(dx, dy)
        if not self._patchable:  # the features drawn into the tile itself
            card = card.copy()
            for (x0, y0, _, _), patch in self.frames.patches(key.mouth, key.eyes):
                _paste(card, patch, x0 + dx, y0 + dy)
        px = np.ones(card.shape[:2] + (4,), np.float32)
        px[..., :3] = card.astype(np.float32) / 255.0
        if self._matte is not None:
            alpha = self._moved_matte(dx, dy)
            px[..., 3] = alpha
            px[..., :3] *= alpha[..., None]
        body = Layer(0, 0, self._body[key.rise_px : key.rise_px + self.height_px], self._flat_body.rows(key.rise_px, key.rise_px + self.height_px))
        return self._hair_back, body, Layer(0, 0, px, Flat.of(px))

    def patches(self, key: PoseKey) -> tuple[Patch, ...]:
        if not self._patchable:
            return ()
        dx, dy = key.dx_px, key.dy_px - key.rise_px
        out = []
        ((mx0, my0, _, _), mouth), *eyes = self.frames.patches(key.mouth, key.eyes)
        pieces = [((bx0, by0), mouth[by0 - my0 : by1 - my0, bx0 - mx0 : bx1 - mx0]) for bx0, by0, bx1, by1 in self._mouth_bands]
        pieces += [((x0, y0), px) for (x0, y0, _, _), px in eyes]
        for (x0, y0), px in pieces:
            p = _clip_patch(Patch(x0 + dx, y0 + dy, px), self.width_px, self.height_px)
            if p is not None:
                out.append(p)
        return tuple(out)

    def mouth_box(self) -> Box:
        x0, y0, x1, y1 = self.frames.puppet.mouth_box
        return (x0, y0 - self.max_rise_px, x1, y1)

    def cache_info(self) -> dict[str, int]:
        return self.frames.cache_info()


def _bands(box: Box, moving: np.ndarray, *, cell_px: int = 3) -> list[Box]:
    """Rectangles covering the ``moving`` pixels of ``box``: per band of rows, the columns from
    its first to its last moving cell (a little margin), in image pixels."""
    x0, y0, _, _ = box
    h, w = moving.shape
    out = []
    for r0 in range(0, h, cell_px):
        cols = np.nonzero(moving[r0 : r0 + cell_px].any(axis=0))[0]
        if cols.size:
            c0, c1 = max(0, int(cols[0]) - 1), min(w, int(cols[-1]) + 2)
            out.append((x0 + c0, y0 + r0, x0 + c1, y0 + min(h, r0 + cell_px)))
    return out


def _clip_patch(p: Patch, width: int, height: int) -> Patch | None:
    h, w = p.rgb.shape[:2]
    x0, y0 = max(0, p.x_px), max(0, p.y_px)
    x1, y1 = min(width, p.x_px + w), min(height, p.y_px + h)
    if x1 <= x0 or y1 <= y0:
        return None
    if (x0, y0, x1, y1) == (p.x_px, p.y_px, p.x_px + w, p.y_px + h):
        return p
    return Patch(x0, y0, p.rgb[y0 - p.y_px : y1 - p.y_px, x0 - p.x_px : x1 - p.x_px])
