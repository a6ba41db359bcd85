"""``talkie avatar build``: train a mouth model from rig footage of one character or a whole cast.

Steps: (1) rig renders of each character speaking many espeak-ng lines (avatar/neural/rig_clips.py), the last
clips of every character held out; (2) a rectified-flow teacher (``train_teacher``, sampled with 32 steps);
(3) distillation into a 1-2 step student (``distill_student``); (4) the student saved as float16
safetensors (the teacher too, when asked). Teacher and student checkpoints are written as the
run goes, so a killed build resumes where it stopped.

One model can serve several characters: identity comes from the reference crop, not the weights,
so a model built on a cast lists its characters in ``extra["characters"]`` and the renderer
batches all of them (in every session) into one forward pass.

``build_from_video`` trains the same way on a user's video of a real person talking
(video_data.py): face crops of the video, driven by log-mel windows of its sound.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from accel.distill import distill_student
from avatar.neural.cast_check import cast_figures
from avatar.neural.rig_clips import rig_clips, split_clips
from avatar.spec import CharacterSpec
from lipsync.neural.checkpoint import load_checkpoint, save_checkpoint
from lipsync.neural.data import FaceClipDataset
from lipsync.neural.model import FaceGen, FaceGenConfig, config_for
from lipsync.neural.train import train_teacher
from lipsync.neural.video_data import (
    MEL_BINS,
    MEL_DB_CENTRE,
    MEL_DB_SCALE,
    MEL_WINDOW_HOPS,
    FaceBox,
    video_dataset,
)

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
        "small": config_for("small"),
    }
)


def build_config(name: str) -> FaceGenConfig:
    try:
        return BUILD_VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"unknown build variant {name!r}; known: {sorted(BUILD_VARIANTS)}"
        ) from None


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
    """``variant``'s network driven by log-mel windows (video_data.mel_windows) instead of visemes."""
    return dataclasses.replace(
        build_config(variant),
        drive_kind="mel",
        drive_channels=MEL_BINS,
        drive_frames=MEL_WINDOW_HOPS,
    )


def build_from_video(
    video: str | Path,
    *,
    name: str,
    out_dir: Path,
    config: BuildConfig,
    face_box: FaceBox | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a student on a user's video of a person talking into ``out_dir/<name>.safetensors``.

    ``face_box`` (source pixels) or, when None, the face the Haar cascade finds places the face
    region; its last ~10% is held out (video_data.py). ``config.variant`` picks the network size
    (with a log-mel drive); the rig-only fields (clips, frame size) are ignored.
    """
    cfg = video_build_config(config.variant)
    started = time.perf_counter()
    train, held, face = video_dataset(
        video, crop_px=cfg.crop_px, face_box=face_box, progress=progress
    )
    src, region, box = face.source, face.region, face.face_box
    _check_resumable(
        out_dir / f".{name}-build",
        {"video": str(src.path.resolve()), "bytes": src.path.stat().st_size,
         "face_box": [box.x, box.y, box.w, box.h], "variant": config.variant},
    )
    extra = {
        "source": "video",
        "variant": config.variant,
        "video": str(src.path.resolve()),
        "frame_size": [src.width_px, src.height_px],
        "face_box": [box.x, box.y, box.w, box.h],
        "face_box_detected": face.detected,
        "region": {"x0": region.x0, "y0": region.y0, "side": region.side},
        "drive": {"kind": "mel", "db_centre": MEL_DB_CENTRE, "db_scale": MEL_DB_SCALE},
        "teacher_steps": config.teacher_sample_steps,
        "student_steps": [1, 2],
    }
    summary = _train_and_save(
        cfg, train, held, name=name, out_dir=out_dir, config=config, extra=extra, progress=progress
    )
    return {
        "video": str(src.path),
        "face_box": box.as_text(),
        "face_box_detected": face.detected,
        "seconds": src.seconds,
        **summary,
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
                f"{work} holds a build of {before.get('video')} (face box {before.get('face_box')}, "
                f"variant {before.get('variant')}); delete that folder or pick another --name"
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
