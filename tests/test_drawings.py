"""Characters drawn ahead once for the whole server, each session getting its own copy."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from avatar.pose import Pose
from avatar.rig import RigCharacter
from avatar.spec import Cast
from stream.live.drawings import DrawingShelf


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


def test_a_drawing_is_made_once_and_each_session_gets_its_own_copy() -> None:
    cast = Cast.builtin()
    iris, leo = cast.resolve("IRIS"), cast.resolve("LEO")
    with CountingPool() as drawing, ThreadPoolExecutor(max_workers=1) as unpacking:
        shelf = DrawingShelf(drawing=drawing, unpacking=unpacking, kept=1)

        async def run() -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
            first, second = await asyncio.gather(
                shelf.draw(iris, master_px=200, heights=(200, 120)), shelf.draw(iris, master_px=200, heights=(200, 120))
            )
            await shelf.draw(leo, master_px=200, heights=(200,))  # pushes IRIS off a shelf of one
            third = await shelf.draw(iris, master_px=200, heights=(200, 120))
            return dict(first), dict(second), dict(third)

        first, second, third = asyncio.run(run())
        assert drawing.calls == 3  # IRIS, LEO, IRIS again once LEO had taken the only place
        assert sorted(first) == [120, 200] and all(isinstance(d, RigCharacter) for d in first.values())
        assert first[200] is not second[200]  # a copy each: drawings are not shared between threads
        assert np.array_equal(first[200].render(Pose()), second[200].render(Pose()))
        assert len(shelf) == 1 and sorted(third) == [120, 200]


def test_a_failed_drawing_is_not_kept() -> None:
    with CountingPool() as drawing, ThreadPoolExecutor(max_workers=1) as unpacking:
        shelf = DrawingShelf(drawing=drawing, unpacking=unpacking)
        iris = Cast.builtin().resolve("IRIS")
        with pytest.raises(ValueError):
            asyncio.run(shelf.draw(iris, master_px=200, heights=(0,)))
        assert len(shelf) == 0
