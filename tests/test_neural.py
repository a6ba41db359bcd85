"""FaceGen model, toy data, flow loss, training and checkpoints (tiny configs, CPU, seconds)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lipsync.neural.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_into,
    save_checkpoint,
)
from lipsync.neural.data import FaceClipDataset, toy_clip, toy_dataset, viseme_windows
from lipsync.neural.flow import flow_matching_loss, interpolate
from lipsync.neural.model import (
    VARIANTS,
    FaceGen,
    FaceGenConfig,
    compose_crop,
    config_for,
    feather_mask,
)
from lipsync.neural.train import train_teacher
from lipsync.visemes import JAW_OPEN, N_VISEMES, VISEME_INDEX

TINY = config_for("tiny")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def toy() -> FaceClipDataset:
    return toy_dataset(n_clips=2, frames_per_clip=48, crop_px=TINY.crop_px, seed=3)


def randomized(cfg: FaceGenConfig, seed: int = 0) -> FaceGen:
    """A model whose zero-initialised layers are random too, so outputs depend on every weight."""
    torch.manual_seed(seed)
    model = FaceGen(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and p.abs().sum() == 0:
                p.normal_(0, 0.05)
    return model


# --- config and model -----------------------------------------------------------------------


def test_variants_and_config_json_round_trip():
    assert {"tiny", "small", "base"} <= set(VARIANTS)
    for cfg in VARIANTS.values():
        assert FaceGenConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown FaceGen variant 'huge'"):
        config_for("huge")
    with pytest.raises(ValueError, match="crop_px=100"):
        FaceGenConfig(crop_px=100)


def test_forward_shape_and_drive_matters(toy):
    model = randomized(TINY)
    batch = toy.batch([0, 1, 2])
    t = torch.full((3,), 0.5)
    with torch.no_grad():
        v = model(batch.target, t, *batch.cond.as_args())
        v_other = model(
            batch.target, t, batch.reference, batch.masked, batch.mask, batch.drive.flip(0)
        )
    assert v.shape == (3, 3, TINY.crop_px, TINY.crop_px)
    assert not torch.allclose(v, v_other), "the drive window must change the output"


def test_x_prediction_velocity_points_at_the_predicted_crop(toy):
    model = randomized(TINY)
    b = toy.batch([0, 1])
    x_t = torch.randn(2, 3, TINY.crop_px, TINY.crop_px)
    t = torch.tensor([0.0, 0.75])
    with torch.no_grad():
        x1_hat = model.predict(x_t, t, *b.cond.as_args())
        v = model(x_t, t, *b.cond.as_args())
    # One Euler step to t = 1 lands exactly on the predicted clean crop.
    assert torch.allclose(x_t + (1 - t).view(-1, 1, 1, 1) * v, x1_hat, atol=1e-5)
    v_model = randomized(dataclasses.replace(TINY, prediction="v"))
    with torch.no_grad():
        assert torch.equal(
            v_model(x_t, t, *b.cond.as_args()), v_model.predict(x_t, t, *b.cond.as_args())
        )


def test_compose_crop_paints_only_the_mouth():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 20:26, 10:22] = 1.0
    masked = torch.rand(1, 3, 32, 32) * 2 - 1
    masked = masked * (1 - mask)
    generated = torch.full((1, 3, 32, 32), 0.25)
    out = compose_crop(generated, masked, mask, feather_px=2)
    soft = feather_mask(mask, feather_px=2)
    outside = (soft == 0).expand_as(out)
    assert torch.equal(out[outside], masked[outside])
    assert torch.allclose(out[(mask == 1).expand_as(out)], torch.tensor(0.25))
    assert ((soft > 0) & (soft < 1)).any(), "the edge is feathered"


# --- toy data ---------------------------------------------------------------------------------


def test_viseme_windows_are_centred():
    w = np.eye(N_VISEMES, dtype=np.float32)[[0, 1, 2, 3]]  # one viseme per frame
    win = viseme_windows(w, window_frames=5)
    assert win.shape == (4, N_VISEMES, 5)
    assert win[1, 1, 2] == 1.0  # the centre of frame 1's window is frame 1
    assert win[0, 0, 0] == 1.0  # edges repeat the first frame


def test_toy_mouth_opens_with_jaw_open():
    clip = toy_clip(n_frames=200, crop_px=64, seed=1)
    centre = clip.drive[:, :, 2].numpy() @ np.array(JAW_OPEN)  # jaw_open of each frame
    mask = clip.masks[0].numpy() > 0.5
    dark = (clip.frames.numpy().mean(axis=-1) < 60)[:, mask].sum(axis=1)  # dark pixels in the mouth
    closed, wide = dark[centre < 0.1].mean(), dark[centre > 0.8].mean()
    assert wide > closed + 20, (closed, wide)
    assert clip.drive.shape == (200, N_VISEMES, 5)
    assert VISEME_INDEX["aa"] == int(np.argmax(JAW_OPEN))


def test_dataset_rejects_bad_arrays():
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    good = dict(
        frames=frames,
        references=frames[0],
        masks=np.zeros((32, 32)),
        drive=np.zeros((4, N_VISEMES, 5), np.float32),
    )
    FaceClipDataset(**good)
    with pytest.raises(ValueError, match="frames must be uint8"):
        FaceClipDataset(**{**good, "frames": frames.astype(np.float32)})
    with pytest.raises(ValueError, match="drive must be"):
        FaceClipDataset(**{**good, "drive": np.zeros((3, N_VISEMES, 5), np.float32)})


def test_batch_masks_the_mouth(toy):
    b = toy.batch([0, 5])
    inside = b.mask.expand_as(b.masked) > 0.5
    assert torch.equal(b.masked[inside], torch.zeros_like(b.masked[inside]))
    assert torch.equal(b.masked[~inside], b.target[~inside])


# --- flow and training ------------------------------------------------------------------------


def test_interpolate_convention():
    x0, x1 = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    xt = interpolate(x0, x1, torch.tensor([0.0, 1.0]))
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[1], x1[1])  # t=0 noise, t=1 data


def test_training_lowers_the_loss(toy):
    batch = toy.batch(range(0, 96, 4))

    def held_loss(model: FaceGen) -> float:
        with torch.no_grad():
            return flow_matching_loss(
                model, batch, generator=torch.Generator().manual_seed(7)
            ).item()

    result = train_teacher(TINY, toy, steps=40, batch_size=8, lr=3e-3, progress=False, seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the weights the run started from
        untrained = FaceGen(TINY)
    assert len(result.losses) == 40
    assert held_loss(result.model) < 0.7 * held_loss(untrained)


def test_resumed_training_continues_exactly(toy, tmp_path: Path):
    kwargs = dict(batch_size=4, lr=3e-3, progress=False, seed=1, checkpoint_every=2)
    straight = train_teacher(TINY, toy, steps=4, **kwargs)
    path = tmp_path / "teacher.safetensors"
    first = train_teacher(TINY, toy, steps=2, checkpoint_path=path, **kwargs)
    resumed = train_teacher(TINY, toy, steps=4, checkpoint_path=path, **kwargs)
    assert first.step == 2 and resumed.resumed_from == 2 and resumed.step == 4
    assert load_checkpoint(path).step == 4
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_round_trip_is_bitwise(toy, tmp_path: Path):
    model = randomized(TINY, seed=2)
    path = save_checkpoint(
        tmp_path / "m.safetensors", model=model, kind="student", step=5, extra={"note": "x"}
    )
    ckpt = load_checkpoint(path, expect_config=TINY, expect_kind="student")
    assert (ckpt.step, ckpt.kind, ckpt.extra) == (5, "student", {"note": "x"})
    b = toy.batch([0, 1])
    t = torch.tensor([0.0, 0.5])
    with torch.no_grad():
        assert torch.equal(
            model(b.target, t, *b.cond.as_args()), ckpt.model(b.target, t, *b.cond.as_args())
        )


def test_missing_checkpoint(tmp_path: Path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_checkpoint(tmp_path: Path):
    path = save_checkpoint(tmp_path / "m.safetensors", model=FaceGen(TINY), kind="teacher")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(path)


def test_foreign_safetensors_file(tmp_path: Path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a FaceGen checkpoint"):
        load_checkpoint(path)


def test_mismatched_checkpoint_names_the_problem(tmp_path: Path):
    path = save_checkpoint(tmp_path / "m.safetensors", model=FaceGen(TINY), kind="teacher")
    wider = dataclasses.replace(TINY, widths=(16, 48))
    with pytest.raises(CheckpointError, match=r"widths: file \(16, 32\) vs expected \(16, 48\)"):
        load_checkpoint(path, expect_config=wider)
    with pytest.raises(CheckpointError, match="holds a teacher model, expected a student"):
        load_checkpoint(path, expect_kind="student")
    state = FaceGen(TINY).state_dict()
    with pytest.raises(
        CheckpointError,
        match=r"tensor 'enc\.1\.0\.dwconv\.weight' has shape \(32, 1, 3, 3\) but the model expects \(48, 1, 3, 3\)",
    ):
        load_state_into(FaceGen(wider), state, source="test")
