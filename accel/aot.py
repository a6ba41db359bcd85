"""Ahead-of-time compiled FaceGen: a torch.export + AOTInductor package saved beside the weights.

Why: on CPU the int8 student is only faster than float once inductor has fused its activation
quantization, and ``torch.compile`` does that at start-up (minutes on 2 cores). Compiling once at
build time instead, into ``<weights>.<precision>.cpu.pt2``, makes start-up a ``dlopen`` (tens of
milliseconds). Measured on the shared 2-core machine, the shipped 96 px student, one thread: AOT
int8 5-10 ms a face against 20-29 ms eager float and 12-17 ms AOT float (eager int8 is slower
than eager float); packaging takes 1.5-2.5 minutes (README, "Neural mouths"; ``bench face``).

The package takes a dynamic batch (1..``MAX_BATCH``). Beside it, ``<package>.json`` records what
it was compiled from: the weights file's SHA-256, the FaceGen config, the precision and the torch
version. ``load_aot`` refuses a package whose record does not match the weights it is asked to
stand for (a rebuilt model, another torch), and names a missing or corrupt file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from accel.quantize import quantize_int8
from lipsync.neural.model import FaceGen, FaceGenConfig

PRECISIONS = ("float32", "int8")
MAX_BATCH = 16
FORMAT = "facegen-aot/1"


class AotArtifactError(Exception):
    """An AOT package is missing, corrupt, or was compiled from other weights or another torch."""


def artifact_path(weights: str | os.PathLike[str], precision: str) -> Path:
    """Where the package for ``weights`` at ``precision`` lives: beside it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    w = Path(weights)
    return w.with_name(f"{w.stem}.{precision}.cpu.pt2")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def example_inputs(cfg: FaceGenConfig, batch: int) -> tuple[torch.Tensor, ...]:
    """Inputs of FaceGen.forward for ``batch`` samples (used to trace; values do not matter)."""
    g = torch.Generator().manual_seed(0)
    c = cfg.crop_px
    image = lambda: torch.randn(batch, 3, c, c, generator=g)  # noqa: E731
    return (
        image(),
        torch.zeros(batch),
        image(),
        image(),
        torch.ones(batch, 1, c, c),
        torch.randn(batch, cfg.drive_channels, cfg.drive_frames, generator=g),
    )


def compile_aot(
    model: FaceGen, *, weights: str | os.PathLike[str], precision: str = "int8"
) -> Path:
    """Export ``model`` (the float student loaded from ``weights``), int8-quantized when asked,
    and package it with AOTInductor (inductor freezing) beside ``weights``. Minutes on 2 cores."""
    weights = Path(weights)
    out = artifact_path(weights, precision)
    net: nn.Module = model.float().eval()
    if precision == "int8":
        net, _ = quantize_int8(net)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():  # export cannot trace under inference_mode
        program = torch.export.export(
            net, example_inputs(model.cfg, 2), dynamic_shapes=({0: batch},) * 6
        )
        tmp = out.with_name(f".{out.stem}.tmp.pt2")
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(tmp), inductor_configs={"freezing": True}
        )
    os.replace(tmp, out)
    record = {
        "format": FORMAT,
        "weights_sha256": _sha256(weights),
        "config": model.cfg.to_json(),
        "precision": precision,
        "torch": torch.__version__,
        "max_batch": MAX_BATCH,
    }
    Path(str(out) + ".json").write_text(json.dumps(record, sort_keys=True))
    return out


class AotFaceGen(nn.Module):
    """A loaded package, callable like ``FaceGen`` (velocity from x_t, t and the condition)."""

    def __init__(self, runner: Any, cfg: FaceGenConfig, *, precision: str, path: Path) -> None:
        super().__init__()
        self.runner, self.cfg, self.precision, self.path = runner, cfg, precision, path
        # The runners read the model's device and dtype from its first parameter or buffer.
        self.register_buffer("_where", torch.zeros(0), persistent=False)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        reference: torch.Tensor,
        masked: torch.Tensor,
        mask: torch.Tensor,
        drive: torch.Tensor,
    ) -> torch.Tensor:
        b = x_t.shape[0]
        if not 1 <= b <= MAX_BATCH:
            raise ValueError(f"{self.path} runs batches of 1..{MAX_BATCH}, got {b}")
        args = (x_t, t, reference, masked, mask, drive)
        out = self.runner(*(a.float().contiguous() for a in args))
        return out[0] if isinstance(out, list | tuple) else out


@dataclass(frozen=True)
class AotRecord:
    path: Path
    precision: str
    config: FaceGenConfig


def check_aot(
    weights: str | os.PathLike[str], precision: str, *, config: FaceGenConfig
) -> AotRecord:
    """The package's record, checked against ``weights`` and ``config``; ``AotArtifactError``
    naming what is missing or different."""
    weights = Path(weights)
    path = artifact_path(weights, precision)
    record_path = Path(str(path) + ".json")
    if not path.is_file() or not record_path.is_file():
        raise AotArtifactError(
            f"no ahead-of-time package {path} (and its .json) beside {weights}; make one with "
            "`talkie avatar compile MODEL.safetensors` (minutes, once)"
        )
    try:
        record = json.loads(record_path.read_text())
        if record.get("format") != FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {FORMAT!r}")
        saved = FaceGenConfig.from_json(record["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise AotArtifactError(f"{record_path} is unreadable: {err}") from err
    if record.get("torch") != torch.__version__:
        raise AotArtifactError(
            f"{path} was compiled with torch {record.get('torch')}, this is {torch.__version__}; "
            "compile it again"
        )
    if saved != config or record.get("weights_sha256") != _sha256(weights):
        raise AotArtifactError(
            f"{path} was compiled from other weights than {weights} (the model was rebuilt or "
            "the file replaced); compile it again"
        )
    return AotRecord(path=path, precision=precision, config=saved)


def load_aot(
    weights: str | os.PathLike[str], *, precision: str = "int8", config: FaceGenConfig
) -> AotFaceGen:
    """Load the package standing for ``weights`` (checked by ``check_aot``); milliseconds."""
    record = check_aot(weights, precision, config=config)
    try:
        runner = torch._inductor.aoti_load_package(str(record.path))
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a broken zip or .so
        raise AotArtifactError(
            f"{record.path} is corrupt or not an AOTInductor package ({type(err).__name__}: "
            f"{err}); compile it again"
        ) from err
    return AotFaceGen(runner, record.config, precision=precision, path=record.path)
