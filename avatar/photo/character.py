"""A photo character drawn like a rig character: the photo folder (``avatar.photo.folder``) as a
scene card whose mouth, eyes and head move.

``PhotoCharacter`` has the compositor's rig surface (``avatar.scene``): the person, cut out of the
photo by its matte (a folder without one: the whole photo as a card), head and shoulders at the
sprite's size and aspect, whose head moves (whole pixels, smoothly fading out over the
shoulders) and whose mouth and eyes are small opaque patches drawn by the ``PhotoPuppet`` (or,
where the matte is not opaque under them, whole tiles per state). ``PhotoFrames`` draws whole
photos the same way (``talkie avatar animate``). A video character's mouth is drawn by its model
(``CardMouth``, avatar/neural/video_mouth.py) instead of the puppet's mesh warp; its eyes,
blinks, head motion and breathing stay the puppet's.

The folder's names are re-exported here, where they were first defined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from avatar.cache import LruCache
from avatar.draw import Flat
from avatar.photo.folder import (
    LANDMARKS_FILE,
    MANIFEST,
    MATTE_FILE,
    MODEL_FILE,
    PHOTO_FILE,
    PhotoFolder,
    VideoModelRef,
    is_photo_folder,
    load_photo_folder,
    locate_face,
    photo_spec,
    write_photo_folder,
)
from avatar.photo.image import PhotoError
from avatar.photo.landmarks import FaceLandmarks
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
from lipsync.visemes import N_VISEMES

if TYPE_CHECKING:
    from avatar.neural.video_mouth import CardMouth, VideoMouths

__all__ = [
    "LANDMARKS_FILE", "MANIFEST", "MATTE_FILE", "MODEL_FILE", "PHOTO_FILE", "PhotoCharacter", "PhotoFolder",
    "PhotoFrames", "VideoModelRef", "attach_video_mouths", "card_of", "is_photo_folder", "load_photo_folder", "locate_face",
    "mouth_key", "mouth_params", "mouth_weights", "photo_spec", "write_photo_folder",
]

PHOTO_MOUTH_STEPS = 16
"""A photo's mouth blends in 1/16 steps (the rig's 1/4 would show as jumps on a real face)."""
HEAD_MOTION_SCALE = 0.35
"""A photo's head moves this share of a rig head's sway (a real head against a still background)."""
FACE_SHARE = 0.3
"""The face (forehead to chin) fills this share of a scene card's height."""
OPAQUE = 0.9
"""A matte this solid under a patch counts as opaque (the set would show through by 10% at most)."""
Box = tuple[int, int, int, int]


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


def mouth_weights(key: tuple[int, int, int]) -> np.ndarray:
    """The viseme weights (15,) of a mouth key (``mouth_key``)."""
    a, b, q = key
    weights = np.zeros(N_VISEMES, np.float32)
    t = q / PHOTO_MOUTH_STEPS if a != b else 0.0
    weights[a] += 1.0 - t
    weights[b] += t
    return weights


def mouth_params(key: tuple[int, int, int]) -> MouthParams:
    a, b, q = key
    if a == b or q == 0:
        return MouthParams.blend(((a, 1.0),))
    t = q / PHOTO_MOUTH_STEPS
    return MouthParams.blend(((a, 1.0 - t), (b, t)))


_EYE_CLOSED = {2: 0.0, 1: 0.55, 0: 1.0}


class PhotoFrames:
    """Draws one photo's face in any state: the head moved, then mouth and eye patches on it.
    The mouth is the puppet's, or a video model's when ``mouth`` is given (its patches fill the
    same box). Patches and moved photos are cached (bounded). Not thread-safe."""

    def __init__(self, puppet: PhotoPuppet, *, cache_entries: int = 256, mouth: CardMouth | None = None) -> None:
        if mouth is not None and mouth.box != puppet.mouth_box:
            raise ValueError(f"a card mouth must fill the puppet's mouth box {puppet.mouth_box}, got {mouth.box}")
        self.puppet = puppet
        self.mouth = mouth
        self.moving = puppet.moving if mouth is None else mouth.moving  # (h, w) of the mouth box
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
            if self.mouth is not None:
                px = self.mouth.patch(mouth_weights(mouth))
            else:
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
        puppet = PhotoPuppet(card, face, matte=matte)
        self.frames = PhotoFrames(puppet, mouth=_card_mouth(self.photo, card, face, puppet.mouth_box))
        self._matte = matte
        # Patches are pasted opaque: the mouth's is cut into the bands of its box that some mouth
        # can change, and each must lie where the person covers it (the matte moves with the head
        # as the pixels do); else whole tiles are drawn per state.
        self._mouth_bands = _bands(self.frames.puppet.mouth_box, self.frames.moving)
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


def attach_video_mouths(drawn: object, service: VideoMouths | None, *, owner: str) -> None:
    """Let a video character's drawing paint its new mouths through the server's ``service``
    (batched with every other session's); anything else is left as it is."""
    if isinstance(drawn, PhotoCharacter) and drawn.frames.mouth is not None:
        drawn.frames.mouth.attach(service, owner=owner)


def _card_mouth(photo: PhotoFolder, card: np.ndarray, face: FaceLandmarks, box: Box) -> CardMouth | None:
    """A video character's mouth on its card (None for a photo character)."""
    if photo.video is None:
        return None
    from avatar.neural.video_mouth import CardMouth
    from lipsync.neural.checkpoint import CheckpointError

    try:
        return CardMouth(photo.video.path, card=card, face=face, box=box, clip=photo.video.clip)
    except CheckpointError as exc:
        raise PhotoError("bad_video_model", f"{photo.video.path}: {exc}") from None


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
