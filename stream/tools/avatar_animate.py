"""``talkie avatar animate``: make the person in a video say new audio, with their video-built model.

Frame j of the output shows source frame ``pingpong(j)`` (the source plays forward, then
backward, and so on while the new audio lasts), with the mouth repainted by the student. The
source is followed by face landmarks (avatar/neural/video_track.py), so the face region follows
the head in every frame and each clip's reference is its most closed mouth
(lipsync/neural/video_shapes.py). The drive is the mouth's shape: sound -> viseme weights (the
live-audio estimator; silence gives none) -> the person's own opening and width
(``ShapeCalibration``) -> shape windows, all in ``speech_shapes``. The crop is pasted back with
``paint_mask`` (an ellipse, feathered), so pixels outside it keep the source's values exactly.
Video and audio go into one MP4 (H.264 + AAC) stamped from the one clock (stream/mp4.py); the
output has ``ceil(len(audio) / 1920)`` frames.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from avatar.neural.video_mouth import MouthPainter, fast_model, load_video_model
from avatar.neural.video_track import TrackerFactory, track_video
from avatar.photo.landmarks import FaceTracker
from lipsync.neural.regions import FaceRegion, crop_regions
from lipsync.neural.shape_drive import ShapeCalibration, shape_windows
from lipsync.neural.video_io import (
    MAX_SOURCE_S,
    SourceVideo,
    VideoSourceError,
    iter_frames,
    open_source,
    read_audio,
)
from lipsync.neural.video_shapes import MouthTrack, VideoLayout, frame_regions, plan_layout
from lipsync.neural.weights import load_student
from lipsync.timebase import FPS, SAMPLES_PER_FRAME, frames_for_samples
from stream.media.mp4 import Mp4Writer, VideoEncoding
from stream.tools.speech_shapes import MouthsFn, speech_mouths, speech_shapes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnimateConfig:
    """One animation run.

    steps: student sampler steps (1 or 2, what it was distilled for).
    batch_frames: frames generated per forward pass.
    seed: the fixed start noise (the same audio always gives the same mouth).
    reverse_buffer_mb: memory for source frames read ahead when playing the source backwards.
    """

    steps: int = 1
    batch_frames: int = 8
    seed: int = 0
    preset: str = "veryfast"
    crf: int = 20
    reverse_buffer_mb: int = 256

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_frames < 1 or self.reverse_buffer_mb < 1:
            raise ValueError(
                f"steps, batch_frames and reverse_buffer_mb must be >= 1, got {self.steps}, "
                f"{self.batch_frames}, {self.reverse_buffer_mb}"
            )


@dataclass(frozen=True)
class AnimateResult:
    path: Path
    n_frames: int
    n_samples: int
    source_frames: int
    wall_s: float

    @property
    def seconds(self) -> float:
        return self.n_samples / (FPS * SAMPLES_PER_FRAME)


def compile_model(model_path: str | Path, *, precision: str = "int8") -> dict[str, Any]:
    """``talkie avatar compile``: the model's ahead-of-time package beside it (accel/aot.py)."""
    from accel.aot import compile_aot, load_aot

    started = time.perf_counter()
    model = load_student(model_path)
    path = compile_aot(model, weights=model_path, precision=precision)
    compiled_s = time.perf_counter() - started
    started = time.perf_counter()
    load_aot(model_path, precision=precision, config=model.cfg)
    return {
        "package": str(path),
        "bytes": path.stat().st_size,
        "compile_s": round(compiled_s, 1),
        "load_s": round(time.perf_counter() - started, 3),
        "threads": torch.get_num_threads(),
    }


@dataclass(frozen=True)
class FollowedVideo:
    """A source video followed by landmarks: its track, clips, per-frame regions, references."""

    source: SourceVideo
    track: MouthTrack
    layout: VideoLayout
    regions: list[FaceRegion]
    references: torch.Tensor  # (K, 3, c, c) in [-1, 1], one per clip

    def clip_ids(self) -> np.ndarray:
        return self.layout.clip_ids()


def follow_video(
    source: SourceVideo,
    *,
    crop_px: int,
    fallback: ShapeCalibration,
    model_extra: Mapping[str, Any] | None = None,
    hold_out: bool = False,
    tracker: TrackerFactory = FaceTracker,
) -> FollowedVideo:
    """The landmark pass over ``source`` and what painting its frames needs; every clip's
    calibration takes the gains the model's build fitted (``ShapeCalibration.fitted``)."""
    track = track_video(iter_frames(source), source=str(source.path), tracker=tracker)
    layout = plan_layout(track, fallback=fallback, hold_out=hold_out)
    layout = dataclasses.replace(
        layout, calibrations=[c.fitted(model_extra or {}) for c in layout.calibrations]
    )
    regions = frame_regions(
        track, layout, crop_px=crop_px, width_px=source.width_px, height_px=source.height_px
    )
    refs = []
    for k in layout.reference_frames:
        rgb = next(iter_frames(source, start=k, stop=k + 1))
        refs.append(crop_regions(rgb, [regions[k]], crop_px=crop_px))
    return FollowedVideo(source=source, track=track, layout=layout, regions=regions, references=torch.cat(refs))


def pingpong_runs(n_source: int, n_out: int) -> Iterator[tuple[int, int, bool]]:
    """Spans ``(start, stop, backwards)`` of source frames that make ``n_out`` output frames:
    0..n-1 forwards, n-2..1 backwards, and again (no frame repeats at the turns)."""
    if n_source < 1:
        raise ValueError("the source video has no frames")
    done, forwards = 0, True
    while done < n_out:
        if forwards:
            take = min(n_source, n_out - done)
            yield 0, take, False
        else:
            take = min(max(0, n_source - 2), n_out - done)
            if take:
                yield n_source - 1 - take, n_source - 1, True
        done += take
        forwards = not forwards


def pingpong_frames(
    source: SourceVideo, n_out: int, *, block_frames: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(source frame index, RGB frame) for output frames 0..n_out-1; backward spans are read in
    blocks of ``block_frames`` (each a seek and a forward decode) and played reversed."""
    for start, stop, backwards in pingpong_runs(source.n_frames, n_out):
        if not backwards:
            yield from enumerate(iter_frames(source, start=start, stop=stop), start=start)
            continue
        for hi in range(stop, start, -block_frames):
            lo = max(start, hi - block_frames)
            block = list(iter_frames(source, start=lo, stop=hi))
            yield from ((lo + i, block[i]) for i in range(len(block) - 1, -1, -1))


def pingpong_order(n_source: int, n_out: int) -> np.ndarray:
    """The source frame shown at each output frame (``pingpong_runs`` flattened)."""
    return np.asarray(
        [
            k
            for a, b, back in pingpong_runs(n_source, n_out)
            for k in (range(b - 1, a - 1, -1) if back else range(a, b))
        ],
        np.int64,
    )


def animate_video(
    model_path: str | Path,
    source_video: str | Path,
    audio_path: str | Path,
    out_path: str | Path,
    *,
    config: AnimateConfig | None = None,
    progress: bool = True,
    mouths: MouthsFn | None = None,
    tracker: TrackerFactory = FaceTracker,
) -> AnimateResult:
    """Write ``out_path``: ``source_video``'s person saying ``audio_path``; see the module doc."""
    cfg = config or AnimateConfig()
    started = time.perf_counter()
    model, extra = load_video_model(model_path)
    pcm = read_audio(audio_path)  # int16 48 kHz mono
    source = open_source(
        source_video, require_audio=False, min_seconds=1 / FPS, max_seconds=MAX_SOURCE_S
    )
    w, h = source.width_px, source.height_px
    if w % 2 or h % 2:
        raise VideoSourceError(
            f"{source.path} is {w}x{h}; H.264 output needs an even width and height"
        )
    runner = fast_model(model_path, model)
    followed = follow_video(
        source,
        crop_px=model.cfg.crop_px,
        fallback=ShapeCalibration.from_dict(extra["calibration"]),
        model_extra=extra,
        tracker=tracker,
    )
    painter = MouthPainter(
        model=runner,
        references=followed.references,
        mask=followed.regions[0].mask,
        steps=cfg.steps,
        seed=cfg.seed,
    )
    n_out = frames_for_samples(pcm.shape[0])
    order = pingpong_order(source.n_frames, n_out)  # (n_out,) source frame per output frame
    clips = followed.clip_ids()[order]  # (n_out,)
    tracks = speech_shapes(
        pcm, followed.layout.calibrations, mouths=mouths or speech_mouths()
    )
    shapes = np.stack(tracks)[clips, np.arange(n_out)]  # (n_out, 2): each frame's own person
    drive = shape_windows(shapes)  # (n_out, 2, 5)
    block = max(1, cfg.reverse_buffer_mb * 2**20 // (w * h * 3))
    encoding = VideoEncoding(width_px=w, height_px=h, preset=cfg.preset, crf=cfg.crf)
    bar = tqdm(total=n_out, disable=not progress, desc="animate", unit="frame")
    with Mp4Writer(out_path, encoding=encoding) as writer:
        frames: list[np.ndarray] = []

        def flush() -> None:
            j0 = writer.frames_written
            j1 = j0 + len(frames)
            regions = [followed.regions[k] for k in order[j0:j1]]
            painter.paint(frames, regions, drive[j0:j1], clips[j0:j1].tolist())
            for frame in frames:
                writer.write_video(frame)
            writer.write_audio(pcm[j0 * SAMPLES_PER_FRAME : j1 * SAMPLES_PER_FRAME])
            bar.update(len(frames))
            frames.clear()

        for _, rgb in pingpong_frames(source, n_out, block_frames=block):
            frames.append(rgb.copy())  # repeated source frames share one array
            if len(frames) == cfg.batch_frames:
                flush()
        if frames:
            flush()
        n_frames, n_samples = writer.frames_written, writer.samples_written
    bar.close()
    wall = time.perf_counter() - started
    logger.info("animated %s: %d frames in %.1f s", out_path, n_frames, wall)
    return AnimateResult(
        path=Path(out_path),
        n_frames=n_frames,
        n_samples=n_samples,
        source_frames=source.n_frames,
        wall_s=wall,
    )
