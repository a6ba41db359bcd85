"""The scene director: every on-screen character's pose for a frame, from who speaks and how.

Speakers move their mouths from their mouth track; everyone else keeps their mouth shut and
turns toward whoever is talking. It holds no state between frames (``MotionModel`` is a pure
function of the frame index), so offline renders and live streams of the same lines agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avatar.motion import MotionModel
from avatar.pose import Pose
from avatar.scene import Compositor


class SceneDirector:
    """Directs the characters of one layout; build it with ``SceneDirector.for_compositor``."""

    def __init__(self, *, motion: Sequence[MotionModel], slot_x: Sequence[float]) -> None:
        if len(motion) != len(slot_x):
            raise ValueError(f"{len(motion)} characters but {len(slot_x)} slot positions")
        self._slot_x = tuple(float(x) for x in slot_x)
        self._motion = tuple(motion)

    @classmethod
    def for_compositor(cls, compositor: Compositor) -> SceneDirector:
        """Motion scaled to each character's size on screen, looking across the layout."""
        return cls(motion=compositor.motion_models(), slot_x=compositor.slot_centers_x())

    def poses(
        self,
        frame: int,
        *,
        mouths: Sequence[np.ndarray],
        speaking: Sequence[bool],
        listen_to_x: Sequence[float | None] | None = None,
    ) -> list[Pose]:
        """Poses for ``frame``: ``mouths[i]`` are character i's viseme weights (15,).

        ``listen_to_x``: per character, where the speaker they listen to stands (-1 .. 1), for
        speakers off screen; by default, from the on-screen speakers' slots."""
        talkers = [i for i, s in enumerate(speaking) if s]
        given = listen_to_x
        out = []
        for i, motion in enumerate(self._motion):
            listen = None if given is None else given[i]
            others = [j for j in talkers if j != i]
            if listen is None and given is None and others and not speaking[i]:
                dx = self._slot_x[others[0]] - self._slot_x[i]
                listen = float(np.clip(dx, -1.0, 1.0))
            out.append(
                motion.pose_at(frame, mouth_weights=mouths[i], speaking=bool(speaking[i]), listen_to_x=listen)
            )
        return out
