"""``talkie avatar build``: train a mouth model from rig footage of one character or a whole cast.

Steps: (1) rig renders of each character speaking many espeak-ng lines (avatar/neural/rig_clips.py), the last
clips of every character held out; (2) a rectified-flow teacher (``train_teacher``, sampled with 32 steps);
(3) distillation into a 1-2 step student (``distill_student``); (4) the student saved as float16
safetensors (the teacher too, when asked). Teacher and student checkpoints are written as the
run goes, so a killed build resumes where it stopped.

One model can serve several characters: identity comes from the reference crop, not the weights,
so a model built on a cast lists its characters in ``extra["characters"]`` and the renderer
batches all of them (in every session) into one forward pass.

``build_from_video`` trains on a user's video of a real person talking: face landmarks give each
frame's mouth shape and head position, and the model learns shape -> this person's mouth
(lipsync/neural/video_shapes.py, shape_drive.py); sound -> shape comes at animation time from
the live-audio estimator (avatar_animate.py). ``--video``'s default variant, ``"auto"``, sizes the
crop to the face (``auto_variant``: rig64, rig96 or rig128 by the median face region side).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from accel.distill import distill_student
from avatar.neural.cast_check import cast_figures
from avatar.neural.rig_clips import rig_clips, split_clips
from avatar.neural.video_mouth import video_geometry
from avatar.neural.video_track import TrackerFactory, track_video
from avatar.photo.landmarks import FaceTracker
from avatar.spec import CharacterSpec
from lipsync.neural.checkpoint import load_checkpoint, save_checkpoint
from lipsync.neural.data import FaceClipDataset
from lipsync.neural.model import FaceGen, FaceGenConfig, config_for
from lipsync.neural.regions import FaceRegion
from lipsync.neural.shape_drive import (
    SHAPE_CHANNELS,
    SHAPE_WINDOW_FRAMES,
    DriveSwapDataset,
    ShapeCalibration,
    fit_jaw_gain,
    fit_width_gain,
    viseme_jaw,
    viseme_spread,
)
from lipsync.neural.train import train_teacher
from lipsync.neural.video_io import SourceVideo, iter_frames, open_source
from lipsync.neural.video_shapes import (
    MouthTrack,
    VideoLayout,
    clip_region_sides,
    frame_regions,
    plan_layout,
    shape_video_dataset,
)
from stream.tools.speech_shapes import speech_mouths

logger = logging.getLogger(__name__)

# "rig64": 64 px crops, 1.5 M params, ~4x fewer FLOPs per step than "small": trains in minutes
# on two shared cores, where "small" (96 px, wider) managed too few steps in the same budget to
# learn the rig's mouths. The default for a quick build of one character.
_RIG64 = FaceGenConfig(
    crop_px=64,
    widths=(48, 96, 192),
    depths=(1, 2, 2),
    activation="relu",
    cond_dim=96,
    time_freqs=32,
    refine_channels=8,
)
BUILD_VARIANTS: MappingProxyType[str, FaceGenConfig] = MappingProxyType(
    {
        "tiny": config_for("tiny"),
        "rig64": _RIG64,
        # rig64's network at 96 px crops: ~2.3x the FLOPs, sharper mouths on faces drawn larger
        # than ~100 px (a 512x512 two-character scene). The shipped cast model.
        "rig96": dataclasses.replace(_RIG64, crop_px=96),
        # rig64's network at 128 px crops: ~4x rig64's FLOPs, for a face filling much of the frame
        # (a 360 px face paints its ~270 px mouth region from 128 px, not 64).
        "rig128": dataclasses.replace(_RIG64, crop_px=128),
        "small": config_for("small"),
    }
)

# ``--video`` builds default to "auto": the smallest of these whose crop is at least
# AUTO_CROP_FRAC of the video's median region side (so the paint is upsampled at most ~2.2x);
# faces larger than that take the last.
AUTO = "auto"
AUTO_VARIANTS = ("rig64", "rig96", "rig128")
AUTO_CROP_FRAC = 0.45


def build_config(name: str) -> FaceGenConfig:
    try:
        return BUILD_VARIANTS[name]
    except KeyError:
        also = f" ({AUTO!r} goes with --video only)" if name == AUTO else ""
        raise ValueError(
            f"unknown build variant {name!r}; known: {sorted(BUILD_VARIANTS)}{also}"
        ) from None


def auto_variant(region_side_px: float) -> str:
    """The smallest of ``AUTO_VARIANTS`` whose crop is at least ``AUTO_CROP_FRAC`` x
    ``region_side_px`` (a ~110 px region: rig64; ~200 px: rig96; ~270 px: rig128)."""
    if not region_side_px > 0:
        raise ValueError(f"a region side must be a positive number of pixels, got {region_side_px!r}")
    for name in AUTO_VARIANTS:
        if BUILD_VARIANTS[name].crop_px >= AUTO_CROP_FRAC * region_side_px:
            return name
    return AUTO_VARIANTS[-1]


@dataclass(frozen=True)
class BuildConfig:
    """One build run. Steps are totals (a resumed run only does the rest)."""

    variant: str = "rig64"
    n_clips: int = 40  # per character
    held_out_clips: int = 4  # per character
    frame_px: int = 256
    teacher_steps: int = 3000
    teacher_sample_steps: int = 32
    student_steps: int = 1000
    n_pairs: int = 512
    batch_size: int = 16
    seed: int = 0
    save_teacher: bool = False


def save_half(path: Path, model: FaceGen, *, kind: str, step: int, extra: dict[str, Any]) -> Path:
    """Weights only, as float16 (loading casts them back to float32)."""
    half = FaceGen(model.cfg)
    half.load_state_dict(model.state_dict())
    return save_checkpoint(path, model=half.half(), kind=kind, step=step, extra=extra)


def build_character(
    spec: CharacterSpec, *, out_dir: Path, config: BuildConfig, progress: bool = True
) -> dict[str, Any]:
    """Train ``spec``'s student into ``out_dir/<name>.safetensors``; returns a summary dict."""
    return build_model([spec], name=spec.name.lower(), out_dir=out_dir, config=config, progress=progress)


def build_model(
    specs: Sequence[CharacterSpec],
    *,
    name: str,
    out_dir: Path,
    config: BuildConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one student for all of ``specs`` into ``out_dir/<name>.safetensors``."""
    if not specs:
        raise ValueError("a build needs at least one character")
    cfg = build_config(config.variant)
    started = time.perf_counter()
    trains, helds = [], []
    for spec in specs:
        clips = rig_clips(
            spec, crop_px=cfg.crop_px, n_clips=config.n_clips, frame_px=config.frame_px
        )
        train_part, held_part = split_clips(clips, held_out=config.held_out_clips)
        trains.append(train_part)
        helds.append(held_part)
    train, held = FaceClipDataset.concat(trains), FaceClipDataset.concat(helds)
    logger.info("%s: %d training frames, %d held out", name, len(train), len(held))
    extra = {
        "characters": [spec.name for spec in specs],
        "variant": config.variant,
        "source": "rig",
        "teacher_steps": config.teacher_sample_steps,
        "student_steps": [1, 2],
        "frame_px": config.frame_px,
        "n_clips": config.n_clips,
        "held_out_clips": config.held_out_clips,
    }
    summary = _train_and_save(
        cfg, train, held, name=name, out_dir=out_dir, config=config, extra=extra, progress=progress
    )
    # Whether it may be offered as `--backend neural` (lipsync.neural.weights.offered_models):
    # its mouths against the rig's own on the held-out lines, recorded in the file.
    path = Path(summary["path"])
    ckpt = load_checkpoint(path, expect_kind="student")
    check = cast_figures(
        ckpt.model.float(), specs, n_clips=config.n_clips,
        held_out_clips=config.held_out_clips, frame_px=config.frame_px,
    )
    save_checkpoint(path, model=ckpt.model, kind="student", step=ckpt.step,
                    extra={**extra, "cast_check": check})
    summary["cast_check"] = check
    return {
        "characters": [spec.name for spec in specs],
        **summary,
        "minutes": (time.perf_counter() - started) / 60,
        "threads": torch.get_num_threads(),
    }


def video_build_config(variant: str) -> FaceGenConfig:
    """``variant``'s network driven by the mouth's shape (shape_drive.shape_windows)."""
    return dataclasses.replace(
        build_config(variant),
        drive_kind="shape",
        drive_channels=SHAPE_CHANNELS,
        drive_frames=SHAPE_WINDOW_FRAMES,
    )


@dataclass(frozen=True)
class TrackedVideo:
    """A video after its landmark pass: the track and how its frames were cut into clips."""

    source: SourceVideo
    track: MouthTrack
    layout: VideoLayout

    def region_sides_px(self) -> list[int]:
        """Each clip's face region side in frame pixels (video_shapes.clip_region_sides)."""
        return clip_region_sides(
            self.track, self.layout, width_px=self.source.width_px, height_px=self.source.height_px
        )

    def median_region_side_px(self) -> float:
        """The median region side over all frames (a clip counts by its length)."""
        lengths = [b - a for a, b in self.layout.clips]
        return float(np.median(np.repeat(self.region_sides_px(), lengths)))


def track_source(video: str | Path | SourceVideo, *, tracker: TrackerFactory = FaceTracker) -> TrackedVideo:
    """The landmark pass (avatar/neural/video_track.py) and the clip layout."""
    source = video if isinstance(video, SourceVideo) else open_source(video)
    track = track_video(iter_frames(source), source=str(source.path), tracker=tracker)
    return TrackedVideo(source=source, track=track, layout=plan_layout(track))


@dataclass(frozen=True)
class VideoData:
    """A video's landmark track, its layout, per-frame regions and the datasets cut from it."""

    source: SourceVideo
    track: MouthTrack
    layout: VideoLayout
    regions: list[FaceRegion]
    train: FaceClipDataset
    held: FaceClipDataset | None


def video_data(
    video: str | Path | SourceVideo | TrackedVideo, *, crop_px: int, tracker: TrackerFactory = FaceTracker
) -> VideoData:
    """The landmark pass (unless ``video`` has had it), then shape-driven crops of every frame."""
    tracked = video if isinstance(video, TrackedVideo) else track_source(video, tracker=tracker)
    source, track, layout = tracked.source, tracked.track, tracked.layout
    regions = frame_regions(
        track, layout, crop_px=crop_px, width_px=source.width_px, height_px=source.height_px
    )
    train, held = shape_video_dataset(iter_frames(source), track, layout, regions, crop_px=crop_px)
    return VideoData(source=source, track=track, layout=layout, regions=regions, train=train, held=held)


def build_from_video(
    video: str | Path,
    *,
    name: str,
    out_dir: Path,
    config: BuildConfig,
    tracker: TrackerFactory = FaceTracker,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a shape-driven student on a user's video of a person talking into
    ``out_dir/<name>.safetensors``.

    Face landmarks give every frame's mouth shape and head position (the crop follows the head);
    the model learns shape -> this person's pixels, with the surroundings of half its rows taken
    from another frame (``DriveSwapDataset``) so the drive, not the face around the mouth, decides
    the mouth. The middle of each clip is held out (video_shapes.py). ``config.variant`` picks
    the network size, ``"auto"`` by the face's size in the video (``auto_variant``); the
    rig-only fields (clips, frame size) are ignored.
    """
    if config.variant != AUTO:
        build_config(config.variant)  # a wrong name fails before the landmark pass, not after it
    started = time.perf_counter()
    tracked = track_source(video, tracker=tracker)
    sides = tracked.region_sides_px()
    median_side = tracked.median_region_side_px()
    variant = auto_variant(median_side) if config.variant == AUTO else config.variant
    cfg = video_build_config(variant)
    choice = {
        "asked": config.variant,
        "variant": variant,
        "crop_px": cfg.crop_px,
        "region_side_px": sides,
        "median_region_side_px": median_side,
        "upsampling": round(median_side / cfg.crop_px, 2),
    }
    if progress:
        print(
            f"{name}: face regions {min(sides)}-{max(sides)} px (median {median_side:g}): variant {variant} "
            f"({cfg.crop_px} px crops{', chosen by auto' if config.variant == AUTO else ''})",
            file=sys.stderr,
        )
    data = video_data(tracked, crop_px=cfg.crop_px)
    src = data.source
    _check_resumable(
        out_dir / f".{name}-build",
        {"video": str(src.path.resolve()), "bytes": src.path.stat().st_size, "variant": variant,
         "drive": "shape"},
    )
    layout = data.layout
    extra = {
        "source": "video",
        "variant": variant,
        "variant_choice": choice,
        "video": str(src.path.resolve()),
        "frame_size": [src.width_px, src.height_px],
        "frames": src.n_frames,
        "clips": [list(c) for c in layout.clips],
        "held_out": [list(c) for c in layout.held_spans()],
        "reference_frames": layout.reference_frames,
        "calibrations": [c.to_dict() for c in layout.calibrations],
        "calibration": ShapeCalibration.from_track(data.track.shapes[layout.split == 0]).to_dict(),
        "geometry": video_geometry(),
        "drive": {"kind": "shape"},
        "teacher_steps": config.teacher_sample_steps,
        "student_steps": [1, 2],
    }
    # Sound -> shape, fitted to this person: how wide they open and how far their lip corners
    # move for what the sound's visemes say.
    train_rows = layout.split == 0
    weights = speech_mouths()(src.pcm)
    clip_ids = layout.clip_ids()[train_rows]
    jaw_gain = fit_jaw_gain(
        data.track.shapes[train_rows, 0], viseme_jaw(weights)[train_rows], layout.calibrations, clip_ids
    )
    width_gain = fit_width_gain(
        data.track.shapes[train_rows, 1], viseme_spread(weights)[train_rows], layout.calibrations, clip_ids
    )
    extra["jaw_gain"], extra["width_gain"] = jaw_gain, width_gain
    train = DriveSwapDataset.swapped(data.train, seed=config.seed)
    held = data.held if data.held is not None else data.train.subset([0])
    summary = _train_and_save(
        cfg, train, held, name=name, out_dir=out_dir, config=dataclasses.replace(config, variant=variant),
        extra=extra, progress=progress,
    )
    return {
        "video": str(src.path),
        "seconds": src.seconds,
        "faces_found": int(data.track.found.sum()),
        "clips": len(layout.clips),
        "region_side_px": sorted({r.side for r in data.regions}),
        "variant_choice": choice,
        "jaw_gain": round(jaw_gain, 3),
        "width_gain": round(width_gain, 3),
        **summary,
        "held_out_frames": 0 if data.held is None else len(data.held),
        "minutes": (time.perf_counter() - started) / 60,
        "threads": torch.get_num_threads(),
    }


def _check_resumable(work: Path, stamp: dict[str, Any]) -> None:
    """A half-finished build in ``work`` resumes only on the same video, face box and variant."""
    path = work / "source.json"
    if path.exists():
        before = json.loads(path.read_text())
        if before != stamp:
            raise ValueError(
                f"{work} holds a build of {before.get('video')} (variant {before.get('variant')}, "
                f"drive {before.get('drive', 'mel')}); delete that folder or pick another --name"
            )
        return
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamp, sort_keys=True))


def _train_and_save(
    cfg: FaceGenConfig,
    train: FaceClipDataset,
    held: FaceClipDataset,
    *,
    name: str,
    out_dir: Path,
    config: BuildConfig,
    extra: dict[str, Any],
    progress: bool,
) -> dict[str, Any]:
    """Teacher, then student, then the float16 student (and teacher) files; a summary dict."""
    work = out_dir / f".{name}-build"
    teacher = train_teacher(
        cfg,
        train,
        steps=config.teacher_steps,
        batch_size=config.batch_size,
        checkpoint_path=work / "teacher.safetensors",
        seed=config.seed,
        progress=progress,
    )
    student = distill_student(
        teacher.model,
        train,
        steps=config.student_steps,
        teacher_steps=config.teacher_sample_steps,
        n_pairs=config.n_pairs,
        batch_size=config.batch_size,
        checkpoint_path=work / "student.safetensors",
        seed=config.seed,
        progress=progress,
    )
    out = save_half(
        out_dir / f"{name}.safetensors",
        student.model,
        kind="student",
        step=student.step,
        extra=extra,
    )
    if config.save_teacher:
        save_half(
            out_dir / f"{name}.teacher.safetensors",
            teacher.model,
            kind="teacher",
            step=teacher.step,
            extra=extra,
        )
    head = lambda xs: float(sum(xs[:50]) / max(1, len(xs[:50]))) if xs else None  # noqa: E731
    tail = lambda xs: float(sum(xs[-50:]) / max(1, len(xs[-50:]))) if xs else None  # noqa: E731
    return {
        "variant": config.variant,
        "path": str(out),
        "bytes": out.stat().st_size,
        "train_frames": len(train),
        "held_out_frames": len(held),
        "teacher_steps": teacher.step,
        "teacher_resumed_from": teacher.resumed_from,
        "student_steps": student.step,
        "teacher_loss_first50": head(teacher.losses),
        "teacher_loss_last50": tail(teacher.losses),
        "student_loss_first50": head(student.losses),
        "student_loss_last50": tail(student.losses),
    }
