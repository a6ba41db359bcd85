"""Pictures of the photo puppet to look at: strips of frames and zoomed mouths (PNG).

For the portrait: one face per viseme (sil PP FF DD aa E ih oh ou) and a blink, and the same
mouths zoomed. For each real clip: eight frames of the puppet over the same eight of the truth,
and their mouths zoomed, so the two can be compared frame by frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from avatar.photo.character import PhotoFrames, locate_face
from avatar.photo.puppet import PhotoPuppet
from avatar.pose import Pose
from lipsync.visemes import VISEME_INDEX

STRIP_VISEMES = ("sil", "PP", "FF", "DD", "aa", "E", "ih", "oh", "ou")


def _crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return img[max(0, y0) : y1, max(0, x0) : x1]


def _save(rows: list[list[np.ndarray]], path: Path, *, zoom: int = 1) -> None:
    grid = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    im = Image.fromarray(grid)
    if zoom > 1:
        im = im.resize((im.width * zoom, im.height * zoom), Image.Resampling.LANCZOS)
    im.save(path)


def face_boxes(puppet: PhotoPuppet) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """A face box (forehead to below the chin) and a mouth box, in photo pixels."""
    cx, cy = puppet.geom.face_centre
    rx, ry = puppet.geom.face_radii_px
    face = (round(cx - 1.3 * rx), round(cy - 1.25 * ry), round(cx + 1.3 * rx), round(cy + 1.45 * ry))
    ox, oy = puppet.geom.origin
    w = puppet.geom.half_width_px
    mouth = (round(ox - 2.2 * w), round(oy - 1.3 * w), round(ox + 2.2 * w), round(oy + 1.9 * w))
    return face, mouth


def write_pictures(
    folder: Path, *, portrait: np.ndarray, clips: list[tuple[str, list[np.ndarray], list[np.ndarray]]]
) -> list[Path]:
    """Write the strips; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    puppet = PhotoPuppet(portrait, locate_face(portrait, face=None, label="portrait"))
    frames = PhotoFrames(puppet)
    face_box, mouth_box = face_boxes(puppet)
    shots = [frames.frame(Pose(mouth=((VISEME_INDEX[v], 1.0),))) for v in STRIP_VISEMES]
    shots.append(frames.frame(Pose(eyes_open=0.0)))
    for name, box, zoom in (("portrait_strip.png", face_box, 1), ("portrait_mouth.png", mouth_box, 3)):
        _save([[_crop(s, box) for s in shots]], folder / name, zoom=zoom)
        written.append(folder / name)
    for stem, output, truth in clips:
        first = truth[0]
        p = PhotoPuppet(first, locate_face(first, face=None, label=stem))
        face_box, mouth_box = face_boxes(p)
        picks = np.linspace(len(output) // 6, len(output) - 1 - len(output) // 6, 8).round().astype(int).tolist()
        for name, box, zoom in ((f"{stem}_strip.png", face_box, 1), (f"{stem}_mouth.png", mouth_box, 3)):
            _save([[_crop(output[k], box) for k in picks], [_crop(truth[k], box) for k in picks]], folder / name, zoom=zoom)
            written.append(folder / name)
    return written
