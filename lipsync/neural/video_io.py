"""Reading a user's video with PyAV: 25 fps frames by timestamp and 48 kHz mono audio on one clock.

Time 0 is the presentation time of the video's first frame. Output frame k is the source frame
shown at k / 25 s (the last one whose timestamp is <= k / 25 s), so a 30 fps source drops one
frame in six and a 24 fps source repeats one in 24. Audio is resampled to 48 kHz mono int16 and
shifted by its own start time (zeros in front when it starts late, samples dropped when it starts
early), so sample ``1920 k`` plays when frame k is shown (lipsync/timebase.py). Picture and sound
are trimmed to the same number of whole frames.

Frames are decoded on demand (``iter_frames``), never all held at once: a few minutes of 1080p
is tens of gigabytes as RGB. Every problem with the input is a ``VideoSourceError`` naming the
file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from lipsync.timebase import FPS, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME

MIN_SOURCE_S = 4.0
MAX_SOURCE_S = 15 * 60.0
# Below this (the frame's shorter side) a face is too few pixels to learn a mouth from.
MIN_FRAME_SIDE_PX = 64
_EPS_S = 1e-6  # a frame whose timestamp equals k / 25 s is already shown at frame k


class VideoSourceError(ValueError):
    """A video or audio file cannot be used: missing, unreadable, wrong streams, length or size."""


@dataclass(frozen=True)
class SourceVideo:
    """A decodable video on the 25 fps / 48 kHz clock (its frames come from ``iter_frames``)."""

    path: Path
    width_px: int
    height_px: int
    frame_pts: (
        np.ndarray
    )  # int64 (N,): source pts (stream time base) of the frame shown at k / 25 s
    pcm: np.ndarray  # int16 (N * 1920,): 48 kHz mono; zeros when the file has no sound

    @property
    def n_frames(self) -> int:
        return int(self.frame_pts.shape[0])

    @property
    def seconds(self) -> float:
        return self.n_frames / FPS


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoSourceError(f"{path} does not exist")
    if not path.is_file():
        raise VideoSourceError(f"{path} is not a file")
    try:
        return av.open(str(path))
    except av.FFmpegError as err:
        raise VideoSourceError(f"{path} is not a video or audio file PyAV can read: {err}") from err


def _decode_audio(path: Path, container: av.container.InputContainer) -> tuple[np.ndarray, float]:
    """All audio of the first audio stream as int16 48 kHz mono, and its start time in seconds."""
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
    parts: list[np.ndarray] = []
    start_s: float | None = None
    try:
        for frame in container.decode(stream):
            if start_s is None and frame.time is not None:
                start_s = float(frame.time)
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.FFmpegError as err:
        raise VideoSourceError(f"{path}: its audio cannot be decoded: {err}") from err
    pcm = np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)
    return pcm, start_s or 0.0


def read_audio(path: str | Path) -> np.ndarray:
    """The first audio stream of any file PyAV decodes (wav, mp3, mp4, ...) as int16 48 kHz mono."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            raise VideoSourceError(f"{path} has no audio stream")
        pcm, _ = _decode_audio(path, container)
    if pcm.shape[0] < SAMPLES_PER_FRAME:
        raise VideoSourceError(f"{path}: its audio is shorter than one frame (40 ms)")
    return pcm


@dataclass(frozen=True)
class _FrameTimes:
    pts: np.ndarray  # int64 (M,) sorted packet pts, stream time base
    seconds: np.ndarray  # float64 (M,) the same in seconds after the first frame
    first_s: float  # the first frame's presentation time
    duration_s: float  # from the first frame to the end of the last


def _frame_times(path: Path, container: av.container.InputContainer) -> _FrameTimes:
    """When each frame of the video stream is shown, from demuxing alone (no decoding)."""
    stream = container.streams.video[0]
    if stream.time_base is None:
        raise VideoSourceError(f"{path}: its video stream has no time base")
    tick_s = float(stream.time_base)
    pts, durations = [], []
    for packet in container.demux(stream):
        if packet.pts is not None and packet.size:
            pts.append(packet.pts)
            durations.append(packet.duration or 0)
    if not pts:
        raise VideoSourceError(f"{path}: its video stream has no frames")
    order = np.argsort(pts, kind="stable")
    sorted_pts = np.asarray(pts, np.int64)[order]
    last = int(np.asarray(durations)[order][-1])
    if last <= 0:  # no duration on the last packet: assume the typical frame interval
        gaps = np.diff(sorted_pts)
        last = int(np.median(gaps)) if gaps.size else 0
    return _FrameTimes(
        pts=sorted_pts,
        seconds=(sorted_pts - sorted_pts[0]) * tick_s,
        first_s=float(sorted_pts[0]) * tick_s,
        duration_s=float(sorted_pts[-1] - sorted_pts[0] + last) * tick_s,
    )


def open_source(
    path: str | Path,
    *,
    require_audio: bool = True,
    min_seconds: float = MIN_SOURCE_S,
    max_seconds: float = MAX_SOURCE_S,
) -> SourceVideo:
    """Check ``path`` and put it on the 25 fps / 48 kHz clock; frames are decoded later.

    Raises ``VideoSourceError`` for a missing or unreadable file, no video stream, no audio stream
    (when ``require_audio``), a frame smaller than ``MIN_FRAME_SIDE_PX``, or a length outside
    ``[min_seconds, max_seconds]``.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise VideoSourceError(f"{path} has no video stream (is it an audio file?)")
        video = container.streams.video[0]
        width, height = int(video.codec_context.width), int(video.codec_context.height)
        if min(width, height) < MIN_FRAME_SIDE_PX:
            raise VideoSourceError(
                f"{path} is {width}x{height}: too small for a face; the shorter side must be at "
                f"least {MIN_FRAME_SIDE_PX} px"
            )
        if container.duration is not None and container.duration / av.time_base > max_seconds + 1:
            raise VideoSourceError(
                f"{path} is {container.duration / av.time_base / 60:.1f} min long; the most "
                f"is {max_seconds / 60:.0f} min (cut it shorter)"
            )
        has_audio = bool(container.streams.audio)
        if require_audio and not has_audio:
            raise VideoSourceError(
                f"{path} has no audio stream; the mouth is learned from the sound, so the video "
                "must have the person's voice"
            )
        times = _frame_times(path, container)
    n_video = int(np.ceil(times.duration_s * FPS - _EPS_S))
    # Output frame k shows the last source frame whose time is <= k / 25 s.
    shown = np.searchsorted(times.seconds, np.arange(n_video) / FPS + _EPS_S, side="right") - 1
    if has_audio:
        with _open(path) as container:
            pcm, audio_start_s = _decode_audio(path, container)
        shift = round((audio_start_s - times.first_s) * SAMPLE_RATE_HZ)
        pcm = np.concatenate([np.zeros(shift, np.int16), pcm]) if shift > 0 else pcm[-shift:]
        n = min(n_video, pcm.shape[0] // SAMPLES_PER_FRAME)
    else:
        n = n_video
        pcm = np.zeros(n * SAMPLES_PER_FRAME, np.int16)
    seconds = n / FPS
    if seconds < min_seconds:
        what = "picture with sound" if has_audio else "picture"
        raise VideoSourceError(
            f"{path} has {seconds:.2f} s of {what}; at least {min_seconds:g} s is needed"
        )
    if seconds > max_seconds:
        raise VideoSourceError(
            f"{path} is {seconds / 60:.1f} min long; the most is {max_seconds / 60:.0f} min"
        )
    return SourceVideo(
        path=path,
        width_px=width,
        height_px=height,
        frame_pts=times.pts[shown[:n]],
        pcm=np.ascontiguousarray(pcm[: n * SAMPLES_PER_FRAME]),
    )


def iter_frames(
    source: SourceVideo, *, start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) uint8 of output frames ``start .. stop - 1`` on the 25 fps clock.

    Seeks to the keyframe before ``start``, so reading a short span late in the file is cheap.
    A repeated source frame is yielded as the same array: copy it before drawing on it.
    """
    stop = source.n_frames if stop is None else min(stop, source.n_frames)
    if not 0 <= start <= stop:
        raise ValueError(f"frame span [{start}, {stop}) is outside 0..{source.n_frames}")
    if start == stop:
        return
    want = source.frame_pts
    k = start
    with _open(source.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start > 0:
            container.seek(int(want[start]), stream=stream, backward=True, any_frame=False)
        # The last decoded frame, converted to RGB only when some output frame shows it.
        prev: av.VideoFrame | None = None
        prev_rgb: np.ndarray | None = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                # Output frames shown before this frame's time (or whose frame was never decoded).
                while k < stop and want[k] < frame.pts:
                    if prev_rgb is None:
                        prev_rgb = (prev if prev is not None else frame).to_ndarray(format="rgb24")
                    yield prev_rgb
                    k += 1
                prev, prev_rgb = frame, None
                while k < stop and want[k] == frame.pts:
                    if prev_rgb is None:
                        prev_rgb = frame.to_ndarray(format="rgb24")
                    yield prev_rgb
                    k += 1
                if k >= stop:
                    return
        except av.FFmpegError as err:
            raise VideoSourceError(f"{source.path}: frame {k} cannot be decoded: {err}") from err
        if k < stop and prev is not None and prev_rgb is None:
            prev_rgb = prev.to_ndarray(format="rgb24")
    while k < stop and prev_rgb is not None:  # the stream ended early: hold the last frame
        yield prev_rgb
        k += 1
