"""A session's live scene: lines scheduled on the sample clock and produced frame by frame.

The producer is called in frame order from a worker thread: ``produce(k)`` decides which lines
play during frame k (``lines``), mixes their audio and picks each character's mouth
(``frames``); ``compose(state)`` draws the picture (``painting``). Control calls (say,
interrupt, cast changes) come from the event loop through an executor and only touch state
under the scene's lock. Who is on screen is a ``SceneView`` (``cast``), replaced whole.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from avatar.camera import Drawn, RigLibrary, single_height, stage_panorama
from avatar.casting import CastFileError, parse_cast, pinned_spec
from avatar.livecut import LiveCutter
from avatar.photo.character import attach_video_mouths, is_photo_folder
from avatar.scene import row_layout
from avatar.shots import MAX_ON_SCREEN, Shot, assign_marks, parse_shot_note
from avatar.spec import Cast, CharacterSpec
from lipsync.speech import SpeechEngine
from lipsync.streaming import StreamingUtterance
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from lipsync.voices import normalise_language, voice_for_text
from stream.live.cast import SceneError, SceneView, build_view, resolve_cast
from stream.live.config import LiveConfig
from stream.live.frames import FrameState, LiveInput, SceneStats, mix_frame
from stream.live.lines import LineSchedule, LiveLine
from stream.live.painting import ScenePainter

if TYPE_CHECKING:
    from avatar.neural.video_mouth import VideoMouths
    from stream.live.faces import FaceService, PendingPaint

logger = logging.getLogger(__name__)

MAX_LINE_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class DrawingRequest:
    """A character to draw ahead, at ``heights``, reduced from a master ``master_px`` tall."""

    spec: CharacterSpec
    master_px: int
    heights: tuple[int, ...]


class LiveScene:
    """One session's scene. ``faces`` (the server's shared models and scheduler) repaints the
    mouths when the config's backend is ``neural``; without it the rig draws them."""

    def __init__(
        self,
        *,
        cast: Cast,
        speech: SpeechEngine,
        synth_executor: Executor,
        config: LiveConfig | None = None,
        names: Sequence[str] = ("MAYA", "LEO"),
        faces: FaceService | None = None,
        director: bool = True,
        video_mouths: VideoMouths | None = None,
    ) -> None:
        self.config = config or LiveConfig()
        if self.config.backend not in ("rig", "neural"):
            raise ValueError(f"backend must be 'rig' or 'neural', got {self.config.backend!r}")
        if self.config.backend == "neural" and faces is None:
            raise ValueError("the neural backend needs the server's FaceService (Engine.faces)")
        self.key = uuid.uuid4().hex  # this scene's requests in the shared scheduler
        self._painter = ScenePainter(faces=faces if self.config.backend == "neural" else None, session_key=self.key)
        self._cast = cast
        self._speech = speech
        self._synth = synth_executor
        self._language = normalise_language(self.config.language)
        self._lock = threading.Lock()
        self._lines = LineSchedule(gap_ms=self.config.gap_ms)
        self._produced = 0
        self._ids = itertools.count(1)
        self._inputs: dict[str, LiveInput] = {}
        self.stats = SceneStats()
        # The live director (rig backend): rigs drawn once per session, places kept as the
        # cast changes, and the cutter choosing each frame's shot (producer thread only).
        # A video character's new mouths go through the server's batches (``video_mouths``).
        self._rigs = None
        if self.config.backend == "rig" and director:
            on_drawn = None if video_mouths is None else partial(attach_video_mouths, service=video_mouths, owner=self.key)
            self._rigs = RigLibrary(on_drawn=on_drawn)
        self._places: dict[str, float] = {}
        self._panoramas: dict[str, np.ndarray] = {}  # set name -> its stage, drawn once per session
        self._cutter: LiveCutter | None = None
        self._cut_version = 0
        self._forced: tuple[str | None, tuple[str, ...]] | None = None
        self._pins: dict[str, CharacterSpec] = {}  # looks and voices pinned by 'cast' messages
        self._view = self._build_view(self._resolve(names), self.config.set_name, version=1)

    # -- cast and set ----------------------------------------------------------------------

    def _resolve(self, names: Sequence[str]) -> tuple[CharacterSpec, ...]:
        specs = resolve_cast(self._cast, names, language=self._language, max_characters=self.config.max_characters)
        return tuple(self._pins.get(s.name, s) for s in specs)

    def _spec(self, name: str) -> CharacterSpec:
        spec = self._cast.resolve(name, language=self._language)
        return self._pins.get(spec.name, spec)

    def is_photo(self, name: str) -> bool:
        """Whether ``name`` is a photo character (live audio then drives it with the face drive,
        which follows lip opening, not loudness). Reads its folder: run it in a worker."""
        spec = self._spec(name)
        return spec.art_dir is not None and is_photo_folder(spec.art_dir)

    def pin(self, name: str, description: str) -> SceneView:
        """Pin ``name``'s look and voice for this session: ``"a white man, 40; hair_style=bald
        voice.variant=m2"`` (a cast file's line). Redraws them now if they are on stage
        (blocking; run it in a worker)."""
        try:
            (entry,) = parse_cast(f"{name}: {description}", source="'cast' message").values()
            spec = pinned_spec(entry, language=self._language, source="'cast' message")
        except (CastFileError, ValueError) as exc:
            raise SceneError("bad_cast", str(exc)) from None
        with self._lock:
            self._pins[spec.name] = spec
        view = self.view
        if spec.name in view.names:
            return self.set_scene(names=view.names)
        return view

    def _build_view(
        self, specs: tuple[CharacterSpec, ...], set_name: str, *, version: int, ready: Sequence[str] | None = None
    ) -> SceneView:
        marks = None
        panorama = None
        if self._rigs is not None:
            marks = assign_marks([s.name for s in specs], self._places)
            self._places.update(marks)
            panorama = self._panorama(set_name)
        return build_view(
            specs, set_name, version=version, width_px=self.config.width_px, height_px=self.config.height_px,
            rigs=self._rigs, marks=marks, panorama=panorama, ready=ready,
        )  # fmt: skip

    def set_up_shots(self) -> None:
        """Set up every single of the view now (blocking; a background job after a walk-on,
        whose view set up only the newcomer's single so their line waits for nothing more)."""
        view = self.view
        if view.camera is not None:
            view.camera.prepare(Shot(0, 1, "medium", (n,)) for n in view.names)

    def _panorama(self, set_name: str) -> np.ndarray:
        """The stage of ``set_name`` (drawn on first use, then kept: a walk-on does not redraw it)."""
        with self._lock:
            found = self._panoramas.get(set_name)
        if found is None:
            found = stage_panorama(set_name, width_px=self.config.width_px, height_px=self.config.height_px)
            with self._lock:
                self._panoramas[set_name] = found
        return found

    def cast_names(self) -> list[str]:
        """Everyone this session may bring on: its cast's characters and those pinned in it."""
        with self._lock:
            pinned = list(self._pins)
        return list(dict.fromkeys([*self.view.names, *self._cast.names(), *pinned]))

    def _shown_heights(self) -> list[int]:
        """Every height a live shot draws a character at, the medium single's (the largest) first:
        the single, and side by side in a wide or two-shot of one to four."""
        w, h = self.config.width_px, self.config.height_px
        rows = (row_layout(n, w, h).slots[0].height_px for n in range(1, MAX_ON_SCREEN + 1))
        return [single_height("medium", h), *rows]

    def prepare(self, names: Sequence[str]) -> None:
        """Draw these characters now at every size a live shot shows them (blocking; run it in
        a worker), so when one of them walks on, their first line is not held up drawing them,
        nor is anyone already on stage redrawn for the wider wide. ``drawing_request`` and
        ``accept_drawings`` do the same with the drawing done elsewhere (another process)."""
        if self._rigs is None:
            return
        heights = self._shown_heights()
        for name in list(dict.fromkeys(names))[:32]:
            spec = self._spec(name)
            self._rigs.missing(spec, heights)
            for height in heights:
                self._rigs.get(spec.name, height)

    def drawing_request(self, name: str) -> DrawingRequest | None:
        """What drawing ``name`` ahead takes (the arguments of ``avatar.camera.draw_sizes``), or
        None when nothing is left to draw or this scene has no director."""
        if self._rigs is None:
            return None
        spec = self._spec(name)
        master_px, todo = self._rigs.missing(spec, self._shown_heights())
        return DrawingRequest(spec, master_px, tuple(todo)) if todo else None

    def accept_drawings(self, request: DrawingRequest, drawn: Mapping[int, Drawn]) -> None:
        """Keep what ``draw_sizes`` drew for ``request`` (dropped if they were recast meanwhile)."""
        if self._rigs is not None:
            self._rigs.put(request.spec, drawn, master_px=request.master_px)

    def set_shot(self, shot: str) -> None:
        """Hold a shot: ``"close MAYA"``, ``"two MAYA LEO"``, ``"wide"``; ``"auto"`` lets the
        director cut again. Takes effect on the next frame (blocking: may draw a close-up)."""
        view = self.view
        if view.camera is None:
            raise SceneError("no_director", "this scene has no director (the neural backend keeps one layout)")
        if shot.strip().lower() == "auto":
            with self._lock:
                self._forced = (None, ())
            return
        try:
            kind, subjects = parse_shot_note(shot)
        except ValueError as exc:
            raise SceneError("bad_shot", str(exc)) from None
        missing = [n for n in subjects if n not in view.names]
        if missing:
            raise SceneError(
                "bad_shot", f"'shot' names {', '.join(missing)}, who is not on stage ({', '.join(view.names)})"
            )
        subjects = subjects or ((view.names[0],) if kind in ("medium", "close") else ())
        if kind in ("medium", "close") or len(subjects) == 2:
            view.camera.prepare([Shot(0, 1, kind, subjects)])
        with self._lock:
            self._forced = (kind, subjects)

    @property
    def view(self) -> SceneView:
        with self._lock:
            return self._view

    def set_scene(
        self, *, names: Sequence[str] | None = None, set_name: str | None = None, ready: Sequence[str] | None = None
    ) -> SceneView:
        """Change who is on screen and/or the set (blocking: renders new layers; run in a worker).
        ``ready``: set up only these characters' singles now (the rest with ``set_up_shots``)."""
        current = self.view
        specs = self._resolve(names) if names is not None else current.specs
        try:
            view = self._build_view(specs, set_name or current.set_name, version=current.version + 1, ready=ready)
        except ValueError as exc:
            raise SceneError("bad_scene", str(exc)) from exc
        with self._lock:
            missing = self._lines.speakers() - set(view.names)
            if missing:
                raise SceneError(
                    "busy", f"{', '.join(sorted(missing))} still has lines to say; interrupt first", http_status=409
                )
            self._view = view
        return view

    def _check_queue(self) -> None:
        """``SceneError`` when the line queue is full. Call it holding the lock (or as an early
        check that the one under the lock confirms)."""
        waiting = len(self._lines.queue)
        if waiting >= self.config.max_queued_lines:
            raise SceneError("queue_full", f"{waiting} lines are already waiting; interrupt or wait")

    def _check_room(self, name: str) -> None:
        """``SceneError`` when ``name`` (not on screen) cannot join: the scene is full."""
        view = self.view
        if len(view.specs) >= self.config.max_characters:
            raise SceneError(
                "scene_full",
                f"the scene is full ({', '.join(view.names)}); {name} cannot join "
                f"(at most {self.config.max_characters} characters)",
                http_status=409,
            )

    def _ensure_on_screen(self, name: str) -> str:
        """The canonical name of the speaker, bringing them on screen if there is room."""
        view = self.view
        spec = self._spec(name)
        if spec.name in view.names:
            return spec.name
        self._check_room(spec.name)
        self.set_scene(names=[*view.names, spec.name], ready=[spec.name])
        return spec.name

    # -- control -----------------------------------------------------------------------------

    def say(
        self, speaker: str, text: str, *, received_at: float, cut_in: bool = False, overlap: bool = False,
        voice: str | None = None,
    ) -> LiveLine:
        """Queue a line and start synthesising it (blocking briefly; run it in a worker)."""
        text = " ".join(text.split())
        if not text:
            raise SceneError("bad_line", "the line is empty")
        if len(text) > MAX_LINE_CHARS:
            raise SceneError("bad_line", f"the line is {len(text)} characters; the limit is {MAX_LINE_CHARS}")
        if not speaker.strip():
            raise SceneError("bad_line", "the line has no speaker")
        spec = self._spec(speaker)
        walk_on = spec.name not in self.view.names
        if walk_on:
            self._check_room(spec.name)
        if cut_in:
            self.interrupt()
        self._check_queue()
        spoken = voice_for_text(spec.voice, text)
        if (voice or self.config.voice) == "espeak":  # an instant reply
            spoken = spoken.as_espeak()
        utt = StreamingUtterance(text=text, voice=spoken)
        first = self.config.first_chunk_ms * SAMPLE_RATE_HZ // 1000
        # Synthesis starts first: a walk-on's view is set up while their first words are spoken.
        future = self._synth.submit(utt.synthesize, self._speech, first_chunk_samples=first)
        try:
            name = self._ensure_on_screen(speaker) if walk_on else spec.name
            with self._lock:
                self._check_queue()
                line = LiveLine(
                    id=f"L{next(self._ids)}", speaker=name, text=text, epoch=self._lines.epoch,
                    received_at=received_at, utt=utt, overlap=overlap,
                )
                self._lines.queue.append(line)
        except BaseException:
            utt.cancel()
            raise
        future.add_done_callback(lambda f: self._log_failure(line, f))
        return line

    @staticmethod
    def _log_failure(line: LiveLine, future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("synthesis of line %s failed: %s", line.id, future.exception())

    def bind_input(self, name: str, source: LiveInput) -> str:
        """Let live audio drive ``name`` (brought on screen if there is room); returns the name."""
        name = self._ensure_on_screen(name)
        with self._lock:
            if name in self._inputs:
                raise SceneError("busy", f"{name} already has a live input; unbind it first", http_status=409)
            self._inputs[name] = source
        return name

    def unbind_input(self, name: str) -> None:
        with self._lock:
            self._inputs.pop(name, None)

    def interrupt(self) -> int:
        """Drop every queued and playing line; speech stops at the next frame. Returns the new epoch."""
        with self._lock:
            return self._lines.interrupt()

    # -- production (worker thread, frame order) ------------------------------------------

    def produce(self, k: int) -> FrameState:
        """The state of frame ``k``; frames must be produced in order, each once."""
        with self._lock:
            if k != self._produced:
                raise RuntimeError(f"frame {k} asked for, but the next frame to produce is {self._produced}")
            self._produced += 1
            notices = self._lines.advance(k)
            self.stats.lines_started = self._lines.started
            self.stats.lines_interrupted = self._lines.interrupted
            view = self._view
            playing = list(self._lines.playing)
            inputs = list(self._inputs.items())
            forced, self._forced = self._forced, None
        state = mix_frame(
            k, view=view, playing=playing, inputs=inputs, notices=notices, stats=self.stats,
            with_drives=self._painter.faces is not None,
        )
        if view.camera is None:
            return state
        if self._cutter is None or self._cut_version != view.version:
            if self._cutter is None:
                self._cutter = LiveCutter(marks=view.camera.marks)
            else:
                self._cutter.recast(view.camera.marks, k)
            self._cut_version = view.version
        if forced is not None:
            self._cutter.force(forced[0], forced[1], k)
        started = [(n.line.speaker, n.line.text.rstrip().endswith("!")) for n in notices if n.kind == "started"]
        talkers = [name for name, s in zip(view.names, state.speaking, strict=True) if s]
        return replace(state, shot=self._cutter.step(k, started=started, talkers=talkers))

    def compose(self, state: FrameState, *, shown_at_s: float | None = None) -> np.ndarray:
        """The RGB picture of ``state`` (pure: depends only on the state).

        ``shown_at_s``: the monotonic time the frame is due on screen; with a shared
        ``FaceService`` a character whose mouth is not ready by then (plus the service's budget)
        keeps the rig's mouth in this frame."""
        frame, pending = self.start_compose(state, shown_at_s=shown_at_s)
        return self.finish_compose(frame, pending)

    def start_compose(
        self, state: FrameState, *, shown_at_s: float | None = None
    ) -> tuple[np.ndarray, PendingPaint | None]:
        """The rig's picture of ``state`` and, with a shared ``FaceService``, its mouths queued
        for the model (``None`` when there is nothing to wait for)."""
        return self._painter.start(state, shown_at_s=shown_at_s)

    def finish_compose(self, frame: np.ndarray, pending: PendingPaint | None) -> np.ndarray:
        """Paste the neural mouths of a ``start_compose`` (waiting for any not done yet)."""
        frame, kept = self._painter.finish(frame, pending)
        if kept:
            with self._lock:
                self.stats.mouths_kept_rig += kept
        return frame

    @property
    def media_samples(self) -> int:
        """Media time reached so far: the first sample of the next frame to be produced."""
        with self._lock:
            return self._produced * SAMPLES_PER_FRAME

    def playing_lines(self) -> list[LiveLine]:
        """The lines playing now, in the order they started."""
        with self._lock:
            return list(self._lines.playing)

    def pending(self) -> int:
        with self._lock:
            return self._lines.pending()
