"""The live inputs of one session heard together: whose voice each microphone really carries.

Two people in one room, each with a microphone, each microphone hearing the other person
quieter: alone, each input's voice gate opens on the other's voice and both characters talk.
A ``Room`` (one per session) decides frame by frame with ``lipsync.crosstalk``: the first
input asked for frame ``k`` makes the room take frame ``k`` from every member (the same hops
each would play anyway: no extra delay), compare them hop by hop, and hand each member its
mouth. A hop that carries only another input's voice keeps the character's mouth shut.

All calls come from the scene's producer thread, in frame order. An input plays alone (exactly
as without a room) until it joins, and after it leaves; one member alone also plays exactly as
without a room.
"""

from __future__ import annotations

import threading

import numpy as np

from lipsync.audio_mouth import HopDecision
from lipsync.crosstalk import CrossTalk, CrossTalkConfig
from stream.live.inputs.audio_input import AudioInput, PlayedFrame

_STATS_EVERY_FRAMES = 25


class Room:
    """Cross-talk between a session's live inputs (see the module doc)."""

    def __init__(self, *, config: CrossTalkConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._members: dict[str, AudioInput] = {}
        self._crosstalk = CrossTalk(config)
        self._k = -1
        self._mouths: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self._frames = 0

    def join(self, source: AudioInput) -> None:
        with self._lock:
            self._members[source.id] = source

    def leave(self, source: AudioInput) -> None:
        with self._lock:
            self._members.pop(source.id, None)
            self._crosstalk.forget(source.id)

    def frame(self, source: AudioInput, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``source``'s audio and mouth for frame ``k``."""
        with self._lock:
            if k != self._k:
                self._k = k
                self._mouths = self._decide(k)
            mouth = self._mouths.pop(source.id, None)
        if mouth is None:  # not a member when frame k was decided: it plays alone
            return source.mouth(source.take(k), None)
        return mouth

    def _decide(self, k: int) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        taken: dict[str, PlayedFrame] = {i: m.take(k) for i, m in self._members.items()}
        playing = {i: p for i, p in taken.items() if p.hops and all(h.bands_db is not None for h in p.hops)}
        own = self._crosstalk.decide(
            {i: _rows(p.hops) for i, p in playing.items()},
            {i: _rows(p.ahead) for i, p in playing.items() if p.ahead and all(h.bands_db is not None for h in p.ahead)},
        )
        self._frames += 1
        if self._frames % _STATS_EVERY_FRAMES == 0:
            for i, m in self._members.items():
                m.stats.bleed_db = self._crosstalk.bleed_db(i)
        return {i: self._members[i].mouth(p, own.get(i)) for i, p in taken.items()}


def _rows(hops: tuple[HopDecision, ...]) -> np.ndarray:
    """(n, n_mels) log-mel rows of hops that carry them."""
    return np.stack([h.bands_db for h in hops if h.bands_db is not None])
