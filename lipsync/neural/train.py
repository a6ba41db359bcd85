"""Training loops: the flow-matching teacher, and the shared resumable loop the student reuses.

A run is reproducible from its seed: one ``torch.Generator`` on the training device draws the
batch indices, the noise and the flow times, and its state is checkpointed with the model and
AdamW state, so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lipsync.neural.checkpoint import load_checkpoint, load_state_into, save_checkpoint
from lipsync.neural.data import FaceClipDataset
from lipsync.neural.flow import flow_matching_loss
from lipsync.neural.model import FaceGen, FaceGenConfig

logger = logging.getLogger(__name__)

LossFn = Callable[[FaceGen, torch.Generator], torch.Tensor]


@dataclass
class TrainResult:
    """The trained model (eval mode, on the training device) and the loss of every step run."""

    model: FaceGen
    step: int
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    # bf16 autocast on CUDA: the weights and optimizer stay float32.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_training(
    model: FaceGen,
    loss_fn: LossFn,
    *,
    kind: str,
    steps: int,
    lr: float,
    device: torch.device | str,
    checkpoint_path: str | os.PathLike[str] | None,
    resume: bool,
    seed: int,
    progress: bool,
    checkpoint_every: int,
    warmup_steps: int = 20,
    grad_clip: float = 1.0,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """AdamW on ``loss_fn(model, generator)`` until ``steps`` total steps, checkpointing as it goes.

    With ``resume`` and an existing checkpoint at ``checkpoint_path`` (same config, same kind), the
    model, optimizer and generator continue from the stored step.
    """
    device = torch.device(device)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator(device=device).manual_seed(seed)
    start = 0
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and resume and path.exists():
        ckpt = load_checkpoint(path, expect_config=model.cfg, expect_kind=kind)
        load_state_into(model, ckpt.model.state_dict(), source=f"checkpoint {path}")
        if ckpt.optimizer_state is not None:
            opt.load_state_dict(ckpt.optimizer_state)
        if ckpt.rng_state is not None:
            generator.set_state(ckpt.rng_state)
        start = ckpt.step
        logger.info("resuming %s training from %s at step %d", kind, path, start)

    losses: list[float] = []
    bar = tqdm(total=steps, initial=start, disable=not progress, desc=f"{kind}", unit="step")
    for step in range(start, steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / max(1, warmup_steps))
        with _autocast(device):
            loss = loss_fn(model, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        done = step + 1
        if path is not None and (done % checkpoint_every == 0 or done == steps):
            save_checkpoint(
                path,
                model=model,
                kind=kind,
                step=done,
                optimizer=opt,
                generator=generator,
                extra=extra,
            )
    bar.close()
    model.eval()
    return TrainResult(model=model, step=max(start, steps), losses=losses, resumed_from=start)


def train_teacher(
    cfg: FaceGenConfig,
    dataset: FaceClipDataset,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = True,
    seed: int = 0,
    progress: bool = True,
    checkpoint_every: int = 200,
    mouth_loss_weight: float = 8.0,
) -> TrainResult:
    """Train a rectified-flow teacher on ``dataset`` for ``steps`` total optimizer steps.

    The teacher is meant to be sampled with 32 or more Euler steps (accel/sampler.py), then
    distilled to a 1-2 step student (accel/distill.py).
    """
    if dataset.crop_px != cfg.crop_px:
        raise ValueError(
            f"dataset crops are {dataset.crop_px} px but the config wants {cfg.crop_px} px"
        )
    if dataset.drive_shape != (cfg.drive_channels, cfg.drive_frames):
        raise ValueError(
            f"dataset drive windows are {dataset.drive_shape} but the config wants "
            f"({cfg.drive_channels}, {cfg.drive_frames})"
        )
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching global RNG
        torch.manual_seed(seed)
        model = FaceGen(cfg)

    def loss_fn(m: FaceGen, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(dataset), (batch_size,), generator=gen, device=gen.device).cpu()
        batch = dataset.batch(idx, device=device)
        return flow_matching_loss(m, batch, generator=gen, mouth_loss_weight=mouth_loss_weight)

    return run_training(
        model,
        loss_fn,
        kind="teacher",
        steps=steps,
        lr=lr,
        device=device,
        checkpoint_path=checkpoint_path,
        resume=resume,
        seed=seed,
        progress=progress,
        checkpoint_every=checkpoint_every,
    )
