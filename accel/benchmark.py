"""Micro-benchmark of FaceGen: speed of teacher vs student, float vs int8, and mouth quality.

``bench_model`` times whole sampler calls (all steps, compose included) on held-out conditions
and reports ms per frame (= ms per call / batch size), then mouth-region PSNR/SSIM against the
ground-truth frames. Timings are medians of ``repeats`` calls after warm-up (compilation
happens in the warm-up). Quality is computed with the eager models in batches, the same
weights and numerics as the timed compiled ones up to float rounding.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from accel.device import prepare_for_inference
from accel.metrics import mouth_psnr, mouth_ssim
from accel.quantize import quantize_int8
from accel.sampler import sample
from lipsync.neural.data import FaceClipDataset
from lipsync.neural.model import FaceGen

logger = logging.getLogger(__name__)


def _time_calls(fn: Any, *, warmup: int, repeats: int) -> float:
    """Median seconds per call of ``fn()``."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _quality(
    model: nn.Module, data: FaceClipDataset, noise: torch.Tensor, *, steps: int, batch: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composed samples (N, 3, H, W) and ground truth for the first N rows of ``data``."""
    outs, targets = [], []
    with torch.inference_mode():
        for start in range(0, noise.shape[0], batch):
            fb = data.batch(range(start, min(start + batch, noise.shape[0])))
            outs.append(sample(model, fb.cond, steps=steps, noise=noise[start : start + batch]))
            targets.append(fb.target)
    return torch.cat(outs), torch.cat(targets)


def bench_model(
    teacher: FaceGen,
    student: FaceGen,
    held_out: FaceClipDataset,
    *,
    teacher_steps: int = 32,
    student_steps: Sequence[int] = (1, 2, 4),
    batch_sizes: Sequence[int] = (1, 2),
    int8: bool = True,
    compile: bool = True,
    n_eval: int = 64,
    repeats: int = 20,
    teacher_repeats: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Time and score teacher/student variants on CPU; returns a JSON-ready dict.

    Keys: ``env``; ``int8`` (layers quantized); ``speed``: rows of model, precision, steps, batch,
    ms_per_frame; ``quality``: rows of model, precision, steps, psnr_mouth_db, ssim_mouth,
    psnr_vs_teacher_db (all means over ``n_eval`` held-out frames); ``summary``.
    """
    teacher, student = teacher.cpu().eval(), student.cpu().eval()
    variants: dict[tuple[str, str], nn.Module] = {
        ("teacher", "float"): teacher,
        ("student", "float"): student,
    }
    report: dict[str, Any] = {
        "env": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "compile": compile,
            "crop_px": teacher.cfg.crop_px,
            "params": teacher.num_params(),
        }
    }
    if int8:
        q, rep = quantize_int8(student)
        variants[("student", "int8")] = q
        report["int8"] = {"quantized": list(rep.quantized), "kept_float": len(rep.kept_float)}

    plans = [("teacher", "float", teacher_steps)] + [
        (name, prec, s) for (name, prec) in variants if name == "student" for s in student_steps
    ]

    speed = []
    for name, prec in variants:
        fast = prepare_for_inference(variants[(name, prec)], compile=compile)
        for batch in batch_sizes:
            cond = held_out.batch(range(batch)).cond
            gen = torch.Generator().manual_seed(seed)
            noise = torch.randn(cond.masked.shape, generator=gen)
            for m_name, m_prec, steps in plans:
                if (m_name, m_prec) != (name, prec):
                    continue
                slow = name == "teacher"
                sec = _time_calls(
                    lambda fast=fast, cond=cond, noise=noise, steps=steps: sample(
                        fast, cond, steps=steps, noise=noise
                    ),
                    warmup=1 if slow else 3,
                    repeats=teacher_repeats if slow else repeats,
                )
                speed.append(
                    {
                        "model": name,
                        "precision": prec,
                        "steps": steps,
                        "batch": batch,
                        "ms_per_frame": 1000 * sec / batch,
                    }
                )
                logger.info("bench %s", speed[-1])
    report["speed"] = speed

    n = min(n_eval, len(held_out))
    noise = torch.randn(
        (n, 3, held_out.crop_px, held_out.crop_px),
        generator=torch.Generator().manual_seed(seed + 1),
    )
    mask = held_out.batch(range(n)).mask
    ref_out, target = _quality(teacher, held_out, noise, steps=teacher_steps)
    quality = []
    for name, prec, steps in [("teacher", "float", teacher_steps), ("teacher", "float", 1)] + plans[
        1:
    ]:
        out = (
            ref_out
            if (name, steps) == ("teacher", teacher_steps)
            else _quality(variants[(name, prec)], held_out, noise, steps=steps)[0]
        )
        quality.append(
            {
                "model": name,
                "precision": prec,
                "steps": steps,
                "psnr_mouth_db": mouth_psnr(out, target, mask).mean().item(),
                "ssim_mouth": mouth_ssim(out, target, mask).mean().item(),
                "psnr_vs_teacher_db": mouth_psnr(out, ref_out, mask).mean().item(),
            }
        )
    report["quality"] = quality
    report["summary"] = _summary(speed, quality, teacher_steps=teacher_steps)
    return report


def _summary(
    speed: list[dict[str, Any]], quality: list[dict[str, Any]], *, teacher_steps: int
) -> dict[str, Any]:
    def ms(model: str, prec: str, steps: int, batch: int) -> float | None:
        rows = [
            r
            for r in speed
            if (r["model"], r["precision"], r["steps"], r["batch"]) == (model, prec, steps, batch)
        ]
        return rows[0]["ms_per_frame"] if rows else None

    def psnr(model: str, prec: str, steps: int) -> float | None:
        rows = [
            r for r in quality if (r["model"], r["precision"], r["steps"]) == (model, prec, steps)
        ]
        return rows[0]["psnr_mouth_db"] if rows else None

    out: dict[str, Any] = {}
    prec = "int8" if any(r["precision"] == "int8" for r in speed) else "float"
    for batch in sorted({r["batch"] for r in speed}):
        t, s = ms("teacher", "float", teacher_steps, batch), ms("student", prec, 1, batch)
        if t and s:
            out[f"student_{prec}_1step_ms_per_frame_b{batch}"] = s
            out[f"speedup_vs_teacher_b{batch}"] = t / s
    t_psnr, s_psnr = psnr("teacher", "float", teacher_steps), psnr("student", prec, 1)
    if t_psnr is not None and s_psnr is not None:
        out[f"psnr_gap_student_{prec}_1step_db"] = t_psnr - s_psnr
    return out
