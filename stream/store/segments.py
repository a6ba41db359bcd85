"""A take's media in short segments (0.8 s by default): written crash-safe as it is recorded, read back
frame by frame.

Segment n holds frame slots ``[n*S, (n+1)*S)`` of the take (S = ``segment_frames``): the
pictures that were streamed, as H.264 (Annex B, its own encoder, so a keyframe first) with a
map of which slots have one, and all ``S * 1920`` samples as raw s16le PCM (raw audio keeps every
join sample-exact; AAC is encoded once, at export). Both files are fsynced and renamed into place,
then the segment's row (sizes, CRC-32s, frame map, and the lines that changed) is committed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from lipsync.timebase import SAMPLES_PER_FRAME
from stream.store.errors import StorageError
from stream.store.media import fsync_dir, fsync_file, temp_name
from stream.store.models import Segment, Take, TakeLine, TakeShot
from stream.store.store import Store

logger = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2


@dataclass(frozen=True, slots=True)
class SegmentConfig:
    segment_frames: int = 20  # 0.8 s: a killed server loses at most this much (plus any writer backlog)
    video_preset: str = "ultrafast"
    video_crf: int = 20  # an intermediate, re-encoded once at export: keep it close to what streamed
    encoder_threads: int = 1


class _VideoPart:
    """The H.264 file of one segment, open while its frames arrive."""

    def __init__(self, path: Path, seq: int, *, width_px: int, height_px: int, config: SegmentConfig) -> None:
        self.seq = seq
        self.path = path
        self.frame_map = bytearray(config.segment_frames)
        self.count = 0
        self._container = av.open(str(temp_name(path)), mode="w", format="h264")
        stream = self._container.add_stream("libx264", rate=25)
        stream.width, stream.height = width_px, height_px
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": config.video_preset, "crf": str(config.video_crf)}
        stream.thread_count = config.encoder_threads
        self._stream: av.VideoStream = stream  # type: ignore[assignment]

    def add(self, index: int, frame: av.VideoFrame) -> None:
        # The live encoder may be converting this very frame in another thread, and a frame's
        # converter (its cached SwsContext) is not thread-safe, nor may its pts change under
        # the sender: read the pixels only, and encode a frame of our own.
        own = av.VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)
        if own.width != self._stream.width or own.height != self._stream.height:
            own = own.reformat(width=self._stream.width, height=self._stream.height)
        own.pts = self.count
        self._container.mux(self._stream.encode(own))
        self.frame_map[index] = 1
        self.count += 1

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the partial file is deleted anyway
            self._container.close()
        temp_name(self.path).unlink(missing_ok=True)


def _finish_file(path: Path) -> tuple[int, int]:
    """fsync the temp file of ``path``; returns (bytes, crc32)."""
    tmp = temp_name(path)
    fsync_file(tmp)
    data = tmp.read_bytes()
    return len(data), zlib.crc32(data)


class SegmentWriter:
    """Writes one take; call from one thread. Slots and samples are relative to the take."""

    def __init__(self, store: Store, take: Take, *, config: SegmentConfig | None = None) -> None:
        self.store = store
        self.take = take
        self.config = config or SegmentConfig()
        self.folder = store.media.take_dir(take.id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._s = self.config.segment_frames
        self._video: _VideoPart | None = None
        self._video_seq = 0  # segments below this have their video part done
        self._last_slot = -1
        self._audio = bytearray()
        self._audio_seq = 0
        self._audio_samples = 0
        self._video_done: dict[int, tuple[str | None, int, int, bytes]] = {}
        self._audio_done: dict[int, tuple[str, int, int]] = {}
        self._committed = 0
        self._lines: dict[str, TakeLine] = {}
        self._dirty: set[str] = set()
        self._shots: list[TakeShot] = []
        self._dirty_shots: set[int] = set()  # seqs changed since the last commit

    @property
    def committed_frames(self) -> int:
        return self._committed * self._s

    # -- input ------------------------------------------------------------------------------

    def video(self, slot: int, frame: av.VideoFrame) -> None:
        if slot <= self._last_slot:
            return
        seq = slot // self._s
        while self._video_seq < seq:
            self._close_video(self._video_seq)
        if self._video is None:
            name = self.store.media.segment_names(seq)[0]
            self._video = _VideoPart(
                self.folder / name, seq, width_px=self.take.width_px, height_px=self.take.height_px, config=self.config
            )
        self._video.add(slot - seq * self._s, frame)
        self._last_slot = slot
        self._commit_ready()

    def audio(self, first_sample: int, pcm: np.ndarray) -> None:
        """Append int16 samples starting at take sample ``first_sample`` (gaps become silence)."""
        if first_sample > self._audio_samples:
            pcm = np.concatenate([np.zeros(first_sample - self._audio_samples, np.int16), pcm])
        elif first_sample < self._audio_samples:
            pcm = pcm[self._audio_samples - first_sample :]
        self._audio += pcm.astype("<i2", copy=False).tobytes()
        self._audio_samples += pcm.shape[0]
        full = self._s * SAMPLES_PER_FRAME * BYTES_PER_SAMPLE
        while len(self._audio) >= full:
            self._write_audio(self._audio_seq, bytes(self._audio[:full]))
            del self._audio[:full]
        self._commit_ready()

    def line_started(self, line_id: str, speaker: str, text: str, start_sample: int) -> None:
        start = max(0, start_sample)
        self._lines[line_id] = TakeLine(self.take.id, len(self._lines), line_id, speaker, text, start, None, False)
        self._dirty.add(line_id)

    def line_ended(self, line_id: str, end_sample: int, *, interrupted: bool) -> None:
        line = self._lines.get(line_id)
        if line is not None:  # its start was recorded (a line told only of its end is not kept)
            self._lines[line_id] = TakeLine(
                line.take_id, line.seq, line.line_id, line.speaker, line.text, line.start_sample,
                max(line.start_sample, end_sample), interrupted,
            )
            self._dirty.add(line_id)

    def shot_changed(self, start_frame: int, kind: str, subjects: tuple[str, ...]) -> None:
        """From take frame ``start_frame`` on, the camera shows ``kind`` of ``subjects``. Shots
        come in order; one told for the frame of the last (or earlier) replaces it."""
        start = max(0, start_frame)
        last = self._shots[-1] if self._shots else None
        if last is not None and last.start_frame >= start:  # the same frame: the later word wins
            shot = TakeShot(self.take.id, last.seq, last.start_frame, kind, tuple(subjects))
        else:
            shot = TakeShot(self.take.id, len(self._shots), start, kind, tuple(subjects))
        self._shots[shot.seq :] = [shot]
        self._dirty_shots.add(shot.seq)

    def _take_shots(self) -> list[TakeShot]:
        shots = [self._shots[i] for i in sorted(self._dirty_shots) if i < len(self._shots)]
        self._dirty_shots.clear()
        return shots

    # -- segments -----------------------------------------------------------------------------

    def _close_video(self, seq: int) -> None:
        part = self._video
        if part is not None and part.seq == seq:
            part.close()
            size, crc = _finish_file(part.path)
            self._video_done[seq] = (part.path.name, size, crc, bytes(part.frame_map))
            self._video = None
        else:
            self._video_done[seq] = (None, 0, 0, bytes(self._s))
        self._video_seq = seq + 1

    def _write_audio(self, seq: int, data: bytes) -> None:
        path = self.folder / self.store.media.segment_names(seq)[1]
        with open(temp_name(path), "wb") as f:
            f.write(data)
        size, crc = _finish_file(path)
        self._audio_done[seq] = (path.name, size, crc)
        self._audio_seq = seq + 1

    def _commit_ready(self) -> None:
        while self._committed in self._video_done and self._committed in self._audio_done:
            seq = self._committed
            video_name, video_bytes, video_crc, frame_map = self._video_done.pop(seq)
            audio_name, audio_bytes, audio_crc = self._audio_done.pop(seq)
            frames = audio_bytes // (SAMPLES_PER_FRAME * BYTES_PER_SAMPLE)
            for name in filter(None, (video_name, audio_name)):
                temp_name(self.folder / name).replace(self.folder / name)
            fsync_dir(self.folder)
            lines = [self._lines[i] for i in sorted(self._dirty)]
            self.store.takes.add_segment(
                Segment(
                    self.take.id, seq, seq * self._s, frames, frames * SAMPLES_PER_FRAME, frame_map[:frames],
                    video_name, video_bytes, video_crc, audio_name, audio_bytes, audio_crc,
                ),
                lines,
                self._take_shots(),
            )
            self._dirty.clear()
            self._committed += 1

    def finish(self, end_frames: int, *, status: str = "complete", note: str | None = None) -> Take:
        """Close the take at ``end_frames`` frames: audio is padded with silence or cut to match."""
        end_samples = end_frames * SAMPLES_PER_FRAME
        if self._audio_samples < end_samples:
            self.audio(self._audio_samples, np.zeros(end_samples - self._audio_samples, np.int16))
        keep = (end_samples - self._audio_seq * self._s * SAMPLES_PER_FRAME) * BYTES_PER_SAMPLE
        last_seq = -(-end_frames // self._s) - 1
        if keep > 0:
            self._write_audio(self._audio_seq, bytes(self._audio[:keep]))
        self._audio.clear()
        while self._video_seq <= last_seq:
            self._close_video(self._video_seq)
        if self._video is not None:  # pictures past the end (the tap stops them; never expected)
            self._video.abort()
            self._video = None
        for done in (self._video_done, self._audio_done):
            for seq in [s for s in done if s > last_seq]:
                done.pop(seq)
        self._commit_ready()
        lines = [self._lines[i] for i in sorted(self._dirty)]
        return self.store.takes.finish(self.take.id, status=status, note=note, lines=lines, shots=self._take_shots())

    def abort(self, *, note: str) -> Take | None:
        """After a write error: drop unfinished files, keep the committed segments."""
        if self._video is not None:
            self._video.abort()
            self._video = None
        for entry in self.folder.glob(".*.tmp"):
            entry.unlink(missing_ok=True)
        try:
            return self.store.takes.finish(self.take.id, status="recovered", note=note)
        except Exception as exc:  # noqa: BLE001 - recovery at the next start-up closes it
            logger.error("take %s: could not close after a write error: %s", self.take.id, exc)
            return None


# -- reading --------------------------------------------------------------------------------


def _read_checked(path: Path, size: int, crc: int, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StorageError("damaged_media", f"{what} cannot be read ({exc.strerror or exc})") from exc
    if len(data) != size or zlib.crc32(data) != crc:
        raise StorageError("damaged_media", f"{what} is damaged (size or checksum differs from its index row)")
    return data


def _blank(take: Take) -> av.VideoFrame:
    frame = av.VideoFrame(take.width_px, take.height_px, "yuv420p")
    for plane, value in zip(frame.planes, (16, 128, 128), strict=True):
        np.frombuffer(memoryview(plane), np.uint8)[:] = value
    return frame


def read_take(store: Store, take: Take) -> Iterator[tuple[av.VideoFrame, np.ndarray]]:
    """Every frame slot of ``take`` in order as (picture, its 1920 samples).

    A slot the session skipped shows the previous picture (the next one, at the very start),
    so the timeline stays continuous; a take with no picture at all shows black.
    """
    folder = store.media.take_dir(take.id)
    picture: av.VideoFrame | None = None
    waiting: list[np.ndarray] = []  # audio of leading slots with no picture yet
    for seg in store.takes.segments(take.id):
        what = f"segment {seg.seq} of take {take.id}"
        pcm = np.frombuffer(_read_checked(folder / seg.audio_file, seg.audio_bytes, seg.audio_crc32, what), "<i2")
        if pcm.shape[0] != seg.samples:
            raise StorageError("damaged_media", f"{what} holds {pcm.shape[0]} samples, its index says {seg.samples}")
        decoded: Iterator[av.VideoFrame] = iter(())
        if seg.video_file is not None:
            data = _read_checked(folder / seg.video_file, seg.video_bytes, seg.video_crc32, what)
            with av.open(io.BytesIO(data), mode="r", format="h264") as container:
                decoded = iter(list(container.decode(video=0)))
        for i in range(seg.frames):
            audio = pcm[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME]
            if seg.frame_map[i]:
                picture = next(decoded, picture)
            if picture is None:
                waiting.append(audio)
                continue
            for early in waiting:
                yield picture, early
            waiting.clear()
            yield picture, audio
    if waiting:
        blank = _blank(take)
        for early in waiting:
            yield blank, early
