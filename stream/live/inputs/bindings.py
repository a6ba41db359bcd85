"""A session's live audio inputs: which voice drives which character, from binding to the end.

``InputHub`` (one per server, made in the app's lifespan) holds what inputs share: the models
and a small worker pool for the audio → mouth work. ``SessionInputs`` (one per session) binds
inputs to characters and ends them:

- the browser microphone: the remote audio track of the session's own peer connection, always
  read (an unread aiortc track queues without bound) and fed to the scene while bound;
- WHIP publishers: a peer connection each (``stream.web.whip``), ended by DELETE or a lost
  connection;
- files: uploaded or from the server's audio folder, decoded in a worker, fed a little ahead
  of playback.

Each input's feeding is sequential (its pump awaits each step) and runs in the hub's workers,
never on the event loop. Events: ``input_bound`` and ``input_ended``. The bound inputs share one
``Room`` (cross-talk: a microphone that only hears another person keeps its character's mouth
shut); ``stats()`` gives each input's ``bleed_frames`` and ``bleed_db``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatar.spec import Cast
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from stream.live.expiry import ConnectionBounds, ConnectionWatch
from stream.live.inputs.audio_input import (
    AudioInput,
    AudioModels,
    InputConfig,
    InputError,
    InputKind,
    decode_audio,
)
from stream.live.inputs.room import Room
from stream.live.scene import LiveScene

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]


class InputHub:
    """What every session's inputs share. ``models`` is None when they could not be loaded
    (``unavailable`` says why); the rest of the server works without live audio."""

    def __init__(
        self, *, cast: Cast, config: InputConfig | None = None, models: AudioModels | None = None,
        unavailable: str | None = None, audio_dir: Path | None = None, workers: int = 2,
    ) -> None:
        self.cast = cast
        self.config = config or InputConfig()
        self.models = models
        self.unavailable = unavailable
        self.audio_dir = audio_dir
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="talkie-audio")
        self._ids = itertools.count(1)

    @classmethod
    def load(cls, *, cast: Cast, config: InputConfig | None = None, audio_dir: Path | None = None) -> InputHub:
        """Load the models (blocking: call it in a worker); a failure disables live audio with a reason."""
        cfg = config or InputConfig()
        try:
            return cls(cast=cast, config=cfg, models=AudioModels.load(config=cfg), audio_dir=audio_dir)
        except Exception as exc:  # noqa: BLE001 - any failure only disables live audio, with the reason
            logger.error("live audio inputs are unavailable: %s", exc)
            return cls(cast=cast, config=cfg, unavailable=str(exc), audio_dir=audio_dir)

    def new_id(self) -> str:
        return f"in{next(self._ids)}"

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class TrackPump:
    """Reads one remote audio track for as long as it lives, feeding ``target`` when set."""

    def __init__(self, track: MediaStreamTrack, *, hub: InputHub, label: str) -> None:
        self.track = track
        self.target: AudioInput | None = None
        self._hub = hub
        self._task = asyncio.ensure_future(self._run())
        self._task.set_name(f"talkie-pump-{label}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await self.track.recv()
                target = self.target
                if target is not None and isinstance(frame, av.AudioFrame):
                    await loop.run_in_executor(self._hub.executor, target.feed_frame, frame)
        except MediaStreamError:  # the track ended: its last sounds are decided too
            if self.target is not None:
                with contextlib.suppress(RuntimeError):
                    await loop.run_in_executor(self._hub.executor, self.target.feed_end)
        except RuntimeError:
            pass  # the pool shut down with the server
        except Exception:  # noqa: BLE001 - a broken input ends alone; the session goes on
            logger.exception("audio input %s failed", self.track.id)
        finally:
            if self.target is not None:
                self.target.finish()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class SessionInputs:
    """Binds and ends one session's audio inputs."""

    def __init__(
        self, *, hub: InputHub, session_id: str, scene: LiveScene, emit: Emit,
        scene_event: Callable[[], dict[str, Any]], executor: Executor,
        bounds: ConnectionBounds | None = None,
    ) -> None:
        self.hub = hub
        self.bounds = bounds or ConnectionBounds()  # a WHIP publisher not connected by then ends
        self.session_id = session_id
        self.scene = scene
        self._emit = emit
        self._scene_event = scene_event
        self._executor = executor  # for binding: it may walk a character on (renders layers)
        self.inputs: dict[str, AudioInput] = {}
        self.room = Room()  # cross-talk: whose voice each bound input really carries
        self._pcs: dict[str, RTCPeerConnection] = {}
        self._watches: dict[str, ConnectionWatch] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._mic: TrackPump | None = None
        self._mic_input: AudioInput | None = None
        self._ending: set[asyncio.Task[bool]] = set()
        self._closed = False

    # -- checks --------------------------------------------------------------------------------

    def _models(self) -> AudioModels:
        if self.hub.models is None:
            raise InputError(
                "audio_unavailable", f"live audio is unavailable on this server: {self.hub.unavailable}",
                http_status=503,
            )
        return self.hub.models

    def character(self, name: str) -> str:
        """The canonical name of a character on screen or in the cast, else ``unknown_character``."""
        canonical = " ".join(name.split()).upper()
        if canonical in self.scene.view.names or canonical in self.hub.cast:
            return canonical
        known = sorted(set(self.scene.view.names) | set(self.hub.cast.names()))
        raise InputError("unknown_character", f"no character called {name!r}; known: {', '.join(known)}")

    def _check_room(self) -> None:
        if self._closed:
            raise InputError("session_closed", "the session is closing", http_status=404)
        if len(self.inputs) >= self.hub.config.max_inputs_per_session:
            raise InputError(
                "too_many_inputs", f"this session already has {len(self.inputs)} live inputs (the limit)",
                http_status=409,
            )

    # -- binding -------------------------------------------------------------------------------

    async def _bind(self, kind: InputKind, character: str, *, live: bool = True) -> AudioInput:
        models = self._models()
        self._check_room()
        name = self.character(character)
        loop = asyncio.get_running_loop()
        face = await loop.run_in_executor(self._executor, self.scene.is_photo, name)
        source = AudioInput(
            input_id=self.hub.new_id(), kind=kind, character=name, models=models, live=live, room=self.room,
            face=face,
        )

        def on_end(ended: AudioInput) -> None:  # producer thread → event loop
            loop.call_soon_threadsafe(self._ended, ended)

        source.on_end = on_end
        before = self.scene.view.names
        self.inputs[source.id] = source
        try:
            source.character = await loop.run_in_executor(self._executor, self.scene.bind_input, name, source)
        except BaseException:
            self.inputs.pop(source.id, None)
            raise
        self.room.join(source)
        self._emit({
            "type": "input_bound", "input_id": source.id, "kind": kind, "character": source.character,
            "delay_ms": round(source.delay_ms, 1),
        })
        if self.scene.view.names != before:
            self._emit({"type": "scene", **self._scene_event()})
        logger.info("session %s: %s input %s drives %s", self.session_id, kind, source.id, source.character)
        return source

    def _ended(self, source: AudioInput) -> None:
        if self.inputs.get(source.id) is source:
            task = asyncio.ensure_future(self.remove(source.id, reason="ended"))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def remove(self, input_id: str, *, reason: str = "unbound") -> bool:
        """Unbind and end one input (its peer connection too); False when there is none."""
        source = self.inputs.pop(input_id, None)
        if source is None:
            return False
        source.finish()
        self.room.leave(source)
        self.scene.unbind_input(source.character)
        if self._mic_input is source:
            self._mic_input = None
            if self._mic is not None:
                self._mic.target = None
        task = self._tasks.pop(input_id, None)
        if task is not None:
            task.cancel()
        watch = self._watches.pop(input_id, None)
        if watch is not None:
            watch.stop()
        pc = self._pcs.pop(input_id, None)
        if pc is not None:
            await pc.close()
        self._emit({
            "type": "input_ended", "input_id": input_id, "kind": source.kind, "character": source.character,
            "reason": reason, "stats": source.stats.as_dict(),
        })
        return True

    async def unbind(self, character: str) -> None:
        name = " ".join(character.split()).upper()
        found = [i for i, s in self.inputs.items() if s.character == name]
        if not found:
            raise InputError("not_bound", f"{name} has no live input")
        for input_id in found:
            await self.remove(input_id)

    # -- the browser microphone -----------------------------------------------------------------

    def set_mic_track(self, track: MediaStreamTrack) -> None:
        """The session's remote audio track (the page's microphone); read from now on."""
        if self._mic is None:
            self._mic = TrackPump(track, hub=self.hub, label=f"mic-{self.session_id}")

    async def bind_mic(self, character: str | None) -> None:
        """Let the microphone drive ``character`` (None: stop driving anyone)."""
        if self._mic_input is not None:
            await self.remove(self._mic_input.id)
        if character is None:
            return
        if self._mic is None:
            raise InputError(
                "no_microphone", "this session's offer sent no audio; offer a sendrecv audio transceiver"
            )
        source = await self._bind("mic", character)
        self._mic_input = source
        self._mic.target = source

    # -- WHIP -------------------------------------------------------------------------------------

    async def add_publisher(self, pc: RTCPeerConnection, track: MediaStreamTrack, character: str) -> AudioInput:
        """A WHIP publisher's audio drives ``character``; its peer connection is ours to close."""
        source = await self._bind("whip", character)
        self._pcs[source.id] = pc
        pump = TrackPump(track, hub=self.hub, label=source.id)
        pump.target = source
        self._tasks[source.id] = asyncio.ensure_future(self._hold(pump))
        self._watches[source.id] = ConnectionWatch(
            pc, bounds=self.bounds, on_end=lambda reason: self.remove(source.id, reason=reason),
            label=f"session {self.session_id}: WHIP publisher {source.id}",
        )
        return source

    @staticmethod
    async def _hold(pump: TrackPump) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await pump.stop()

    # -- files --------------------------------------------------------------------------------

    def audio_file(self, name: str) -> Path:
        """A file of the server's audio folder; names may not leave it."""
        folder = self.hub.audio_dir
        if folder is None:
            raise InputError("no_audio_folder", "this server has no audio folder for 'play'")
        path = (folder / name).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise InputError("unknown_file", f"no audio file {name!r} in the server's audio folder")
        return path

    async def play(self, source: bytes | Path, character: str, *, name: str = "upload") -> tuple[AudioInput, float]:
        """Decode a file (in a worker) and let it drive ``character`` from the next frame;
        returns the input and the file's duration in seconds."""
        self._models()
        self._check_room()
        self.character(character)
        loop = asyncio.get_running_loop()
        pcm = await loop.run_in_executor(
            self.hub.executor, lambda: decode_audio(source, config=self.hub.config, name=name)
        )
        player = await self._bind("file", character, live=False)
        self._tasks[player.id] = asyncio.ensure_future(self._feed_file(player, pcm))
        return player, pcm.shape[0] / SAMPLE_RATE_HZ

    async def _feed_file(self, player: AudioInput, pcm: Any) -> None:
        """Feed a decoded file ``file_read_ahead_s`` ahead of playback, then finish it."""
        loop = asyncio.get_running_loop()
        step = SAMPLES_PER_FRAME * 5
        ahead = int(self.hub.config.file_read_ahead_s * SAMPLE_RATE_HZ)
        pos = 0
        while pos < pcm.shape[0]:
            if player.margin_samples() > ahead:
                await asyncio.sleep(0.05)
                continue
            block = pcm[pos : pos + step * 10]
            await loop.run_in_executor(self.hub.executor, player.feed, block)
            pos += block.shape[0]
        await loop.run_in_executor(self.hub.executor, player.feed_end)
        player.finish()

    # -- life cycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        for input_id in list(self.inputs):
            await self.remove(input_id, reason="session closed")
        if self._mic is not None:
            await self._mic.stop()
            self._mic = None

    def stats(self) -> list[dict[str, Any]]:
        return [
            {"input_id": s.id, "kind": s.kind, "character": s.character, **s.stats.as_dict()}
            for s in self.inputs.values()
        ]
