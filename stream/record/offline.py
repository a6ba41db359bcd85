"""The offline path: a script becomes an MP4 with subtitles, all on one sample clock."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avatar.casting import CastFileError, cast_from_traits, introductions, parse_cast, pinned_spec
from avatar.directed import DirectedScene, scene_marks
from avatar.director import SceneDirector
from avatar.scene import Compositor, SceneLayout
from avatar.sets import SET_NAMES
from avatar.shots import Shot, ShotError, ShotPlan
from avatar.spec import Cast, CharacterSpec
from lipsync.kokoro import KokoroConfig
from lipsync.script import Scene, Script, ScriptError, likely_aliases, parse_script
from lipsync.speech import SpeechEngine, Utterance
from lipsync.timebase import SAMPLES_PER_FRAME
from lipsync.timeline import LineEvent, SceneTimeline, TimedLine, TimelineConfig, build_timeline
from lipsync.voices import VoiceSpec, normalise_language, voice_for_text
from stream.media.mp4 import Mp4Writer, VideoEncoding, check_writable
from stream.media.subtitles import write_subtitles
from stream.record.stages import NullTimer, StageTimer

if TYPE_CHECKING:
    from avatar.neural.renderer import NeuralFaceRenderer

logger = logging.getLogger(__name__)

MAX_CHARACTERS_PER_SCENE = 4  # on screen at once, without the director
MAX_SPEAKERS_PER_SCENE = 32

FrameSource = Callable[[int, "np.ndarray | None"], np.ndarray]
MAX_SCRIPT_BYTES = 1_000_000
BACKENDS = ("rig", "neural")
VOICE_BACKENDS = ("natural", "espeak")
SPEECH_WORKERS = 2  # lines spoken at once while a scene is performed (one per core here)
# Each of those lines runs the natural voice on one thread: two one-thread calls side by side
# keep both cores busy with ~10% fewer CPU-seconds than two calls of two threads each.
OFFLINE_KOKORO = KokoroConfig(threads=1)


def offline_speech(voice_backend: str | None = None, **kwargs: Any) -> SpeechEngine:
    """The speech engine of an offline render: espeak-ng when asked, else the natural voice with
    one thread per call (``OFFLINE_KOKORO``)."""
    if voice_backend == "espeak":
        return SpeechEngine(voice_backend="espeak", kokoro=OFFLINE_KOKORO, **kwargs)
    return SpeechEngine(voice_backend="natural" if voice_backend == "natural" else None, kokoro=OFFLINE_KOKORO, **kwargs)


@dataclass(frozen=True, slots=True)
class RenderConfig:
    width_px: int = 512
    height_px: int = 512
    set_name: str = "studio"
    language: str = "en-us"  # for auto-cast characters
    encoding_preset: str = "ultrafast"  # flat cartoon frames stay small even so (~2 MB/min at 512x512)
    timeline: TimelineConfig = field(default_factory=TimelineConfig)
    backend: str = "rig"  # "rig", or "neural": trained mouth models repaint the rig's mouths
    neural_weights_dir: str | None = None  # None: the shipped lipsync/weights/neural
    director: bool = True  # shots and cuts (avatar.shots); False: one static shot of 1-4 speakers
    voice_backend: str = "natural"  # "espeak": every voice by espeak-ng (the fast path)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.voice_backend not in VOICE_BACKENDS:
            raise ValueError(f"voice_backend must be one of {VOICE_BACKENDS}, got {self.voice_backend!r}")


@dataclass(frozen=True, slots=True)
class RenderResult:
    path: Path
    srt_path: Path
    vtt_path: Path
    n_frames: int
    n_samples: int
    events: tuple[LineEvent, ...]
    shots: tuple[tuple[int, Shot], ...] = ()  # (first frame of its scene, shot), when directed
    aliases: tuple[tuple[str, str], ...] = ()  # likely aliases: (cue, known name it contains)


@dataclass(frozen=True, slots=True)
class ScenePlan:
    """One scene ready to perform: who is on screen, on which set, saying what."""

    heading: str | None
    set_name: str
    cast: tuple[CharacterSpec, ...]
    lines: tuple[TimedLine, ...]
    scene: Scene | None = None  # the script scene, for the director (entrances, notes, addressees)
    marks: tuple[tuple[str, float], ...] = ()  # where each character stands on the set


def read_cast_file(path: Path, *, cast: Cast, language: str = "en-us") -> Cast:
    """``cast`` with the characters a cast file pins (``NAME: description; field=value`` a
    line) added; errors name the file, line and field."""
    if not path.is_file():
        raise ScriptError(f"cast file {path} does not exist")
    if path.stat().st_size > MAX_SCRIPT_BYTES:
        raise ScriptError(f"cast file {path} is over {MAX_SCRIPT_BYTES} bytes")
    try:
        entries = parse_cast(path.read_text(encoding="utf-8-sig"), source=f"cast file {path}")
        for entry in entries.values():
            cast.add(pinned_spec(entry, language=normalise_language(language), source=f"cast file {path}"))
    except (CastFileError, UnicodeDecodeError) as exc:
        raise ScriptError(str(exc)) from None
    return cast


def read_script(path: Path, *, aliases: Mapping[str, str] | None = None) -> Script:
    """Read and parse a script file; errors name the file and what is wrong."""
    if not path.is_file():
        raise ScriptError(f"script file {path} does not exist")
    size = path.stat().st_size
    if size > MAX_SCRIPT_BYTES:
        raise ScriptError(f"script file {path} is {size} bytes; the limit is {MAX_SCRIPT_BYTES}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScriptError(f"script file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse_script(text, aliases=aliases)


def _set_for_heading(heading: str | None, default: str) -> str:
    if heading:
        words = set(re.findall(r"[a-z]+", heading.lower()))
        for name in SET_NAMES:
            if name in words:
                return name
    return default


def plan_scenes(script: Script, cast: Cast, config: RenderConfig) -> list[ScenePlan]:
    """Scenes with dialogue, each with its characters resolved to specs: the cast's own, else
    cast from their introduction on the page ("BOB, 40, a white man"), else from the name.

    Without the director a scene holds at most four speakers; with it, any number up to
    ``MAX_SPEAKERS_PER_SCENE`` (at most four on screen at once), standing where they stood in
    the set's previous scene."""
    plans = []
    language = normalise_language(config.language)
    speakers_all = script.characters
    intros = introductions(
        ((a.text, a.source_line) for scene in script.scenes for a in scene.actions), known=speakers_all
    )
    try:  # a title page may pin the cast: "Cast:" then one "NAME: description; field=value" a line
        pins = parse_cast(script.title.get("cast", ""), source="title page Cast")
        pinned = {name: pinned_spec(e, language=language, source="title page Cast") for name, e in pins.items()}
    except CastFileError as exc:
        raise ScriptError(str(exc)) from None
    places: dict[str, dict[str, float]] = {}
    limit = MAX_SPEAKERS_PER_SCENE if config.director and config.backend == "rig" else MAX_CHARACTERS_PER_SCENE

    def spec_of(name: str) -> CharacterSpec:
        if name in pinned:
            return pinned[name]
        if cast.get(name) is None and name in intros:
            return cast_from_traits(name, intros[name].traits, language=language)
        return cast.resolve(name, language=language)

    for scene in script.scenes:
        if not scene.lines:
            continue
        speakers = list(dict.fromkeys(line.speaker for line in scene.lines))
        if len(speakers) > limit:
            raise ScriptError(
                f"scene {scene.heading or 'at line ' + str(scene.source_line)!s} has {len(speakers)} speaking "
                f"characters ({', '.join(speakers)}); "
                + (
                    f"a frame holds at most {limit} (render with the director for more)"
                    if limit == MAX_CHARACTERS_PER_SCENE
                    else f"a scene holds at most {limit}"
                ),
                line=scene.source_line,
            )
        walk_ons = [
            n for n, intro in intros.items()
            if n not in speakers and any(a.source_line == intro.source_line for a in scene.actions)
        ][: max(0, MAX_SPEAKERS_PER_SCENE - len(speakers))]
        set_name = _set_for_heading(scene.heading, config.set_name)
        marks = scene_marks(scene, places.get(set_name, {}), walk_ons)
        places.setdefault(set_name, {}).update(marks)
        specs = tuple(spec_of(name) for name in [*speakers, *walk_ons])
        lines = tuple(
            TimedLine(speaker=line.speaker, text=line.text, source_line=line.source_line, dual_group=line.dual_group)
            for line in scene.lines
        )
        plans.append(ScenePlan(scene.heading, set_name, specs, lines, scene, tuple(sorted(marks.items()))))
    return plans


@contextlib.contextmanager
def spoken_ahead(
    plans: Sequence[ScenePlan], speech: SpeechEngine, *, config: RenderConfig
) -> Iterator[Mapping[int, Future[Utterance]]]:
    """Every line of ``plans`` handed at once to ``SPEECH_WORKERS`` workers (the natural
    voice's calls run side by side), the longest first, so both cores stay busy until the last
    line of the last scene rather than one idling at each scene's end; the order changes no
    samples. Yields each line's future by ``id(line)``; leaving cancels what has not started."""
    pool = ThreadPoolExecutor(max_workers=SPEECH_WORKERS, thread_name_prefix="speech")
    lines = [(plan, line) for plan in plans for line in plan.lines]
    try:
        yield {
            id(line): pool.submit(speech.synthesize, line.text, _voice_of(plan, line, config))
            for plan, line in sorted(lines, key=lambda pair: -len(pair[1].text))
        }
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _voice_of(plan: ScenePlan, line: TimedLine, config: RenderConfig) -> VoiceSpec:
    voice = next(spec.voice for spec in plan.cast if spec.name == line.speaker)
    return voice_for_text(voice.as_espeak() if config.voice_backend == "espeak" else voice, line.text)


def perform(
    plan: ScenePlan, speech: SpeechEngine, *, config: RenderConfig, timer: StageTimer,
    spoken: Mapping[int, Future[Utterance]] | None = None,
) -> SceneTimeline:
    """Speak every line of the scene and lay it out on one clock; ``spoken``: its lines already
    handed to workers (``spoken_ahead``), else they are here."""
    if spoken is None:
        with spoken_ahead([plan], speech, config=config) as own:
            return perform(plan, speech, config=config, timer=timer, spoken=own)

    def say(line: TimedLine) -> Utterance:
        with timer.stage("speech"):
            utt = spoken[id(line)].result()
        with timer.stage("mouth_track"):
            return speech.with_mouth(utt)

    return build_timeline(plan.lines, say, characters=[spec.name for spec in plan.cast], config=config.timeline)


def _neural_painter(
    compositor: Compositor, names: Sequence[str], config: RenderConfig
) -> tuple[NeuralFaceRenderer, Callable[[np.ndarray], np.ndarray]] | None:
    # Imported here: torch loads only when the neural backend is asked for.
    from avatar.neural.renderer import NeuralFaceRenderer
    from lipsync.neural.data import viseme_windows
    from lipsync.neural.weights import load_cast_models

    models = load_cast_models(names, weights_dir=config.neural_weights_dir)
    if not models:
        logger.warning("neural backend: no character of %s has a model; rendering with the rig", list(names))
        return None
    return NeuralFaceRenderer(compositor=compositor, models=models), viseme_windows


def render_frames(
    timeline: SceneTimeline, plan: ScenePlan, *, config: RenderConfig, timer: StageTimer
) -> FrameSource:
    """A function drawing frame k of this scene (into ``out`` when given)."""
    if config.director and config.backend == "rig" and plan.scene is not None:
        directed = direct(timeline, plan, config=config, timer=timer)

        def directed_frame(k: int, out: np.ndarray | None = None) -> np.ndarray:
            with timer.stage("compose"):
                return directed.frame(k, out)

        return directed_frame
    layout = SceneLayout.for_count(len(plan.cast), width_px=config.width_px, height_px=config.height_px)
    compositor = Compositor(layout=layout, characters=plan.cast, set_name=plan.set_name)
    director = SceneDirector.for_compositor(compositor)
    names = [spec.name for spec in plan.cast]
    mouths = [timeline.mouth[name] for name in names]
    speaking = np.stack([timeline.speaking(name) for name in names], axis=1)
    neural = _neural_painter(compositor, names, config) if config.backend == "neural" else None
    painter = neural[0] if neural is not None else None
    drives = [neural[1](m) for m in mouths] if neural is not None else []

    def frame(k: int, out: np.ndarray | None = None) -> np.ndarray:
        with timer.stage("render"):
            poses = director.poses(k, mouths=[m[k] for m in mouths], speaking=speaking[k])
        with timer.stage("compose"):
            img = compositor.compose(poses, out=out)
        if painter is None:
            return img
        with timer.stage("neural"):
            return painter.paint(img, [d[min(k, d.shape[0] - 1)] for d in drives])

    return frame


def direct(timeline: SceneTimeline, plan: ScenePlan, *, config: RenderConfig, timer: StageTimer) -> DirectedScene:
    """The scene's cut and camera (its rigs drawn now); ``ScriptError`` for a bad shot note."""
    assert plan.scene is not None
    with timer.stage("director"):
        try:
            return DirectedScene(
                scene=plan.scene,
                timeline=timeline,
                specs=plan.cast,
                marks=dict(plan.marks),
                set_name=plan.set_name,
                width_px=config.width_px,
                height_px=config.height_px,
            )
        except ShotError as exc:
            raise ScriptError(exc.reason, line=exc.line) from exc


def shot_plan(timeline: SceneTimeline, plan: ScenePlan, *, config: RenderConfig) -> ShotPlan | None:
    """The cut of a directed scene (None without the director), without drawing anything."""
    if not (config.director and config.backend == "rig" and plan.scene is not None):
        return None
    from avatar.blocking import beats_of, line_frames_of, read_direction
    from avatar.shots import plan_shots

    frames = line_frames_of(timeline)
    names = [s.name for s in plan.cast]
    walk_ons = [n for n in names if n not in {line.speaker for line in plan.scene.lines}]
    try:
        direction = read_direction(plan.scene, frames, extra_names=walk_ons)
        marks = dict(plan.marks)
        return plan_shots(
            beats_of(plan.scene, timeline, frames, direction.names),
            n_frames=timeline.n_frames, cues=direction.cues, notes=direction.notes,
            marks={n: marks[n] for n in direction.names},
        )
    except ShotError as exc:
        raise ScriptError(exc.reason, line=exc.line) from exc


def write_mp4(
    timelines: Sequence[tuple[SceneTimeline, FrameSource]],
    out: Path,
    *,
    config: RenderConfig,
    timer: StageTimer,
    progress: bool,
) -> tuple[int, int]:
    """Encode scenes back to back (their audio on a worker thread beside the video); returns
    (frames, samples) written."""
    from tqdm import tqdm

    total = sum(t.n_frames for t, _ in timelines)
    encoding = VideoEncoding(width_px=config.width_px, height_px=config.height_px, preset=config.encoding_preset)
    with Mp4Writer(out, encoding=encoding) as writer, tqdm(
        total=total, unit="frame", disable=not progress, desc=out.name
    ) as bar:
        writer.write_audio_track(np.concatenate([timeline.audio for timeline, _ in timelines]))
        frame, pixels = writer.frame_buffer()
        for timeline, frame_at in timelines:
            for k in range(timeline.n_frames):
                frame_at(k, pixels)
                with timer.stage("encode"):
                    writer.write_frame(frame)
                bar.update(1)
        return writer.frames_written, writer.samples_written


def render_script(
    script: Script,
    out: Path,
    *,
    config: RenderConfig | None = None,
    cast: Cast | None = None,
    speech: SpeechEngine | None = None,
    timer: StageTimer | None = None,
    progress: bool = False,
) -> RenderResult:
    """Render every scene of ``script`` into ``out`` (MP4) with ``.srt`` and ``.vtt`` beside it."""
    config = config or RenderConfig()
    cast = cast or Cast.builtin()
    speech = speech or offline_speech("espeak" if config.voice_backend == "espeak" else None)
    timer = timer or NullTimer()
    check_writable(out)
    plans = plan_scenes(script, cast, config)
    if not plans:
        raise ScriptError("the script has no scene with dialogue")
    scenes = []
    events: list[LineEvent] = []
    shots: list[tuple[int, Shot]] = []
    offset = 0
    with spoken_ahead(plans, speech, config=config) as made:
        for plan in plans:
            timeline = perform(plan, speech, config=config, timer=timer, spoken=made)
            scenes.append((timeline, render_frames(timeline, plan, config=config, timer=timer)))
            cut = shot_plan(timeline, plan, config=config)
            shots += [(offset // SAMPLES_PER_FRAME, shot) for shot in (cut.shots if cut else ())]
            events += [
                LineEvent(len(events) + i, e.speaker, e.text, e.start_sample + offset, e.end_sample + offset, e.source_line)
                for i, e in enumerate(timeline.events)
            ]
            offset += timeline.n_frames * SAMPLES_PER_FRAME
    n_frames, n_samples = write_mp4(scenes, out, config=config, timer=timer, progress=progress)
    srt, vtt = write_subtitles(events, out)
    return RenderResult(
        out, srt, vtt, n_frames, n_samples, tuple(events), tuple(shots), tuple(likely_aliases(script.characters))
    )
