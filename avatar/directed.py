"""A scene directed like a TV drama: its shot plan and the camera drawing each frame of it.

``DirectedScene`` joins the parts: blocking (who is on stage, from the script), the shot
planner (which shot shows each frame) and the camera (rigs drawn at the size each shot shows
them). Every character's rig is drawn before the first frame, so no cut waits for a drawing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from avatar.blocking import beats_of, line_frames_of, read_direction
from avatar.camera import Camera
from avatar.shots import DirectorConfig, Shot, ShotPlan, assign_marks, plan_shots
from avatar.spec import CharacterSpec
from lipsync.script import Scene
from lipsync.timeline import SceneTimeline


def scene_order(scene: Scene, walk_ons: Sequence[str] = ()) -> list[str]:
    """Who appears in ``scene``, in order of first appearance in the source (speakers by
    their first line in person, walk-ons by their first mention)."""
    first: dict[str, int] = {}
    for line in scene.lines:
        if not line.unseen:  # a voice over is not on stage
            first.setdefault(line.speaker, line.source_line)
    for name in walk_ons:
        for action in scene.actions:
            if name in action.text:
                first.setdefault(name, action.source_line)
    return sorted(first, key=lambda n: first[n])


def scene_marks(scene: Scene, remembered: Mapping[str, float], walk_ons: Sequence[str] = ()) -> dict[str, float]:
    """Stage marks for ``scene``: remembered places kept, newcomers beside them."""
    return assign_marks(scene_order(scene, walk_ons), remembered)


class DirectedScene:
    """One scene's cut and its frames; ``frame(k)`` draws frame k (frames in any order)."""

    def __init__(
        self,
        *,
        scene: Scene,
        timeline: SceneTimeline,
        specs: Sequence[CharacterSpec],
        marks: Mapping[str, float],
        set_name: str,
        width_px: int,
        height_px: int,
        config: DirectorConfig | None = None,
    ) -> None:
        names = [s.name for s in specs]
        walk_ons = [n for n in names if n not in {line.speaker for line in scene.lines}]
        frames = line_frames_of(timeline)
        direction = read_direction(scene, frames, extra_names=walk_ons)
        beats = beats_of(scene, timeline, frames, direction.names)
        self.plan: ShotPlan = plan_shots(
            beats,
            n_frames=timeline.n_frames,
            cues=direction.cues,
            notes=direction.notes,
            marks={n: marks[n] for n in direction.names},
            config=config,
        )
        self.camera = Camera(
            specs=specs, marks=self.plan.marks, set_name=set_name, width_px=width_px, height_px=height_px
        )
        self.camera.want(self.plan.shots)
        self.camera.rigs.prepare()
        self._index = self.plan.shot_index()
        self._mouth = timeline.mouth
        self._talking = {n: timeline.speaking(n) for n in timeline.characters}

    def talkers(self, k: int) -> list[str]:
        return [n for n, track in self._talking.items() if k < track.shape[0] and track[k]]

    def shot_at(self, k: int) -> tuple[Shot, float]:
        """The shot showing frame ``k`` and how far its push-in has gone (0..1)."""
        shot = self.plan.shots[self._index[min(k, len(self._index) - 1)]]
        push = (k - shot.start_frame) / max(1, shot.end_frame - shot.start_frame) if shot.push_in else 0.0
        return shot, push

    def frame(self, k: int, out: np.ndarray | None = None) -> np.ndarray:
        """Frame ``k`` (into ``out`` when given)."""
        shot, push = self.shot_at(k)
        talkers = self.talkers(k)
        mouths = {n: self._mouth[n][k] for n in talkers}
        return self.camera.draw(shot, k, mouths=mouths, talkers=talkers, out=out, push=push)

    def mouth_boxes(self, k: int) -> dict[str, tuple[int, int, int, int]]:
        """Per character on screen in frame ``k``, the box holding its mouth."""
        shot, push = self.shot_at(k)
        return self.camera.mouth_boxes(shot, push=push)
