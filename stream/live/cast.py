"""Who is on screen and how they are drawn: a scene's cast resolved into a view.

A ``SceneView`` is replaced whole when the cast or the set changes (a new version each time), so
a frame in flight keeps drawing the view it was produced with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avatar.camera import Camera, RigLibrary
from avatar.director import SceneDirector
from avatar.scene import Compositor, SceneLayout
from avatar.shots import Shot
from avatar.spec import Cast, CharacterSpec
from stream.errors import ClientError


class SceneError(ClientError):
    """A control request the scene cannot carry out (full scene, bad line, busy character)."""


@dataclass(frozen=True, slots=True)
class SceneView:
    """Who is on screen and how to draw them; replaced whole when the cast or set changes."""

    version: int
    specs: tuple[CharacterSpec, ...]
    set_name: str
    compositor: Compositor
    director: SceneDirector
    camera: Camera | None = None
    """The live director's camera (``None``: the one static layout); its rigs are shared with
    ``compositor``."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)


def resolve_cast(
    cast: Cast, names: Sequence[str], *, language: str, max_characters: int
) -> tuple[CharacterSpec, ...]:
    """The specs of ``names`` (built-in, or auto-cast from the name); ``SceneError`` when the
    count is out of range or a character appears twice."""
    if not 1 <= len(names) <= max_characters:
        raise SceneError("bad_cast", f"a scene holds 1 to {max_characters} characters, got {len(names)}")
    specs = tuple(cast.resolve(name, language=language) for name in names)
    if len({s.name for s in specs}) != len(specs):
        raise SceneError("bad_cast", f"a character appears twice in {list(names)}")
    return specs


def build_view(
    specs: tuple[CharacterSpec, ...],
    set_name: str,
    *,
    version: int,
    width_px: int,
    height_px: int,
    rigs: RigLibrary | None = None,
    marks: dict[str, float] | None = None,
    panorama: np.ndarray | None = None,
    ready: Sequence[str] | None = None,
) -> SceneView:
    """Lay ``specs`` out in front of ``set_name`` (blocking: renders the layers; run it in a worker).

    With ``rigs`` and ``marks`` the view also gets the live director's camera, the shots a
    line cuts to set up now (the wide and everyone's medium single; two-shots are drawn now and
    framed when first cut to, in a few milliseconds; with ``ready``, only those names' singles
    are set up now, the others' by ``Camera.setup`` later), its
    characters drawn once in ``rigs`` (kept by the session, so a returning cast is not
    redrawn) in front of ``panorama`` (``avatar.camera.stage_panorama``, kept by the session
    too); the view's own layout is then the camera's wide: everyone side by side on one
    stage, as the offline director stages them (without a director, 3-4 people are a grid)."""
    if rigs is None or marks is None:
        layout = SceneLayout.for_count(len(specs), width_px=width_px, height_px=height_px)
        compositor = Compositor(layout=layout, characters=specs, set_name=set_name)
        return SceneView(version, specs, set_name, compositor, SceneDirector.for_compositor(compositor))
    for spec in specs:
        rigs.add(spec)
    camera = Camera(
        specs=specs, marks=marks, set_name=set_name, width_px=width_px, height_px=height_px, rigs=rigs,
        panorama=panorama,
    )
    names = [s.name for s in specs]
    singles = [Shot(0, 1, "medium", (n,)) for n in names]
    order = sorted(names, key=lambda n: marks[n])
    twos = [Shot(0, 1, "two", (a, b)) for i, a in enumerate(order) for b in order[i + 1 :]]
    wide = Shot(0, 1, "wide", tuple(order))
    camera.want([*singles, *twos, wide])
    rigs.prepare()
    for shot in singles:  # a line cuts to its speaker's single on its first frame: ready now
        if ready is None or shot.subjects[0] in ready:
            camera.setup(shot)
    for shot in twos:  # a two-shot's characters drawn now, its framing set up when first cut to
        framing = camera.framing(shot)
        for name, slot in zip(framing.names, framing.slots, strict=True):
            rigs.get(name, slot.height_px)
    compositor, director = camera.staged(names)
    return SceneView(version, specs, set_name, compositor, director, camera)
