"""Face landmarks from the model shipped inside the ``mediapipe`` wheel (no download, no hub).

``mediapipe==0.10.14``'s legacy Face Mesh runs ``face_detection_short_range.tflite`` then
``face_landmark_with_attention.tflite`` (468 mesh points with refined lips and eyes, plus 10 iris
points) on the CPU; the graphs and weights are files of the wheel. Points come back in pixels.
Later 0.10.x releases need numpy < 2; 1.x ships no legacy models. The package is imported on first
use only, so the rest of talkie runs without it.

One ``FaceMesh`` graph is not thread-safe: each ``find_faces`` call makes its own, and a
``FaceTracker`` belongs to one thread.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from avatar.photo.image import PhotoError

N_POINTS = 478
MIN_FACE_PX = 48
"""A face narrower than this (cheek to cheek, in photo pixels) is refused: too few pixels to move."""

# Named points of the mesh (mediapipe's canonical face model indices).
LIP_CORNERS = (61, 291)
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
CHIN = 152
FOREHEAD = 10
NOSE_BASE = 2
LEFT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)  # the subject's right eye, on the image's left
LEFT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
RIGHT_EYE_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
RIGHT_EYE_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
LEFT_BROW = (70, 63, 105, 66, 107)
RIGHT_BROW = (336, 296, 334, 293, 300)
GAP_PAIRS = ((82, 87), (13, 14), (312, 317))
"""Upper / lower inner-lip points whose distance is the mouth's opening."""


def _mediapipe() -> ModuleType:
    os.environ.setdefault("GLOG_minloglevel", "2")  # the graph's own start-up chatter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mediapipe as mp
    except ImportError as exc:
        raise PhotoError(
            "no_landmark_model",
            f"face landmarks need the mediapipe package ({exc}); install it with "
            "`pip install --no-deps mediapipe==0.10.14` (./dev does)",
        ) from None
    return mp


@dataclass(frozen=True, slots=True)
class FaceLandmarks:
    """One face: (478, 2) float32 pixel coordinates (x right, y down)."""

    points: np.ndarray

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) around the mesh."""
        p = self.points[:468]
        return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())

    @property
    def width_px(self) -> float:
        """Cheek to cheek."""
        return float(np.linalg.norm(self.points[454] - self.points[234]))

    @property
    def height_px(self) -> float:
        """Upper forehead to chin."""
        return float(np.linalg.norm(self.points[CHIN] - self.points[FOREHEAD]))

    def inner_lip_gap_px(self) -> float:
        """How far apart the inner lips are, in pixels (mean over the middle three pairs)."""
        return inner_lip_gap(self.points)

    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box()
        return (x0 + x1) / 2, (y0 + y1) / 2


def inner_lip_gap(points: np.ndarray) -> float:
    """Mean distance between the upper and lower inner lip at the middle of the mouth, in pixels."""
    return float(np.mean([np.linalg.norm(points[a] - points[b]) for a, b in GAP_PAIRS]))


def _process(graph: Any, rgb: np.ndarray) -> Any:
    with warnings.catch_warnings():  # protobuf 4's deprecation notice on every call
        warnings.simplefilter("ignore", UserWarning)
        return graph.process(rgb)


def _to_px(result: Any, width: int, height: int) -> list[FaceLandmarks]:
    faces = []
    for face in result.multi_face_landmarks or ():
        pts = np.array([(lm.x * width, lm.y * height) for lm in face.landmark], np.float32)
        faces.append(FaceLandmarks(pts))
    return faces


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"landmarks need (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def find_faces(rgb: np.ndarray, *, max_faces: int = 8) -> list[FaceLandmarks]:
    """Every face in a still image, left to right (blocking: ~50 ms on one core)."""
    rgb = _check_rgb(rgb)
    mp = _mediapipe()
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=max_faces, min_detection_confidence=0.5
    ) as mesh:
        faces = _to_px(_process(mesh, rgb), rgb.shape[1], rgb.shape[0])
    return sorted(faces, key=lambda f: f.centre()[0])


def choose_face(faces: list[FaceLandmarks], *, face: int | None, label: str) -> FaceLandmarks:
    """The face to use: the only one, or number ``face`` (1 = leftmost); errors name the choices."""
    if not faces:
        raise PhotoError("no_face", f"{label}: no face found; use a frontal photo with the whole face visible")
    if face is None:
        if len(faces) > 1:
            where = ", ".join(f"{i + 1} at x={f.centre()[0]:.0f}" for i, f in enumerate(faces))
            raise PhotoError("several_faces", f"{label}: {len(faces)} faces ({where}); choose one with --face N (1 = leftmost)")
        chosen = faces[0]
    elif not 1 <= face <= len(faces):
        raise PhotoError("bad_face", f"{label}: --face {face} but the photo has {len(faces)} face(s); use 1..{len(faces)}")
    else:
        chosen = faces[face - 1]
    if chosen.width_px < MIN_FACE_PX:
        raise PhotoError(
            "face_too_small",
            f"{label}: the face is {chosen.width_px:.0f} px wide; at least {MIN_FACE_PX} px is needed (use a closer or larger photo)",
        )
    return chosen


class FaceTracker:
    """Per-frame landmarks of one face in a video (tracking mode: ~4 ms a frame after the first)."""

    def __init__(self) -> None:
        mp = _mediapipe()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, refine_landmarks=True, max_num_faces=1,
            min_detection_confidence=0.5, min_tracking_confidence=0.5,
        )

    def track(self, rgb: np.ndarray) -> FaceLandmarks | None:
        rgb = _check_rgb(rgb)
        faces = _to_px(_process(self._mesh, rgb), rgb.shape[1], rgb.shape[0])
        return faces[0] if faces else None

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def segment_person(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 0..1: how much each pixel is the person (mediapipe's selfie segmentation)."""
    rgb = _check_rgb(rgb)
    mp = _mediapipe()
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        mask = _process(seg, rgb).segmentation_mask
    return np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
