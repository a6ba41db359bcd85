"""The mouth-shape drive: the renderer draws the mouth the drive asks for, not the source frame's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from accel.sampler import sample
from lipsync.neural.data import FaceClipDataset
from lipsync.neural.model import FaceGenConfig
from lipsync.neural.shape_drive import (
    DriveSwapDataset,
    ShapeCalibration,
    fit_width_gain,
    shape_windows,
    viseme_spread,
)
from lipsync.neural.train import train_teacher
from lipsync.neural.video_shapes import (
    REGION_FACE_FRAC,
    MouthTrack,
    TrackError,
    frame_regions,
    mouth_mask,
    plan_layout,
)
from lipsync.visemes import N_VISEMES, VISEME_INDEX

C = 32
MASK = (15, 26, 6, 26)  # rows y0:y1, cols x0:x1 of the blanked mouth region


def toy_face(opening: float) -> np.ndarray:
    """A 32 px face crop: a dark mouth whose height follows ``opening`` (0..1), and a chin line
    below the blanked region that moves with it (the cue a renderer could copy from the source)."""
    img = np.empty((C, C, 3), np.uint8)
    img[:] = (200, 160, 130)
    yy, xx = np.mgrid[0:C, 0:C]
    ry = 0.6 + 4.0 * opening
    inside = ((xx - 16) / 7.0) ** 2 + ((yy - 20) / ry) ** 2 <= 1.0
    img[inside] = (60, 10, 20)
    img[MASK[1] + 1 + round(3 * opening) :, :] = (150, 110, 90)  # the chin's shadow
    return img


def toy_clip(openings: np.ndarray) -> FaceClipDataset:
    track = np.stack([0.08 * openings, np.full_like(openings, 0.42)], axis=1)
    mask = np.zeros((C, C), np.float32)
    mask[MASK[0] : MASK[1], MASK[2] : MASK[3]] = 1.0
    return FaceClipDataset(
        frames=np.stack([toy_face(o) for o in openings]),
        references=toy_face(0.0),
        masks=mask,
        drive=shape_windows(track),
    )


def dark_area(crops: torch.Tensor) -> np.ndarray:
    y0, y1, x0, x1 = MASK
    region = crops[:, :, y0:y1, x0:x1].mean(dim=1)  # (N, h, w) in [-1, 1]
    return (region < -0.3).float().sum(dim=(1, 2)).numpy()


CFG = FaceGenConfig(
    crop_px=C, patch_px=2, widths=(16, 32), depths=(1, 1), mlp_ratio=2, kernel_px=3,
    cond_dim=32, time_freqs=16, refine_channels=4, drive_kind="shape", drive_channels=2,
    drive_frames=5,
)


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    rng = np.random.default_rng(0)
    openings = np.clip(np.convolve(rng.uniform(-0.3, 1.3, 400), np.ones(3) / 3, mode="same"), 0, 1)
    data = DriveSwapDataset.swapped(toy_clip(openings), seed=0)
    torch.set_num_threads(1)
    return train_teacher(CFG, data, steps=500, batch_size=16, lr=3e-3, progress=False).model


def test_swapped_rows_take_the_surroundings_of_another_frame() -> None:
    base = toy_clip(np.linspace(0, 1, 8))
    data = DriveSwapDataset.swapped(base, seed=1)
    assert len(data) == 16
    fb = data.batch(range(16))
    y0, y1, x0, x1 = MASK
    outside = torch.ones(1, 1, C, C)
    outside[..., y0:y1, x0:x1] = 0
    own = fb.cond.masked[:8] - fb.target[:8] * outside
    assert own.abs().max() == 0  # the first half: the frame's own face
    moved = data.sources[8:] != data.targets[8:]
    assert moved.any() and (fb.drive[8:] == base.drive[data.targets[8:]]).all()
    assert (fb.cond.masked[8:][moved] != (fb.target[8:] * outside)[moved]).any()


def test_output_follows_the_drive_when_the_source_disagrees(trained: torch.nn.Module) -> None:
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 1, 24)
    drv = 1.0 - src  # the drive asks the opposite of what the source frame shows
    sources = toy_clip(src).batch(range(24))
    drive = torch.from_numpy(shape_windows(np.stack([0.08 * drv, np.full(24, 0.42)], axis=1)))
    cond = type(sources.cond)(
        reference=sources.cond.reference, masked=sources.cond.masked, mask=sources.cond.mask, drive=drive
    )
    noise = torch.randn(sources.target.shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = sample(trained, cond, steps=8, noise=noise)
    area = dark_area(out)
    truth = dark_area(toy_clip(drv).batch(range(24)).target)
    assert np.corrcoef(area, drv)[0, 1] > 0.8
    assert np.corrcoef(area, src)[0, 1] < -0.5  # it follows the drive, against the source
    assert np.abs(area - truth).mean() < 0.35 * truth.mean()


def test_silence_is_the_persons_closed_mouth() -> None:
    cal = ShapeCalibration(closed_opening=0.004, open_opening=0.07, neutral_width=0.41)
    aa = np.zeros(N_VISEMES, np.float32)
    aa[VISEME_INDEX["aa"]] = 1.0
    track = cal.track_from_visemes([None, aa, np.eye(N_VISEMES, dtype=np.float32)[VISEME_INDEX["sil"]]])
    assert track[0, 0] == pytest.approx(0.004) and track[2, 0] == pytest.approx(0.004)
    assert track[1, 0] > 0.06
    assert track[0, 1] == pytest.approx(0.41)


def _one_hots(names: list[str | None]) -> list[np.ndarray | None]:
    return [None if v is None else np.eye(N_VISEMES, dtype=np.float32)[VISEME_INDEX[v]] for v in names]


def test_the_width_gain_is_how_far_this_persons_corners_follow_the_sound() -> None:
    rng = np.random.default_rng(0)
    weights = _one_hots([str(v) for v in rng.choice(["E", "ih", "ou", "oh", "aa", "PP"], 200)])
    spread = viseme_spread(weights)
    cals = [ShapeCalibration(closed_opening=0.0, open_opening=0.06, neutral_width=w) for w in (0.36, 0.42)]
    clip_ids = np.repeat([0, 1], 100)
    neutral = np.array([cals[c].neutral_width for c in clip_ids])
    noise = rng.normal(0.0, 0.01, 200)
    # Corners that move a third as far as the puppet's: the fit says so, through the noise.
    follows = neutral * (1.0 + 0.33 * spread + noise)
    assert fit_width_gain(follows, spread, cals, clip_ids) == pytest.approx(0.33, abs=0.05)
    # Corners that move with something else than the sound: a gain near 0, so the drive's width
    # stays near this person's neutral width (in the range the renderer learnt).
    other = neutral * (1.0 + 0.1 * rng.permutation(spread) + noise)
    gain = fit_width_gain(other, spread, cals, clip_ids)
    assert gain < 0.1
    track = ShapeCalibration(closed_opening=0.0, open_opening=0.06, neutral_width=0.36, width_gain=gain).track_from_visemes(weights)
    assert np.abs(track[:, 1] - 0.36).max() < 0.1 * 0.36 * 0.4
    # Too few spoken frames: the puppet's swing, unchanged.
    assert fit_width_gain(follows[:5], spread[:5], cals, clip_ids[:5]) == 1.0
    # A model's metadata carries the gains into a calibration; an old file without them gets 1.0.
    fitted = cals[0].fitted({"jaw_gain": 1.7, "width_gain": 0.3})
    assert (fitted.jaw_gain, fitted.width_gain) == (1.7, 0.3)
    assert ShapeCalibration.from_dict(fitted.to_dict()) == fitted
    assert cals[0].fitted({}).width_gain == 1.0


def test_bad_shape_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="shape track"):
        shape_windows(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        shape_windows(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="barely moves"):
        ShapeCalibration.from_track(np.tile([[0.01, 0.4]], (50, 1)))
    with pytest.raises(ValueError, match="viseme weights"):
        ShapeCalibration(closed_opening=0.0, open_opening=0.05, neutral_width=0.4).track_from_visemes(
            [np.zeros(3)]
        )
    with pytest.raises(ValueError, match="width_gain"):
        ShapeCalibration(closed_opening=0.0, open_opening=0.05, neutral_width=0.4, width_gain=-0.1)


# --- a person's video as arrays: clips, held-out middles, regions that follow the head ------------


def measured(n: int, *, nose_x: np.ndarray | None = None, openings: np.ndarray | None = None) -> list:
    """Landmark rows (opening, width, nose x, nose y, mouth x, mouth y, face height) of a face
    140 px tall whose nose drifts along ``nose_x``."""
    nose_x = np.full(n, 180.0) if nose_x is None else nose_x
    openings = np.abs(np.sin(np.arange(n) / 3.0)) * 0.06 if openings is None else openings
    return [np.array([openings[k], 0.36, nose_x[k], 150.0, nose_x[k], 180.0, 140.0], np.float32) for k in range(n)]


def test_regions_follow_the_head_and_clips_split_at_cuts() -> None:
    n = 120
    change = np.full(n, 0.002, np.float32)
    change[60] = 0.12  # a shot change
    track = MouthTrack.from_measurements(
        measured(n, nose_x=np.linspace(150.0, 190.0, n)), source="v.mp4", picture_change=change
    )
    layout = plan_layout(track)
    assert layout.clips == [(0, 60), (60, 120)]
    spans = layout.held_spans()
    assert spans == [(22, 37), (82, 97)]  # the middle quarter of each clip
    assert (layout.split[19:22] == 2).all() and (layout.split[37:40] == 2).all()  # guards
    regions = frame_regions(track, layout, crop_px=64, width_px=360, height_px=288)
    assert {r.side for r in regions} == {round(REGION_FACE_FRAC * 140)}
    x = np.array([r.x0 + r.side / 2 for r in regions])
    # The crop follows the head: within a pixel of the nose, away from the smoothing at the ends.
    assert np.abs(x[3:57] - np.linspace(150.0, 190.0, n)[3:57]).max() < 1.0
    mask = mouth_mask(64)
    assert mask[40, 32] == 1 and mask[2, 32] == 0 and mask[40, 1] == 0  # mouth in, nose and cheek out


def test_missing_faces_are_filled_and_too_few_refused() -> None:
    rows = measured(10)
    rows[4] = None
    track = MouthTrack.from_measurements(rows, source="v.mp4")
    assert not track.found[4] and track.shapes[4, 0] in (track.shapes[3, 0], track.shapes[5, 0])
    with pytest.raises(TrackError, match=r"v.mp4: a face was found in 4 of 10 frames"):
        MouthTrack.from_measurements([r if k < 4 else None for k, r in enumerate(measured(10))], source="v.mp4")
    with pytest.raises(TrackError, match="shapes must be"):
        MouthTrack(shapes=np.zeros((3, 3)), nose_px=np.zeros((3, 2)), mouth_px=np.zeros((3, 2)),
                   face_height_px=np.ones(3), found=np.ones(3, bool), picture_change=np.zeros(3))


def test_a_still_mouth_takes_the_fallback_calibration() -> None:
    still = MouthTrack.from_measurements(measured(50, openings=np.full(50, 0.01)), source="v.mp4")
    with pytest.raises(ValueError, match="barely moves"):
        plan_layout(still)
    cal = ShapeCalibration(closed_opening=0.0, open_opening=0.05, neutral_width=0.4)
    assert plan_layout(still, fallback=cal, hold_out=False).calibrations == [cal]
