"""Small MLPs run in numpy (per-call torch overhead and its thread pool would cost more than the
arithmetic): their layers checked against their config, and read from a safetensors file whose
metadata holds that config. ``lipsync.audio_mouth_net.ShapeNet`` and ``lipsync.lip_drive.LipNet``
are two of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

Layers = list[tuple[np.ndarray, np.ndarray]]
C = TypeVar("C")


def checked_layers(layers: Layers, sizes: list[int], error: type[Exception]) -> Layers:
    """``layers`` as contiguous float32 (weight, bias) pairs, if their shapes make ``sizes``
    (inputs, hidden..., outputs); else ``error`` naming the first wrong layer."""
    if len(layers) != len(sizes) - 1:
        raise error(f"expected {len(sizes) - 1} layers, got {len(layers)}")
    for i, (w, b) in enumerate(layers):
        if w.shape != (sizes[i + 1], sizes[i]) or b.shape != (sizes[i + 1],):
            raise error(
                f"layer {i} has weight {w.shape} and bias {b.shape}; expected "
                f"({sizes[i + 1]}, {sizes[i]}) and ({sizes[i + 1]},)"
            )
    return [(np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32)) for w, b in layers]


def logits(layers: Layers, x: np.ndarray) -> np.ndarray:
    """The last layer's output for rows ``x`` (ReLU between layers)."""
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


def read_mlp(
    path: Path, *, config_type: Callable[..., C], error: type[Exception], what: str, train: str
) -> tuple[C, Layers]:
    """The config and layers in ``path``; ``error`` naming ``what`` and the ``train`` command
    when the file is missing, unreadable, or lacks a layer."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise error(f"{what} weights not found at {path}; train them with `{train}`")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        raw = json.loads(meta["config"])
        config = config_type(**{**raw, "hidden": tuple(raw["hidden"])})
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise error(f"cannot read the {what} weights at {path}: {exc}") from exc
    n = len(config.hidden) + 1  # type: ignore[attr-defined]
    try:
        layers = [(tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]) for i in range(n)]
    except KeyError as exc:
        raise error(f"{path} lacks the tensor {exc.args[0]}") from None
    return config, layers


def config_metadata(config: Any) -> dict[str, str]:
    """A config as the safetensors metadata ``read_mlp`` reads back."""
    return {"config": json.dumps(asdict(config))}
