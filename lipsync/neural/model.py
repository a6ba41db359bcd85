"""FaceGen: the conditional velocity network that repaints a character's mouth.

Reads top to bottom like nanoGPT/DiT: a frozen config, the modules, the network, named variants.

The network is a small U-Net whose blocks are ConvNeXt-style: a float depthwise conv mixes space,
then a two-layer MLP (``nn.Linear`` on channels-last tokens) mixes channels. Down- and upsampling
are patch merge / patch split linears. So nearly all multiply-adds are ``nn.Linear`` layers on
``(B, H, W, C)`` tensors, which is what torchao's int8 kernels accelerate on CPU (they cover
``F.linear`` only, not convolutions). Conditioning (flow time + drive window) enters every
block through adaptive LayerNorm (shift, scale, gate), zero-initialised as in DiT's adaLN-Zero.

Inputs, all at ``crop_px`` x ``crop_px``, images in [-1, 1]:
  x_t        (B, 3, H, W)  the flow state at time t (t=0 noise, t=1 data; see flow.py)
  t          (B,)          flow time in [0, 1]
  reference  (B, 3, H, W)  a frame of the same character (identity, teeth, lip colour)
  masked     (B, 3, H, W)  the current frame with the mouth region blanked to 0
  mask       (B, 1, H, W)  1 inside the blanked mouth region, 0 outside
  drive      (B, Cd, Wd)   drive window: viseme weights (15 x 5 frames = 200 ms) or log-mel
Output: velocity (B, 3, H, W). Only the mouth region of a sample is used: ``compose_crop``
pastes it into the known frame with a feathered edge.

Nothing is loaded and no device is chosen at import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

DRIVE_KINDS = ("viseme", "mel", "shape")
ACTIVATIONS: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] = MappingProxyType(
    {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}
)
PREDICTIONS = ("x", "v")
# forward() turns an x-prediction into velocity (x1_hat - x_t) / (1 - t); flooring 1 - t here keeps
# Euler steps exact for grids of up to 50 steps (the last step starts at 1 - 1/n >= 0.02 away).
X_PRED_MIN_GAP = 0.02
IN_CHANNELS = 10  # x_t (3) + reference (3) + masked frame (3) + mask (1)
OUT_CHANNELS = 3


@dataclass(frozen=True)
class FaceGenConfig:
    """Shape of a FaceGen network. Every field is part of the checkpoint's identity.

    crop_px: side of the square face crop.
    patch_px: stem space-to-depth factor; level 0 runs at crop_px / patch_px.
    widths: channels per U-Net level; each level halves the resolution of the one before.
    depths: ConvNeXt blocks per level in the encoder; the decoder mirrors them.
    mlp_ratio: hidden width of each block's MLP, as a multiple of the level's width.
    activation: the MLP nonlinearity, "gelu", "silu" or "relu". ReLU is the cheapest to fuse
        with int8 activation quantization on CPU (measured ~10-20% faster int8 forward than GELU).
    kernel_px: depthwise convolution kernel size.
    cond_dim: width of the conditioning vector (time + drive embeddings).
    time_freqs: sinusoidal frequencies used to embed the flow time.
    drive_kind: "viseme" (weights per frame), "mel" (log-mel frames) or "shape" (the mouth's
        opening and width per frame, lipsync/neural/shape_drive.py).
    drive_channels: 15 for visemes, the number of mel bins (e.g. 80) for log-mel, 2 for shapes.
    drive_frames: frames in the drive window (5 frames at 25 fps = 200 ms; 20 at a 10 ms hop).
    refine_channels: full-resolution feature maps fed, with the inputs, to the last 3x3 conv.
    prediction: what the network outputs. "x": the clean crop x1 (as a residual on the masked
        frame), turned into velocity by ``forward``; "v": the velocity itself. With 4 px patches
        x-prediction trains much better: clean crops lie on a low-dimensional manifold, noise and
        velocity do not (Li & He 2025, "Back to Basics: Let Denoising Generative Models Denoise").
    """

    crop_px: int = 96
    patch_px: int = 4
    widths: tuple[int, ...] = (64, 128, 256)
    depths: tuple[int, ...] = (1, 2, 2)
    mlp_ratio: int = 4
    activation: str = "gelu"
    kernel_px: int = 7
    cond_dim: int = 128
    time_freqs: int = 64
    drive_kind: str = "viseme"
    drive_channels: int = 15
    drive_frames: int = 5
    refine_channels: int = 8
    prediction: str = "x"

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.depths) or not self.widths:
            raise ValueError(
                f"widths {self.widths} and depths {self.depths} must be non-empty and the same length"
            )
        stride = self.patch_px * 2 ** (len(self.widths) - 1)
        if self.crop_px % stride:
            raise ValueError(
                f"crop_px={self.crop_px} must be a multiple of patch_px * 2**(levels-1) = {stride}"
            )
        if self.drive_kind not in DRIVE_KINDS:
            raise ValueError(f"drive_kind must be one of {DRIVE_KINDS}, got {self.drive_kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.kernel_px % 2 == 0:
            raise ValueError(f"kernel_px must be odd, got {self.kernel_px}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaceGenConfig:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown FaceGenConfig fields {unknown}")
        for key in ("widths", "depths"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def diff(self, other: FaceGenConfig) -> dict[str, tuple[object, object]]:
        """Fields whose values differ, as {name: (self's, other's)}."""
        mine, theirs = asdict(self), asdict(other)
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow time t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, dim)


class CondEmbedding(nn.Module):
    """Flow time and drive window -> one conditioning vector (B, cond_dim)."""

    def __init__(self, cfg: FaceGenConfig) -> None:
        super().__init__()
        self.time_freqs = cfg.time_freqs
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.time_freqs, cfg.cond_dim),
            nn.SiLU(),
            nn.Linear(cfg.cond_dim, cfg.cond_dim),
        )
        # A 200 ms window is small: a flat MLP sees every (channel, frame) pair directly.
        self.drive_mlp = nn.Sequential(
            nn.Linear(cfg.drive_channels * cfg.drive_frames, cfg.cond_dim),
            nn.SiLU(),
            nn.Linear(cfg.cond_dim, cfg.cond_dim),
        )

    def forward(self, t: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
        # The embedding is computed in float32 (sin/cos of t * 1000), then fed in the model's dtype.
        temb = self.time_mlp(timestep_embedding(t, self.time_freqs).to(drive.dtype))  # (B, D)
        demb = self.drive_mlp(drive.flatten(1))  # (B, Cd, Wd) -> (B, Cd*Wd) -> (B, D)
        return F.silu(temb + demb)  # (B, D)


class Block(nn.Module):
    """ConvNeXt block with adaLN-Zero conditioning, on channels-last (B, H, W, C) tensors."""

    def __init__(self, dim: int, cfg: FaceGenConfig) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, cfg.kernel_px, padding=cfg.kernel_px // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(dim, dim * cfg.mlp_ratio)
        self.fc2 = nn.Linear(dim * cfg.mlp_ratio, dim)
        self.act: Callable[[torch.Tensor], torch.Tensor] = ACTIVATIONS[cfg.activation]
        self.modulation = nn.Linear(cfg.cond_dim, 3 * dim)
        for p in self.modulation.parameters():  # adaLN-Zero: the block starts as the identity
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # x: (B, H, W, C); cond: (B, D)
        mod = self.modulation(cond)[:, None, None, :]  # (B, 1, 1, 3C)
        shift, scale, gate = mod.chunk(3, dim=-1)  # 3 x (B, 1, 1, C)
        h = self.dwconv(x.permute(0, 3, 1, 2))  # (B, C, H, W) view with channels_last strides
        h = h.permute(0, 2, 3, 1)  # (B, H, W, C)
        h = self.norm(h) * (1 + scale) + shift
        b, hh, ww, c = h.shape
        # A flat token axis compiles to simpler int8 kernels than (H, W).
        h = h.reshape(b, hh * ww, c)  # (B, H*W, C)
        h = self.fc2(self.act(self.fc1(h)))  # (B, H*W, C) -> (B, H*W, C*r) -> (B, H*W, C)
        return x + gate * h.reshape(b, hh, ww, c)  # (B, H, W, C)


class Stage(nn.ModuleList):
    """The blocks of one U-Net level, all conditioned on the same vector."""

    def __init__(self, dim: int, depth: int, cfg: FaceGenConfig) -> None:
        super().__init__(Block(dim, cfg) for _ in range(depth))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x, cond)
        return x


class Downsample(nn.Module):
    """Patch merge: (B, H, W, C) -> (B, H/2, W/2, C_out) by one linear over 2x2 patches."""

    def __init__(self, dim: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(4 * dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = x.reshape(b, h // 2, 2, w // 2, 2, c)  # (B, H/2, 2, W/2, 2, C)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c)  # (B, H/2, W/2, 4C)
        return self.proj(x)  # (B, H/2, W/2, C_out)


class Upsample(nn.Module):
    """Patch split: (B, H, W, C) -> (B, 2H, 2W, C_out) by one linear to 2x2 patches."""

    def __init__(self, dim: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 4 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        x = self.proj(x)  # (B, H, W, 4*C_out)
        x = x.reshape(b, h, w, 2, 2, -1)  # (B, H, W, 2, 2, C_out)
        return x.permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, -1)  # (B, 2H, 2W, C_out)


class SkipFuse(nn.Module):
    """Join a decoder tensor with its encoder skip: concat on channels, then one linear."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([x, skip], dim=-1))  # (B, H, W, 2C) -> (B, H, W, C)


class FaceGen(nn.Module):
    """Velocity v(x_t, t | reference, masked frame, mask, drive) of the face-crop flow.

    ``predict`` runs the network (clean crop or velocity, per ``cfg.prediction``); ``forward``
    always returns velocity, so samplers, distillation and int8 treat both alike.
    """

    def __init__(self, cfg: FaceGenConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p, w0 = cfg.patch_px, cfg.widths[0]
        self.cond = CondEmbedding(cfg)
        self.stem = nn.Linear(IN_CHANNELS * p * p, w0)
        pairs = list(zip(cfg.widths[:-1], cfg.widths[1:], strict=True))  # (C_l, C_l+1) per level
        self.enc = nn.ModuleList(
            Stage(w, d, cfg) for w, d in zip(cfg.widths, cfg.depths, strict=True)
        )
        self.down = nn.ModuleList(Downsample(a, b) for a, b in pairs)
        self.up = nn.ModuleList(Upsample(b, a) for a, b in pairs)
        self.fuse = nn.ModuleList(SkipFuse(w) for w in cfg.widths[:-1])
        self.dec = nn.ModuleList(
            Stage(w, d, cfg) for w, d in zip(cfg.widths[:-1], cfg.depths[:-1], strict=True)
        )
        self.head_norm = nn.LayerNorm(w0, elementwise_affine=False, eps=1e-6)
        self.head_modulation = nn.Linear(cfg.cond_dim, 2 * w0)
        self.head = nn.Linear(w0, p * p * cfg.refine_channels)
        self.refine = nn.Conv2d(cfg.refine_channels + IN_CHANNELS, OUT_CHANNELS, 3, padding=1)
        for layer in (self.head_modulation, self.refine):  # adaLN-Zero: start as the identity
            for param in layer.parameters():
                nn.init.zeros_(param)

    def predict(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        reference: torch.Tensor,
        masked: torch.Tensor,
        mask: torch.Tensor,
        drive: torch.Tensor,
    ) -> torch.Tensor:
        """The network's raw output (B, 3, H, W): the clean crop for "x", the velocity for "v"."""
        p = self.cfg.patch_px
        inp = torch.cat([x_t, reference, masked, mask], dim=1)  # (B, 10, H, W)
        cond = self.cond(t, drive)  # (B, D)

        x = F.pixel_unshuffle(inp, p)  # (B, 10*p*p, H/p, W/p)
        x = self.stem(x.permute(0, 2, 3, 1))  # (B, H/p, W/p, 10*p*p) -> (B, H/p, W/p, C0)

        skips = []
        for level, stage in enumerate(self.enc):
            x = stage(x, cond)
            if level < len(self.down):
                skips.append(x)
                x = self.down[level](x)  # (B, h, w, C_l) -> (B, h/2, w/2, C_l+1)
        for level in reversed(range(len(self.up))):
            x = self.up[level](x)  # (B, h, w, C_l+1) -> (B, 2h, 2w, C_l)
            x = self.fuse[level](x, skips[level])
            x = self.dec[level](x, cond)

        mod = self.head_modulation(cond)[:, None, None, :]  # (B, 1, 1, 2*C0)
        shift, scale = mod.chunk(2, dim=-1)  # 2 x (B, 1, 1, C0)
        x = self.head(self.head_norm(x) * (1 + scale) + shift)  # (B, H/p, W/p, p*p*R)
        x = F.pixel_shuffle(x.permute(0, 3, 1, 2), p)  # (B, p*p*R, H/p, W/p) -> (B, R, H, W)
        out = self.refine(torch.cat([F.gelu(x), inp], dim=1))  # (B, R+10, H, W) -> (B, 3, H, W)
        # x-prediction is a residual on the known frame: outside the mouth it starts out exact.
        return masked + out if self.cfg.prediction == "x" else out

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        reference: torch.Tensor,
        masked: torch.Tensor,
        mask: torch.Tensor,
        drive: torch.Tensor,
    ) -> torch.Tensor:
        """Velocity dx/dt at (x_t, t), whatever the parameterisation; what samplers integrate."""
        out = self.predict(x_t, t, reference, masked, mask, drive)
        if self.cfg.prediction == "v":
            return out
        gap = (1.0 - t).clamp_min(X_PRED_MIN_GAP).view(-1, 1, 1, 1).to(out.dtype)  # (B, 1, 1, 1)
        return (out - x_t) / gap

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# Named variants.
# tiny:  32 px, 0.03 M params; exists so tests run in seconds.
# small: 96 px, 2.6 M params, 0.41 GFLOP per step; the CPU model. int8 1-step student measured
#        3-6 ms/frame on the 2-core test machine (accel/benchmark.py), so two characters at
#        25 fps use well under a core.
# base:  128 px, 11.7 M params, 5.5 GFLOP per step, 2 px patches; for CUDA (bf16).
VARIANTS: MappingProxyType[str, FaceGenConfig] = MappingProxyType(
    {
        "tiny": FaceGenConfig(
            crop_px=32,
            patch_px=2,
            widths=(16, 32),
            depths=(1, 1),
            mlp_ratio=2,
            kernel_px=3,
            cond_dim=32,
            time_freqs=16,
            refine_channels=4,
        ),
        "small": FaceGenConfig(activation="relu"),
        "base": FaceGenConfig(
            crop_px=128,
            patch_px=2,
            widths=(64, 128, 256, 384),
            depths=(2, 2, 4, 2),
            cond_dim=256,
            time_freqs=128,
            refine_channels=16,
        ),
    }
)


def config_for(name: str) -> FaceGenConfig:
    """The named variant's config; ``ValueError`` listing the known names otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown FaceGen variant {name!r}; known: {sorted(VARIANTS)}") from None


def feather_mask(mask: torch.Tensor, *, feather_px: int) -> torch.Tensor:
    """Soft paint mask: 1 on the hard mask, ramping to 0 over ``2 * feather_px`` outside it.

    The ramp lies outside the blanked region, where the known frame is still valid, so blending
    never mixes in blanked pixels. (B, 1, H, W) -> (B, 1, H, W).
    """
    if feather_px <= 0:
        return mask
    k = 2 * feather_px + 1
    grown = F.max_pool2d(mask, k, stride=1, padding=feather_px)  # dilate by feather_px
    return F.avg_pool2d(grown, k, stride=1, padding=feather_px, count_include_pad=False)


def compose_crop(
    generated: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor, *, feather_px: int = 2
) -> torch.Tensor:
    """Final crop: the known frame outside the mouth, the generated pixels inside (feathered).

    generated, masked: (B, 3, H, W) in [-1, 1]; mask: (B, 1, H, W) hard mouth mask. The output is
    clamped to [-1, 1]; outside the feathered region it equals ``masked`` exactly.
    """
    soft = feather_mask(mask, feather_px=feather_px)  # (B, 1, H, W)
    return (masked + soft * (generated - masked)).clamp(-1.0, 1.0)
