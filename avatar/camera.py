"""The virtual camera: how a shot frames the stage, and the rigs drawn at the size shown.

The stage is the set drawn wider than the frame (a panorama) with the characters standing on
their marks. A shot is a ``Framing``: which characters are in it, where each sprite goes in the
frame and how tall it is drawn, and the part of the panorama behind them (tighter shots show
less of it, enlarged and so softened, like a long lens). A close-up draws the rig at close-up
size, never an enlarged small sprite: ``RigLibrary`` draws each character once at the largest
size a scene needs and area-reduces that drawing for every smaller shot.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import cv2
import numpy as np

from avatar.custom import build_character
from avatar.director import SceneDirector
from avatar.rig import RigCharacter, sprite_size
from avatar.scene import Compositor, SceneLayout, Slot, row_layout
from avatar.sets import render_set
from avatar.shots import Shot
from avatar.spec import CharacterSpec

if TYPE_CHECKING:
    from avatar.custom import SpriteCharacter
    from avatar.photo.character import PhotoCharacter

Drawn: TypeAlias = "RigCharacter | SpriteCharacter | PhotoCharacter"

# Visible part of the sprite (top, bottom as fractions of its height) for the single shots.
_MEDIUM = (0.08, 0.90)
_CLOSE = (0.12, 0.66)
_LOOK_ROOM = 0.12  # a single stands this share of the frame width off centre, facing inwards
_PANORAMA = 2.0  # the stage's width in frame widths
_PAN_PER_MARK = 0.30  # how far (in frame widths) the camera moves across the stage per mark
_PUSH_IN = 0.12  # a push-in ends this much tighter
_REST = np.eye(15, dtype=np.float32)[0]
_REDUCE_MIN = 0.45  # a size reduced from the master at this share of it or more stays sharp


@dataclass(frozen=True, slots=True)
class Framing:
    """One camera set-up: ``names`` (left to right) in ``slots``, over the panorama crop
    ``view`` = (x0, y0, x1, y1) in panorama pixels (wide-shot scale)."""

    key: tuple[object, ...]
    names: tuple[str, ...]
    slots: tuple[Slot, ...]
    view: tuple[float, float, float, float]
    focus_y: float
    """Where a push-in aims: a share of the frame height (the subject's eyes)."""


def frame_shot(
    shot: Shot, *, marks: Mapping[str, float], width_px: int, height_px: int
) -> Framing:
    """Where everything goes for ``shot`` in a ``width_px`` x ``height_px`` frame."""
    w, h = width_px, height_px
    order = sorted(shot.subjects, key=lambda n: marks[n])
    mean_mark = sum(marks[n] for n in order) / len(order)
    centre = sum(marks.values()) / len(marks)
    cam_x = w * _PANORAMA / 2 + (mean_mark - centre) * _PAN_PER_MARK * w
    if shot.kind in ("wide", "two"):
        layout = row_layout(len(order), w, h)
        view = (cam_x - w / 2, 0.0, cam_x + w / 2, float(h))
        return Framing(("row", tuple(order)), tuple(order), layout.slots, _clamped(view, w, h), 0.3)
    (name,) = order
    top, bottom = _CLOSE if shot.kind == "close" else _MEDIUM
    sprite_h = single_height(shot.kind, h)
    sprite_w = sprite_size(sprite_h)[0]
    others = [m for n, m in marks.items() if n != name]
    facing = 0 if not others else (1 if sum(others) / len(others) > marks[name] else -1)
    cx = w / 2 - facing * _LOOK_ROOM * w
    slot = Slot(x_px=round(cx - sprite_w / 2), y_px=-round(top * sprite_h), width_px=sprite_w, height_px=sprite_h)
    zoom = sprite_h / row_layout(1, w, h).slots[0].height_px
    vw, vh = w / zoom, h / zoom
    vx = cam_x - vw / 2 + facing * _LOOK_ROOM * vw * 0.5
    vy = (h - vh) * 0.4
    focus = (0.39 - top) / (bottom - top)
    return Framing((shot.kind, name, facing), (name,), (slot,), _clamped((vx, vy, vx + vw, vy + vh), w, h), focus)


def stage_panorama(set_name: str, *, width_px: int, height_px: int) -> np.ndarray:
    """The set drawn as the stage behind every shot of a ``width_px`` x ``height_px`` frame
    (the slow part of a camera: a session draws it once per set and passes it to ``Camera``)."""
    return render_set(set_name, width_px=round(width_px * _PANORAMA), height_px=height_px)


def single_height(kind: str, height_px: int) -> int:
    """The sprite height of a ``"medium"`` or ``"close"`` single in a frame ``height_px`` tall."""
    top, bottom = _CLOSE if kind == "close" else _MEDIUM
    return min(1440, round(height_px / (bottom - top)))


def _clamped(view: tuple[float, float, float, float], w: int, h: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = view
    pw = w * _PANORAMA
    dx = max(0.0, -x0) - max(0.0, x1 - pw)
    dy = max(0.0, -y0) - max(0.0, y1 - h)
    return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def draw_sizes(spec: CharacterSpec, *, master_px: int, heights: Sequence[int]) -> dict[int, Drawn]:
    """``spec`` drawn at ``master_px`` and at each of ``heights``, as ``RigLibrary.get`` would
    (reduced from the master when that keeps it sharp, else drawn at that size). Pure and
    picklable both ways: a session draws its cast ahead with it in another process, whose
    drawings, given to ``RigLibrary.put``, are the very pixels ``get`` would have drawn."""
    master = build_character(spec, height_px=master_px)
    out: dict[int, Drawn] = {master_px: master}
    for height in heights:
        if height in out:
            continue
        if isinstance(master, RigCharacter) and _REDUCE_MIN * master_px <= height < master_px:
            out[height] = master.scaled(height)
        else:
            out[height] = build_character(spec, height_px=height)
    return out


class RigLibrary:
    """Characters drawn once at the largest height asked for, reduced for smaller shots.

    Call ``want`` for every (name, height) first, then ``prepare`` (or just ``get``). A height
    above the master's is drawn on its own. Safe to share between a session's threads: a
    character is drawn holding only its own lock, so a frame that needs a character already
    drawn never waits for another one being drawn in the background.
    """

    def __init__(self, specs: Iterable[CharacterSpec] = (), *, on_drawn: Callable[[Drawn], None] | None = None) -> None:
        """``on_drawn``: called with each drawing before it is kept (outside the lock; the
        server hands a video character's mouth its batches there)."""
        self._on_drawn = on_drawn
        self._specs = {s.name: s for s in specs}
        self._wanted: dict[str, int] = {}
        self._masters: dict[str, Drawn] = {}
        self._rigs: dict[tuple[str, int], Drawn] = {}
        self._lock = threading.RLock()  # guards the dicts only, never held while drawing
        self._drawing: dict[str, threading.Lock] = {}  # per name: one drawing of it at a time

    def add(self, spec: CharacterSpec) -> None:
        """Know ``spec`` (a changed spec of a known name drops its drawings)."""
        with self._lock:
            if self._specs.get(spec.name) != spec:
                self._specs[spec.name] = spec
                self._masters.pop(spec.name, None)
                self._rigs = {k: v for k, v in self._rigs.items() if k[0] != spec.name}

    def want(self, name: str, height_px: int) -> None:
        with self._lock:
            if name not in self._masters:
                self._wanted[name] = max(height_px, self._wanted.get(name, 0))

    def has(self, name: str, height_px: int) -> bool:
        """Whether ``name`` is drawn at ``height_px`` already (``get`` returns at once)."""
        with self._lock:
            return (name, height_px) in self._rigs

    def missing(self, spec: CharacterSpec, heights: Sequence[int]) -> tuple[int, list[int]]:
        """Know ``spec`` and tell what drawing it at ``heights`` takes: (the master's height,
        the heights not drawn yet), the arguments of ``draw_sizes`` for ``put``."""
        with self._lock:
            self.add(spec)
            master = self._masters.get(spec.name)
            if master is not None:
                master_px = master.height_px
            else:
                master_px = max(self._wanted.get(spec.name, 0), *heights)
                self._wanted[spec.name] = master_px
            todo = [h for h in dict.fromkeys(heights) if (spec.name, h) not in self._rigs]
            return master_px, todo

    def put(self, spec: CharacterSpec, drawn: Mapping[int, Drawn], *, master_px: int) -> None:
        """Keep drawings made by ``draw_sizes`` elsewhere (ignored when ``spec`` was recast meanwhile)."""
        if self._on_drawn is not None:
            for rig in drawn.values():
                self._on_drawn(rig)
        with self._lock:
            if self._specs.get(spec.name) != spec:
                return
            if spec.name not in self._masters and master_px in drawn:
                self._masters[spec.name] = drawn[master_px]
            for height, rig in drawn.items():
                self._rigs.setdefault((spec.name, height), rig)

    def prepare(self) -> None:
        """Draw every master now (the slow part), so no shot waits for one later."""
        for name in list(self._wanted):
            self._master(name)

    def _name_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._drawing.setdefault(name, threading.Lock())

    def _master(self, name: str) -> Drawn:
        with self._name_lock(name):
            with self._lock:
                found = self._masters.get(name)
                spec, height = self._specs[name], self._wanted[name]
            if found is None:
                found = build_character(spec, height_px=height)
                if self._on_drawn is not None:
                    self._on_drawn(found)
                with self._lock:
                    if self._specs.get(name) == spec:  # not recast while it was drawn
                        self._masters[name] = found
            return found

    def get(self, name: str, height_px: int) -> Drawn:
        with self._lock:
            hit = self._rigs.get((name, height_px))
            if hit is not None:
                return hit
            self.want(name, height_px)
        master = self._master(name)
        with self._name_lock(name):
            with self._lock:
                hit = self._rigs.get((name, height_px))
                spec = self._specs[name]
            if hit is not None:
                return hit
            rig: Drawn
            if master.height_px == height_px:
                rig = master
            elif isinstance(master, RigCharacter) and _REDUCE_MIN * master.height_px <= height_px < master.height_px:
                rig = master.scaled(height_px)
            else:
                rig = build_character(spec, height_px=height_px)
            if self._on_drawn is not None and rig is not master:
                self._on_drawn(rig)
            with self._lock:
                if self._specs.get(name) == spec:
                    self._rigs[(name, height_px)] = rig
            return rig


class Camera:
    """Draws a scene's shots: one compositor per framing, built when first needed (or all at
    once by ``prepare``), over one panorama of the set. Draw from one thread; ``setup`` and
    ``prepare`` may also run in a background job meanwhile (at worst a framing is set up twice,
    both the same)."""

    def __init__(
        self,
        *,
        specs: Sequence[CharacterSpec],
        marks: Mapping[str, float],
        set_name: str,
        width_px: int,
        height_px: int,
        rigs: RigLibrary | None = None,
        tile_cache_mb: float = 40.0,
        panorama: np.ndarray | None = None,
    ) -> None:
        self.width_px, self.height_px = width_px, height_px
        self.marks = dict(marks)
        self.set_name = set_name
        self.rigs = rigs or RigLibrary(specs)
        self._tile_cache_mb = tile_cache_mb
        if panorama is None:
            panorama = stage_panorama(set_name, width_px=width_px, height_px=height_px)
        elif panorama.shape[:2] != (height_px, round(width_px * _PANORAMA)):
            raise ValueError(f"a panorama for a {width_px}x{height_px} frame is {round(width_px * _PANORAMA)}x{height_px}")
        self._panorama = panorama
        self._shots: dict[tuple[object, ...], tuple[Framing, Compositor, SceneDirector]] = {}
        self._by_shot: dict[tuple[str, tuple[str, ...]], tuple[Framing, Compositor, SceneDirector]] = {}

    def prepare(self, shots: Iterable[Shot]) -> None:
        """Draw the rigs and set up the framings of ``shots`` now, so cutting to one is free."""
        shots = list(shots)
        self.want(shots)
        self.rigs.prepare()
        for shot in shots:
            self.setup(shot)

    def framing(self, shot: Shot) -> Framing:
        return frame_shot(shot, marks=self.marks, width_px=self.width_px, height_px=self.height_px)

    def want(self, shots: Iterable[Shot]) -> None:
        """Tell the rig library every size these shots draw (before the first ``compositor``)."""
        for shot in shots:
            f = self.framing(shot)
            for name, slot in zip(f.names, f.slots, strict=True):
                self.rigs.want(name, slot.height_px)

    def setup(self, shot: Shot) -> tuple[Framing, Compositor, SceneDirector]:
        """The framing, compositor and pose director of ``shot`` (set up on first use)."""
        by_shot = self._by_shot.get((shot.kind, shot.subjects))
        if by_shot is not None:
            return by_shot
        f = self.framing(shot)
        hit = self._shots.get(f.key)
        if hit is not None:
            self._by_shot[(shot.kind, shot.subjects)] = hit
            return hit
        layout = SceneLayout(self.width_px, self.height_px, f.slots)
        characters = [self.rigs.get(n, s.height_px) for n, s in zip(f.names, f.slots, strict=True)]
        compositor = Compositor(
            layout=layout,
            characters=characters,
            set_name=self.set_name,
            background=self._background(f.view),
            tile_cache_mb=self._tile_cache_mb,
        )
        x = [self.marks[n] for n in f.names]
        director = SceneDirector(motion=compositor.motion_models(), slot_x=x)
        self._shots[f.key] = (f, compositor, director)
        return self._shots[f.key]

    def staged(self, names: Sequence[str]) -> tuple[Compositor, SceneDirector]:
        """The wide of ``names`` (at most ``MAX_ON_SCREEN``) as one compositor whose characters
        are in the order given, not left to right: everyone side by side on the one stage,
        where the wide shot puts them (never a grid of panels). Draws the rigs it lacks."""
        wide = Shot(0, 1, "wide", tuple(sorted(names, key=lambda n: self.marks[n])))
        if list(wide.subjects) == list(names):
            _, compositor, director = self.setup(wide)
            return compositor, director
        f = self.framing(wide)
        slot_of = dict(zip(f.names, f.slots, strict=True))
        slots = tuple(slot_of[n] for n in names)
        staged = Compositor(
            layout=SceneLayout(self.width_px, self.height_px, slots),
            characters=[self.rigs.get(n, s.height_px) for n, s in zip(names, slots, strict=True)],
            set_name=self.set_name,
            background=self._background(f.view),
            tile_cache_mb=self._tile_cache_mb,
        )
        return staged, SceneDirector(motion=staged.motion_models(), slot_x=[self.marks[n] for n in names])

    def mouth_boxes(self, shot: Shot, *, push: float = 0.0) -> dict[str, tuple[int, int, int, int]]:
        """Per framed character, the frame box holding its mouth, ``push`` into a push-in."""
        f, compositor, _ = self.setup(shot)
        boxes = compositor.mouth_boxes()
        if shot.push_in and push > 0.0:
            z = 1.0 + _PUSH_IN * min(1.0, push)
            cx, cy = self.width_px / 2, f.focus_y * self.height_px
            boxes = [
                (
                    max(0, math.floor(cx + (x0 - cx) * z)), max(0, math.floor(cy + (y0 - cy) * z)),
                    min(self.width_px, math.ceil(cx + (x1 - cx) * z)), min(self.height_px, math.ceil(cy + (y1 - cy) * z)),
                )
                for x0, y0, x1, y1 in boxes
            ]  # fmt: skip
        return dict(zip(f.names, boxes, strict=True))

    def _background(self, view: tuple[float, float, float, float]) -> np.ndarray:
        x0, y0, x1, y1 = view
        w, h = self.width_px, self.height_px
        scale_x, scale_y = w / (x1 - x0), h / (y1 - y0)
        m = np.array([[scale_x, 0.0, -x0 * scale_x], [0.0, scale_y, -y0 * scale_y]], np.float32)
        return cv2.warpAffine(self._panorama, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def draw(
        self,
        shot: Shot,
        frame: int,
        *,
        mouths: Mapping[str, np.ndarray],
        talkers: Sequence[str],
        out: np.ndarray | None = None,
        push: float = 0.0,
    ) -> np.ndarray:
        """Frame ``frame`` of ``shot``. ``mouths``: viseme weights (15,) of whoever speaks;
        ``talkers``: who speaks now (on screen or not: listeners look their way). ``push`` 0..1
        is how far a push-in has gone."""
        f, compositor, director = self.setup(shot)
        poses = director.poses(
            frame,
            mouths=[mouths.get(n, _REST) for n in f.names],
            speaking=[n in talkers for n in f.names],
            listen_to_x=speaking_gaze(self.marks, f.names, talkers),
        )
        if not shot.push_in or push <= 0.0:
            return compositor.compose(poses, out=out)
        img = compositor.compose(poses)
        z = 1.0 + _PUSH_IN * min(1.0, push)
        w, h = self.width_px, self.height_px
        cx = w / 2
        cy = f.focus_y * h
        m = np.array([[z, 0.0, cx - z * cx], [0.0, z, cy - z * cy]], np.float32)
        res = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if out is None:
            return res
        np.copyto(out, res)
        return out


def speaking_gaze(marks: Mapping[str, float], names: Sequence[str], talkers: Sequence[str]) -> list[float | None]:
    """Per framed character, which way the nearest other speaker stands (-1 left, 1 right), or
    None when nobody else speaks; listeners look there even when the speaker is off screen."""
    out: list[float | None] = []
    for name in names:
        others = [t for t in talkers if t != name and t in marks]
        if not others or name in talkers:
            out.append(None)
            continue
        nearest = min(others, key=lambda t: abs(marks[t] - marks[name]))
        dx = marks[nearest] - marks[name]
        out.append(math.copysign(1.0, dx) if dx else None)
    return out
