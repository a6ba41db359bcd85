"""The recorder: a media tap that writes exactly what a session streams into a take.

A ``TakeRecorder`` is a media tap on a ``RecordingTarget`` (a live session, seen only through
its id, its view, a way to add a tap and an event sink). On the event loop it only rebases pts to the
take and queues the frames (never blocking, never touching them); one writer thread per take
encodes and commits short segments (see ``stream.store.segments``). The take's frame 0 is the
first frame seen after the start (audio from that frame's first sample on); a picture the
session skipped stays absent and is filled at export. Stopping ends the take at the later of
the last picture and the audio (whole frames), so audio and video have the same length. The
lines said and the live director's shots are kept with the take, moved to its frames.

Drop policy: when the writer is more than ``max_backlog_ms`` of pictures behind, new pictures
are dropped (counted; export repeats the previous one); audio is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import av

from avatar.spec import CharacterSpec
from lipsync.timebase import FRAME_MS, SAMPLES_PER_FRAME, TICKS_PER_FRAME
from stream.store import Store, StoreError, Take
from stream.store.cast import keep_characters
from stream.store.errors import ConflictError, StorageFullError, storage_error
from stream.store.media import free_bytes
from stream.store.segments import SegmentConfig, SegmentWriter

logger = logging.getLogger(__name__)


class TakeView(Protocol):
    """Who is on screen and the set, as a take records them."""

    @property
    def specs(self) -> tuple[CharacterSpec, ...]: ...

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def set_name(self) -> str: ...


class RecordingTarget(Protocol):
    """What a take is recorded from: a live session, through this narrow window."""

    @property
    def id(self) -> str: ...

    @property
    def view(self) -> TakeView: ...

    @property
    def frame_size_px(self) -> tuple[int, int]: ...

    def add_tap(self, tap: TakeRecorder) -> Callable[[], None]:
        """Start handing ``tap`` every frame streamed; returns the function that stops it."""
        ...

    def emit(self, event: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    max_backlog_ms: int = 4000  # pictures waiting for the writer beyond this are dropped; audio never is
    stop_wait_ms: int = 500  # how long a stop waits for the audio to reach the last picture
    min_free_bytes: int = 256 * 2**20  # a take does not start with less free disk than this


class TakeRecorder:
    """Records one take of one session; use ``start()``, then ``await stop()``."""

    def __init__(
        self, *, store: Store, take: Take, session_id: str, config: RecorderConfig,
        on_done: Callable[[TakeRecorder, Take | None, StoreError | None], None],
    ) -> None:
        self.store = store
        self.take = take
        self.session_id = session_id
        self.config = config
        self._on_done = on_done
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._k0: int | None = None
        self._pending_lines: list[tuple[Any, ...]] = []  # line stamps seen before frame 0
        self._started: set[str] = set()  # ids of the lines whose start is queued
        self._video_cut: int | None = None  # slots at or past this are not recorded
        self._audio_cut: int | None = None
        self._audio_end = 0  # take samples queued so far
        self._video_last = -1
        self._queued = 0  # written by the loop thread only
        self._pictures_out = 0  # written by the writer thread only
        self._max_backlog = max(1, config.max_backlog_ms // FRAME_MS)
        self.dropped_frames = 0
        self.failed = False
        self._stopping = False
        self._done: asyncio.Future[Take] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name=f"talkie-rec-{take.id}", daemon=True)

    @property
    def stream_start_frame(self) -> int | None:
        return self._k0

    def start(self) -> None:
        self._thread.start()

    # -- the tap (event loop; cheap, never blocks) -------------------------------------------

    def _anchor(self, k0: int) -> None:
        self._k0 = k0
        self._queue.put(("k0", k0))
        for item in self._pending_lines:
            self._line(item)
        self._pending_lines.clear()

    def video(self, frame: av.VideoFrame) -> None:
        if self.failed or frame.pts is None:
            return
        k = int(frame.pts) // TICKS_PER_FRAME
        if self._k0 is None:
            self._anchor(k)
        slot = k - (self._k0 or 0)
        if slot < 0 or (self._video_cut is not None and slot >= self._video_cut):
            return
        if self._queued - self._pictures_out >= self._max_backlog:
            self.dropped_frames += 1
            return
        self._queued += 1
        self._video_last = slot
        self._queue.put(("v", slot, frame))

    def audio(self, frame: av.AudioFrame) -> None:
        if self.failed or frame.pts is None:
            return
        if self._k0 is None:
            self._anchor(-(-int(frame.pts) // SAMPLES_PER_FRAME))
        first = int(frame.pts) - (self._k0 or 0) * SAMPLES_PER_FRAME
        if first < 0 or (self._audio_cut is not None and first >= self._audio_cut):
            return
        self._audio_end = first + frame.samples
        self._queue.put(("a", first, frame))

    def line_started(self, line_id: str, speaker: str, text: str, sample: int) -> None:
        self._line(("start", line_id, speaker, text, sample))

    def line_ended(self, line_id: str, sample: int, *, interrupted: bool) -> None:
        self._line(("end", line_id, sample, interrupted))

    def shot_changed(self, frame: int, kind: str, subjects: tuple[str, ...]) -> None:
        """The live director cut to ``kind`` of ``subjects`` on stream frame ``frame``."""
        self._line(("shot", frame, kind, tuple(subjects)))

    def _line(self, item: tuple[Any, ...]) -> None:
        """Queue a line (or shot) stamp, moved from the stream's samples (frames) to the take's."""
        if self.failed:
            return
        if self._k0 is None:
            self._pending_lines.append(item)
            return
        if item[0] == "shot":
            # A shot already showing when the take starts is its first, from the take's start.
            _, frame, shot_kind, subjects = item
            frame = max(0, frame - self._k0)
            if self._video_cut is None or frame < self._video_cut:
                self._queue.put(("shot", frame, shot_kind, subjects))
            return
        kind, line_id, *rest = item
        if kind == "start":
            speaker, text, sample = rest
            if line_id in self._started:  # told twice: on joining, then by its frame's notice
                return
            self._started.add(line_id)
            # A line already playing when the take starts is part of it, from the take's start.
            sample = max(0, sample - self._k0 * SAMPLES_PER_FRAME)
            if self._audio_cut is None or sample < self._audio_cut:
                self._queue.put(("start", line_id, speaker, text, sample))
        else:
            sample, interrupted = rest
            self._queue.put(("end", line_id, sample - self._k0 * SAMPLES_PER_FRAME, interrupted))

    # -- stopping ------------------------------------------------------------------------------

    async def stop(self, *, wait: bool = True) -> Take:
        """End the take at whole frames covering both the last picture and the audio."""
        if not self._stopping and not self.failed:
            self._stopping = True
            end = 0
            if self._k0 is not None:
                end = max(-(-self._audio_end // SAMPLES_PER_FRAME), self._video_last + 1)
            self._video_cut, self._audio_cut = end, end * SAMPLES_PER_FRAME
            deadline = self._loop.time() + (self.config.stop_wait_ms / 1000 if wait else 0.0)
            while self._audio_end < end * SAMPLES_PER_FRAME and self._loop.time() < deadline and not self.failed:
                await asyncio.sleep(0.01)
            self._queue.put(("stop", end))
        return await asyncio.shield(self._done)

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        take: Take | None = None
        error: StoreError | None = None
        writer: SegmentWriter | None = None
        try:
            writer = SegmentWriter(self.store, self.take, config=self.config.segment)
            while take is None:
                take = self._handle(writer, self._queue.get())
        except Exception as exc:  # noqa: BLE001 - any write failure ends the take, not the session
            error = exc if isinstance(exc, StoreError) else storage_error(exc, f"recording take {self.take.id}")
            self.failed = True
            logger.error("session %s: take %s stopped: %s", self.session_id, self.take.id, error)
            note = f"recording stopped early: {error}"
            take = writer.abort(note=note) if writer is not None else None
        self._loop.call_soon_threadsafe(self._finished, take, error)

    def _handle(self, writer: SegmentWriter, item: tuple[Any, ...]) -> Take | None:
        kind = item[0]
        if kind == "v":
            self._pictures_out += 1
            writer.video(item[1], item[2])
        elif kind == "a":
            writer.audio(item[1], item[2].to_ndarray().reshape(-1))
        elif kind == "start":
            writer.line_started(item[1], item[2], item[3], item[4])
        elif kind == "end":
            writer.line_ended(item[1], item[2], interrupted=item[3])
        elif kind == "shot":
            writer.shot_changed(item[1], item[2], item[3])
        elif kind == "k0":
            self.store.takes.set_stream_start(self.take.id, item[1])
        elif kind == "stop":
            return writer.finish(item[1])
        return None

    def _finished(self, take: Take | None, error: StoreError | None) -> None:
        final = take or self.take
        try:
            self._on_done(self, take, error)
        except Exception:  # noqa: BLE001 - whoever awaits the stop must still get the take
            logger.exception("session %s: take %s: reporting the end failed", self.session_id, final.id)
        if not self._done.done():
            if error is not None and take is None:
                self._done.set_exception(error)
            else:
                self._done.set_result(final)
        if self.dropped_frames:
            logger.warning("session %s: take %s dropped %d pictures (writer behind)", self.session_id, final.id, self.dropped_frames)


class Recordings:
    """The server's recorders: at most one take per session at a time, any number of sessions."""

    def __init__(self, store: Store, *, config: RecorderConfig | None = None) -> None:
        self.store = store
        self.config = config or RecorderConfig()
        self._active: dict[str, TakeRecorder] = {}
        self._starting: set[str] = set()
        self._targets: dict[str, tuple[RecordingTarget, Callable[[], None]]] = {}  # id -> (target, untap)

    def active(self, session_id: str) -> TakeRecorder | None:
        return self._active.get(session_id)

    async def start(self, session: RecordingTarget, *, scene_id: str, take_name: str | None = None) -> Take:
        if session.id in self._active or session.id in self._starting:
            busy = self._active.get(session.id)
            raise ConflictError(
                "already_recording",
                f"session {session.id} is already recording" + (f" take {busy.take.id}" if busy else "") + "; stop it first",
            )
        self._starting.add(session.id)
        try:
            take = await asyncio.to_thread(self._begin, session, scene_id, take_name)
            recorder = TakeRecorder(
                store=self.store, take=take, session_id=session.id, config=self.config, on_done=self._done
            )
            recorder.start()
            self._active[session.id] = recorder
            self._targets[session.id] = (session, session.add_tap(recorder))
        finally:
            self._starting.discard(session.id)
        logger.info("session %s: recording take %s into scene %s", session.id, take.id, scene_id)
        session.emit({"type": "take_started", "take_id": take.id, "scene_id": scene_id, "name": take.name})
        return take

    def _begin(self, session: RecordingTarget, scene_id: str, take_name: str | None) -> Take:
        free = free_bytes(self.store.media.takes_dir)
        if free < self.config.min_free_bytes:
            raise StorageFullError(
                "disk_full",
                f"only {free // 2**20} MiB free in {self.store.media.takes_dir}; recording needs at least "
                f"{self.config.min_free_bytes // 2**20} MiB",
            )
        series_id = self.store.catalog.scene_series_id(scene_id)
        view = session.view
        keep_characters(self.store.catalog, series_id, view.specs)
        width_px, height_px = session.frame_size_px
        return self.store.takes.begin(
            scene_id, take_name, source="live", session_id=session.id, width_px=width_px,
            height_px=height_px, cast=view.names, set_name=view.set_name,
        )

    async def stop(self, session: RecordingTarget, *, wait: bool = True) -> Take:
        recorder = self._active.get(session.id)
        if recorder is None:
            raise ConflictError("not_recording", f"session {session.id} is not recording a take")
        return await recorder.stop(wait=wait)

    async def stop_all(self) -> None:
        for session_id in list(self._active):
            held = self._targets.get(session_id)
            if held is not None:
                await self.stop(held[0], wait=False)

    def _done(self, recorder: TakeRecorder, take: Take | None, error: StoreError | None) -> None:
        held = self._targets.pop(recorder.session_id, None)
        self._active.pop(recorder.session_id, None)
        if held is None:
            return
        session, untap = held
        untap()
        final = take or recorder.take
        event: dict[str, Any] = {
            "type": "take_stopped", "take_id": final.id, "scene_id": final.scene_id, "name": final.name,
            "status": final.status, "frames": final.frames, "duration_s": round(final.duration_s, 3),
            "start_media_time_s": None if recorder.stream_start_frame is None
            else round(recorder.stream_start_frame * FRAME_MS / 1000, 3),
            "dropped_frames": recorder.dropped_frames,
        }
        if error is not None:
            event["error"] = {"code": error.code, "message": str(error)}
            session.emit({"type": "error", "code": error.code, "message": str(error)})
        session.emit(event)
