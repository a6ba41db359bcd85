"""Rectified flow (flow matching with straight paths) for FaceGen.

Convention, used everywhere in talkie: t = 0 is pure noise, t = 1 is data.

    x_t = (1 - t) * x0 + t * x1        x0 ~ N(0, I) noise, x1 a real face crop in [-1, 1]
    v   = dx_t / dt = x1 - x0          the velocity the loss compares against

Sampling integrates dx/dt = v(x, t) from t = 0 to t = 1 (accel/sampler.py). This is the
convention of Liu et al. (rectified flow); diffusers' FlowMatchEuler runs the opposite way
(sigma = 1 - t), so don't mix their timesteps with ours.

With ``prediction="x"`` the network outputs the clean crop x1_hat and the loss is still on
velocity, |v_hat - v|^2 = |x1_hat - x1|^2 / (1 - t)^2 (1 - t floored at 0.05); with "v" it
regresses v directly.

Only the mouth is painted in the end (``compose_crop``), so the loss weights the feathered mouth
region ``mouth_loss_weight`` times more than the rest of the crop. The rest still carries
weight 1: it keeps the whole predicted crop near the known frame so the feathered seam blends.
"""

from __future__ import annotations

import torch

from lipsync.neural.data import FaceBatch
from lipsync.neural.model import FaceGen, feather_mask

# Floor on 1 - t in the x-prediction loss weight 1 / (1 - t)^2 (as in JiT): bounds it at 400.
X_LOSS_MIN_GAP = 0.05


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight path between noise ``x0`` and data ``x1`` at time ``t`` (B,)."""
    t = t.view(-1, *([1] * (x1.dim() - 1)))  # (B,) -> (B, 1, 1, 1)
    return (1.0 - t) * x0 + t * x1


def target_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Velocity of the straight path, constant in t."""
    return x1 - x0


def mouth_weights(mask: torch.Tensor, *, mouth_loss_weight: float, feather_px: int) -> torch.Tensor:
    """Per-pixel loss weights (B, 1, H, W): ``mouth_loss_weight`` on the painted region, 1 elsewhere."""
    soft = feather_mask(mask, feather_px=feather_px)
    return 1.0 + (mouth_loss_weight - 1.0) * soft


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``weights * (pred - target)**2``, normalised so the weights average to one."""
    err = (pred.float() - target.float()).pow(2).mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (weights * err).sum() / weights.sum()


def flow_matching_loss(
    model: FaceGen,
    batch: FaceBatch,
    *,
    generator: torch.Generator | None = None,
    mouth_loss_weight: float = 8.0,
    feather_px: int = 2,
) -> torch.Tensor:
    """Rectified-flow loss for one batch: t ~ U[0, 1], regress v = x1 - x0 at x_t.

    ``generator`` draws the noise and the times (on the batch's device) so a training run is
    reproducible from its seed.
    """
    x1 = batch.target
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    t = torch.rand(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)
    x_t = interpolate(x0, x1, t)
    w = mouth_weights(batch.mask, mouth_loss_weight=mouth_loss_weight, feather_px=feather_px)
    if model.cfg.prediction == "v":
        v = model(x_t, t, *batch.cond.as_args())
        return weighted_mse(v, target_velocity(x0, x1), w)
    # x-prediction, velocity loss: |v_hat - v| = |x1_hat - x1| / (1 - t), with 1 - t floored.
    x1_hat = model.predict(x_t, t, *batch.cond.as_args())
    gap = (1.0 - t).clamp_min(X_LOSS_MIN_GAP).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    return weighted_mse(x1_hat / gap, x1 / gap, w)
