"""Image quality of the painted mouth: PSNR and SSIM restricted to the mouth region."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1.0) * 0.5).clamp(0.0, 1.0)  # [-1, 1] -> [0, 1]


def mouth_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image over the pixels where ``mask`` > 0.5. Images (B, 3, H, W) in [-1, 1]."""
    inside = (mask > 0.5).float()  # (B, 1, H, W)
    err = (_unit(pred) - _unit(target)).pow(2) * inside
    mse = err.sum(dim=(1, 2, 3)) / (3.0 * inside.sum(dim=(1, 2, 3))).clamp_min(1.0)  # (B,)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004, 11x11 Gaussian window) of two (1, C, h, w) images in [0, 1]."""
    c = a.shape[1]
    win = _gaussian_window().to(a.device).expand(c, 1, -1, -1)  # (C, 1, 11, 11)
    if min(a.shape[-2:]) < win.shape[-1]:
        pad = (win.shape[-1] - min(a.shape[-2:]) + 1) // 2
        a, b = F.pad(a, (pad,) * 4, mode="replicate"), F.pad(b, (pad,) * 4, mode="replicate")
    mu_a, mu_b = F.conv2d(a, win, groups=c), F.conv2d(b, win, groups=c)
    var_a = F.conv2d(a * a, win, groups=c) - mu_a**2
    var_b = F.conv2d(b * b, win, groups=c) - mu_b**2
    cov = F.conv2d(a * b, win, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return s.mean()


def mouth_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SSIM per image over the bounding box of the mouth mask. Images (B, 3, H, W) in [-1, 1]."""
    out = []
    for p, t, m in zip(_unit(pred), _unit(target), mask, strict=True):
        ys, xs = torch.nonzero(m[0] > 0.5, as_tuple=True)
        if ys.numel() == 0:
            out.append(torch.tensor(1.0))
            continue
        box = (
            slice(None),
            slice(int(ys.min()), int(ys.max()) + 1),
            slice(int(xs.min()), int(xs.max()) + 1),
        )
        out.append(ssim(p[box][None], t[box][None]))
    return torch.stack(out)
