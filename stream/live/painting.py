"""The picture of a frame state: the rig draws it, the neural backend repaints its mouths.

With the server's ``FaceService`` (``--backend neural``), ``start`` queues the frame's mouths on
the shared scheduler and returns at once; ``finish`` pastes the crops that came back in time.
A character without a model, or whose crop missed its deadline, keeps the rig's mouth.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from avatar.shots import Shot
from stream.live.frames import FrameState

if TYPE_CHECKING:  # only the neural backend loads the model code
    from avatar.neural.renderer import NeuralFaceRenderer
    from stream.live.faces import FaceService, PendingPaint

logger = logging.getLogger(__name__)


def _whole(shot: Shot, names: tuple[str, ...]) -> bool:
    """Whether ``shot`` is the wide of everyone: the view's own layout draws it."""
    return shot.kind in ("wide", "two") and set(shot.subjects) == set(names)


class ScenePainter:
    """Draws one scene's frames; ``faces`` None draws the rig alone."""

    def __init__(self, *, faces: FaceService | None, session_key: str) -> None:
        self.faces = faces
        self.session_key = session_key  # this scene's requests in the shared scheduler
        self._painters: dict[int, NeuralFaceRenderer] = {}  # view version -> its renderer
        self._lock = threading.Lock()

    def _painter(self, state: FrameState) -> NeuralFaceRenderer:
        assert self.faces is not None
        view = state.view
        with self._lock:
            painter = self._painters.get(view.version)
            if painter is None:
                painter = self.faces.painter(view.compositor)
                rig_only = [n for n in view.names if n not in self.faces.models]
                if rig_only:
                    logger.warning("neural backend: no model for %s; rig mouths for them", rig_only)
                self._painters = {view.version: painter}
            return painter

    def start(self, state: FrameState, *, shown_at_s: float | None) -> tuple[np.ndarray, PendingPaint | None]:
        """The rig's picture of ``state`` and, with a ``FaceService`` and a display time, its
        mouths queued for the model (``None`` when there is nothing to wait for). Without a
        display time the mouths are painted here, on the calling thread."""
        view = state.view
        shot = state.shot
        if self.faces is None and shot is not None and view.camera is not None and not _whole(shot, view.names):
            talkers = [n for n, s in zip(view.names, state.speaking, strict=True) if s]
            mouths = dict(zip(view.names, state.mouths, strict=True))
            return view.camera.draw(shot, state.index, mouths=mouths, talkers=talkers), None
        poses = view.director.poses(state.index, mouths=state.mouths, speaking=state.speaking)
        frame = view.compositor.compose(poses)
        if self.faces is None:
            return frame, None
        painter = self._painter(state)
        drives = list(state.drives)
        if shown_at_s is None:
            return painter.paint(frame, drives), None
        pending = self.faces.submit(frame, painter, drives, session_key=self.session_key, shown_at_s=shown_at_s)
        return frame, pending

    def finish(self, frame: np.ndarray, pending: PendingPaint | None) -> tuple[np.ndarray, int]:
        """Paste the mouths of a ``start`` (waiting for any not done yet); returns the frame and
        how many characters kept the rig's mouth."""
        if pending is None or self.faces is None:
            return frame, 0
        return frame, self.faces.finish(pending)

    def cancel(self) -> None:
        """Drop this scene's queued mouths (the session is closing)."""
        if self.faces is not None:
            self.faces.cancel(self.session_key)
