"""Clocked WebRTC tracks over one live scene: video at 25 fps, audio in 20 ms frames at 48 kHz.

Both tracks read ``FrameState``s from one ``SessionMedia``, which produces each frame's state
once, in order, in a worker thread. Stamps come from counts (video pts = frame index x 3600
in 1/90000; audio pts = sample index in 1/48000); the wall clock only paces delivery, from
one start time shared by both tracks. When the video falls behind it skips composing late
frames (their pts are skipped too); audio is never skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lipsync.timebase import (
    AUDIO_TIME_BASE,
    FPS,
    SAMPLE_RATE_HZ,
    SAMPLES_PER_FRAME,
    TICKS_PER_FRAME,
    VIDEO_TIME_BASE,
)
from stream.live.frames import FrameState
from stream.live.scene import LiveScene

if TYPE_CHECKING:
    from stream.live.faces import PendingPaint

logger = logging.getLogger(__name__)

FRAME_S = 1 / FPS
AUDIO_PTIME_S = 0.020
AUDIO_SAMPLES = int(SAMPLE_RATE_HZ * AUDIO_PTIME_S)  # 960
HALVES = SAMPLES_PER_FRAME // AUDIO_SAMPLES  # 2 audio frames per video frame


class MediaTap(Protocol):
    """Sees exactly what a session streams, in order, on the event loop: it must not block
    (hand the work to a queue and a worker of its own). Each video frame it gets is its own
    copy, free to convert or encode in any thread. Lines are stamped in samples of the
    session's clock, as the frames are; a frame's line notices come before its picture."""

    def video(self, frame: av.VideoFrame) -> None: ...

    def audio(self, frame: av.AudioFrame) -> None: ...

    def line_started(self, line_id: str, speaker: str, text: str, sample: int) -> None: ...

    def line_ended(self, line_id: str, sample: int, *, interrupted: bool) -> None: ...


@runtime_checkable
class CutTap(Protocol):
    """A tap that also keeps the live director's cut (the recorder): told on the event loop,
    before that frame's picture, whenever the shot changes (stream frame index, shot kind, who
    is in it left to right), and once on joining, of the shot showing then."""

    def shot_changed(self, frame: int, kind: str, subjects: tuple[str, ...]) -> None: ...


class SessionMedia:
    """Frame states shared by a session's tracks, made once each, in order, off the event loop.

    The worker records each state as it makes it, so a reader cancelled mid-wait (a closing
    session) loses nothing. Keeps at most ``max_buffered_frames`` states: a slow or absent
    reader cannot grow memory.
    """

    def __init__(self, scene: LiveScene, *, executor: Executor, max_buffered_frames: int = 50) -> None:
        self.scene = scene
        self._executor = executor
        self._states: dict[int, FrameState] = {}
        self._states_lock = threading.Lock()
        self._next = 0
        self._lock = asyncio.Lock()
        self._max = max_buffered_frames
        self.t0: float | None = None
        self._taps: list[MediaTap] = []  # e.g. a recorder: sees every frame as it leaves

    @property
    def taps(self) -> tuple[MediaTap, ...]:
        return tuple(self._taps)

    def add_tap(self, tap: MediaTap) -> Callable[[], None]:
        """Let ``tap`` see every frame from the next one on; returns the function that removes it."""
        self._taps.append(tap)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._taps.remove(tap)

        return remove

    def start_time(self) -> float:
        """The monotonic time of frame 0, fixed by whichever track asks first."""
        if self.t0 is None:
            self.t0 = time.monotonic()
        return self.t0

    def due(self, seconds_into_stream: float) -> float:
        """Seconds to wait until ``seconds_into_stream`` (negative when late)."""
        return self.start_time() + seconds_into_stream - time.monotonic()

    def _produce_through(self, k: int) -> None:
        """Worker thread: make every state up to frame k and keep it."""
        while True:
            with self._states_lock:
                index = self._next
                if index > k:
                    return
                state = self.scene.produce(index)
                self._states[index] = state
                self._next = index + 1
                for old in [i for i in self._states if i < self._next - self._max]:
                    del self._states[old]

    async def state(self, k: int) -> FrameState:
        if k >= self._next:
            async with self._lock:
                if k >= self._next:
                    await asyncio.get_running_loop().run_in_executor(self._executor, self._produce_through, k)
        with self._states_lock:
            state = self._states.get(k)
        if state is None:
            raise MediaStreamError(f"frame {k} was already dropped (reader more than {self._max} frames behind)")
        return state

    async def compose(self, state: FrameState, *, copies: int = 0) -> list[av.VideoFrame]:
        """The picture of ``state`` as a video frame, plus ``copies`` independent frames of it.

        Each tap gets a frame of its own: PyAV frames cache a pixel converter that is not
        thread-safe, and the RTP sender converts the streamed frame in another thread.
        """

        loop = asyncio.get_running_loop()
        shown_at_s = self.start_time() + state.index * FRAME_S

        def frames(rgb: np.ndarray) -> list[av.VideoFrame]:
            return [av.VideoFrame.from_ndarray(rgb, format="rgb24") for _ in range(1 + copies)]

        def start() -> tuple[np.ndarray, PendingPaint | None, list[av.VideoFrame] | None]:
            rgb, pending = self.scene.start_compose(state, shown_at_s=shown_at_s)
            if pending is None or not pending.futures:  # nothing to wait for: done in one go
                return rgb, None, frames(self.scene.finish_compose(rgb, pending))
            return rgb, pending, None

        rgb, pending, ready = await loop.run_in_executor(self._executor, start)
        if ready is not None:
            return ready
        assert pending is not None
        # The neural mouths run on the shared scheduler's thread: wait here, on the loop, so no
        # worker thread idles and other sessions' frames can join the same batch.
        await _wait_all(pending.futures, timeout_s=pending.deadline_s - time.monotonic() + 1.0)
        return await loop.run_in_executor(
            self._executor, lambda: frames(self.scene.finish_compose(rgb, pending))
        )


async def _wait_all(futures: list[concurrent.futures.Future[Any]], *, timeout_s: float) -> None:
    """Wait for thread futures without holding a thread; outcomes are read later by their owner."""
    wrapped = [asyncio.wrap_future(f) for f in futures]
    try:
        await asyncio.wait(wrapped, timeout=max(0.0, timeout_s))
    finally:
        for w in wrapped:
            if w.done() and not w.cancelled():
                w.exception()  # retrieved here; the thread future keeps the result
            elif not w.done():
                w.cancel()  # cancels the thread future too: its frame keeps the rig's mouth


def _ignore_frame(state: FrameState, shown: bool) -> None:
    """A stopped track's frame callback."""


class SceneVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, media: SessionMedia, *, on_frame: Callable[[FrameState, bool], None]) -> None:
        super().__init__()
        self._media = media
        self._on_frame = on_frame  # (state, shown): every frame's state, in order, shown or skipped
        self._k = 0
        self.frames_sent = 0
        self.frames_skipped = 0

    def stop(self) -> None:
        # ``on_frame`` is the session's own method: kept past the end, it ties the session (and
        # its scene's layers and tiles, tens of MB) into a cycle that only a full gc frees.
        self._on_frame = _ignore_frame
        super().stop()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        k = self._k
        wait = self._media.due(k * FRAME_S)
        if wait > 0:
            await asyncio.sleep(wait)
        elif -wait >= 2 * FRAME_S:
            # More than a frame late: skip the pictures whose time has passed (never the audio).
            skip = int(-wait / FRAME_S) - 1
            for j in range(k, k + skip):
                self._on_frame(await self._media.state(j), False)
            self.frames_skipped += skip
            k += skip
        state = await self._media.state(k)
        taps = self._media.taps
        frame, *copies = await self._media.compose(state, copies=len(taps))
        for f in (frame, *copies):
            f.pts = k * TICKS_PER_FRAME
            f.time_base = VIDEO_TIME_BASE
        self._k = k + 1
        self.frames_sent += 1
        self._on_frame(state, True)
        for tap, copy in zip(taps, copies, strict=True):
            tap.video(copy)
        return frame


class SceneAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, media: SessionMedia) -> None:
        super().__init__()
        self._media = media
        self._m = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        m = self._m
        wait = self._media.due(m * AUDIO_PTIME_S)
        if wait > 0:
            await asyncio.sleep(wait)
        state = await self._media.state(m // HALVES)
        half = m % HALVES
        samples = state.audio[half * AUDIO_SAMPLES : (half + 1) * AUDIO_SAMPLES]
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = m * AUDIO_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        self._m = m + 1
        for tap in self._media.taps:
            tap.audio(frame)
        return frame
