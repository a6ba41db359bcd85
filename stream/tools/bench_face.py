"""``talkie bench face``: the photo puppet's speed and how well it follows real speech.

Quality, on the real talking clips in ``../shared/testdata`` (``grid_*.mpg``): the first frame is
the photo, the clip's own sound drives the mouth through the face drive (``lipsync.lip_drive``;
the rig's loudness estimator is measured alongside, as ``loudness_jaw_vs_truth_r``), and the rest
of the clip is the truth. The landmark model reads the inner-lip opening of both (as a share of
the face height); the figures are their Pearson r at the best lag (and that lag, in frames), the
share of frames where the voice gate is shut whose mouth is the photo's own, pixel for pixel
(silence: the lips stay as the photo has them), and the mouth region's PSNR against the truth next to the "copy the first frame" baseline. Idle
motion is off for these (the truth moves its own head).

Speed, on one core (OpenCV and numpy single-threaded): ms to draw a face whose mouth changes
every frame (nothing cached), at the size it has in the photo; a 4-character scene of photo
characters driven by real speech at 25 fps (ms per frame, steady caches); and build seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from avatar.measure import pearson_at_best_lag, psnr
from avatar.photo.character import PhotoFrames, locate_face, mouth_key
from avatar.photo.image import read_photo
from avatar.photo.landmarks import FaceTracker
from avatar.photo.puppet import PhotoPuppet
from avatar.pose import Pose, pose_mouth_from_weights
from lipsync.audio_mouth import jaw_of, track_mouth
from lipsync.lip_drive import LipDrive
from lipsync.neural.video_io import iter_frames, open_source, read_audio
from stream.live.inputs.audio_input import AudioModels
from stream.tools.avatar_photo import PhotoAnimator, audio_mouths, build_from_photo

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
FRAME_MS = 40.0


def _openings(frames: list[np.ndarray]) -> np.ndarray:
    """Inner-lip opening per frame as a share of the face height (NaN where no face is found)."""
    out = []
    with FaceTracker() as tracker:
        for f in frames:
            face = tracker.track(f)
            out.append(np.nan if face is None else face.inner_lip_gap_px() / face.height_px)
    return np.array(out)


def _fill(x: np.ndarray) -> np.ndarray:
    idx = np.arange(x.size)
    ok = np.isfinite(x)
    return np.interp(idx, idx[ok], x[ok]) if ok.any() else np.zeros_like(x)


def evaluate_clip(path: Path, models: AudioModels, drive: LipDrive) -> tuple[dict[str, Any], dict[str, Any]]:
    """Figures for one clip, and what the plot and the pictures need."""
    source = open_source(path, require_audio=True, min_seconds=0.2)
    truth = [f.copy() for f in iter_frames(source)]
    pcm = read_audio(path)
    weights = audio_mouths(pcm, drive)
    n = min(len(truth), len(weights))
    truth, weights = truth[:n], weights[:n]
    animator = PhotoAnimator(truth[0], name=path.stem, motion=False)
    output = [animator.frame(k, weights[k]) for k in range(n)]
    o_open, t_open = _fill(_openings(output)), _fill(_openings(truth))
    r, lag = pearson_at_best_lag(o_open[1:], t_open[1:], max_lag=5)
    # Where the error comes from: the estimator's own jaw against the truth, and the puppet
    # (as the landmark model reads it back) against the jaw it was given.
    jaw = np.array([jaw_of(w) for w in weights])
    r_drive, lag_drive = pearson_at_best_lag(jaw[1:], t_open[1:], max_lag=5)
    r_puppet, lag_puppet = pearson_at_best_lag(o_open, jaw, max_lag=2)
    loud = track_mouth(pcm, vad=models.vad, shape=models.shape, config=models.config.mouth)[:n]
    r_loud, lag_loud = pearson_at_best_lag(np.array([jaw_of(f.weights) for f in loud])[1:], t_open[1:len(loud)], max_lag=5)
    silent = np.array([w is None for w in weights])
    photo_open = float(o_open[0])
    x0, y0, x1, y1 = animator.frames.puppet.mouth_box
    ours = [psnr(output[k][y0:y1, x0:x1], truth[k][y0:y1, x0:x1]) for k in range(1, n)]
    copy = [psnr(truth[0][y0:y1, x0:x1], truth[k][y0:y1, x0:x1]) for k in range(1, n)]
    speaking = ~silent[1:]
    figures = {
        "clip": path.name, "frames": n,
        "opening_r": round(r, 3), "best_lag_frames": lag,
        "estimator_jaw_vs_truth_r": round(r_drive, 3), "estimator_lag_frames": lag_drive,
        "puppet_vs_its_drive_r": round(r_puppet, 3), "puppet_lag_frames": lag_puppet,
        "loudness_jaw_vs_truth_r": round(r_loud, 3), "loudness_lag_frames": lag_loud,
        "silent_frames": int(silent.sum()),
        "silent_mouth_as_photo_share": round(float(np.mean([
            np.array_equal(output[k][y0:y1, x0:x1], truth[0][y0:y1, x0:x1]) for k in np.flatnonzero(silent)
        ])), 3) if silent.any() else None,
        "photo_opening": round(photo_open, 4),
        "truth_opening_max": round(float(np.max(t_open)), 4), "output_opening_max": round(float(np.max(o_open)), 4),
        "mouth_psnr_db": round(float(np.mean(ours)), 2), "copy_first_frame_psnr_db": round(float(np.mean(copy)), 2),
        "mouth_psnr_speaking_db": round(float(np.mean(np.array(ours)[speaking])), 2) if speaking.any() else None,
        "copy_first_frame_psnr_speaking_db": round(float(np.mean(np.array(copy)[speaking])), 2) if speaking.any() else None,
    }
    extra = {"output": output, "truth": truth, "o_open": o_open, "t_open": t_open, "silent": silent, "box": (x0, y0, x1, y1)}
    return figures, extra


def _single_thread() -> None:
    import cv2

    cv2.setNumThreads(1)


def face_speed(rgb: np.ndarray, weights: list[np.ndarray | None], *, frames: int = 100) -> dict[str, float]:
    """ms to draw one face per frame with nothing cached (a new mouth every frame)."""
    puppet = PhotoPuppet(rgb, locate_face(rgb, face=None, label="bench photo"))
    speaking = [w for w in weights if w is not None] or [np.eye(15)[10]]
    times = []
    for k in range(frames):
        pf = PhotoFrames(puppet, cache_entries=4)  # nothing carried over: every mouth drawn
        pose = Pose(mouth=pose_mouth_from_weights(speaking[k % len(speaking)]), eyes_open=0.0 if k % 10 == 0 else 1.0)
        t = time.perf_counter()
        pf.frame(pose)
        times.append(time.perf_counter() - t)
    ms = 1000.0 * np.array(times[5:])
    return {
        "min": round(float(ms.min()), 2), "p50": round(float(np.median(ms)), 2), "p95": round(float(np.percentile(ms, 95)), 2),
        "face_width_px": round(puppet.face.width_px, 1),
    }


def scene_speed(folder: Path, weights: list[np.ndarray | None], *, frames: int = 250, size: tuple[int, int] = (1280, 720)) -> dict[str, Any]:
    """A 1280x720 scene of four photo characters, all speaking real speech (offset so they differ)."""
    from avatar.director import SceneDirector
    from avatar.photo.character import photo_spec
    from avatar.scene import Compositor, SceneLayout

    specs = [replace(photo_spec(folder), name=f"P{i}", seed=i) for i in range(4)]
    layout = SceneLayout.for_count(4, width_px=size[0], height_px=size[1])
    comp = Compositor(layout=layout, characters=specs, set_name="studio")
    director = SceneDirector.for_compositor(comp)
    rest = np.zeros(15)
    times = []
    distinct: set[tuple[int, int, int]] = set()
    for k in range(frames):
        ws = [weights[(k + 37 * i) % len(weights)] for i in range(4)]
        poses = director.poses(k, mouths=[w if w is not None else rest for w in ws], speaking=[w is not None for w in ws])
        distinct.update(mouth_key(p) for p in poses)
        t = time.perf_counter()
        comp.compose(poses)
        times.append(time.perf_counter() - t)
    ms = 1000.0 * np.array(times)
    per_frame = float(np.mean(ms))
    return {
        "size": f"{size[0]}x{size[1]}", "frames": frames, "mouth_states": len(distinct),
        "ms_per_frame_min": round(float(ms.min()), 2), "ms_per_frame_p50": round(float(np.median(ms)), 2),
        "ms_per_frame_mean": round(per_frame, 2), "ms_per_frame_p95": round(float(np.percentile(ms, 95)), 2),
        "ms_per_face_mean": round(per_frame / 4, 2),
        "photo_faces_per_25fps_frame_2_cores": int(2 * FRAME_MS // max(per_frame / 4, 1e-3)),
    }


def bench_face(*, plot: str | Path = "bench_face.png", testdata: Path = TESTDATA, artefacts: Path | None = None) -> dict[str, Any]:
    _single_thread()
    portrait = testdata / "portrait_astronaut_512.png"
    clips = sorted(testdata.glob("grid_*.mpg"))
    if not portrait.is_file() or not clips:
        raise ValueError(f"bench face needs {portrait} and grid_*.mpg clips in {testdata}")
    models = AudioModels.load()
    drive = LipDrive.load(vad=models.vad, shape=models.shape)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        built = build_from_photo(portrait, name="BENCH", data_dir=Path(tmp))
        build_cold_s = time.perf_counter() - t
        built2 = build_from_photo(portrait, name="BENCH", data_dir=Path(tmp))
        jfk = read_audio(testdata / "en_jfk_16k.wav")
        weights = audio_mouths(jfk, drive)
        rgb = read_photo(portrait)
        speed = {
            "portrait": face_speed(rgb, weights),
            "scene_4_photo_characters": scene_speed(Path(built["folder"]), weights),
        }
    quality = []
    extras = []
    for clip in clips:
        figures, extra = evaluate_clip(clip, models, drive)
        quality.append(figures)
        extras.append(extra)
    speed["grid_face"] = face_speed(extras[0]["truth"][0], weights)
    report = {
        "machine": f"{os.cpu_count()} CPUs; OpenCV single-threaded",
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine meanwhile
        "build_s": {"first_in_process": round(build_cold_s, 3), "again": built2["build_s"]},
        "ms_per_face_uncached": {"portrait": speed["portrait"], "grid": speed["grid_face"]},
        "scene": speed["scene_4_photo_characters"],
        "quality": quality,
        "quality_mean": {
            "opening_r": round(float(np.mean([q["opening_r"] for q in quality])), 3),
            "estimator_jaw_vs_truth_r": round(float(np.mean([q["estimator_jaw_vs_truth_r"] for q in quality])), 3),
            "loudness_jaw_vs_truth_r": round(float(np.mean([q["loudness_jaw_vs_truth_r"] for q in quality])), 3),
            "puppet_vs_its_drive_r": round(float(np.mean([q["puppet_vs_its_drive_r"] for q in quality])), 3),
            "mouth_psnr_db": round(float(np.mean([q["mouth_psnr_db"] for q in quality])), 2),
            "copy_first_frame_psnr_db": round(float(np.mean([q["copy_first_frame_psnr_db"] for q in quality])), 2),
        },
        "plot": str(plot),
    }
    _plot(Path(plot), quality, extras, report)
    if artefacts is not None:
        from stream.tools.face_pictures import write_pictures

        write_pictures(artefacts, portrait=rgb, clips=[(c.stem, e["output"], e["truth"]) for c, e in zip(clips, extras, strict=True)])
        report["pictures"] = str(artefacts)
    # The trained (neural) model: float vs int8, eager vs ahead-of-time, start-up (bench_trained.py).
    from stream.tools.bench_trained import bench_trained

    report["trained_model"] = bench_trained()
    return report


def _plot(path: Path, quality: list[dict[str, Any]], extras: list[dict[str, Any]], report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(quality)
    fig, axes = plt.subplots(n + 1, 1, figsize=(9, 2.4 * (n + 1)))
    for ax, q, e in zip(axes[:n], quality, extras, strict=True):
        t = np.arange(len(e["o_open"])) / 25.0
        ax.plot(t, e["t_open"], label="truth (video)", color="k")
        ax.plot(t, e["o_open"], label="photo puppet", color="tab:red")
        ax.fill_between(t, 0, np.where(e["silent"], max(e["t_open"].max(), e["o_open"].max()), 0), color="0.9", label="voice gate shut")
        ax.set_title(f"{q['clip']}: r={q['opening_r']} at lag {q['best_lag_frames']}; mouth PSNR {q['mouth_psnr_db']} dB (copy {q['copy_first_frame_psnr_db']})", fontsize=9)
        ax.set_ylabel("inner-lip opening / face")
        ax.legend(fontsize=7, loc="upper right")
    ax = axes[n]
    labels = ["portrait face", "GRID face", "4-photo scene / face"]
    values = [report["ms_per_face_uncached"]["portrait"]["p50"], report["ms_per_face_uncached"]["grid"]["p50"], report["scene"]["ms_per_face_mean"]]
    ax.barh(labels, values, color="tab:blue")
    ax.axvline(10, color="tab:red", ls="--", label="target 10 ms")
    ax.set_xlabel("ms per face per frame, one core")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
