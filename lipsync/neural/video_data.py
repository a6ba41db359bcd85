"""Training data from a user's own video of a person talking: face crops driven by log-mel.

The video is read on the 25 fps / 48 kHz clock (video_io.py). One fixed square face region is cut
from every frame (the person is assumed to keep roughly still, as in a webcam recording), around
a face box the user gives or that OpenCV's Haar cascade finds. Inside the crop, the mouth mask
is a rectangle in face-box geometry (``MOUTH_BOX``): the lower-middle of the face, mouth and
chin, since the jaw moves with the lips.

The video is cut into clips of about ``CLIP_S`` seconds after holding out its last
``HELD_OUT_FRACTION``. Each clip's reference crop is its quietest frame (lowest audio energy over
200 ms, where the mouth is most likely closed), so the reference follows slow changes of light
and pose. Animation (animate.py) derives the references of a source video the same way.

The drive of frame k is ``mel_windows``: 20 log-mel hops of 10 ms centred on the frame, the same
function at training and at inference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lipsync.features import (
    DECIMATION,
    HOP_SAMPLES,
    HOPS_PER_FRAME,
    Decimator,
    FeatureConfig,
    log_mel,
)
from lipsync.neural.data import FaceClipDataset
from lipsync.neural.regions import FaceRegion, crop_regions, to_u8
from lipsync.neural.video_io import SourceVideo, VideoSourceError, iter_frames, open_source
from lipsync.timebase import FPS, SAMPLES_PER_FRAME

logger = logging.getLogger(__name__)

# Drive: log-mel of 20 hops (200 ms) centred on the frame: its own 4 hops, 8 before, 8 after.
MEL_BINS = FeatureConfig().n_mels  # 40
MEL_CONTEXT_HOPS = 8
MEL_WINDOW_HOPS = 2 * MEL_CONTEXT_HOPS + HOPS_PER_FRAME  # 20
# Fixed affine map of dB to roughly [-2, 2]: digital silence (the -100 dB floor) -> -2, loud
# speech (+20 dB, int16 near full scale) -> +2. Fixed, not fitted per video, so any audio
# at inference is scaled as in training.
MEL_DB_CENTRE = -40.0
MEL_DB_SCALE = 30.0

# Face region: a square of FACE_REGION_SCALE x the face box's larger side, centred
# FACE_REGION_DROP x its height below the box's centre (Haar boxes run from the brows to
# about the chin, so the chin needs the room below).
# The region then spans 0.125 .. 1.275 of the box's height: eyes to below the chin, with room
# for the jaw to drop.
FACE_REGION_SCALE = 1.15
FACE_REGION_DROP = 0.2
# Mouth mask (x0, y0, x1, y1) in fractions of the face box (x along its width, y down its
# height): from the nostrils (0.58) to under the chin (1.15), the middle 64% of the width.
# Checked on a Haar box of a real frontal portrait: mouth corners and chin fall inside, eyes
# and nose bridge outside.
MOUTH_BOX = (0.18, 0.58, 0.82, 1.15)
MIN_FACE_PX = 32

CLIP_S = 8.0
HELD_OUT_FRACTION = 0.1
DETECT_FRAMES = 20
QUIET_WINDOW_FRAMES = 5  # audio energy is averaged over 200 ms when looking for a closed mouth


@dataclass(frozen=True)
class FaceBox:
    """A face in source pixels: top-left (x, y), width and height."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> FaceBox:
        """``"X,Y,W,H"`` (pixels) -> FaceBox; ``ValueError`` naming the text otherwise."""
        try:
            x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
        except ValueError:
            raise ValueError(f"face box must look like X,Y,W,H in pixels, got {text!r}") from None
        return cls(x=x, y=y, w=w, h=h)

    def check_inside(self, *, width_px: int, height_px: int, source: str) -> None:
        """``VideoSourceError`` unless the box lies in a ``width_px`` x ``height_px`` frame."""
        if self.w < MIN_FACE_PX or self.h < MIN_FACE_PX:
            raise VideoSourceError(
                f"{source}: face box {self.as_text()} is smaller than {MIN_FACE_PX} px; "
                "give a box around the whole face"
            )
        if self.x < 0 or self.y < 0 or self.x + self.w > width_px or self.y + self.h > height_px:
            raise VideoSourceError(
                f"{source}: face box {self.as_text()} is not inside the {width_px}x{height_px} frame"
            )

    def as_text(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


def detect_face(frames: Sequence[np.ndarray], *, source: str) -> FaceBox:
    """The median of the largest Haar-cascade face per frame in ``frames`` (RGB uint8).

    Uses the frontal-face cascade shipped in the opencv-python-headless wheel. Raises
    ``VideoSourceError`` naming ``source`` when a face shows in under a quarter of the frames.
    """
    import cv2  # only auto-detection needs OpenCV

    xml = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(xml)
    if cascade.empty():
        raise VideoSourceError("OpenCV's haarcascade_frontalface_default.xml did not load")
    found = []
    for rgb in frames:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        side = max(MIN_FACE_PX, min(gray.shape) // 10)
        boxes = cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side)
        )
        if len(boxes):
            found.append(max(boxes, key=lambda b: int(b[2]) * int(b[3])))
    if len(found) * 4 < len(frames) or not found:
        raise VideoSourceError(
            f"{source}: no face found automatically (in {len(found)} of {len(frames)} frames "
            "looked at); pass --face-box X,Y,W,H with the face's box in pixels"
        )
    x, y, w, h = (int(round(v)) for v in np.median(np.asarray(found, np.float64), axis=0))
    return FaceBox(x=x, y=y, w=w, h=h)


def face_region(box: FaceBox, *, width_px: int, height_px: int, crop_px: int) -> FaceRegion:
    """The fixed square face region for ``box`` and its mouth mask (crop_px, crop_px)."""
    side = min(round(FACE_REGION_SCALE * max(box.w, box.h)), width_px, height_px)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2 + FACE_REGION_DROP * box.h
    x0 = min(max(0, round(cx - side / 2)), width_px - side)
    y0 = min(max(0, round(cy - side / 2)), height_px - side)
    s = crop_px / side  # frame px -> crop px
    fx0, fy0, fx1, fy1 = MOUTH_BOX
    mx0 = max(0, int((box.x + fx0 * box.w - x0) * s))
    my0 = max(0, int((box.y + fy0 * box.h - y0) * s))
    mx1 = min(crop_px, int(np.ceil((box.x + fx1 * box.w - x0) * s)))
    my1 = min(crop_px, int(np.ceil((box.y + fy1 * box.h - y0) * s)))
    mask = np.zeros((crop_px, crop_px), np.float32)
    mask[my0:my1, mx0:mx1] = 1.0
    return FaceRegion(x0=x0, y0=y0, side=side, mask=mask)


def mel_windows(pcm_48k: np.ndarray, n_frames: int) -> np.ndarray:
    """Drive windows (N, 40, 20) float32 for frames 0..N-1 of int16 48 kHz mono audio.

    Window k holds hops 4k-8 .. 4k+11 (frame k's own four 10 ms hops, 80 ms before and 80 ms
    after); audio outside the signal is zeros. Values are ``(dB - MEL_DB_CENTRE) / MEL_DB_SCALE``.
    """
    need = n_frames * SAMPLES_PER_FRAME
    x = np.zeros(need, np.float32)
    m = min(need, pcm_48k.shape[0])
    x[:m] = pcm_48k[:m].astype(np.float32) / 32768.0
    decimator = Decimator()
    delay = decimator.delay_samples_48k
    y = decimator.push(np.concatenate([x, np.zeros(delay + DECIMATION, np.float32)]))
    y = y[delay // DECIMATION : delay // DECIMATION + need // DECIMATION]  # undo the FIR delay
    after = MEL_WINDOW_HOPS - MEL_CONTEXT_HOPS - HOPS_PER_FRAME
    padded = np.concatenate(
        [
            np.zeros(MEL_CONTEXT_HOPS * HOP_SAMPLES, np.float32),
            y,
            np.zeros(after * HOP_SAMPLES, np.float32),
        ]
    )
    db = log_mel(padded)  # (8 + 4N + 8, 40)
    idx = (
        HOPS_PER_FRAME * np.arange(n_frames)[:, None] + np.arange(MEL_WINDOW_HOPS)[None, :]
    )  # (N, 20)
    windows = db[idx].transpose(0, 2, 1)  # (N, 20, 40) -> (N, 40, 20)
    return np.ascontiguousarray((windows - MEL_DB_CENTRE) / MEL_DB_SCALE, dtype=np.float32)


def clip_bounds(n_frames: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(training clips, held-out clips) as [start, stop) frame spans of about ``CLIP_S`` each."""
    if n_frames < 2:
        raise ValueError(f"{n_frames} frames are too few to hold some out and train on the rest")
    held = max(1, round(HELD_OUT_FRACTION * n_frames))

    def cut(start: int, stop: int) -> list[tuple[int, int]]:
        n = max(1, round((stop - start) / (CLIP_S * FPS)))
        edges = np.linspace(start, stop, n + 1).round().astype(int)
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    return cut(0, n_frames - held), cut(n_frames - held, n_frames)


def quiet_frames(pcm_48k: np.ndarray, spans: Sequence[tuple[int, int]]) -> list[int]:
    """Per span, the frame with the lowest audio energy over ``QUIET_WINDOW_FRAMES`` around it
    (the first frame of the span when it is all silent)."""
    n = pcm_48k.shape[0] // SAMPLES_PER_FRAME
    x = pcm_48k[: n * SAMPLES_PER_FRAME].astype(np.float32).reshape(n, SAMPLES_PER_FRAME)
    energy = (x**2).mean(axis=1)  # (n,)
    smooth = np.convolve(energy, np.ones(QUIET_WINDOW_FRAMES) / QUIET_WINDOW_FRAMES, mode="same")
    return [a + int(np.argmin(smooth[a:b])) for a, b in spans]


def clip_of(frame: int, spans: Sequence[tuple[int, int]]) -> int:
    """Index of the span holding ``frame``."""
    for i, (a, b) in enumerate(spans):
        if a <= frame < b:
            return i
    raise ValueError(f"frame {frame} is in none of the clips {spans[0][0]}..{spans[-1][1]}")


@dataclass(frozen=True)
class VideoFace:
    """Where the face is in a source video and how its dataset was cut."""

    source: SourceVideo
    face_box: FaceBox
    detected: bool  # True: found by the Haar cascade; False: given by the user
    region: FaceRegion
    train_clips: list[tuple[int, int]]
    held_clips: list[tuple[int, int]]
    reference_frames: list[int]  # per clip, training clips first


def find_face(source: SourceVideo, *, n_frames: int = DETECT_FRAMES) -> FaceBox:
    """Detect the face on ``n_frames`` frames spread over ``source``."""
    picks = np.linspace(0, source.n_frames - 1, min(n_frames, source.n_frames)).round().astype(int)
    frames = [next(iter_frames(source, start=int(k), stop=int(k) + 1)) for k in picks]
    return detect_face(frames, source=str(source.path))


def locate_face(
    video: str | Path | SourceVideo, *, crop_px: int, face_box: FaceBox | None = None
) -> VideoFace:
    """Open ``video`` (checking it), place the face region and pick the clips' references."""
    source = video if isinstance(video, SourceVideo) else open_source(video)
    where = str(source.path)
    if face_box is None:
        face_box, detected = find_face(source), True
    else:
        detected = False
    face_box.check_inside(width_px=source.width_px, height_px=source.height_px, source=where)
    region = face_region(
        face_box, width_px=source.width_px, height_px=source.height_px, crop_px=crop_px
    )
    train_clips, held_clips = clip_bounds(source.n_frames)
    return VideoFace(
        source=source,
        face_box=face_box,
        detected=detected,
        region=region,
        train_clips=train_clips,
        held_clips=held_clips,
        reference_frames=quiet_frames(source.pcm, train_clips + held_clips),
    )


def video_dataset(
    video: str | Path | SourceVideo,
    *,
    crop_px: int,
    face_box: FaceBox | None = None,
    progress: bool = False,
) -> tuple[FaceClipDataset, FaceClipDataset, VideoFace]:
    """(train, held-out, face info) from a talking-person video; row k is frame k's crop."""
    face = locate_face(video, crop_px=crop_px, face_box=face_box)
    source, region = face.source, face.region
    crops = np.empty((source.n_frames, crop_px, crop_px, 3), np.uint8)
    frames = tqdm(
        iter_frames(source), total=source.n_frames, disable=not progress, desc="crops", unit="frame"
    )
    for k, rgb in enumerate(frames):
        crops[k] = to_u8(crop_regions(rgb, [region], crop_px=crop_px))[0]
    drive = mel_windows(source.pcm, source.n_frames)  # (N, 40, 20)
    spans = face.train_clips + face.held_clips
    clip_ids = np.concatenate([np.full(b - a, i) for i, (a, b) in enumerate(spans)])  # (N,)
    references = crops[face.reference_frames]  # (K, c, c, 3)
    masks = np.repeat(region.mask[None], len(spans), axis=0)  # (K, c, c)

    def part(clips: range) -> FaceClipDataset:
        rows = np.isin(clip_ids, list(clips))
        return FaceClipDataset(
            frames=crops[rows],
            references=references[list(clips)],
            masks=masks[list(clips)],
            drive=drive[rows],
            clip_ids=clip_ids[rows] - clips.start,
        )

    n_train = len(face.train_clips)
    train, held = part(range(n_train)), part(range(n_train, len(spans)))
    logger.info(
        "%s: face box %s (%s), %d training frames in %d clips, %d held out",
        source.path,
        face.face_box.as_text(),
        "detected" if face.detected else "given",
        len(train),
        n_train,
        len(held),
    )
    return train, held, face


def reference_crops(face: VideoFace, *, crop_px: int) -> torch.Tensor:
    """The clips' reference crops (K, 3, c, c) in [-1, 1], decoded from the source video."""
    out = []
    for k in face.reference_frames:
        rgb = next(iter_frames(face.source, start=k, stop=k + 1))
        out.append(crop_regions(rgb, [face.region], crop_px=crop_px))
    return torch.cat(out)
