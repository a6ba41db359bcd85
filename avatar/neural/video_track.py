"""The landmark pass over a person's video: the mouth shape and head position of every frame.

mediapipe's face mesh (avatar/photo/landmarks.py ``FaceTracker``) is run on each frame; from its
points come the plain arrays lipsync/neural/video_shapes.py learns from (``MouthTrack``):

  opening  inner-lip gap / face height (forehead to chin)
  width    lip-corner distance / face width (cheek to cheek)
  nose     the nose base (moves with the head, not the jaw), mouth centre, face height, in pixels
  change   how much a small grey thumbnail changed from the frame before (shot changes)

The tracker is passed in (any object with ``track(rgb) -> FaceLandmarks | None``), so tests can
drive the pass with faces whose landmarks they know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np

from avatar.photo.landmarks import LIP_CORNERS, NOSE_BASE, FaceLandmarks, FaceTracker
from lipsync.neural.video_shapes import MouthTrack


class FrameTracker(Protocol):
    def track(self, rgb: np.ndarray) -> FaceLandmarks | None: ...

    def close(self) -> None: ...


TrackerFactory = Callable[[], FrameTracker]


def shape_of(face: FaceLandmarks) -> tuple[float, float]:
    """(opening, width) of one face in face units."""
    p = face.points
    width = float(np.linalg.norm(p[LIP_CORNERS[0]] - p[LIP_CORNERS[1]]))
    return face.inner_lip_gap_px() / max(face.height_px, 1e-6), width / max(face.width_px, 1e-6)


def measure(face: FaceLandmarks) -> np.ndarray:
    """(opening, width, nose x, nose y, mouth x, mouth y, face height) of one face, float32."""
    p = face.points
    opening, width = shape_of(face)
    mouth = (p[LIP_CORNERS[0]] + p[LIP_CORNERS[1]]) / 2
    nose = p[NOSE_BASE]
    return np.array([opening, width, nose[0], nose[1], mouth[0], mouth[1], face.height_px], np.float32)


def track_video(
    frames: Iterable[np.ndarray], *, source: str, tracker: TrackerFactory = FaceTracker
) -> MouthTrack:
    """The ``MouthTrack`` of a video's frames (blocking: a few ms a frame)."""
    rows: list[np.ndarray | None] = []
    change: list[float] = []
    before: np.ndarray | None = None
    follower = tracker()
    try:
        for rgb in frames:
            face = follower.track(rgb)
            rows.append(None if face is None else measure(face))
            thumb = thumbnail(rgb)
            change.append(0.0 if before is None else float(np.abs(thumb - before).mean()))
            before = thumb
    finally:
        follower.close()
    return MouthTrack.from_measurements(rows, source=source, picture_change=np.asarray(change))


def thumbnail(rgb: np.ndarray, *, cell_px: int = 16) -> np.ndarray:
    """A grey picture of ``cell_px`` blocks in 0..1: what a shot change changes at once."""
    h, w = rgb.shape[0] // cell_px * cell_px, rgb.shape[1] // cell_px * cell_px
    grey = rgb[:h, :w].mean(axis=2, dtype=np.float32) / 255.0
    return grey.reshape(h // cell_px, cell_px, w // cell_px, cell_px).mean(axis=(1, 3))


def openings(frames: Iterable[np.ndarray], *, tracker: TrackerFactory = FaceTracker) -> np.ndarray:
    """Inner-lip opening (face units) of each frame, NaN where no face is found: how far the
    mouth in a picture is open, for measuring rendered frames against the truth."""
    out: list[float] = []
    follower = tracker()
    try:
        for rgb in frames:
            face = follower.track(rgb)
            out.append(np.nan if face is None else shape_of(face)[0])
    finally:
        follower.close()
    return np.asarray(out, np.float64)
