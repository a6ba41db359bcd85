"""A session's live scene: lines scheduled on the sample clock and produced frame by frame.

The producer is called in frame order from a worker thread: ``produce(k)`` decides which lines
play during frame k (audio samples ``[k * 1920, (k + 1) * 1920)``), mixes their audio and picks
each character's mouth; ``compose(state)`` draws the picture. Control calls (say, interrupt,
cast changes) come from the event loop through an executor and only touch state under the lock.

Scheduling: lines play in the order received. A line starts at the first frame produced after
its first chunk of speech exists, once the previous line has ended plus ``gap_ms`` (or at
once with ``overlap``). Every line carries the epoch it was said in; an interrupt bumps the
epoch, so playing lines end at the next frame and queued ones never start.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from avatar.director import SceneDirector
from avatar.scene import Compositor, SceneLayout
from avatar.spec import Cast, CharacterSpec
from lipsync.audio import to_int16
from lipsync.mixer import limit, mix_into
from lipsync.speech import SpeechEngine
from lipsync.streaming import StreamingUtterance
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, frames_for_samples
from lipsync.visemes import N_VISEMES, SIL
from lipsync.voices import normalise_language, voice_for_text
from stream.errors import ClientError

if TYPE_CHECKING:
    from lipsync.neural.model import FaceGen
    from stream.live.faces import FaceService, PendingPaint

logger = logging.getLogger(__name__)

MAX_LINE_CHARS = 1_000


class SceneError(ClientError):
    """A control request the scene cannot carry out (full scene, bad line, busy character)."""


class LiveInput(Protocol):
    """Live audio bound to one character (a microphone, a WHIP publisher, a file).

    ``frame(k)`` is called once per frame, in order, from the producer thread, and must not
    block: it returns that frame's audio (int16, SAMPLES_PER_FRAME samples, already delayed as
    much as the mouth) and the character's viseme weights (15,), or None for a closed mouth.
    """

    def frame(self, k: int) -> tuple[np.ndarray, np.ndarray | None]: ...


@dataclass(frozen=True, slots=True)
class LiveConfig:
    width_px: int = 512
    height_px: int = 512
    set_name: str = "studio"
    language: str = "en-us"
    first_chunk_ms: int = 200
    gap_ms: int = 200
    max_queued_lines: int = 32
    max_characters: int = 4
    backend: str = "rig"  # "neural": trained mouth models repaint the rig's mouths
    neural_weights_dir: str | None = None  # None: the shipped lipsync/weights/neural


@dataclass(eq=False)
class LiveLine:
    """One line from the moment it is received until it ends."""

    id: str
    speaker: str
    text: str
    epoch: int
    received_at: float  # time.monotonic() on receipt: for latency figures only, never for stamps
    utt: StreamingUtterance
    overlap: bool = False
    start_frame: int | None = None
    status: Literal["queued", "playing", "ended", "interrupted"] = "queued"

    @property
    def start_sample(self) -> int:
        assert self.start_frame is not None
        return self.start_frame * SAMPLES_PER_FRAME


@dataclass(frozen=True, slots=True)
class LineNotice:
    """A line started or ended at media sample ``sample``."""

    kind: Literal["started", "ended"]
    line: LiveLine
    sample: int
    interrupted: bool = False


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


@dataclass(frozen=True, slots=True)
class FrameState:
    """Everything about frame ``index`` except its pixels."""

    index: int
    audio: np.ndarray  # int16, SAMPLES_PER_FRAME samples
    view: SceneView
    mouths: tuple[np.ndarray, ...]
    speaking: tuple[bool, ...]
    notices: tuple[LineNotice, ...] = ()
    # Per character: the viseme rows of frames k-2 .. k+2 (15, DRIVE_FRAMES), the neural
    # backend's drive window. Rows not known yet (beyond the line's synthesised speech, or a live
    # input) repeat the latest known row.
    drives: tuple[np.ndarray, ...] = ()


@dataclass
class SceneStats:
    frames_produced: int = 0
    lines_started: int = 0
    lines_interrupted: int = 0
    synth_underruns: int = 0
    mouths_kept_rig: int = 0  # neural mouths that missed their frame (the rig's was shown)
    last_latency_ms: float | None = None
    latencies_ms: list[float] = field(default_factory=list)


DRIVE_FRAMES = 5  # the neural drive window: 200 ms of viseme rows centred on the frame
DRIVE_HALF = DRIVE_FRAMES // 2


def _line_window(utt: StreamingUtterance, j: int, row: np.ndarray) -> np.ndarray:
    """Viseme rows j-2 .. j+2 of a playing line (15, 5); ``row`` is row j. Rows before the line
    are rest; rows whose speech is not synthesised yet repeat the latest known row."""
    cols = []
    latest = np.asarray(row, np.float32)
    for i in range(j - DRIVE_HALF, j + DRIVE_HALF + 1):
        if i == j:
            r: np.ndarray | None = latest
        elif i < 0:
            r = np.zeros(N_VISEMES, np.float32)
            r[SIL] = 1.0
        else:
            r = utt.mouth_row(i)
            if r is None:  # beyond the speech synthesised so far
                r = latest
            elif i > j:
                latest = np.asarray(r, np.float32)
        cols.append(np.asarray(r, np.float32))
    return np.stack(cols, axis=1)  # (15, 5)


class LiveScene:
    def __init__(
        self,
        *,
        cast: Cast,
        speech: SpeechEngine,
        synth_executor: Executor,
        config: LiveConfig | None = None,
        names: Sequence[str] = ("MAYA", "LEO"),
        neural_models: Mapping[str, FaceGen] | None = None,
        faces: FaceService | None = None,
    ) -> None:
        self.config = config or LiveConfig()
        # Neural backend: per-character students (lipsync/neural/renderer.py); None = the rig only.
        # With ``faces`` (the server's shared models and scheduler) mouths are batched with other
        # sessions'; without it this scene runs its models itself.
        if self.config.backend not in ("rig", "neural"):
            raise ValueError(f"backend must be 'rig' or 'neural', got {self.config.backend!r}")
        self._faces = faces if self.config.backend == "neural" else None
        self.key = uuid.uuid4().hex  # this scene's requests in the shared scheduler
        if self._faces is not None:
            neural_models = self._faces.models
        self._neural_models = dict(neural_models) if neural_models else None
        if self._neural_models is None and self.config.backend == "neural":
            from lipsync.neural.weights import load_weights_dir

            self._neural_models = load_weights_dir(self.config.neural_weights_dir)
        self._painters: dict[int, Any] = {}  # view version -> NeuralFaceRenderer
        self._paint_lock = threading.Lock()
        self._cast = cast
        self._speech = speech
        self._synth = synth_executor
        self._lock = threading.Lock()
        self._epoch = 0
        self._queue: list[LiveLine] = []
        self._playing: list[LiveLine] = []
        self._next_start_frame = 0
        self._produced = 0
        self._ids = itertools.count(1)
        self._inputs: dict[str, LiveInput] = {}
        self.stats = SceneStats()
        specs = self._resolve(names)
        self._view = self._build_view(specs, self.config.set_name, version=1)

    # -- cast and set ----------------------------------------------------------------------

    def _resolve(self, names: Sequence[str]) -> tuple[CharacterSpec, ...]:
        if not 1 <= len(names) <= self.config.max_characters:
            raise SceneError(
                "bad_cast", f"a scene holds 1 to {self.config.max_characters} characters, got {len(names)}"
            )
        language = normalise_language(self.config.language)
        specs = tuple(self._cast.resolve(name, language=language) for name in names)
        if len({s.name for s in specs}) != len(specs):
            raise SceneError("bad_cast", f"a character appears twice in {list(names)}")
        return specs

    def _build_view(self, specs: tuple[CharacterSpec, ...], set_name: str, *, version: int) -> SceneView:
        layout = SceneLayout.for_count(len(specs), width_px=self.config.width_px, height_px=self.config.height_px)
        compositor = Compositor(layout=layout, characters=specs, set_name=set_name)
        director = SceneDirector.for_compositor(compositor)
        return SceneView(version, specs, set_name, compositor, director)

    @property
    def view(self) -> SceneView:
        with self._lock:
            return self._view

    def set_scene(self, *, names: Sequence[str] | None = None, set_name: str | None = None) -> SceneView:
        """Change who is on screen and/or the set (blocking: renders new layers; run in a worker)."""
        current = self.view
        specs = self._resolve(names) if names is not None else current.specs
        try:
            view = self._build_view(specs, set_name or current.set_name, version=current.version + 1)
        except ValueError as exc:
            raise SceneError("bad_scene", str(exc)) from exc
        with self._lock:
            speaking = {line.speaker for line in self._playing + self._queue}
            missing = speaking - set(view.names)
            if missing:
                raise SceneError(
                    "busy", f"{', '.join(sorted(missing))} still has lines to say; interrupt first"
                )
            self._view = view
        return view

    def _ensure_on_screen(self, name: str) -> str:
        """The canonical name of the speaker, bringing them on screen if there is room."""
        view = self.view
        spec = self._cast.resolve(name, language=normalise_language(self.config.language))
        if spec.name in view.names:
            return spec.name
        if len(view.specs) >= self.config.max_characters:
            raise SceneError(
                "scene_full",
                f"the scene is full ({', '.join(view.names)}); {spec.name} cannot join "
                f"(at most {self.config.max_characters} characters)",
            )
        self.set_scene(names=[*view.names, spec.name])
        return spec.name

    # -- control -----------------------------------------------------------------------------

    def say(
        self, speaker: str, text: str, *, received_at: float, cut_in: bool = False, overlap: bool = False
    ) -> LiveLine:
        """Queue a line and start synthesising it (blocking briefly; run it in a worker)."""
        text = " ".join(text.split())
        if not text:
            raise SceneError("bad_line", "the line is empty")
        if len(text) > MAX_LINE_CHARS:
            raise SceneError("bad_line", f"the line is {len(text)} characters; the limit is {MAX_LINE_CHARS}")
        if not speaker.strip():
            raise SceneError("bad_line", "the line has no speaker")
        name = self._ensure_on_screen(speaker)
        spec = next(s for s in self.view.specs if s.name == name)
        if cut_in:
            self.interrupt()
        with self._lock:
            if len(self._queue) >= self.config.max_queued_lines:
                raise SceneError(
                    "queue_full", f"{len(self._queue)} lines are already waiting; interrupt or wait"
                )
            utt = StreamingUtterance(text=text, voice=voice_for_text(spec.voice, text))
            line = LiveLine(
                id=f"L{next(self._ids)}", speaker=name, text=text, epoch=self._epoch,
                received_at=received_at, utt=utt, overlap=overlap,
            )
            self._queue.append(line)
        first = self.config.first_chunk_ms * SAMPLE_RATE_HZ // 1000
        future = self._synth.submit(utt.synthesize, self._speech, first_chunk_samples=first)
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
                raise SceneError("busy", f"{name} already has a live input; unbind it first")
            self._inputs[name] = source
        return name

    def unbind_input(self, name: str) -> None:
        with self._lock:
            self._inputs.pop(name, None)

    def interrupt(self) -> int:
        """Drop every queued and playing line; speech stops at the next frame. Returns the new epoch."""
        with self._lock:
            self._epoch += 1
            for line in self._queue + self._playing:
                line.utt.cancel()
            return self._epoch

    # -- production (worker thread, frame order) ------------------------------------------

    def produce(self, k: int) -> FrameState:
        """The state of frame ``k``; frames must be produced in order, each once."""
        with self._lock:
            if k != self._produced:
                raise RuntimeError(f"frame {k} asked for, but the next frame to produce is {self._produced}")
            self._produced += 1
            notices = self._advance(k)
            view = self._view
            playing = list(self._playing)
            inputs = list(self._inputs.items())
        mix = np.zeros(SAMPLES_PER_FRAME, np.float32)
        rest = np.zeros(N_VISEMES, np.float32)
        rest[SIL] = 1.0
        mouths = {name: rest for name in view.names}
        drives: dict[str, np.ndarray] = {}
        for line in playing:
            j = k - (line.start_frame or 0)
            mix_into(mix, line.utt.audio(j * SAMPLES_PER_FRAME, SAMPLES_PER_FRAME), offset=0)
            row = line.utt.mouth_row(j)
            if row is None:
                self.stats.synth_underruns += 1
                continue
            if line.speaker in mouths:
                mouths[line.speaker] = row
                if self._neural_models is not None:
                    drives[line.speaker] = _line_window(line.utt, j, row)
        talking = {line.speaker for line in playing}
        for name, source in inputs:
            samples, weights = source.frame(k)
            mix_into(mix, samples, offset=0)
            if weights is not None and name in mouths:
                mouths[name] = weights
                talking.add(name)
        self.stats.frames_produced += 1
        if self._neural_models is not None:
            for name in view.names:
                if name not in drives or not np.array_equal(drives[name][:, DRIVE_HALF], mouths[name]):
                    drives[name] = np.repeat(np.asarray(mouths[name], np.float32)[:, None], DRIVE_FRAMES, axis=1)
        return FrameState(
            index=k,
            audio=to_int16(limit(mix)),
            view=view,
            mouths=tuple(mouths[name] for name in view.names),
            speaking=tuple(name in talking for name in view.names),
            notices=tuple(notices),
            drives=tuple(drives[name] for name in view.names) if drives else (),
        )

    def _advance(self, k: int) -> list[LineNotice]:
        """Update which lines play during frame k; call with the lock held."""
        notices: list[LineNotice] = []
        frame_start = k * SAMPLES_PER_FRAME
        for line in list(self._playing):
            if line.epoch < self._epoch:
                line.status = "interrupted"
                self._playing.remove(line)
                self.stats.lines_interrupted += 1
                notices.append(LineNotice("ended", line, frame_start, interrupted=True))
            elif line.utt.done and line.start_sample + line.utt.n_samples <= frame_start:
                line.status = "ended"
                self._playing.remove(line)
                end = line.start_sample + line.utt.n_samples
                notices.append(LineNotice("ended", line, end))
                gap = frames_for_samples(end + self.config.gap_ms * SAMPLE_RATE_HZ // 1000)
                self._next_start_frame = max(self._next_start_frame, gap)
        for line in [q for q in self._queue if q.epoch < self._epoch]:
            line.status = "interrupted"
            self._queue.remove(line)
            self.stats.lines_interrupted += 1
            notices.append(LineNotice("ended", line, frame_start, interrupted=True))
        while self._queue:
            head = self._queue[0]
            free = not self._playing and k >= self._next_start_frame
            if not head.utt.ready.is_set() or not (free or head.overlap):
                break
            if head.utt.error is not None:
                self._queue.pop(0)
                head.status = "interrupted"
                notices.append(LineNotice("ended", head, frame_start, interrupted=True))
                continue
            self._queue.pop(0)
            head.start_frame = k
            head.status = "playing"
            self._playing.append(head)
            self.stats.lines_started += 1
            notices.append(LineNotice("started", head, frame_start))
        return notices

    def compose(self, state: FrameState, *, shown_at_s: float | None = None) -> np.ndarray:
        """The RGB picture of ``state`` (pure: depends only on the state).

        ``shown_at_s``: the monotonic time the frame is due on screen; with a shared
        ``FaceService`` a character whose mouth is not ready by then (plus the service's budget)
        keeps the rig's mouth in this frame."""
        frame, pending = self.start_compose(state, shown_at_s=shown_at_s)
        return self.finish_compose(frame, pending)

    def finish_compose(self, frame: np.ndarray, pending: PendingPaint | None) -> np.ndarray:
        """Paste the neural mouths of a ``start_compose`` (waiting for any not done yet)."""
        if pending is None or self._faces is None:
            return frame
        kept = self._faces.finish(pending)
        with self._lock:
            self.stats.mouths_kept_rig += kept
        return frame

    def start_compose(
        self, state: FrameState, *, shown_at_s: float | None = None
    ) -> tuple[np.ndarray, PendingPaint | None]:
        """The rig's picture of ``state`` and, with a shared ``FaceService``, its mouths queued
        for the model (``None`` when there is nothing to wait for)."""
        view = state.view
        poses = view.director.poses(state.index, mouths=state.mouths, speaking=state.speaking)
        frame = view.compositor.compose(poses)
        if self._neural_models is None:
            return frame, None
        with self._paint_lock:
            painter = self._painters.get(view.version)
            if painter is None:
                from avatar.neural.renderer import NeuralFaceRenderer

                painter = (
                    self._faces.painter(view.compositor)
                    if self._faces is not None
                    else NeuralFaceRenderer(compositor=view.compositor, models=self._neural_models)
                )
                rig_only = [n for n in view.names if n not in self._neural_models]
                if rig_only:
                    logger.warning("neural backend: no model for %s; rig mouths for them", rig_only)
                self._painters = {view.version: painter}
        drives = list(state.drives)
        if self._faces is not None and shown_at_s is not None:
            pending = self._faces.submit(
                frame, painter, drives, session_key=self.key, shown_at_s=shown_at_s
            )
            return frame, pending
        return painter.paint(frame, drives), None

    @property
    def media_samples(self) -> int:
        """Media time reached so far: the first sample of the next frame to be produced."""
        with self._lock:
            return self._produced * SAMPLES_PER_FRAME

    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._playing)
