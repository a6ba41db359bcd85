"""Distil a multi-step flow teacher into a 1-2 step student.

Method: regression on the teacher's ODE couplings (the "distillation" stage of rectified flow,
Liu et al. 2022; Luhman & Luhman 2021 for diffusion).

1. Draw noise z and a condition c from the data, and integrate the teacher's ODE with 32+ Euler
   steps: x_T = ODE_teacher(z | c). Each (z, c) -> x_T is a deterministic coupling.
2. Train the student on the straight line between z and x_T, only at the times its sampler
   visits: x_t = (1 - t) z + t x_T, target v = x_T - z, t in {0} for one step, {0, 1/2} for two
   (the union of the grids of every step count asked for). On that line one Euler step from any
   grid time lands exactly on x_T, so 1-step and 2-step sampling reproduce the teacher.
3. The student starts from the teacher's weights (same architecture) and keeps its interface,
   so the sampler, quantizer and scheduler treat both alike.

Why this method, for talkie's budget (a 2-core CPU, minutes of training):
- It is plain supervised regression: stable, one network, no extra critics or EMA targets.
  DMD needs a second "fake score" network and a GAN-like min-max; consistency and shortcut
  models bootstrap from their own EMA predictions and need many more steps to settle.
- The cost is known up front: pairs x teacher_steps forward passes, done once, without grad.
- Its weakness, blurring when the target distribution is multi-modal (one z, many plausible
  outputs averaged), barely applies here: the mouth is pinned down by the drive window, the
  reference frame and the surrounding face, so the teacher's conditional distribution is nearly
  a single mode, and the deterministic coupling removes the rest.
- The test is direct: the student's 1-step sample should match the teacher's 32-step sample
  from the same noise.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from accel.sampler import sample
from lipsync.neural.data import FaceClipDataset, FaceCond
from lipsync.neural.flow import interpolate, mouth_weights, target_velocity, weighted_mse
from lipsync.neural.model import FaceGen, FaceGenConfig
from lipsync.neural.train import TrainResult, run_training

logger = logging.getLogger(__name__)

METHOD = "teacher-ode-regression"


@dataclass(frozen=True)
class TeacherPairs:
    """Teacher couplings: dataset rows, the noise, and the teacher's raw (uncomposed) samples."""

    indices: torch.Tensor  # (P,) rows of the dataset
    noise: torch.Tensor  # (P, 3, H, W)
    samples: torch.Tensor  # (P, 3, H, W)

    def __len__(self) -> int:
        return self.indices.shape[0]


def student_times(student_steps: tuple[int, ...]) -> torch.Tensor:
    """Every grid time the student is sampled at, e.g. (1, 2) -> tensor([0.0, 0.5])."""
    if not student_steps or min(student_steps) < 1:
        raise ValueError(f"student_steps must be positive step counts, got {student_steps}")
    times = sorted({k / n for n in student_steps for k in range(n)})
    return torch.tensor(times, dtype=torch.float32)


def make_teacher_pairs(
    teacher: FaceGen,
    dataset: FaceClipDataset,
    *,
    n_pairs: int,
    teacher_steps: int,
    generator: torch.Generator,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> TeacherPairs:
    """Sample ``n_pairs`` teacher couplings (z -> x_T) on random dataset rows."""
    device = torch.device(device)
    teacher = teacher.to(device).eval()
    indices = torch.randint(
        len(dataset), (n_pairs,), generator=generator, device=generator.device
    ).cpu()
    noises, outs = [], []
    for start in range(0, n_pairs, batch_size):
        idx = indices[start : start + batch_size]
        cond = dataset.batch(idx, device=device).cond
        z = torch.randn(cond.masked.shape, generator=generator, device=device)
        outs.append(sample(teacher, cond, steps=teacher_steps, noise=z, compose=False).cpu())
        noises.append(z.cpu())
    return TeacherPairs(indices=indices, noise=torch.cat(noises), samples=torch.cat(outs))


def distill_student(
    teacher: FaceGen,
    dataset: FaceClipDataset,
    *,
    steps: int,
    teacher_steps: int = 32,
    student_steps: tuple[int, ...] = (1, 2),
    n_pairs: int = 512,
    batch_size: int = 16,
    lr: float = 3e-4,
    device: torch.device | str = "cpu",
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = True,
    seed: int = 0,
    progress: bool = True,
    checkpoint_every: int = 200,
    mouth_loss_weight: float = 8.0,
    student_cfg: FaceGenConfig | None = None,
) -> TrainResult:
    """Distil ``teacher`` into a student for ``student_steps`` Euler steps; see the module doc.

    The pairs are regenerated from ``seed`` on resume (they are deterministic), so a resumed run
    continues exactly. A ``student_cfg`` other than the teacher's starts from fresh weights.
    """
    device = torch.device(device)
    times = student_times(student_steps).to(device)
    pair_gen = torch.Generator(device=device).manual_seed(seed + 1)
    pairs = make_teacher_pairs(
        teacher,
        dataset,
        n_pairs=n_pairs,
        teacher_steps=teacher_steps,
        generator=pair_gen,
        device=device,
    )
    logger.info("made %d teacher pairs with %d steps", len(pairs), teacher_steps)

    cfg = student_cfg if student_cfg is not None else teacher.cfg
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = FaceGen(cfg)
    if cfg == teacher.cfg:
        student.load_state_dict(teacher.state_dict())

    def loss_fn(m: FaceGen, gen: torch.Generator) -> torch.Tensor:
        pick = torch.randint(len(pairs), (batch_size,), generator=gen, device=gen.device).cpu()
        cond: FaceCond = dataset.batch(pairs.indices[pick], device=device).cond
        z, x_t1 = pairs.noise[pick].to(device), pairs.samples[pick].to(device)
        t = times[torch.randint(len(times), (batch_size,), generator=gen, device=gen.device)]
        v = m(interpolate(z, x_t1, t), t, *cond.as_args())
        w = mouth_weights(cond.mask, mouth_loss_weight=mouth_loss_weight, feather_px=2)
        return weighted_mse(v, target_velocity(z, x_t1), w)

    return run_training(
        student,
        loss_fn,
        kind="student",
        steps=steps,
        lr=lr,
        device=device,
        checkpoint_path=checkpoint_path,
        resume=resume,
        seed=seed,
        progress=progress,
        checkpoint_every=checkpoint_every,
        extra={
            "method": METHOD,
            "teacher_steps": teacher_steps,
            "student_steps": list(student_steps),
        },
    )
