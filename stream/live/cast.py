"""Who is on screen and how they are drawn: a scene's cast resolved into a view.

A ``SceneView`` is replaced whole when the cast or the set changes (a new version each time), so
a frame in flight keeps drawing the view it was produced with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from avatar.director import SceneDirector
from avatar.scene import Compositor, SceneLayout
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
    specs: tuple[CharacterSpec, ...], set_name: str, *, version: int, width_px: int, height_px: int
) -> SceneView:
    """Lay ``specs`` out in front of ``set_name`` (blocking: renders the layers; run it in a worker)."""
    layout = SceneLayout.for_count(len(specs), width_px=width_px, height_px=height_px)
    compositor = Compositor(layout=layout, characters=specs, set_name=set_name)
    director = SceneDirector.for_compositor(compositor)
    return SceneView(version, specs, set_name, compositor, director)
