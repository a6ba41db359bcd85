"""FaceGen work as ``FrameScheduler`` batches: one job per character per frame, run together.

A ``FaceJob`` is one frame's condition (batch of 1) and the seed of its start noise;
``facegen_runner`` turns a model into the scheduler's ``run_batch``: stack the jobs, sample, split.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accel.sampler import sample
from accel.scheduler import BatchFn
from lipsync.neural.data import FaceCond


@dataclass(frozen=True)
class FaceJob:
    """Inputs of one FaceGen frame: its condition (batch of 1) and the seed of its noise."""

    cond: FaceCond
    seed: int


def job_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """The start noise of a job with ``seed``: the same wherever and with whatever it runs."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed))


def facegen_runner(
    model: nn.Module,
    *,
    steps: int,
    pad_to: Sequence[int] = (),
    feather_px: int = 2,
    compose: bool = True,
) -> BatchFn:
    """A ``run_batch`` for FaceGen: stack the jobs' conditions, sample, split per job.

    Each job's noise comes from its own seed, so a frame is the same whether it ran alone or in a
    batch. ``pad_to`` (e.g. (1, 2, 4)) pads batches up to those sizes by repeating the last job,
    so a compiled model sees only a few shapes. ``compose=False`` returns the raw samples (the
    caller pastes them with its own mask).
    """
    sizes = sorted(pad_to)
    # An ahead-of-time package (accel/aot.py) has no parameters, only a marker buffer.
    weight = next(itertools.chain(model.parameters(), model.buffers()))
    device, dtype = weight.device, (weight.dtype if weight.is_floating_point() else torch.float32)

    def run(jobs: list[Any]) -> list[torch.Tensor]:
        n = len(jobs)
        padded = next((s for s in sizes if s >= n), n)
        jobs = list(jobs) + [jobs[-1]] * (padded - n)
        # Jobs are made on the CPU; the model may sit on a GPU in bfloat16.
        cond = FaceCond.cat([j.cond for j in jobs]).to(device, dtype)
        shape = cond.masked.shape[1:]
        noise = torch.stack([job_noise(j.seed, shape) for j in jobs]).to(device=device, dtype=dtype)
        with torch.inference_mode():
            out = sample(
                model, cond, steps=steps, noise=noise, feather_px=feather_px, compose=compose
            )
        return list(out[:n].float().cpu().unbind(0))

    return run
