"""``talkie avatar build``: train a per-character mouth model from rig footage.

Steps: (1) rig renders of the character speaking many espeak-ng lines (rig_data.py), the last
clips held out; (2) a rectified-flow teacher (``train_teacher``, sampled with 32 steps);
(3) distillation into a 1-2 step student (``distill_student``); (4) the student saved as float16
safetensors (the teacher too, when asked). Teacher and student checkpoints are written as the
run goes, so a killed build resumes where it stopped.

Source footage here is the rig only; a user's own video is not supported yet.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from accel.distill import distill_student
from avatar.spec import CharacterSpec
from lipsync.neural.checkpoint import save_checkpoint
from lipsync.neural.model import FaceGen, FaceGenConfig, config_for
from lipsync.neural.rig_data import rig_clips, split_clips
from lipsync.neural.train import train_teacher

logger = logging.getLogger(__name__)

# "rig64": the shipped CPU model. 64 px crops, 1.5 M params, ~4x fewer FLOPs per step than
# "small": trains in minutes on two shared cores, where "small" (96 px) managed too few steps
# in the same budget to learn the rig's mouths.
BUILD_VARIANTS: MappingProxyType[str, FaceGenConfig] = MappingProxyType(
    {
        "tiny": config_for("tiny"),
        "rig64": FaceGenConfig(
            crop_px=64,
            widths=(48, 96, 192),
            depths=(1, 2, 2),
            activation="relu",
            cond_dim=96,
            time_freqs=32,
            refine_channels=8,
        ),
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
    n_clips: int = 40
    held_out_clips: int = 4
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
    cfg = build_config(config.variant)
    name = spec.name.lower()
    work = out_dir / f".{name}-build"
    started = time.perf_counter()
    clips = rig_clips(spec, crop_px=cfg.crop_px, n_clips=config.n_clips, frame_px=config.frame_px)
    train, held = split_clips(clips, held_out=config.held_out_clips)
    logger.info("%s: %d training frames, %d held out", spec.name, len(train), len(held))
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
    extra = {
        "character": spec.name,
        "variant": config.variant,
        "source": "rig",
        "teacher_steps": config.teacher_sample_steps,
        "student_steps": [1, 2],
        "frame_px": config.frame_px,
        "n_clips": config.n_clips,
        "held_out_clips": config.held_out_clips,
    }
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
    tail = lambda xs: float(sum(xs[-50:]) / max(1, len(xs[-50:]))) if xs else None  # noqa: E731
    return {
        "character": spec.name,
        "variant": config.variant,
        "path": str(out),
        "bytes": out.stat().st_size,
        "train_frames": len(train),
        "held_out_frames": len(held),
        "teacher_steps": teacher.step,
        "teacher_resumed_from": teacher.resumed_from,
        "student_steps": student.step,
        "teacher_loss_last50": tail(teacher.losses),
        "student_loss_last50": tail(student.losses),
        "minutes": (time.perf_counter() - started) / 60,
        "threads": torch.get_num_threads(),
    }
