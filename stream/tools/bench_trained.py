"""The trained model's figures for ``talkie bench face``: float vs int8, eager vs ahead-of-time,
and whether a ``--video`` model's mouth follows its drive.

For one student file (default: the shipped cast model, the only trained model in the repository;
a ``--video`` model of the same variant has the same network): ms per face on one thread at
batch 1 and 4 (1-step sampling, the whole sampler call), the faces one 25 fps frame holds on two
cores (2 x 40 ms over the best ms per face at batch 4), and start-up: a fresh Python process
that loads the weights and the int8 package and paints one face, timed from its start.

The packages are compiled (accel/aot.py) into ``work_dir`` beside a copy of the weights when not
there yet; that takes minutes once, and is reported as ``compile_s``.

``bench_video``: the GRID clips of ../shared/testdata joined into one video (three speakers, three
shots) and built with ``talkie avatar build --video`` (once, into test-artifacts/video; minutes),
then painted on the held-out middle of each shot under four drives (the true audio, another
speaker's audio, silence, the landmarks' own shapes) and measured with face landmarks.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accel.aot import artifact_path, compile_aot, example_inputs, load_aot
from accel.quantize import quantize_int8
from avatar.neural.video_track import openings
from lipsync.neural.regions import paint_mask, region_masks
from lipsync.neural.shape_drive import ShapeCalibration, shape_windows
from lipsync.neural.video_io import iter_frames, open_source
from lipsync.neural.weights import default_weights_dir, load_student
from lipsync.timebase import SAMPLES_PER_FRAME
from stream.media.mp4 import Mp4Writer, VideoEncoding
from stream.tools.avatar_animate import MouthPainter, follow_video, load_video_model
from stream.tools.avatar_build import BuildConfig, build_from_video
from stream.tools.avatar_photo import PhotoAnimator
from stream.tools.speech_shapes import speech_mouths, speech_shapes

FRAME_MS = 40.0
CORES = 2

_STARTUP = """
import time, sys
t0 = time.perf_counter()
import torch
from accel.aot import load_aot, example_inputs
from lipsync.neural.weights import load_student
torch.set_num_threads(1)
m = load_student(sys.argv[1])
aot = load_aot(sys.argv[1], precision="int8", config=m.cfg)
with torch.inference_mode():
    aot(*example_inputs(m.cfg, 1))
print(time.perf_counter() - t0)
"""


def _ms_per_face(fn: Any, cfg: Any, batch: int, repeats: int) -> float:
    x = example_inputs(cfg, batch)
    with torch.inference_mode():
        for _ in range(3):
            fn(*x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*x)
            times.append(time.perf_counter() - start)
    return round(1000.0 * statistics.median(times) / batch, 2)


def bench_trained(
    weights: str | Path | None = None,
    *,
    work_dir: Path = Path("test-artifacts/aot"),
    repeats: int = 20,
    video: bool = True,
) -> dict[str, Any]:
    """Speed and start-up figures of a trained student, and (with ``video``) the ``video``
    section: a ``--video`` model of the GRID clips on its held-out frames (``bench_video``)."""
    source = Path(weights) if weights else default_weights_dir() / "cast.safetensors"
    work_dir.mkdir(parents=True, exist_ok=True)
    local = work_dir / source.name
    if not local.exists() or local.read_bytes() != source.read_bytes():
        shutil.copyfile(source, local)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_student(local)
        compile_s: dict[str, float] = {}
        for precision in ("float32", "int8"):
            try:
                load_aot(local, precision=precision, config=model.cfg)
            except Exception:  # noqa: BLE001 - missing or stale: compile it
                started = time.perf_counter()
                compile_aot(model, weights=local, precision=precision)
                compile_s[precision] = round(time.perf_counter() - started, 1)
        eager_int8, _ = quantize_int8(model)
        paths = {
            "eager float32": model,
            "eager int8": eager_int8,
            "aot float32": load_aot(local, precision="float32", config=model.cfg),
            "aot int8": load_aot(local, precision="int8", config=model.cfg),
        }
        rows = [
            {"path": name, "batch": b, "ms_per_face": _ms_per_face(fn, model.cfg, b, repeats)}
            for name, fn in paths.items()
            for b in (1, 4)
        ]
    finally:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _STARTUP, str(local)], capture_output=True, text=True, check=True
    )
    best = min(float(r["ms_per_face"]) for r in rows if r["batch"] == 4)
    return {
        "model": str(source),
        "crop_px": model.cfg.crop_px,
        "steps": 1,
        "threads": 1,
        "ms_per_face": rows,
        "faces_per_25fps_frame_on_2_cores": round(CORES * FRAME_MS / best, 1),
        "startup_s": {
            "process_to_first_face": round(time.perf_counter() - started, 2),
            "inside_process": round(float(out.stdout.strip().splitlines()[-1]), 2),
        },
        "package_bytes": {p: artifact_path(local, p).stat().st_size for p in ("float32", "int8")},
        "compile_s": compile_s,
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine meanwhile
        **({"video": bench_video()} if video else {}),
    }


# --- the video model: does the mouth follow the drive? ------------------------------------------

GRID_CLIPS = ("grid_bbaf2n.mpg", "grid_lbbc2a.mpg", "grid_swiz3n.mpg")
MAX_LAG_FRAMES = 3


def join_clips(clips: list[Path], out: Path) -> Path:
    """The clips one after another in one MP4 (their frame size; H.264 crf 12 + AAC)."""
    sources = [open_source(c, min_seconds=1 / 25) for c in clips]
    w, h = sources[0].width_px, sources[0].height_px
    if any((s.width_px, s.height_px) != (w, h) for s in sources):
        raise ValueError(f"clips to join must share one frame size, got {[(s.width_px, s.height_px) for s in sources]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with Mp4Writer(out, encoding=VideoEncoding(width_px=w, height_px=h, crf=12)) as writer:
        for src in sources:
            for k, rgb in enumerate(iter_frames(src)):
                writer.write_video(rgb)
                writer.write_audio(src.pcm[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME])
    return out


def best_lag_r(x: np.ndarray, y: np.ndarray, spans: list[tuple[int, int]]) -> tuple[float, int]:
    """The largest Pearson r of x[k] against y[k + lag] (|lag| <= MAX_LAG_FRAMES), pooled over
    ``spans`` (ranges of x and y) after taking each span's own mean out: how a mouth moves within
    a shot, not how wide one speaker opens against another."""
    best = (-2.0, 0)
    for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1):
        parts_a, parts_b = [], []
        for s, e in spans:
            a = x[s + max(0, -lag) : e - max(0, lag)]
            b = y[s + max(0, lag) : e - max(0, -lag)]
            ok = np.isfinite(a) & np.isfinite(b)
            parts_a.append(a[ok] - a[ok].mean() if ok.any() else a[ok])
            parts_b.append(b[ok] - b[ok].mean() if ok.any() else b[ok])
        a, b = np.concatenate(parts_a), np.concatenate(parts_b)
        if a.size > 3 and a.std() > 0 and b.std() > 0:
            best = max(best, (float(np.corrcoef(a, b)[0, 1]), lag))
    return round(best[0], 3), best[1]


def _offsets(spans: list[tuple[int, int]]) -> list[tuple[int, tuple[int, int]]]:
    """(offset into the concatenated held-out arrays, span) per span."""
    out, at = [], 0
    for s, e in spans:
        out.append((s - at, (s, e)))
        at += e - s
    return out


def _paint_weight(region: Any) -> np.ndarray:
    """Region pixels (side, side): how much of the painted crop each one takes, 0..1."""
    soft = paint_mask(region_masks([region]))
    m = torch.nn.functional.interpolate(soft, size=(region.side, region.side), mode="bilinear", align_corners=False)
    return m[0, 0].numpy()


def _paint_area(region: Any) -> np.ndarray:
    """Region pixels (side, side) bool that are mostly painted."""
    return _paint_weight(region) > 0.5


def _seam(region: Any) -> np.ndarray:
    """The feathered edge of the paste (side, side) bool: where a pasted rectangle would show."""
    w = _paint_weight(region)
    return (w > 0.02) & (w < 0.98)


def _inside(img: np.ndarray, region: Any, area: np.ndarray) -> np.ndarray:
    """The pixels of ``img`` in ``region`` where ``area`` is set."""
    return img[region.y0 : region.y0 + region.side, region.x0 : region.x0 + region.side][area]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * float(np.log10(255.0**2 / max(mse, 1e-10)))


def bench_video(
    model: str | Path | None = None,
    *,
    testdata: Path = Path("../shared/testdata"),
    work_dir: Path = Path("test-artifacts/video"),
    build: BuildConfig | None = None,
) -> dict[str, Any]:
    """Held-out frames of a ``--video`` build of the GRID clips joined (three speakers, each
    clip's middle held out): the painted mouth's inner-lip opening (face landmarks) against the
    truth when driven by the true audio, against the source and the drive when driven by another
    speaker's audio, in silence; mouth PSNR against the photo puppet on the same frames."""
    clips = [testdata / c for c in GRID_CLIPS]
    if not all(c.is_file() for c in clips):
        return {"skipped": f"needs {', '.join(GRID_CLIPS)} in {testdata}"}
    joined = work_dir / "grid_joined.mp4"
    if not joined.is_file():
        join_clips(clips, joined)
    path = Path(model) if model else work_dir / "grid.safetensors"
    build_summary = None
    if not path.is_file():
        cfg = build or BuildConfig(variant="rig64", teacher_steps=1500, student_steps=300, n_pairs=256)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # two threads on a busy 2-core machine spin more than they run
        try:
            build_summary = build_from_video(joined, name=path.stem, out_dir=path.parent, config=cfg, progress=False)
        finally:
            torch.set_num_threads(threads)
    net, extra = load_video_model(path)
    source = open_source(joined)
    followed = follow_video(
        source, crop_px=net.cfg.crop_px, fallback=ShapeCalibration.from_dict(extra["calibration"]),
        model_extra=extra, hold_out=True,
    )
    spans = followed.layout.held_spans()
    if [list(s) for s in spans] != extra.get("held_out"):
        raise ValueError(f"{path} held out {extra.get('held_out')}, this video's layout holds out {spans}")
    held = np.concatenate([np.arange(a, b) for a, b in spans])  # frame indices
    clip_ids = followed.clip_ids()
    cals = followed.layout.calibrations
    truth = followed.track.shapes[:, 0]
    frames = {k: rgb.copy() for a, b in spans for k, rgb in zip(range(a, b), iter_frames(source, start=a, stop=b), strict=True)}
    mouths = speech_mouths()
    weights = mouths(source.pcm)
    audio = np.stack(speech_shapes(source.pcm, cals, mouths=mouths))  # (K, N, 2)
    # Another speaker's audio: frame k of clip c takes the frame at the same offset of clip c + 1.
    starts = [a for a, _ in followed.layout.clips]
    other = np.array([starts[(clip_ids[k] + 1) % len(starts)] + k - starts[clip_ids[k]] for k in range(source.n_frames)])
    other = np.minimum(other, source.n_frames - 1)
    tracks = {
        "true_audio": audio[clip_ids, np.arange(source.n_frames)],
        "other_speech": audio[clip_ids, other],
        "silence": np.stack([cals[c].track_from_visemes([None])[0] for c in clip_ids]),
        "true_shapes": followed.track.shapes,
    }
    painter = MouthPainter(model=net, references=followed.references, mask=followed.regions[0].mask)
    out: dict[str, dict[str, Any]] = {}
    for name, track in tracks.items():
        drive = np.concatenate([shape_windows(track[a:b]) for a, b in followed.layout.clips])
        painted = [frames[k].copy() for k in held]
        for i in range(0, len(held), 8):
            idx = held[i : i + 8]
            painter.paint(painted[i : i + 8], [followed.regions[k] for k in idx], drive[idx], clip_ids[idx].tolist())
        opening = np.concatenate([openings(painted[s - s0 : e - s0]) for s0, (s, e) in _offsets(spans)])
        out[name] = {"frames": painted, "opening": opening, "drive": track[held, 0]}
    # The photo puppet on the same frames: each clip's reference frame as its photo, same weights.
    puppet: list[np.ndarray] = []
    for c, (a, b) in enumerate(followed.layout.clips):
        if not any(a <= k < b for k in held):
            continue
        animator = PhotoAnimator(frames.get(followed.layout.reference_frames[c], next(iter_frames(source, start=followed.layout.reference_frames[c], stop=followed.layout.reference_frames[c] + 1))), name=f"GRID{c}", motion=False)
        puppet.extend(animator.frame(int(k), weights[k]) for k in held if a <= k < b)

    def mouth_psnr_db(images: list[np.ndarray], *, where: Any = _paint_area) -> float:
        vals = []
        for img, k in zip(images, held, strict=True):
            r = followed.regions[k]
            area = where(r)
            vals.append(_psnr(_inside(img, r, area), _inside(frames[k], r, area)))
        return round(float(np.mean(vals)), 2)

    t = truth[held]
    spans_local = [(s - s0, e - s0) for s0, (s, e) in _offsets(spans)]
    r_true, lag_true = best_lag_r(out["true_audio"]["opening"], t, spans_local)
    o = out["other_speech"]
    r_src, _ = best_lag_r(o["opening"], t, spans_local)
    r_drv, _ = best_lag_r(o["opening"], o["drive"], spans_local)
    sil = out["silence"]["opening"]
    closed = np.array([cals[clip_ids[k]].closed_opening + 0.2 * (cals[clip_ids[k]].open_opening - cals[clip_ids[k]].closed_opening) for k in held])
    _write_strip(work_dir / "video_held_out.png", held, followed, frames, out, puppet)
    return {
        "model": str(path),
        "build": build_summary,
        "crop_px": net.cfg.crop_px,
        "jaw_gain": extra.get("jaw_gain"),
        "width_gain": extra.get("width_gain"),
        "region_side_px": sorted({followed.regions[k].side for k in held}),
        "held_out_frames": int(len(held)),
        "held_out_spans": spans,
        "opening_r_true_audio_vs_truth": r_true,
        "opening_r_true_audio_lag_frames": lag_true,
        "opening_r_true_audio_vs_its_drive": best_lag_r(out["true_audio"]["opening"], out["true_audio"]["drive"], spans_local)[0],
        "drive_r_true_audio_vs_truth": best_lag_r(out["true_audio"]["drive"], t, spans_local)[0],
        "opening_r_true_shapes_vs_truth": best_lag_r(out["true_shapes"]["opening"], t, spans_local)[0],
        "other_speech": {"opening_r_vs_source": r_src, "opening_r_vs_drive": r_drv},
        "silence": {
            "mean_opening": round(float(np.nanmean(sil)), 4),
            "truth_mean_opening": round(float(np.mean(t)), 4),
            "closed_fraction": round(float(np.mean(sil <= closed)), 3),
            "faces_found": int(np.isfinite(sil).sum()),
        },
        "mouth_psnr_db": {
            "video_model_true_audio": mouth_psnr_db(out["true_audio"]["frames"]),
            "video_model_true_shapes": mouth_psnr_db(out["true_shapes"]["frames"]),
            "photo_puppet_true_audio": mouth_psnr_db(puppet),
        },
        # The paste's feathered edge against the untouched frame: a visible seam scores low here.
        "seam_psnr_db": {
            "video_model_true_shapes": mouth_psnr_db(out["true_shapes"]["frames"], where=_seam),
            "video_model_silence": mouth_psnr_db(out["silence"]["frames"], where=_seam),
        },
        "pictures": str(work_dir / "video_held_out.png"),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def _write_strip(path: Path, held: np.ndarray, followed: Any, frames: dict[int, np.ndarray], out: dict[str, Any], puppet: list[np.ndarray]) -> None:
    """Rows: truth, the truth's shapes, true audio, other speech, silence, photo puppet; a column
    per 4th held frame."""
    from PIL import Image

    rows = []
    pick = list(range(0, len(held), 4))
    for images in ([frames[k] for k in held], out["true_shapes"]["frames"], out["true_audio"]["frames"], out["other_speech"]["frames"], out["silence"]["frames"], puppet):
        tiles = []
        for i in pick:
            r = followed.regions[held[i]]
            tiles.append(np.asarray(Image.fromarray(images[i][r.y0 : r.y0 + r.side, r.x0 : r.x0 + r.side]).resize((112, 112))))
        rows.append(np.concatenate(tiles, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
