"""``talkie bench model``: speed and quality of a shipped neural mouth model on held-out rig clips.

Reuses ``accel.benchmark.bench_model`` (teacher at its steps, student at 1/2/4 steps, float and
int8, batch 1 and 2, mouth PSNR/SSIM against the rig's ground truth), then adds how well the
student's mouth opening follows the speech: per frame, the opening is the mean absolute change
inside the mouth mask from the closed-mouth reference, and the energy is the RMS of the frame's
1920 audio samples; the figure is their Pearson correlation over the held-out clips (the rig's own
frames give the ceiling). Timings are eager (not ``torch.compile``d) unless asked: compiling every
variant and batch size takes minutes on the 2-core machine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from accel.benchmark import bench_model
from accel.sampler import sample
from avatar.neural.rig_clips import RigClip, rig_clips
from avatar.spec import Cast
from lipsync.neural.checkpoint import CheckpointError, load_checkpoint
from lipsync.neural.data import FaceClipDataset
from lipsync.neural.weights import default_weights_dir, weights_index
from lipsync.timebase import SAMPLES_PER_FRAME

logger = logging.getLogger(__name__)


def mouth_opening(crops: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """(N,) mean |crop - reference| inside the mask; crops (N, 3, H, W), reference/mask broadcast."""
    diff = (crops - reference).abs().mean(dim=1, keepdim=True) * mask  # (N, 1, H, W)
    return (diff.sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp_min(1.0)).numpy()


def frame_energy(pcm: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) RMS of each frame's samples (frame k: samples [1920 k, 1920 (k + 1)))."""
    x = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
    m = min(x.shape[0], pcm.shape[0])
    x[:m] = pcm[:m].astype(np.float32) / 32768.0
    return np.sqrt((x.reshape(n_frames, SAMPLES_PER_FRAME) ** 2).mean(axis=1))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def speech_sync(student: torch.nn.Module, clips: list[RigClip]) -> dict[str, Any]:
    """Correlation of mouth opening with speech energy: student 1-step vs the rig's frames."""
    gen_open, true_open, energy = [], [], []
    with torch.inference_mode():
        for clip in clips:
            d = clip.dataset
            fb = d.batch(range(len(d)))
            noise = torch.randn(fb.target.shape, generator=torch.Generator().manual_seed(0))
            out = sample(student, fb.cond, steps=1, noise=noise)
            gen_open.append(mouth_opening(out, fb.reference, fb.mask))
            true_open.append(mouth_opening(fb.target, fb.reference, fb.mask))
            energy.append(frame_energy(clip.pcm, len(d)))
    g, t, e = (np.concatenate(x) for x in (gen_open, true_open, energy))
    return {
        "frames": int(e.shape[0]),
        "corr_student_opening_vs_energy": _corr(g, e),
        "corr_rig_opening_vs_energy": _corr(t, e),
        "corr_student_vs_rig_opening": _corr(g, t),
        "trace": {"student": g[:150].tolist(), "rig": t[:150].tolist(), "energy": e[:150].tolist()},
    }


def draw_plot(report: dict[str, Any], path: Path) -> Path:
    """Bars of ms/frame per variant (batch 1 and batch 2) with each variant's mouth PSNR, above
    traces of mouth opening and speech energy on a held-out clip; a PNG."""
    w, h = 900, 600
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    variants = list(dict.fromkeys((r["model"], r["precision"], r["steps"]) for r in report["speed"]))
    ms = {(r["model"], r["precision"], r["steps"], r["batch"]): r["ms_per_frame"] for r in report["speed"]}
    psnr = {(q["model"], q["precision"], q["steps"]): q["psnr_mouth_db"] for q in report["quality"]}
    top = max(ms.values())
    colours = {1: (70, 120, 200), 2: (230, 140, 40)}
    d.text((10, 8), "ms/frame (log scale): batch 1 blue, batch 2 orange; mouth PSNR on the right", fill="black")
    for i, variant in enumerate(variants):
        y = 30 + i * 34
        d.text((10, y + 8), f"{variant[0]} {variant[1]} {variant[2]} st", fill="black")
        for j, batch in enumerate((1, 2)):
            value = ms.get((*variant, batch))
            if value is None:
                continue
            length = int(560 * np.log1p(value) / np.log1p(top))
            d.rectangle((200, y + 15 * j, 200 + length, y + 15 * j + 12), fill=colours[batch])
            d.text((205 + length, y + 15 * j), f"{value:.1f}", fill="black")
        if variant in psnr:
            d.text((820, y + 8), f"{psnr[variant]:.2f} dB", fill="black")
    trace = report["speech_sync"]["trace"]
    y0, y1 = 380, 580
    d.text(
        (10, y0 - 20),
        "held-out clip: energy (grey), rig opening (green), student opening (red)",
        fill="black",
    )
    for key, colour in (
        ("energy", (150, 150, 150)),
        ("rig", (40, 160, 60)),
        ("student", (210, 50, 50)),
    ):
        v = np.asarray(trace[key], np.float64)
        if v.size < 2:
            continue
        v = (v - v.min()) / max(1e-9, v.max() - v.min())
        xs = np.linspace(10, w - 10, v.size)
        pts = [(float(x), float(y1 - (y1 - y0) * val)) for x, val in zip(xs, v, strict=True)]
        d.line(pts, fill=colour, width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def bench_shipped_model(
    *,
    character: str | None = None,
    weights_dir: str | Path | None = None,
    plot_path: Path = Path("bench_model.png"),
    compile: bool = False,
    n_eval: int = 56,
) -> dict[str, Any]:
    """Bench a shipped student (and its teacher when shipped) on the held-out clips of every
    character it was built on. ``character`` picks the model serving that character; by default
    the one serving the most characters."""
    index = weights_index(weights_dir)
    if not index:
        raise CheckpointError(f"no neural models in {weights_dir or default_weights_dir()}")
    if character is not None and character.upper() not in index:
        raise ValueError(f"no neural model serves {character!r}; models serve {sorted(index)}")
    paths = list(index.values())
    path = index[character.upper()] if character else max(paths, key=paths.count)
    student_ckpt = load_checkpoint(path, expect_kind="student")
    note = None
    teacher_path = path.with_name(f"{path.stem}.teacher.safetensors")
    try:
        teacher = load_checkpoint(teacher_path, expect_kind="teacher").model.float()
    except CheckpointError as err:
        # Without a teacher the student stands in for it: say so in the report.
        note = f"no teacher shipped ({err}); 'teacher' rows are the student at 32 steps"
        teacher = student_ckpt.model
    student = student_ckpt.model.float()
    extra = student_ckpt.extra
    names = extra.get("characters") or [extra.get("character", path.stem.upper())]
    n_clips, held = int(extra.get("n_clips", 40)), int(extra.get("held_out_clips", 4))
    clips: list[RigClip] = []
    for name in names:
        spec = Cast.builtin().get(name)
        if spec is None:
            raise ValueError(f"{name!r} (in {path}) is not a built-in character")
        clips += rig_clips(
            spec,
            crop_px=student.cfg.crop_px,
            n_clips=n_clips,
            first=n_clips - held,
            frame_px=int(extra.get("frame_px", 256)),
        )
    held_out = FaceClipDataset.concat([c.dataset for c in clips])
    # Quality on frames spread evenly over every character's clips.
    picks = np.linspace(0, len(held_out) - 1, min(n_eval, len(held_out))).round().astype(int)
    teacher_steps = int(extra.get("teacher_steps", 32))
    report = bench_model(
        teacher,
        student,
        held_out.subset(picks),
        teacher_steps=teacher_steps,
        compile=compile,
        n_eval=len(picks),
        repeats=10,
        teacher_repeats=2,
    )
    report["checkpoint"] = {
        "path": str(student_ckpt.path),
        "bytes": student_ckpt.path.stat().st_size,
        "teacher_bytes": teacher_path.stat().st_size if teacher_path.exists() else None,
        "extra": extra,
        "characters": names,
        "held_out_frames": len(held_out),
        "quality_frames": len(picks),
    }
    if note:
        report["note"] = note
    report["speech_sync"] = speech_sync(student, clips)
    report["plot"] = str(draw_plot(report, plot_path))
    del report["speech_sync"]["trace"]
    return report
