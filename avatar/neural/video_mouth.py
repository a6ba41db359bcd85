"""A video-built model painting mouths: loading it, the crop -> model -> soft paste core, and a
photo card's mouth drawn by it.

A model from ``talkie avatar build --video`` (a shape-driven FaceGen student) repaints the mouth
inside a face region: the region's crop, its mouth ellipse blanked, a reference crop of the same
person with the mouth closed and a drive window of the mouth's shape go in; the generated crop is
pasted back with ``paint_mask`` (feathered, inset), so pixels outside it keep their values
exactly. ``MouthPainter`` does that for video frames (``talkie avatar animate``);
``CardMouth`` does it for one still card of the person (a video character in a scene): per mouth
(viseme weights) -> this person's (opening, width) by their calibration -> a constant 5-frame
drive -> the mouth box's pixels.

The int8 ahead-of-time package beside the weights runs when present (``fast_model``), else the
eager float model.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from accel.face_batches import FaceJob, facegen_runner
from accel.sampler import sample
from accel.scheduler import (
    DeadlineMissed,
    FrameScheduler,
    RenderRequest,
    SchedulerBusy,
    SchedulerClosed,
)
from avatar.neural.video_track import measure
from avatar.photo.landmarks import FaceLandmarks
from lipsync.neural.checkpoint import CheckpointError, read_extra
from lipsync.neural.data import FaceCond
from lipsync.neural.model import FaceGen
from lipsync.neural.regions import FaceRegion, crop_regions, paint_mask, paste_regions
from lipsync.neural.shape_drive import (
    SHAPE_CHANNELS,
    SHAPE_WINDOW_FRAMES,
    ShapeCalibration,
    shape_windows,
)
from lipsync.neural.video_shapes import (
    MASK_DROP_FRAC,
    MASK_RADII_FRAC,
    REGION_DROP_FRAC,
    REGION_FACE_FRAC,
    MouthTrack,
    VideoLayout,
    frame_regions,
)
from lipsync.neural.weights import load_student
from lipsync.visemes import SIL

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]

# A card's mouth keeps the card's own fine detail (skin, stubble, a moustache's edge: what the
# model's crop is too small to carry) wherever the model's mouth differs from the card, seen at
# the crop's resolution, by less than DETAIL_KEEP_LEVELS (8-bit levels), fading out by
# DETAIL_FADE_LEVELS more: an opening mouth is the model's, the skin around it stays sharp.
DETAIL_KEEP_LEVELS = 4.0
DETAIL_FADE_LEVELS = 12.0


def video_geometry() -> dict[str, Any]:
    """The face-region geometry a video model is built with; loading refuses another."""
    return {
        "region_face_frac": REGION_FACE_FRAC,
        "region_drop_frac": REGION_DROP_FRAC,
        "mask_drop_frac": MASK_DROP_FRAC,
        "mask_radii_frac": list(MASK_RADII_FRAC),
    }


def load_video_model(path: str | Path) -> tuple[FaceGen, dict[str, Any]]:
    """The student and its build record; ``CheckpointError`` unless it is a shape-driven model
    built from a video by this version."""
    model = load_student(path)
    extra = read_extra(path)
    cfg = model.cfg
    if extra.get("source") != "video" or cfg.drive_kind != "shape":
        raise CheckpointError(
            f"{path} is not a shape-driven video model (source={extra.get('source')!r}, drive "
            f"{cfg.drive_kind!r}); build one with `talkie avatar build --video PERSON.mp4 --name NAME`"
        )
    missing = sorted({"calibration", "geometry"} - set(extra))
    if missing:
        raise CheckpointError(f"{path} is a video model without {missing} in its metadata")
    if (cfg.drive_channels, cfg.drive_frames) != (SHAPE_CHANNELS, SHAPE_WINDOW_FRAMES) or extra[
        "geometry"
    ] != video_geometry():
        raise CheckpointError(
            f"{path} was built with another face geometry or shape drive ({extra['geometry']}, "
            f"{cfg.drive_channels} x {cfg.drive_frames}) than this version uses; build it again"
        )
    try:
        ShapeCalibration.from_dict(extra["calibration"])
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err
    return model, extra


def fast_model(model_path: str | Path, model: FaceGen, *, quiet: bool = False) -> torch.nn.Module:
    """The int8 ahead-of-time package of ``model`` when one stands beside it, else ``model``
    (eager float32, with a warning saying how to make the package unless ``quiet``)."""
    from accel.aot import AotArtifactError, load_aot

    try:
        return load_aot(model_path, precision="int8", config=model.cfg)
    except AotArtifactError as err:
        if not quiet:
            logger.warning("running the eager float model: %s", err)
        return model


class MouthPainter:
    """Repaints the mouth inside each frame's own face region (they follow the head)."""

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        references: torch.Tensor,
        mask: np.ndarray,
        steps: int = 1,
        seed: int = 0,
    ) -> None:
        c: int = getattr(model, "cfg").crop_px  # noqa: B009 - a FaceGen, or its ahead-of-time package (same cfg)
        if references.shape[1:] != (3, c, c) or mask.shape != (c, c):
            raise ValueError(
                f"references must be (K, 3, {c}, {c}) and the mask ({c}, {c}), got "
                f"{tuple(references.shape)} and {mask.shape}"
            )
        self.model, self.references, self.steps = model, references, steps
        self.crop_px = c
        self.mask = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None, None]  # (1, 1, c, c)
        self.soft = paint_mask(self.mask)  # (1, 1, c, c): where pixels are replaced
        self.noise = torch.randn((1, 3, c, c), generator=torch.Generator().manual_seed(seed))

    def paint(
        self,
        frames: Sequence[np.ndarray],
        regions: Sequence[FaceRegion],
        drive: np.ndarray,
        clips: Sequence[int],
    ) -> None:
        """Repaint ``frames`` (each (H, W, 3) uint8) in place; ``regions``, ``drive`` (B, 2, 5)
        and ``clips`` (B,) are each frame's face region, drive window and reference index."""
        b = len(frames)
        c = self.crop_px
        cond = self.conds(frames, regions, drive, clips)
        with torch.inference_mode():
            noise = self.noise.expand(b, 3, c, c).contiguous()
            out = sample(self.model, cond, steps=self.steps, noise=noise, compose=False)
        self.paste(frames, regions, out)

    def conds(
        self, frames: Sequence[np.ndarray], regions: Sequence[FaceRegion], drive: np.ndarray, clips: Sequence[int]
    ) -> FaceCond:
        """The model's condition for ``frames`` (what ``paint`` runs): their crops with the mouth
        blanked, the references of ``clips``, the mask and the drive windows."""
        b, c = len(frames), self.crop_px
        with torch.inference_mode():
            current = torch.cat(
                [crop_regions(f, [r], crop_px=c) for f, r in zip(frames, regions, strict=True)]
            )  # (B, 3, c, c)
            mask = self.mask.expand(b, 1, c, c)
            return FaceCond(
                reference=self.references[torch.as_tensor(list(clips), dtype=torch.long)],
                masked=current * (1.0 - mask),
                mask=mask,
                drive=torch.from_numpy(np.ascontiguousarray(drive, np.float32)),
            )

    def paste(self, frames: Sequence[np.ndarray], regions: Sequence[FaceRegion], crops: torch.Tensor) -> None:
        """Paste generated ``crops`` (B, 3, c, c) in [-1, 1] into ``frames`` in place."""
        for frame, region, crop in zip(frames, regions, crops.clamp(-1.0, 1.0), strict=True):
            paste_regions(frame, [region], crop[None], self.soft)


@dataclass(frozen=True, slots=True)
class VideoMouthsConfig:
    """``wait_ms``: how long a card waits for its batch before painting the mouth itself;
    ``gather_ms``: how long a part-full batch waits for other cards' mouths."""

    steps: int = 1
    device: str = "auto"  # CUDA in bfloat16 when there is one, else the CPU (the int8 package)
    max_batch: int = 16
    gather_ms: float = 3.0
    wait_ms: float = 40.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.max_batch < 1 or self.gather_ms < 0 or self.wait_ms <= 0:
            raise ValueError(f"bad video mouths config {self}")


class VideoMouths:
    """The server's video-character mouths: each model loaded once (its int8 package on the CPU,
    bfloat16 on CUDA) and one ``FrameScheduler`` running every card's new mouths of every
    session together, earliest deadline first. A card whose batch is not back within
    ``wait_ms`` (or finds the queue full) paints its mouth itself. Thread-safe."""

    def __init__(self, config: VideoMouthsConfig | None = None) -> None:
        from accel.device import pick_device

        self.config = config or VideoMouthsConfig()
        self.device = pick_device(self.config.device)
        self.scheduler = FrameScheduler({}, max_batch=self.config.max_batch, gather_s=self.config.gather_ms / 1000.0).start()
        self._keys: dict[Path, str] = {}
        self._lock = threading.Lock()  # the counters and the keys: held for moments only
        self._loading = threading.Lock()  # one model loaded at a time (seconds), never under _lock
        self._loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="talkie-video-load")
        self.painted = 0
        self.painted_alone = 0  # mouths whose batch did not come in time: the card painted them

    def key(self, model_path: str | Path) -> str:
        """The scheduler's key for the model at ``model_path``, loading it the first time
        (blocking: a file read, and the package's load; run it off the event loop)."""
        path = Path(model_path).resolve()
        with self._loading:
            with self._lock:
                found = self._keys.get(path)
            if found is not None:
                return found
            model, _ = load_video_model(path)
            runner: torch.nn.Module
            if self.device.type == "cpu":
                runner = fast_model(path, model, quiet=True)
            else:
                from accel.device import pick_dtype, prepare_for_inference

                runner = prepare_for_inference(model, device=self.device, dtype=pick_dtype(self.device))
            with self._lock:
                key = f"video{len(self._keys)}"
            self.scheduler.add_runner(key, facegen_runner(runner, steps=self.config.steps, compose=False))
            with self._lock:
                self._keys[path] = key
            return key

    def key_soon(self, model_path: str | Path) -> concurrent.futures.Future[str]:
        """``key`` on the service's own loading thread (never the caller's, which may be the
        event loop); until it is done a card paints its mouths itself."""
        return self._loader.submit(self.key, model_path)

    def paint(self, key: str, job: FaceJob, *, owner: str) -> torch.Tensor | None:
        """``job``'s crop (3, c, c) in [-1, 1], or None when its batch did not come in time."""
        wait = self.config.wait_ms / 1000.0
        future = self.scheduler.submit(RenderRequest(
            character_id=owner, session_id=owner, deadline_s=time.monotonic() + wait, inputs=job, model_key=key,
        ))
        try:
            crop: torch.Tensor = future.result(timeout=wait + 1.0)
        except (DeadlineMissed, SchedulerBusy, SchedulerClosed, concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
            with self._lock:
                self.painted_alone += 1
            return None
        with self._lock:
            self.painted += 1
        return crop

    def stats(self) -> dict[str, Any]:
        s = self.scheduler.stats
        sizes = list(s.batch_sizes)
        with self._lock:
            return {
                "models": len(self._keys), "device": str(self.device), "painted": self.painted,
                "painted_alone": self.painted_alone, "batches": s.batches,
                "mean_batch": round(sum(sizes) / len(sizes), 2) if sizes else None,
                "max_batch_seen": max(sizes) if sizes else None, "dropped_late": s.dropped_late,
            }

    def close(self) -> None:
        self._loader.shutdown(wait=True, cancel_futures=True)
        self.scheduler.close()


def card_region(face: FaceLandmarks, *, crop_px: int, width_px: int, height_px: int) -> FaceRegion:
    """The face region of one still picture, computed as ``frame_regions`` does for a video frame
    (a track of one frame: centred on the mouth, dropped by ``REGION_DROP_FRAC``)."""
    track = MouthTrack.from_measurements([measure(face)], source="card")
    layout = VideoLayout(
        clips=[(0, 1)], reference_frames=[0],
        calibrations=[ShapeCalibration(closed_opening=0.0, open_opening=1.0, neutral_width=1.0)],
        split=np.zeros(1, np.int8),
    )
    return frame_regions(track, layout, crop_px=crop_px, width_px=width_px, height_px=height_px)[0]


def person_calibration(extra: dict[str, Any], *, clip: int | None) -> ShapeCalibration:
    """The calibration of the model's ``clip`` (the whole video's when None or unknown), opened
    with the gains the model's build fitted, as ``talkie avatar animate`` does."""
    per_clip = extra.get("calibrations") or []
    raw = per_clip[clip] if clip is not None and 0 <= clip < len(per_clip) else extra["calibration"]
    return ShapeCalibration.from_dict(raw).fitted(extra)


class CardMouth:
    """One card's mouth drawn by a person's video model: ``patch(weights)`` gives the pixels of
    ``box`` (the card's mouth box) with the mouth for those viseme weights.

    ``moving`` (box-sized, bool) marks the pixels any mouth may change (the paste's feathered
    ellipse inside the box); every other pixel of a patch is the card's own. Silence (no
    weights, or only ``sil``) is the card unchanged. The model is loaded at construction and
    again after unpickling (a pickled card mouth carries its arrays, not the model). Not
    thread-safe.
    """

    def __init__(
        self, model_path: str | Path, *, card: np.ndarray, face: FaceLandmarks, box: Box,
        clip: int | None = None, steps: int = 1, seed: int = 0, int8: bool = True,
    ) -> None:
        """``int8``: run the int8 package beside the weights when there is one (off: always the
        eager float model, for comparing them)."""
        self.model_path = Path(model_path)
        self.clip, self.steps, self.seed, self.int8 = clip, steps, seed, int8
        self.card = np.ascontiguousarray(card)
        self.card.flags.writeable = False
        self.box = box
        self._load(log=True)
        h, w = self.card.shape[:2]
        self.region = card_region(face, crop_px=self.crop_px, width_px=w, height_px=h)
        self.paste = self._paste_weights()  # (h, w) of the box: how much of a pixel the paste replaces
        self.moving = self.paste > 0

    def _load(self, *, log: bool) -> None:
        model, extra = load_video_model(self.model_path)
        self.runner = fast_model(self.model_path, model, quiet=True) if self.int8 else model
        if log:
            kind = "the int8 ahead-of-time package" if self.runner is not model else (
                "the eager float model" + ("" if not self.int8 else " (no int8 package beside it: `talkie avatar compile`)")
            )
            logger.info("video mouth %s: %s", self.model_path, kind)
        self.crop_px = model.cfg.crop_px
        self.calibration = person_calibration(extra, clip=self.clip)
        self._painter: MouthPainter | None = None

    def painter(self) -> MouthPainter:
        if self._painter is None:
            ref = crop_regions(self.card, [self.region], crop_px=self.crop_px)  # (1, 3, c, c): the card at rest
            self._painter = MouthPainter(
                model=self.runner, references=ref, mask=self.region.mask, steps=self.steps, seed=self.seed,
            )
            self._low, self._detail = self._card_detail(ref)
        return self._painter

    def _card_detail(self, ref: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The box of the card as the model's crop sees it (cropped, then pasted back at the
        region's size) and what that loses: (h, w, 3) float32 each, low + detail = the card."""
        r, (x0, y0, x1, y1) = self.region, self.box
        up = F.interpolate(ref, size=(r.side, r.side), mode="bicubic", align_corners=False)[0]  # (3, side, side)
        low = self.card.astype(np.float32)
        low[r.y0 : r.y0 + r.side, r.x0 : r.x0 + r.side] = (up.permute(1, 2, 0).numpy() + 1.0) * 127.5
        card = self.card[y0:y1, x0:x1].astype(np.float32)
        return low[y0:y1, x0:x1], card - low[y0:y1, x0:x1]

    def _paste_weights(self) -> np.ndarray:
        """``paste_regions``' blend weight of each box pixel (0 outside the region)."""
        r = self.region
        soft = paint_mask(torch.from_numpy(r.mask)[None, None])  # (1, 1, c, c)
        if soft.shape[-1] != r.side:
            soft = F.interpolate(soft, size=(r.side, r.side), mode="bilinear", align_corners=False)
        full = np.zeros(self.card.shape[:2], np.float32)
        full[r.y0 : r.y0 + r.side, r.x0 : r.x0 + r.side] = np.clip(soft[0, 0].numpy(), 0.0, 1.0)
        x0, y0, x1, y1 = self.box
        return full[y0:y1, x0:x1].copy()

    def drive(self, weights: np.ndarray) -> np.ndarray:
        """The constant drive window (1, 2, 5) for viseme ``weights`` (15,)."""
        return shape_windows(self.calibration.track_from_visemes([weights]))

    def attach(self, service: VideoMouths | None, *, owner: str = "card") -> None:
        """Paint new mouths through ``service`` (the server's batches) once it has loaded this
        model (on its own thread; meanwhile, and with None, they are painted here). Never blocks."""
        self._service = service
        self._service_key = None if service is None else service.key_soon(self.model_path)
        self._owner = owner

    def _paint(self, frame: np.ndarray, weights: np.ndarray) -> None:
        painter = self.painter()
        service = getattr(self, "_service", None)
        loading: concurrent.futures.Future[str] | None = getattr(self, "_service_key", None)
        key = None
        if loading is not None and loading.done() and not loading.cancelled() and loading.exception() is None:
            key = loading.result()
        if service is not None and key is not None:
            cond = painter.conds([frame], [self.region], self.drive(weights), [0])
            crop = service.paint(key, FaceJob(cond=cond, seed=self.seed), owner=self._owner)
            if crop is not None:
                painter.paste([frame], [self.region], crop[None])
                return
        painter.paint([frame], [self.region], self.drive(weights), [0])

    def patch(self, weights: np.ndarray | None) -> np.ndarray:
        """The box's pixels (h, w, 3) uint8 with the mouth for ``weights``."""
        x0, y0, x1, y1 = self.box
        if weights is None or float(np.sum(weights)) - float(weights[SIL]) <= 1e-6:
            return self.card[y0:y1, x0:x1].copy()
        frame = self.card.copy()
        self._paint(frame, weights)
        painted = frame[y0:y1, x0:x1].astype(np.float32)
        change = np.abs(painted - self._low).mean(axis=2)  # (h, w): what the model changed
        new = np.clip((change - DETAIL_KEEP_LEVELS) / DETAIL_FADE_LEVELS, 0.0, 1.0)
        new = cv2.GaussianBlur(new, (0, 0), 0.7 * self.region.side / self.crop_px)
        keep = (self.paste * (1.0 - new))[..., None]  # the card's detail, as much as the paste took
        out = np.clip(np.rint(painted + keep * self._detail), 0, 255).astype(np.uint8)
        # Only the box goes back: where the paste reached past it, the card keeps its own pixels.
        return np.where(self.moving[..., None], out, self.card[y0:y1, x0:x1])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("runner", "_painter", "calibration", "crop_px", "_low", "_detail", "_service", "_service_key"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load(log=False)
