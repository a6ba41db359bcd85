"""The server's sessions: made from offers, limited in number, and ended when their peer never
connects, fails, or stays disconnected.

A session whose ICE has not connected ``connect_timeout_s`` after its answer (a peer that went
away, a client that cannot reach us) is closed, and so is one that stays ``disconnected`` for
``disconnect_grace_s``; ``failed`` and ``closed`` end it at once (``expiry.ConnectionWatch``). Only live sessions count
against ``max_sessions``, so peers that never arrive cannot lock others out.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from avatar.spec import Cast
from stream.errors import OfferError, SessionLimitError
from stream.live.config import ServerConfig
from stream.live.engine import Engine
from stream.live.expiry import ConnectionWatch
from stream.live.inputs.bindings import InputHub, SessionInputs
from stream.live.offers import answer_viewer, check_offer
from stream.live.scene import LiveScene
from stream.live.session import Session, TakeDesk

logger = logging.getLogger(__name__)


class SessionManager:
    """All sessions of one server, with a limit."""

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.sessions: dict[str, Session] = {}
        self.recordings: TakeDesk | None = None  # the app sets it when it opens the store
        self.audio_inputs: InputHub | None = None  # the app sets it: live audio inputs
        self._watches: dict[str, ConnectionWatch] = {}  # session id -> what ends it unconnected

    def live_count(self) -> int:
        return sum(1 for s in self.sessions.values() if not s.closed)

    async def create(
        self, *, sdp: str, type_: str, cast: list[str] | None = None, set_name: str | None = None,
        via: str = "offer", characters: Cast | None = None,
    ) -> tuple[Session, RTCSessionDescription]:
        """A new session answering ``sdp``; ``via`` says which route made it ("offer", "whep").

        ``characters``: who the names resolve to (a series' cast when a scene of it is opened;
        default: the server's cast)."""
        if type_ != "offer":
            raise OfferError(f"expected an SDP of type 'offer', got {type_!r}")
        check_offer(sdp)  # before a scene is drawn for it
        if self.live_count() >= self.config.max_sessions:
            raise SessionLimitError(
                f"the server is at its limit of {self.config.max_sessions} sessions; try again later"
            )
        live = self.config.live
        names = cast or ["MAYA", "LEO"]
        loop = asyncio.get_running_loop()
        scene_config = replace(live, set_name=set_name) if set_name else live
        scene = await loop.run_in_executor(
            self.engine.synth_executor,
            lambda: LiveScene(
                cast=characters or self.engine.cast, speech=self.engine.speech,
                synth_executor=self.engine.speech_executor, config=scene_config, names=names,
                faces=self.engine.faces, video_mouths=self.engine.video_mouths,
            ),
        )
        pc = RTCPeerConnection()
        session = Session(engine=self.engine, config=self.config, scene=scene, pc=pc)
        session.via = via
        session.recordings = self.recordings
        self.sessions[session.id] = session
        if self.audio_inputs is not None:
            session.inputs = SessionInputs(
                hub=self.audio_inputs, session_id=session.id, scene=scene, emit=session.emit,
                scene_event=session._scene_event, executor=self.engine.synth_executor,
                bounds=self.config.connection_bounds,
            )

            @pc.on("track")
            def on_track(track: Any) -> None:
                if track.kind == "audio" and session.inputs is not None:
                    session.inputs.set_mic_track(track)  # the page's microphone, bound on request

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label == "control":
                session.attach_datachannel(channel)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            logger.info("session %s: connection %s", session.id, pc.connectionState)

        try:
            answer = await answer_viewer(
                pc, sdp, video=session.video, audio=session.audio, local_only=self.config.is_loopback
            )
        except Exception:
            await self.close(session.id)
            raise
        self._watches[session.id] = ConnectionWatch(
            pc, bounds=self.config.connection_bounds, on_end=lambda _: self.close(session.id),
            label=f"session {session.id}",
        )
        return session, answer

    async def close(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        watch = self._watches.pop(session_id, None)
        if watch is not None:
            watch.stop()
        await session.close()
        self.engine.release_freed_memory()  # its layers and buffers, freed, go back to the system
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(sid) for sid in list(self.sessions)))
