"""Few-step samplers for rectified-flow FaceGen models, diffusers-style.

Time runs from t = 0 (noise) to t = 1 (data), as in lipsync/neural/flow.py. ``set_timesteps(n)``
lays out n uniform Euler steps; ``step(model_output, t, x)`` advances x from t to the next time.
The teacher is sampled with 32+ steps; the distilled student with 1 or 2, on the same grid it
was distilled for (t = 0 for one step, t = 0 and 0.5 for two).

Reproducibility: the starting noise, and the fresh noise of the stochastic variant, come from an
explicit ``torch.Generator``; the deterministic Euler step never draws random numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from lipsync.neural.data import FaceCond
from lipsync.neural.model import compose_crop


class EulerFlowSampler:
    """Euler integrator of dx/dt = v(x, t) on a uniform grid over [0, 1].

    stochastic: instead of the plain Euler step, re-noise the predicted clean sample to the next
    time with fresh noise from ``generator`` (diffusers' ``stochastic_sampling``). Off by default.
    """

    def __init__(self, *, stochastic: bool = False) -> None:
        self.stochastic = stochastic
        self.num_inference_steps: int | None = None
        self.timesteps: torch.Tensor | None = None  # (n,) start time of each step
        self._grid: torch.Tensor | None = None  # (n + 1,) 0 .. 1

    def set_timesteps(
        self, num_inference_steps: int, device: torch.device | str | None = None
    ) -> None:
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        self.num_inference_steps = num_inference_steps
        self._grid = torch.linspace(0.0, 1.0, num_inference_steps + 1, device=device)
        self.timesteps = self._grid[:-1]

    def _next_time(self, timestep: float | torch.Tensor) -> tuple[float, float]:
        if self._grid is None or self.num_inference_steps is None:
            raise ValueError(
                "EulerFlowSampler has no timesteps: call set_timesteps(num_inference_steps) before step()"
            )
        t = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
        n = self.num_inference_steps
        index = round(t * n)
        if not 0 <= index < n or abs(index / n - t) > 1e-4:
            raise ValueError(
                f"timestep {t} is not on this sampler's {n}-step grid; use the values in .timesteps"
            )
        return t, float(self._grid[index + 1])

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Advance ``sample`` from ``timestep`` to the next grid time using velocity ``model_output``."""
        t, t_next = self._next_time(timestep)
        if not self.stochastic:
            return sample + (t_next - t) * model_output
        x1_hat = sample + (1.0 - t) * model_output  # predicted clean crop
        if t_next >= 1.0:
            return x1_hat
        noise = torch.randn(
            sample.shape, generator=generator, device=sample.device, dtype=sample.dtype
        )
        return (1.0 - t_next) * noise + t_next * x1_hat


@torch.no_grad()
def sample(
    model: nn.Module,
    cond: FaceCond,
    *,
    steps: int,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    sampler: EulerFlowSampler | None = None,
    compose: bool = True,
    feather_px: int = 2,
) -> torch.Tensor:
    """Generate face crops (B, 3, H, W) in [-1, 1] for ``cond`` with ``steps`` sampler steps.

    ``noise`` (B, 3, H, W) fixes the start point; otherwise it is drawn from ``generator``. With
    ``compose`` the result is the known frame with the generated mouth pasted in.
    """
    sampler = sampler if sampler is not None else EulerFlowSampler()
    masked = cond.masked
    sampler.set_timesteps(steps, device=masked.device)
    if noise is None:
        noise = torch.randn(
            masked.shape, generator=generator, device=masked.device, dtype=masked.dtype
        )
    # A fresh tensor, so every step's x_t has the same kind (an inference tensor under
    # torch.inference_mode) and a compiled model keeps one graph instead of recompiling.
    x = noise.clone()
    assert sampler.timesteps is not None
    args = cond.as_args()
    for t in sampler.timesteps:
        v = model(x, t.expand(x.shape[0]).to(x.dtype), *args)
        x = sampler.step(v, t, x, generator=generator)
    return compose_crop(x, masked, cond.mask, feather_px=feather_px) if compose else x
