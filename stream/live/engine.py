"""What every session shares: the speech engine, the cast and the worker threads.

Made once in the app's lifespan and passed to each session; nothing lives in module globals.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from avatar.spec import Cast
from lipsync.speech import SpeechEngine
from stream.live.config import ServerConfig

if TYPE_CHECKING:
    from stream.live.faces import FaceService


class Engine:
    def __init__(self, config: ServerConfig, *, speech: SpeechEngine | None = None, cast: Cast | None = None) -> None:
        self.config = config
        self.speech = speech or SpeechEngine()
        self.cast = cast or Cast.builtin()
        # Speech synthesis and frame production/composition run here, never on the event loop.
        self.synth_executor = ThreadPoolExecutor(max_workers=config.synth_threads, thread_name_prefix="talkie-synth")
        self.render_executor = ThreadPoolExecutor(
            max_workers=config.render_threads, thread_name_prefix="talkie-render"
        )
        # Neural backend: models load once, and one scheduler batches every session's mouths.
        self.faces: FaceService | None = None
        if config.live.backend == "neural":
            from lipsync.neural.weights import load_weights_dir
            from stream.live.faces import FaceService

            self.faces = FaceService(load_weights_dir(config.live.neural_weights_dir))

    def close(self) -> None:
        if self.faces is not None:
            self.faces.close()
        self.synth_executor.shutdown(wait=True, cancel_futures=True)
        self.render_executor.shutdown(wait=True, cancel_futures=True)
