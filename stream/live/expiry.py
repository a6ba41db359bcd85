"""Peer connections that never connect, or stay disconnected, end on their own.

A session, a WHIP publisher or a WHEP viewer holds a place (a session slot, a character, an
encoder). ``ConnectionWatch`` ends its owner when ICE has not connected ``connect_timeout_s``
after the answer, when it stays ``disconnected`` for ``disconnect_grace_s`` (a brief network
hiccup recovers on its own), and at once on ``failed`` or ``closed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import RTCPeerConnection

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionBounds:
    connect_timeout_s: float = 30.0  # no connection by then: the peer is not coming
    disconnect_grace_s: float = 10.0  # disconnected this long: the peer is gone

    def __post_init__(self) -> None:
        if self.connect_timeout_s <= 0 or self.disconnect_grace_s <= 0:
            raise ValueError(f"connection bounds must be > 0 s, got {self}")


class ConnectionWatch:
    """Calls ``on_end(reason)`` once when ``pc`` should end; ``stop()`` when the owner ends first."""

    def __init__(
        self, pc: RTCPeerConnection, *, bounds: ConnectionBounds, on_end: Callable[[str], Awaitable[object]],
        label: str,
    ) -> None:
        self._pc = pc
        self._bounds = bounds
        self._on_end = on_end
        self._label = label
        self._timer: asyncio.Task[None] | None = None
        self._ended = False
        pc.on("connectionstatechange", self._on_state)
        self._arm(bounds.connect_timeout_s, "never connected")

    def stop(self) -> None:
        self._ended = True
        self._disarm()

    def _disarm(self) -> None:
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None

    def _arm(self, after_s: float, reason: str) -> None:
        self._disarm()

        async def expire() -> None:
            await asyncio.sleep(after_s)
            if self._pc.connectionState != "connected":
                await self._end(f"{reason} within {after_s:g} s")

        self._timer = asyncio.create_task(expire(), name=f"talkie-expire-{self._label}")

    async def _on_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            self._disarm()
        elif state == "disconnected":
            self._arm(self._bounds.disconnect_grace_s, "not reconnected")
        elif state in ("failed", "closed"):
            await self._end(f"connection {state}")

    async def _end(self, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        self._disarm()
        logger.info("%s: %s; ending it", self._label, reason)
        await self._on_end(reason)

