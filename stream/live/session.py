"""One viewer's session: a peer connection, a live scene, its tracks and its control channels."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiortc import RTCDataChannel, RTCPeerConnection

from lipsync.timebase import SAMPLE_RATE_HZ
from stream.errors import ClientError
from stream.live.cast import SceneView
from stream.live.config import ServerConfig
from stream.live.control import (
    BindInput,
    Command,
    GetStats,
    Interrupt,
    PinCast,
    Ping,
    Prepare,
    RateLimiter,
    Record,
    Say,
    SetScene,
    SetShot,
    parse_message,
)
from stream.live.engine import Engine
from stream.live.frames import FrameState
from stream.live.inputs.bindings import SessionInputs
from stream.live.scene import LiveScene
from stream.live.tracks import CutTap, MediaTap, SceneAudioTrack, SceneVideoTrack, SessionMedia

logger = logging.getLogger(__name__)

DRAW_AHEAD_AFTER_FRAMES = 25  # the cast is drawn ahead from the stream's second second on


def _log_set_up(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("setting up a walk-on's shots failed: %s", future.exception())


Send = Callable[[str], Awaitable[None]]


class TakeDesk(Protocol):
    """Where a session's ``record`` messages go: the server's recorder, when it has a store.

    The recorder sees the session only through ``view``, ``frame_size_px``, ``add_tap`` and
    ``emit``; the app hands it to the manager, so neither imports the other."""

    async def start(self, target: Session, *, scene_id: str, take_name: str | None = None) -> object: ...

    async def stop(self, target: Session, *, wait: bool = True) -> object: ...

    def active(self, session_id: str) -> object | None: ...


class Session:
    def __init__(
        self, *, engine: Engine, config: ServerConfig, scene: LiveScene, pc: RTCPeerConnection | None = None
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        # The session's own credential: who holds it may drive or end the session; knowing the
        # id (listed by /api/sessions) is not enough. The data channel is the peer's own already.
        self.secret = secrets.token_urlsafe(18)
        self.via = "offer"  # the route that made it: "offer" or "whep" (a WHEP DELETE ends only its own)
        self.engine = engine
        self.config = config
        self.scene = scene
        self.pc = pc
        self.media = SessionMedia(scene, executor=engine.render_executor)
        self.video = SceneVideoTrack(self.media, on_frame=self._on_frame)
        self.audio = SceneAudioTrack(self.media)
        self.created_at = time.monotonic()
        self._outboxes: dict[int, asyncio.Queue[str | None]] = {}
        self._senders: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._pending: set[asyncio.Task[Any]] = set()
        self._announced_cast = scene.view.names
        self._cut: tuple[int, str, tuple[str, ...]] | None = None  # (first frame, kind, subjects) showing now
        self._drawing_ahead = False  # the cast is drawn ahead once the stream runs (a peer is there)
        # One budget for all the session's channels: reconnecting does not refill it.
        self.limiter = RateLimiter(rate_per_s=config.messages_per_s, burst=config.message_burst)
        self.recordings: TakeDesk | None = None  # set by the manager when the server has a store
        self.inputs: SessionInputs | None = None  # live audio inputs: set by the manager

    # -- what a recorder or an extra viewer sees ------------------------------------------

    @property
    def view(self) -> SceneView:
        """Who is on screen now and the set."""
        return self.scene.view

    @property
    def frame_size_px(self) -> tuple[int, int]:
        return self.scene.config.width_px, self.scene.config.height_px

    def add_tap(self, tap: MediaTap) -> Callable[[], None]:
        """Let ``tap`` see what this session streams; returns the function that removes it.
        Lines already playing are told to it first (their start is before its first frame)."""
        remove = self.media.add_tap(tap)
        for line in self.scene.playing_lines():
            tap.line_started(line.id, line.speaker, line.text, line.start_sample)
        if self._cut is not None and isinstance(tap, CutTap):
            tap.shot_changed(*self._cut)
        return remove

    # -- outgoing events -----------------------------------------------------------------

    def attach(self, send: Send) -> Callable[[], None]:
        """Deliver events through ``send``; returns a function that detaches it."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=256)
        key = id(queue)
        self._outboxes[key] = queue

        async def pump() -> None:
            while (text := await queue.get()) is not None:
                try:
                    await send(text)
                except (ValueError, TypeError) as exc:
                    # This one event could not go (its text, its size); the channel still works.
                    logger.warning("session %s: an event could not be sent, dropped (%s)", self.id, exc)
                except Exception as exc:  # noqa: BLE001 - a broken channel only loses its own events
                    logger.info("session %s: event channel closed (%s)", self.id, exc)
                    self._outboxes.pop(key, None)
                    return

        task = asyncio.create_task(pump(), name=f"talkie-events-{self.id}")
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

        def detach() -> None:
            self._outboxes.pop(key, None)
            task.cancel()

        return detach

    def attach_datachannel(self, channel: RTCDataChannel) -> None:
        async def send(text: str) -> None:
            if channel.readyState == "open":
                channel.send(text)

        detach = self.attach(send)

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            self._spawn(self.handle(message, self.limiter))

        @channel.on("close")
        def on_close() -> None:
            detach()

        if channel.readyState == "open":
            self.emit(self.hello())
        else:
            channel.on("open", lambda: self.emit(self.hello()))

    def emit(self, event: dict[str, Any]) -> None:
        # ASCII with \u escapes: clients parse it the same, and no string (a stray surrogate
        # included) can make a channel's UTF-8 encoding fail.
        text = json.dumps(event, ensure_ascii=True)
        for queue in list(self._outboxes.values()):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                logger.warning("session %s: event queue full, dropped %s", self.id, event.get("type"))

    def hello(self) -> dict[str, Any]:
        return {"type": "hello", "session_id": self.id, **self._scene_event()}

    def _scene_event(self) -> dict[str, Any]:
        view = self.scene.view
        return {
            "cast": [spec.name for spec in view.specs],
            "set": view.set_name,
            "available": self.engine.cast.names(),
        }

    # -- incoming commands ---------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def handle(self, raw: str | bytes, limiter: RateLimiter | None = None) -> None:
        """Carry out one control message; any problem becomes an ``error`` event."""
        received_at = time.monotonic()
        if limiter is not None and not limiter.allow():
            self.emit({"type": "error", "code": "rate_limited", "message": "too many messages; slow down"})
            return
        try:
            commands = parse_message(raw, max_bytes=self.config.max_message_bytes)
            for command in commands:
                await self._apply(command, received_at)
        except ClientError as exc:
            self.emit({"type": "error", "code": exc.code, "message": str(exc)})

    async def _apply(self, command: Command, received_at: float) -> None:
        loop = asyncio.get_running_loop()
        executor = self.engine.synth_executor
        if isinstance(command, Say):
            line = await loop.run_in_executor(
                executor,
                lambda: self.scene.say(
                    command.speaker, command.text, received_at=received_at,
                    cut_in=command.cut_in, overlap=command.overlap, voice=command.voice,
                ),
            )
            self.emit({"type": "line_queued", "line_id": line.id, "speaker": line.speaker, "text": line.text})
        elif isinstance(command, Interrupt):
            epoch = self.scene.interrupt()
            media_time_s = round(self.scene.media_samples / SAMPLE_RATE_HZ, 3)
            self.emit({"type": "interrupted", "epoch": epoch, "media_time_s": media_time_s})
        elif isinstance(command, SetScene):
            await loop.run_in_executor(
                executor, lambda: self.scene.set_scene(names=command.cast, set_name=command.set_name)
            )
            self.emit({"type": "scene", **self._scene_event()})
        elif isinstance(command, Prepare):
            # drawn in the background: the script's first line must not wait for its last speaker
            self.prepare_ahead(command.names)
        elif isinstance(command, PinCast):
            await loop.run_in_executor(executor, self.scene.pin, command.character, command.spec)
            self.prepare_ahead([command.character])  # recast: drawn anew before they walk on
            self.emit({"type": "scene", **self._scene_event()})
        elif isinstance(command, SetShot):
            await loop.run_in_executor(executor, self.scene.set_shot, command.shot)
        elif isinstance(command, GetStats):
            self.emit(self.stats())
        elif isinstance(command, Ping):
            self.emit({"type": "pong"})
        elif isinstance(command, Record):
            if self.recordings is None:
                raise ClientError(
                    "recording_unavailable", "this server has no episode store to record into", http_status=503
                )
            if command.action == "start":
                assert command.scene_id is not None  # the parser requires it for a start
                await self.recordings.start(self, scene_id=command.scene_id, take_name=command.take_name)
            else:
                await self.recordings.stop(self)
        elif isinstance(command, BindInput):
            await self._bind_input(command)
        if self.scene.view.names != self._announced_cast:
            # Someone new walked on (auto-cast by a line) or the cast was changed.
            self._announced_cast = self.scene.view.names
            loop.run_in_executor(executor, self.scene.set_up_shots).add_done_callback(_log_set_up)
            if not isinstance(command, SetScene):
                self.emit({"type": "scene", **self._scene_event()})

    def prepare_ahead(self, names: Sequence[str] | None = None) -> None:
        """Draw ``names`` (default: the session's cast, up to ``LiveConfig.draw_ahead_characters``)
        in the background, one character at a time in the server's drawing process, so a
        walk-on's first line does not wait for their drawing and no session's frames wait for
        it either."""
        if names is None:
            names = self.scene.cast_names()[: max(0, self.scene.config.draw_ahead_characters)]
        if names:
            self._spawn(self._draw_ahead(list(names)))

    async def _draw_ahead(self, names: list[str]) -> None:
        for name in names:
            if self.closed:
                return
            try:
                request = self.scene.drawing_request(name)
                if request is None:
                    continue
                drawn = await self.engine.drawings.draw(request.spec, master_px=request.master_px, heights=request.heights)
                self.scene.accept_drawings(request, drawn)
            except Exception as exc:  # noqa: BLE001 - then they are drawn when they walk on
                logger.warning("session %s: drawing %s ahead failed: %s", self.id, name, exc)

    # -- frames --------------------------------------------------------------------------

    def _on_frame(self, state: FrameState, shown: bool) -> None:
        now = time.monotonic()
        if not self._drawing_ahead and state.index >= DRAW_AHEAD_AFTER_FRAMES:
            # Its frames have been pulled a while: someone watches, and the session's own start
            # (its first shots, a take starting) is done. An offer that never connects draws nothing.
            self._drawing_ahead = True
            self.prepare_ahead()
        shot = state.shot
        if shot is not None and (self._cut is None or self._cut[1:] != (shot.kind, shot.subjects)):
            self._cut = (state.index, shot.kind, shot.subjects)
            for tap in self.media.taps:
                if isinstance(tap, CutTap):
                    tap.shot_changed(*self._cut)
        for notice in state.notices:
            media_time_s = round(notice.sample / SAMPLE_RATE_HZ, 3)
            line = notice.line
            if notice.kind == "started":
                for tap in self.media.taps:
                    tap.line_started(line.id, line.speaker, line.text, notice.sample)
                latency_ms = round((now - line.received_at) * 1000, 1)
                self.scene.stats.last_latency_ms = latency_ms
                self.scene.stats.latencies_ms.append(latency_ms)
                del self.scene.stats.latencies_ms[:-500]
                self.emit({
                    "type": "line_started", "line_id": line.id, "speaker": line.speaker,
                    "text": line.text, "media_time_s": media_time_s, "latency_ms": latency_ms,
                })
            else:
                for tap in self.media.taps:
                    tap.line_ended(line.id, notice.sample, interrupted=notice.interrupted)
                self.emit({
                    "type": "line_ended", "line_id": line.id, "speaker": line.speaker,
                    "media_time_s": media_time_s, "interrupted": notice.interrupted,
                })

    def stats(self) -> dict[str, Any]:
        s = self.scene.stats
        elapsed = max(1e-6, time.monotonic() - (self.media.t0 or time.monotonic()))
        lat = s.latencies_ms
        return {
            "type": "stats",
            "session_id": self.id,
            "frames_sent": self.video.frames_sent,
            "frames_skipped": self.video.frames_skipped,
            "fps": round(self.video.frames_sent / elapsed, 2) if self.media.t0 else 0.0,
            "lines_started": s.lines_started,
            "lines_interrupted": s.lines_interrupted,
            "synth_underruns": s.synth_underruns,
            "last_latency_ms": s.last_latency_ms,
            "median_latency_ms": round(statistics.median(lat), 1) if lat else None,
            "pending_lines": self.scene.pending(),
        }

    # -- life cycle ----------------------------------------------------------------------

    async def _bind_input(self, command: BindInput) -> None:
        if self.inputs is None:
            raise ClientError("audio_unavailable", "this server takes no live audio inputs")
        if command.action == "mic":
            await self.inputs.bind_mic(command.character)
        elif command.action == "play" and command.character and command.file:
            await self.inputs.play(self.inputs.audio_file(command.file), command.character, name=command.file)
        elif command.character:
            await self.inputs.unbind(command.character)

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self.inputs is not None:
            inputs, self.inputs = self.inputs, None  # it holds our callbacks: no cycle to wait on
            await inputs.close()
        if self.recordings is not None and self.recordings.active(self.id) is not None:
            try:
                await self.recordings.stop(self, wait=False)  # the take keeps what streamed
            except ClientError as exc:
                logger.error("session %s: closing its take failed: %s", self.id, exc)
        self.scene.interrupt()
        if self.engine.faces is not None:
            self.engine.faces.cancel(self.scene.key)
        self.video.stop()
        self.audio.stop()
        for task in list(self._pending) + list(self._senders):
            task.cancel()
        await asyncio.gather(*self._pending, *self._senders, return_exceptions=True)
        self._outboxes.clear()
        if self.pc is not None:
            await self.pc.close()
        logger.info("session %s closed", self.id)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()
