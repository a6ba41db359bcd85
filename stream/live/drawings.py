"""Characters drawn ahead, shared by every session that wants them.

Sessions draw their cast before anyone walks on (``LiveSession.prepare_ahead``). The drawing
happens once per character and size set for the whole server, in the engine's low-priority
drawing process; what it drew is kept here, pickled, for the next session that wants the same
character at the same sizes (a second session starts in ~20 ms a character instead of
~0.6 s). Each session unpickles its own copy: drawings keep per-character caches that are not
shared between threads.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Executor, Future

from avatar.camera import Drawn, draw_sizes
from avatar.spec import CharacterSpec

DrawingKey = tuple[CharacterSpec, int, tuple[int, ...]]
UNPACK_PAUSE_S = 0.04  # between the sizes a session unpacks (a frame interval)


def draw_pickled(spec: CharacterSpec, master_px: int, heights: tuple[int, ...]) -> dict[int, bytes]:
    """``draw_sizes`` in the drawing process, each size handed back pickled on its own (so a
    session unpickles one size at a time and never holds the GIL long enough to delay a frame)."""
    drawn = draw_sizes(spec, master_px=master_px, heights=heights)
    return {height: pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL) for height, d in drawn.items()}


class DrawingShelf:
    """The last ``kept`` drawings made ahead (each ~25-45 MB pickled at 512x512), by character
    and sizes. ``draw`` runs in ``drawing`` (a process pool) and unpickles in ``unpacking``."""

    def __init__(self, *, drawing: Executor, unpacking: Executor, kept: int = 8) -> None:
        self._drawing = drawing
        self._unpacking = unpacking
        self._kept = kept
        self._shelf: OrderedDict[DrawingKey, Future[dict[int, bytes]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._shelf)

    def _made(self, key: DrawingKey) -> Future[dict[int, bytes]]:
        with self._lock:
            made = self._shelf.get(key)
            if made is None:
                spec, master_px, heights = key
                made = self._drawing.submit(draw_pickled, spec, master_px, heights)
                self._shelf[key] = made
                while len(self._shelf) > self._kept:
                    self._shelf.popitem(last=False)
            else:
                self._shelf.move_to_end(key)
            return made

    def _forget(self, key: DrawingKey, made: Future[dict[int, bytes]]) -> None:
        with self._lock:
            if self._shelf.get(key) is made:
                del self._shelf[key]

    async def draw(self, spec: CharacterSpec, *, master_px: int, heights: tuple[int, ...]) -> Mapping[int, Drawn]:
        """``spec`` drawn at ``heights`` (reduced from a master ``master_px`` tall): a copy of the
        drawing kept on the shelf, or a new one. A failed drawing is not kept."""
        key = (spec, master_px, tuple(heights))
        made = self._made(key)
        try:
            data = await asyncio.wrap_future(made)
        except Exception:
            self._forget(key, made)
            raise
        loop = asyncio.get_running_loop()
        drawn: dict[int, Drawn] = {}
        for height, one in data.items():
            if drawn:  # one size a frame: the sessions' frames keep the GIL most of the time
                await asyncio.sleep(UNPACK_PAUSE_S)
            drawn[height] = await loop.run_in_executor(self._unpacking, pickle.loads, one)
        return drawn
