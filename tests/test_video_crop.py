"""A ``--video`` model's crop follows the face: ``auto`` picks rig64 / rig96 / rig128 by the
median face region side, and the 128 px network paints a big face's mouth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from accel.aot import example_inputs
from avatar.neural.video_mouth import MouthPainter
from lipsync.neural.model import FaceGen
from lipsync.neural.regions import crop_regions
from lipsync.neural.video_io import SourceVideo
from lipsync.neural.video_shapes import (
    REGION_FACE_FRAC,
    MouthTrack,
    frame_regions,
    mouth_mask,
    plan_layout,
)
from stream.tools.avatar_build import (
    AUTO_CROP_FRAC,
    AUTO_VARIANTS,
    BUILD_VARIANTS,
    BuildConfig,
    TrackedVideo,
    auto_variant,
    build_config,
    build_from_video,
    video_build_config,
)
from stream.tools.cli import main

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize(
    ("side", "want"),
    [(80, "rig64"), (110, "rig64"), (142, "rig64"), (143, "rig96"), (200, "rig96"), (213, "rig96"),
     (214, "rig128"), (270, "rig128"), (280, "rig128"), (600, "rig128")],
)
def test_auto_picks_the_smallest_crop_at_least_045_of_the_region(side: float, want: str) -> None:
    assert auto_variant(side) == want
    crop = BUILD_VARIANTS[want].crop_px
    assert crop >= AUTO_CROP_FRAC * side or want == AUTO_VARIANTS[-1]
    smaller = [BUILD_VARIANTS[v].crop_px for v in AUTO_VARIANTS if BUILD_VARIANTS[v].crop_px < crop]
    assert all(c < AUTO_CROP_FRAC * side for c in smaller)


def test_auto_names_bad_input(capsys) -> None:
    with pytest.raises(ValueError, match="positive number of pixels"):
        auto_variant(0)
    with pytest.raises(ValueError, match="'auto' goes with --video only"):
        build_config("auto")
    assert main(["avatar", "build", "MAYA", "--variant", "auto"]) == 2
    assert "'auto' goes with --video only" in capsys.readouterr().err


def test_a_wrong_variant_fails_before_the_landmark_pass(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown build variant 'rig100'"):  # not "missing.mp4 does not exist"
        build_from_video(tmp_path / "missing.mp4", name="x", out_dir=tmp_path, config=BuildConfig(variant="rig100"))


def test_rig128_is_rig64_at_128_px() -> None:
    a, b = BUILD_VARIANTS["rig64"], BUILD_VARIANTS["rig128"]
    assert b.crop_px == 128 and (b.widths, b.depths, b.cond_dim) == (a.widths, a.depths, a.cond_dim)


def synthetic_track(face_heights: list[tuple[int, float]]) -> MouthTrack:
    """Spans of (frames, face height px), each a still head talking; a jump in face size between
    spans is a shot change (video_shapes.shot_cuts)."""
    h = np.concatenate([np.full(n, fh, np.float32) for n, fh in face_heights])
    n = h.size
    t = np.arange(n, dtype=np.float32)
    shapes = np.stack([0.05 + 0.045 * np.sin(t / 3.0), 0.4 + 0.02 * np.cos(t / 5.0)], 1).astype(np.float32)
    nose = np.stack([np.full(n, 320.0), np.full(n, 200.0)], 1).astype(np.float32)
    mouth = nose + np.stack([np.zeros(n), 0.15 * h], 1).astype(np.float32)
    return MouthTrack(shapes=shapes, nose_px=nose, mouth_px=mouth, face_height_px=h,
                      found=np.ones(n, bool), picture_change=np.zeros(n, np.float32))


def tracked(face_heights: list[tuple[int, float]]) -> TrackedVideo:
    track = synthetic_track(face_heights)
    source = SourceVideo(path=Path("person.mp4"), width_px=640, height_px=480,
                         frame_pts=np.arange(track.n_frames, dtype=np.int64),
                         pcm=np.zeros(track.n_frames * 1920, np.int16))
    return TrackedVideo(source=source, track=track, layout=plan_layout(track))


def test_a_360_px_face_gets_128_px_crops_and_grid_sized_faces_64() -> None:
    big = tracked([(150, 360.0)])
    assert big.region_sides_px() == [round(REGION_FACE_FRAC * 360)] * len(big.layout.clips)
    assert big.median_region_side_px() == 270 and auto_variant(big.median_region_side_px()) == "rig128"
    # Mostly GRID-sized faces (regions ~110 px) with a short close-up: the frames' median decides.
    mixed = tracked([(150, 147.0), (50, 360.0)])
    assert sorted(set(mixed.region_sides_px())) == [110, 270]
    assert mixed.median_region_side_px() == 110 and auto_variant(110) == "rig64"
    # A region never exceeds the frame's shorter side.
    huge = tracked([(100, 900.0)])
    assert set(huge.region_sides_px()) == {480}


def test_the_128_px_network_shape_checks_and_paints_only_the_mouth() -> None:
    cfg = video_build_config("rig128")
    torch.manual_seed(0)
    model = FaceGen(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised output layers: jitter so pixels change
            p.add_(0.05 * torch.randn_like(p))
        out = model(*example_inputs(cfg, 1))
    assert out.shape == (1, 3, 128, 128) and torch.isfinite(out).all()
    # The mouth ellipse covers the same share of a 128 px crop as of a 64 px one.
    assert mouth_mask(128).mean() == pytest.approx(mouth_mask(64).mean(), rel=0.03)
    # A 360 px face in a 640x480 frame: its region is 270 px, painted from 128 px.
    v = tracked([(60, 360.0)])
    regions = frame_regions(v.track, v.layout, crop_px=128, width_px=640, height_px=480)
    r = regions[0]
    assert r.side == 270 and r.mask.shape == (128, 128)
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 200, (480, 640, 3), dtype=np.uint8)
    before = frame.copy()
    painter = MouthPainter(model=model, references=crop_regions(frame, [r], crop_px=128), mask=r.mask)
    painter.paint([frame], [r], np.full((1, 2, 5), 0.05, np.float32), [0])
    changed = np.any(frame != before, axis=2)
    assert changed.sum() > 0.05 * r.side**2  # the mouth area was repainted
    ys, xs = np.nonzero(changed)
    assert ys.min() >= r.y0 and ys.max() < r.y0 + r.side and xs.min() >= r.x0 and xs.max() < r.x0 + r.side
    # The changed pixels lie inside the mask's ellipse, mapped to the frame.
    m = mouth_mask(128)
    my, mx = np.nonzero(m)
    s = r.side / 128
    assert ys.min() >= r.y0 + my.min() * s - 1 and ys.max() <= r.y0 + (my.max() + 1) * s + 1
    assert xs.min() >= r.x0 + mx.min() * s - 1 and xs.max() <= r.x0 + (mx.max() + 1) * s + 1
