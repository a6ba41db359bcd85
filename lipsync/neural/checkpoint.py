"""FaceGen checkpoints: one safetensors file, the config and training state in its metadata.

Layout of a file:
  model.<name>                      the network's tensors (its state_dict)
  optim.<param index>.<key>         optimizer state (AdamW exp_avg, exp_avg_sq, step), optional
  rng.state                         the training torch.Generator's state, optional
metadata (all strings):
  talkie.format    "facegen/1"
  talkie.kind      "teacher" or "student"
  talkie.config    FaceGenConfig as JSON
  talkie.step      optimizer steps taken
  talkie.optim     optimizer param_groups as JSON (when optimizer state is present)
  talkie.extra     free-form JSON (e.g. the student's step counts)

Writes go to a temporary file that replaces the target atomically, so a killed training run
leaves the previous checkpoint intact. Every failure to read is a ``CheckpointError`` that
names the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lipsync.neural.model import FaceGen, FaceGenConfig

FORMAT = "facegen/1"
KINDS = ("teacher", "student")


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable, or does not fit the model asked for."""


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` read: a ready model plus the training state stored beside it."""

    path: Path
    model: FaceGen
    config: FaceGenConfig
    kind: str
    step: int
    extra: dict[str, Any] = field(default_factory=dict)
    optimizer_state: dict[str, Any] | None = None
    rng_state: torch.Tensor | None = None


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: FaceGen,
    kind: str,
    step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (and optionally optimizer and RNG state) to ``path`` atomically."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "talkie.format": FORMAT,
        "talkie.kind": kind,
        "talkie.config": model.cfg.to_json(),
        "talkie.step": str(int(step)),
        "talkie.extra": json.dumps(extra or {}, sort_keys=True),
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, entries in state["state"].items():
            for key, value in entries.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        metadata["talkie.optim"] = json.dumps(state["param_groups"])
    if generator is not None:
        tensors["rng.state"] = generator.get_state()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} does not exist; check the path or train one first"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        size = path.stat().st_size
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) is truncated or not a safetensors file: {err}"
        ) from err
    return metadata, tensors


def _parse_metadata(
    path: Path, metadata: dict[str, str]
) -> tuple[FaceGenConfig, str, int, dict[str, Any]]:
    if metadata.get("talkie.format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a FaceGen checkpoint: metadata talkie.format is "
            f"{metadata.get('talkie.format')!r}, expected {FORMAT!r}"
        )
    try:
        config = FaceGenConfig.from_json(metadata["talkie.config"])
        kind = metadata["talkie.kind"]
        step = int(metadata.get("talkie.step", "0"))
        extra = json.loads(metadata.get("talkie.extra", "{}"))
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata: {err}") from err
    return config, kind, step, extra


def read_extra(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's ``talkie.extra`` without loading its tensors."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a safetensors file: {err}"
        ) from err
    return _parse_metadata(path, metadata)[3]


def load_state_into(model: FaceGen, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Copy ``state`` into ``model``, naming any missing, unexpected or mis-shaped tensor."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match the model: missing tensors {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected tensors {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise CheckpointError(
                f"{source}: tensor {name!r} has shape {tuple(tensor.shape)} but the model "
                f"expects {tuple(own[name].shape)}"
            )
    model.load_state_dict(state, strict=True)


def _optimizer_state(
    path: Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor]
) -> dict[str, Any] | None:
    if "talkie.optim" not in metadata:
        return None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = tensor
    try:
        groups = json.loads(metadata["talkie.optim"])
    except ValueError as err:
        raise CheckpointError(
            f"checkpoint {path} has unreadable optimizer metadata: {err}"
        ) from err
    return {"state": state, "param_groups": groups}


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    expect_config: FaceGenConfig | None = None,
    expect_kind: str | None = None,
) -> Checkpoint:
    """Read a checkpoint and build its model (on CPU, eval mode, float as saved).

    ``expect_config`` / ``expect_kind`` make a mismatch an error that lists the differing fields,
    rather than a model that silently has another shape.
    """
    path = Path(path)
    metadata, tensors = _read(path)
    config, kind, step, extra = _parse_metadata(path, metadata)
    if expect_kind is not None and kind != expect_kind:
        raise CheckpointError(f"checkpoint {path} holds a {kind} model, expected a {expect_kind}")
    if expect_config is not None and config != expect_config:
        diffs = ", ".join(
            f"{k}: file {a!r} vs expected {b!r}" for k, (a, b) in config.diff(expect_config).items()
        )
        raise CheckpointError(f"checkpoint {path} has a different FaceGen config ({diffs})")
    model = FaceGen(config)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    load_state_into(model, state, source=f"checkpoint {path}")
    model.eval()
    return Checkpoint(
        path=path,
        model=model,
        config=config,
        kind=kind,
        step=step,
        extra=extra,
        optimizer_state=_optimizer_state(path, metadata, tensors),
        rng_state=tensors.get("rng.state"),
    )
