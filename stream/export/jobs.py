"""Export a timeline: MP4 (H.264 + AAC, fast-start), SRT and WebVTT, and an OpenTimelineIO file.

Pictures go from the recorded segments to the encoder as YUV (no RGB round trip); audio is the
recorded PCM, encoded to AAC once over the whole timeline, so there is no priming gap at joins.
Each file is written under a temporary name and renamed only when complete: a full disk, an
unwritable folder or any failure leaves no partial file under a final name.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import opentimelineio as otio

from lipsync.timebase import FPS, SAMPLE_RATE_HZ
from stream.export.stitch import Timeline, iter_timeline, plan_episode, plan_scene
from stream.media.mp4 import Mp4Writer, OutputError, VideoEncoding
from stream.media.subtitles import to_srt, to_vtt
from stream.store import ExportRecord, Store
from stream.store.errors import ConflictError, StorageError, StoreError, storage_error
from stream.store.media import write_atomic

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (frames done, frames in all)


@dataclass(frozen=True, slots=True)
class ExportConfig:
    preset: str = "veryfast"  # the deliverable: smaller than the recording's ultrafast
    crf: int = 20
    threads: int = 2
    audio_bitrate_bps: int = 128_000
    progress_every_frames: int = 25


@dataclass(frozen=True, slots=True)
class ExportResult:
    mp4: Path
    srt: Path
    vtt: Path
    otio: Path
    n_frames: int
    n_samples: int
    clips: int


def output_paths(mp4: Path) -> tuple[Path, Path, Path]:
    return mp4.with_suffix(".srt"), mp4.with_suffix(".vtt"), mp4.with_suffix(".otio")


def _check_output(mp4: Path) -> None:
    if mp4.suffix.lower() != ".mp4":
        raise OutputError(f"the output {mp4} must end in .mp4 (subtitles and the timeline are written beside it)")
    parent = mp4.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {mp4}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {mp4}: folder {parent} is not writable")


def build_otio(timeline: Timeline, media_name: str) -> otio.schema.Timeline:
    """One clip per take (in the exported MP4's time), a marker per line, talkie ids as metadata;
    when the takes kept the director's cut, a third track ("Shots") with one clip per shot.

    Crossfades are baked into the MP4; a clip covers its take from where the previous clip's
    crossfade ends, so the clips tile the file and their durations add up to it.
    """
    rate = float(FPS)
    result = otio.schema.Timeline(name=timeline.title)
    result.global_start_time = otio.opentime.RationalTime(0, rate)
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    audio = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    available = otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(timeline.n_frames, rate)
    )
    clips = timeline.clips
    for i, clip in enumerate(clips):
        start = clip.start_frame + clip.fade_in_frames if i else 0
        end = clips[i + 1].start_frame + clips[i + 1].fade_in_frames if i + 1 < len(clips) else clip.end_frame
        source = otio.opentime.TimeRange(
            otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(end - start, rate)
        )
        meta = {"talkie": {
            "take_id": clip.take.id, "scene_id": clip.scene.id, "scene": clip.scene.name, "take": clip.take.name,
            "take_frames": clip.take.frames, "timeline_start_frame": clip.start_frame,
            "crossfade_in_frames": clip.fade_in_frames,
        }}
        for track in (video, audio):
            ref = otio.schema.ExternalReference(target_url=media_name, available_range=available)
            item = otio.schema.Clip(name=f"{clip.scene.name} / {clip.take.name}", media_reference=ref,
                                    source_range=source, metadata=meta)
            if track is video:
                for event in timeline.clip_events[i]:
                    t0 = clip.start_frame * SAMPLE_RATE_HZ // FPS + event.start_sample
                    item.markers.append(otio.schema.Marker(
                        name=f"{event.speaker}: {event.text}"[:200],
                        marked_range=otio.opentime.TimeRange(
                            otio.opentime.RationalTime(t0, SAMPLE_RATE_HZ),
                            otio.opentime.RationalTime(event.end_sample - event.start_sample, SAMPLE_RATE_HZ),
                        ),
                        color=otio.schema.MarkerColor.GREEN,
                        metadata={"talkie": {"speaker": event.speaker, "text": event.text}},
                    ))
            track.append(item)
    result.tracks.append(video)
    result.tracks.append(audio)
    if any(timeline.clip_shots):
        result.tracks.append(shot_track(timeline, media_name, available))
    return result


def shot_track(timeline: Timeline, media_name: str, available: otio.opentime.TimeRange) -> otio.schema.Track:
    """The director's cut as a video track of its own ("Shots"): one clip per shot, named by
    shot type and who is in it (``close MAYA``, ``two LEO+MAYA``), over the same file, so an
    editor sees every cut and can re-cut; a gap where a take kept no shots (the static layout)."""
    rate = float(FPS)
    track = otio.schema.Track(name="Shots", kind=otio.schema.TrackKind.Video)
    clips = timeline.clips
    at = 0  # the timeline frame the track has reached
    for i, (clip, shots) in enumerate(zip(clips, timeline.clip_shots, strict=True)):
        first = clip.start_frame + clip.fade_in_frames if i else 0
        last = clips[i + 1].start_frame + clips[i + 1].fade_in_frames if i + 1 < len(clips) else clip.end_frame
        for j, shot in enumerate(shots):
            start = max(first, clip.start_frame + shot.start_frame)
            end = min(last, clip.start_frame + shots[j + 1].start_frame if j + 1 < len(shots) else last)
            if end <= start:
                continue
            if start > at:
                track.append(otio.schema.Gap(duration=otio.opentime.RationalTime(start - at, rate)))
            track.append(otio.schema.Clip(
                name=shot.label,
                media_reference=otio.schema.ExternalReference(target_url=media_name, available_range=available),
                source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(end - start, rate)
                ),
                metadata={"talkie": {
                    "shot": shot.kind, "subjects": list(shot.subjects), "take_id": clip.take.id,
                    "scene": clip.scene.name, "take_start_frame": shot.start_frame,
                }},
            ))  # fmt: skip
            at = end
    if at < timeline.n_frames:
        track.append(otio.schema.Gap(duration=otio.opentime.RationalTime(timeline.n_frames - at, rate)))
    return track


def export_timeline(
    store: Store, timeline: Timeline, mp4: Path, *, config: ExportConfig | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write ``mp4`` and its ``.srt``, ``.vtt`` and ``.otio`` beside it (blocking: run in a worker)."""
    config = config or ExportConfig()
    mp4 = Path(mp4)
    _check_output(mp4)
    srt, vtt, otio_path = output_paths(mp4)
    encoding = VideoEncoding(
        width_px=timeline.width_px, height_px=timeline.height_px, preset=config.preset, crf=config.crf,
        threads=config.threads, audio_bitrate_bps=config.audio_bitrate_bps,
    )
    total = timeline.n_frames
    replaced = False  # once the MP4 is in place, a failure removes the whole set (it would not match)
    try:
        with Mp4Writer(mp4, encoding=encoding) as writer:
            for done, (frame, pcm) in enumerate(iter_timeline(store, timeline), start=1):
                writer.write_frame(frame)
                writer.write_audio(pcm)
                if progress is not None and (done % config.progress_every_frames == 0 or done == total):
                    progress(done, total)
            if writer.frames_written != total:
                raise StorageError(
                    "damaged_media", f"the timeline should have {total} frames but its takes gave {writer.frames_written}"
                )
            frames, samples = writer.frames_written, writer.samples_written
        replaced = True
        write_atomic(srt, to_srt(timeline.events).encode())
        write_atomic(vtt, to_vtt(timeline.events).encode())
        write_atomic(otio_path, otio.adapters.write_to_string(build_otio(timeline, mp4.name), "otio_json").encode())
    except (StoreError, OutputError):
        _remove(replaced, mp4, srt, vtt, otio_path)
        raise
    except OSError as exc:
        _remove(replaced, mp4, srt, vtt, otio_path)
        raise storage_error(exc, f"exporting to {mp4}") from exc
    logger.info("exported %s: %d frames, %d clips", mp4, frames, len(timeline.clips))
    return ExportResult(mp4, srt, vtt, otio_path, frames, samples, len(timeline.clips))


def _remove(replaced: bool, *paths: Path) -> None:
    """After a failure no file of a mixed set stays (temporary files are removed by their writers)."""
    if replaced:
        for path in paths:
            path.unlink(missing_ok=True)


class ExportCancelled(StoreError):
    def __init__(self) -> None:
        super().__init__("cancelled", "the server stopped during this export")


class ExportJobs:
    """Exports for the REST API: planned at once (so bad requests fail at once), then encoded
    one at a time in a worker thread, writing ``exports/<id>/episode.mp4`` (or ``scene.mp4``)
    and its companions; progress and outcome go to the store's ``exports`` table."""

    def __init__(self, store: Store, *, config: ExportConfig | None = None, max_queued: int = 8) -> None:
        self.store = store
        self.config = config or ExportConfig()
        self._max_queued = max_queued
        self._queued = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="talkie-export")

    def submit(self, *, episode_id: str | None = None, scene_id: str | None = None) -> ExportRecord:
        """Plan and queue an export (blocking briefly: call from a worker thread)."""
        if episode_id is not None:
            timeline, stem = plan_episode(self.store, episode_id), "episode"
        else:
            assert scene_id is not None
            timeline, stem = plan_scene(self.store, scene_id), "scene"
        with self._lock:
            if self._queued >= self._max_queued:
                raise ConflictError("busy", f"{self._queued} exports are already waiting; try again when they finish")
            self._queued += 1
        record = self.store.exports.create(episode_id=episode_id, scene_id=scene_id)
        folder = self.store.media.export_dir(record.id)
        folder.mkdir(parents=True, exist_ok=True)
        self._executor.submit(self._run, record.id, timeline, folder / f"{stem}.mp4")
        return record

    def _run(self, export_id: str, timeline: Timeline, mp4: Path) -> None:
        def progress(done: int, total: int) -> None:
            if self._closing.is_set():
                raise ExportCancelled()
            self.store.exports.progress(export_id, done / max(1, total))

        try:
            result = export_timeline(self.store, timeline, mp4, config=self.config, progress=progress)
            self.store.exports.finish(export_id, frames=result.n_frames, samples=result.n_samples)
        except Exception as exc:  # noqa: BLE001 - every failure is reported on the export itself
            logger.error("export %s failed: %s", export_id, exc)
            try:
                self.store.exports.fail(export_id, str(exc))
            except StoreError as again:
                logger.error("export %s: could not record the failure: %s", export_id, again)
        finally:
            with self._lock:
                self._queued -= 1

    def files(self, export_id: str) -> dict[str, Path]:
        """kind -> path of a finished export's files."""
        record = self.store.exports.get(export_id)
        if record.status != "done":
            raise ConflictError("not_ready", f"export {export_id} is {record.status}, not done")
        folder = self.store.media.export_dir(export_id)
        mp4 = next(folder.glob("*.mp4"), None)
        if mp4 is None:
            raise StorageError("storage_error", f"the files of export {export_id} are missing from {folder}")
        srt, vtt, otio_path = output_paths(mp4)
        return {"mp4": mp4, "srt": srt, "vtt": vtt, "otio": otio_path}

    def close(self) -> None:
        self._closing.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
