"""What every session shares: the speech engine, the cast and the worker threads.

Made once in the app's lifespan and passed to each session; nothing lives in module globals.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING

from avatar.neural.video_mouth import VideoMouths
from avatar.spec import Cast
from lipsync.speech import SpeechEngine
from stream.live.config import ServerConfig
from stream.live.drawings import DrawingShelf

if TYPE_CHECKING:
    from stream.live.faces import FaceService

logger = logging.getLogger(__name__)

PREPARE_NICE = 10  # the drawing process's niceness where there is no idle class (not Linux)


class Engine:
    def __init__(self, config: ServerConfig, *, speech: SpeechEngine | None = None, cast: Cast | None = None) -> None:
        self.config = config
        self.speech = speech or SpeechEngine()
        self.cast = cast or Cast.builtin()
        # Speech synthesis and frame production/composition run here, never on the event loop.
        self.synth_executor = ThreadPoolExecutor(max_workers=config.synth_threads, thread_name_prefix="talkie-synth")
        # A natural line holds its thread for its whole synthesis, lines queued behind it wait
        # for their turn: a pool of its own, so a pasted script never delays the next message.
        self.speech_executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="talkie-speech")
        self.render_executor = ThreadPoolExecutor(
            max_workers=config.render_threads, thread_name_prefix="talkie-render"
        )
        # Drawing characters ahead (a session's whole cast, before anyone walks on): one at a
        # time for the whole server, in a process of its own at a lower OS priority, so it
        # never holds the GIL that frames need and only uses the CPU they leave. Started with
        # the engine (spawned: a fork of a threaded server is not safe); its first act is to
        # lower its priority (``lowest_priority``, before it draws anything).
        self.prepare_executor = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=lowest_priority
        )
        self.prepare_executor.submit(os.getpid)  # started now, not during a session's first frames
        # A session's copy of a drawing made ahead is unpickled here (~20 ms a character).
        self.unpack_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="talkie-unpack")
        self.drawings = DrawingShelf(drawing=self.prepare_executor, unpacking=self.unpack_executor)
        # Neural backend: models load once, and one scheduler batches every session's mouths.
        self.faces: FaceService | None = None
        if config.live.backend == "neural":
            from lipsync.neural.weights import load_weights_dir
            from stream.live.faces import FaceService

            self.faces = FaceService(load_weights_dir(config.live.neural_weights_dir))
        # Video characters' new mouths: each person's model loaded once (when first drawn), one
        # scheduler batching them across every session.
        self.video_mouths = VideoMouths()
        settle_garbage_collector()
        self._malloc_trim = _find_malloc_trim()

    def release_freed_memory(self) -> None:
        """Give the system back the heap that freed objects left (call it when a session ends).

        glibc keeps freed memory for reuse: a session's layers, tiles and buffers, freed when it
        ends, stayed resident, 60-80 MB per closed session (``talkie bench soak``).
        ``malloc_trim`` returns it, in 3-5 ms on a worker thread (ctypes releases the GIL).
        Does nothing where the C library has no ``malloc_trim`` (musl, macOS)."""
        if self._malloc_trim is None:
            return
        with contextlib.suppress(RuntimeError):  # the pool is shut down: the server is ending anyway
            self.render_executor.submit(self._malloc_trim, 0)

    def close(self) -> None:
        if self.faces is not None:
            self.faces.close()
        self.video_mouths.close()
        self.synth_executor.shutdown(wait=True, cancel_futures=True)
        self.speech_executor.shutdown(wait=True, cancel_futures=True)
        self.render_executor.shutdown(wait=True, cancel_futures=True)
        self.prepare_executor.shutdown(wait=True, cancel_futures=True)
        self.unpack_executor.shutdown(wait=True, cancel_futures=True)




def settle_garbage_collector() -> None:
    """Keep the collector's full passes short while frames are being made: everything alive now
    (torch, models, the cast: hundreds of thousands of objects, none of them garbage) is moved
    out of its reach with ``gc.freeze``, after a last full collection. Without it a full pass
    scanned all of them, 140-390 ms with the GIL held, and every session skipped frames."""
    gc.collect()
    gc.freeze()


def lowest_priority() -> None:
    """Lower this process's priority (a drawing process's first act): Linux's idle class, so it
    runs only on CPU time nothing else wants and frames never share a core with it; elsewhere
    a nice of ``PREPARE_NICE``."""
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
    os.nice(PREPARE_NICE)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _find_malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        logger.info("no malloc_trim in this C library: freed memory is returned by the allocator's own rules")
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
