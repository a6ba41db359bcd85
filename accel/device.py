"""Device, dtype and compilation choices for FaceGen inference.

- Device: CUDA when present, else CPU (or what the caller names).
- dtype: bfloat16 on CUDA (tensor cores, same exponent range as float32, no loss scaling);
  float32 on CPU, where int8 (accel/quantize.py) is the fast path instead.
- channels_last: the 4-D weights and inputs use NHWC memory. FaceGen already computes on
  (B, H, W, C) tensors, so this mainly spares the convs a layout conversion.
- torch.compile: on CPU with inductor ``freezing`` (weights become constants, oneDNN prepacks
  the linears) which int8 needs to beat float; on CUDA ``mode="reduce-overhead"``, which replays
  the whole forward as a CUDA graph (one launch per step instead of ~100 small kernels). Shapes
  are static: each batch size compiles once, so callers should keep to a few batch sizes.

Nothing here runs at import; choices are made when the functions are called.
"""

from __future__ import annotations

import torch
from torch import nn


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` ("cpu", "cuda", "cuda:1", ...) or, when None/"auto", CUDA if available else CPU."""
    if prefer is None or prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {prefer!r} asked for, but CUDA is not available; use 'cpu' or 'auto'"
        )
    return device


def pick_dtype(device: torch.device, prefer: str | None = None) -> torch.dtype:
    """bfloat16 on CUDA (when supported), float32 elsewhere; ``prefer`` names one explicitly."""
    if prefer is not None and prefer != "auto":
        names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if prefer not in names:
            raise ValueError(f"dtype must be one of {sorted(names)} or 'auto', got {prefer!r}")
        return names[prefer]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory for 4-D tensors; others unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def prepare_for_inference(
    model: nn.Module,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    channels_last: bool = True,
    compile: bool = False,
    cuda_graphs: bool = True,
) -> nn.Module:
    """Move ``model`` to ``device``/``dtype`` in eval mode and optionally compile it.

    Call the returned module under ``torch.inference_mode()`` (CPU freezing needs no-grad).
    An int8 model (accel/quantize.py) must stay float32 on CPU: pass ``dtype=torch.float32``.
    """
    device = torch.device(device)
    model = model.to(device=device).eval()
    if dtype != torch.float32:  # int8 models stay float32 around their Int8Tensor weights
        model = model.to(dtype=dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if not compile:
        return model
    if device.type == "cuda":
        mode = "reduce-overhead" if cuda_graphs else "max-autotune-no-cudagraphs"
        return torch.compile(model, mode=mode, dynamic=False)  # type: ignore[return-value]
    return torch.compile(model, dynamic=False, options={"freezing": True})  # type: ignore[return-value]
