"""Ahead-of-time FaceGen packages: load, match eager, refuse other weights, name broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from accel.aot import (
    AotArtifactError,
    artifact_path,
    check_aot,
    compile_aot,
    example_inputs,
    load_aot,
)
from accel.face_batches import FaceJob, facegen_runner
from accel.quantize import quantize_int8
from lipsync.neural.checkpoint import save_checkpoint
from lipsync.neural.data import FaceCond
from lipsync.neural.model import FaceGen, config_for
from lipsync.neural.weights import load_student


def _student(tmp_path: Path, seed: int, name: str = "m") -> Path:
    torch.manual_seed(seed)
    model = FaceGen(config_for("tiny"))
    for p in model.parameters():  # adaLN-Zero starts as the identity: give every layer weight
        torch.nn.init.normal_(p, std=0.05)
    return save_checkpoint(tmp_path / f"{name}.safetensors", model=model, kind="student")


def test_missing_package_names_the_file_and_the_fix(tmp_path: Path) -> None:
    weights = _student(tmp_path, 0)
    with pytest.raises(AotArtifactError, match=r"m\.int8\.cpu\.pt2.*compile"):
        load_aot(weights, config=config_for("tiny"))


def test_a_record_for_other_weights_or_torch_is_refused(tmp_path: Path) -> None:
    weights = _student(tmp_path, 0)
    pkg = artifact_path(weights, "int8")
    pkg.write_bytes(b"not a zip")
    record = {
        "format": "facegen-aot/1", "weights_sha256": "0" * 64, "config": config_for("tiny").to_json(),
        "precision": "int8", "torch": torch.__version__, "max_batch": 16,
    }
    Path(str(pkg) + ".json").write_text(json.dumps(record))
    with pytest.raises(AotArtifactError, match="other weights"):
        check_aot(weights, "int8", config=config_for("tiny"))
    Path(str(pkg) + ".json").write_text(json.dumps({**record, "torch": "1.0"}))
    with pytest.raises(AotArtifactError, match="torch 1.0"):
        check_aot(weights, "int8", config=config_for("tiny"))
    Path(str(pkg) + ".json").write_text("{broken")
    with pytest.raises(AotArtifactError, match="unreadable"):
        check_aot(weights, "int8", config=config_for("tiny"))


@pytest.mark.slow
def test_package_loads_matches_eager_and_refuses_a_rebuilt_model(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    weights = _student(tmp_path, 0)
    model = load_student(weights)
    compile_aot(model, weights=weights, precision="int8")
    aot = load_aot(weights, config=model.cfg)
    eager_int8, _ = quantize_int8(model)
    with torch.inference_mode():
        for batch in (1, 3):
            x = example_inputs(model.cfg, batch)
            out = aot(*x)
            assert out.shape == (batch, 3, 32, 32)
            assert (out - eager_int8(*x)).abs().max() < 2e-2
            assert (out - model(*x)).abs().max() < 0.1  # int8 stays close to float
    # The scheduler's runner takes the package as it takes a model.
    c = model.cfg.crop_px
    cond = FaceCond(
        reference=torch.zeros(1, 3, c, c), masked=torch.zeros(1, 3, c, c), mask=torch.ones(1, 1, c, c),
        drive=torch.zeros(1, model.cfg.drive_channels, model.cfg.drive_frames),
    )
    crops = facegen_runner(aot, steps=1)([FaceJob(cond=cond, seed=1), FaceJob(cond=cond, seed=2)])
    assert len(crops) == 2 and crops[0].shape == (3, c, c)
    # A rebuilt model under the same name: the old package no longer stands for it.
    original = weights.read_bytes()
    _student(tmp_path, 1)
    with pytest.raises(AotArtifactError, match="other weights"):
        load_aot(weights, config=model.cfg)
    # A corrupt package with a valid record.
    weights.write_bytes(original)
    load_aot(weights, config=model.cfg)  # the right weights again: it loads
    artifact_path(weights, "int8").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(AotArtifactError, match="corrupt"):
        load_aot(weights, config=model.cfg)
