"""Scripts rendered straight into the store: each script scene a take, with the series' own cast."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import av

from lipsync.script import Script, ScriptError
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLES_PER_FRAME
from lipsync.timeline import SceneTimeline
from stream.record.offline import (
    RenderConfig,
    ScenePlan,
    offline_speech,
    perform,
    plan_scenes,
    render_frames,
    shot_plan,
    spoken_ahead,
)
from stream.record.stages import NullTimer, StageTimer
from stream.store import Store, Take
from stream.store.cast import keep_characters, series_cast
from stream.store.errors import BadInputError
from stream.store.segments import SegmentWriter


def _scene_label(plan: ScenePlan, number: int) -> str:
    label = (plan.heading or f"Scene {number}").replace("/", "-").replace("\\", "-")
    return label[:200]


def _set_id(store: Store, series_id: str, backdrop: str) -> str:
    for record in store.catalog.list_sets(series_id):
        if record.backdrop == backdrop:
            return record.id
    return store.catalog.add_set(series_id, backdrop, backdrop).id


def write_take(
    writer: SegmentWriter, performed: Sequence[tuple[ScenePlan, SceneTimeline]], *, config: RenderConfig,
    timer: StageTimer, on_frame: Callable[[], None] | None = None,
) -> Take:
    """Draw performed scenes back to back into ``writer``'s take, their lines and the director's
    shots with them, and finish it.

    The one way a rendered take is written: ``record_script`` and the batch workers
    (``stream.batch``) both call it, so the same scene gives the same frames and samples.
    """
    slot = 0
    for plan, timeline in performed:
        frame_at = render_frames(timeline, plan, config=config, timer=timer)
        base = slot * SAMPLES_PER_FRAME
        cut = shot_plan(timeline, plan, config=config)
        for shot in cut.shots if cut is not None else ():
            writer.shot_changed(slot + shot.start_frame, shot.kind, shot.subjects)
        for ev in timeline.events:
            line_id = f"R{slot}.{ev.index}"
            writer.line_started(line_id, ev.speaker, ev.text, base + ev.start_sample)
            writer.line_ended(line_id, base + ev.end_sample, interrupted=False)
        for k in range(timeline.n_frames):
            writer.video(slot + k, av.VideoFrame.from_ndarray(frame_at(k, None), format="rgb24"))
            writer.audio(base + k * SAMPLES_PER_FRAME, timeline.audio[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME])
            if on_frame is not None:
                on_frame()
        slot += timeline.n_frames
    return writer.finish(slot)


def record_script(
    store: Store, script: Script, *, episode_id: str | None = None, scene_id: str | None = None,
    config: RenderConfig | None = None, speech: SpeechEngine | None = None, progress: bool = False,
) -> list[Take]:
    """Render ``script`` as takes, with the series' own cast (new speakers join the series).

    With ``episode_id`` every script scene becomes a new scene at the end of that episode, its
    take chosen; with ``scene_id`` the whole script becomes one new take of that scene. A render
    that fails leaves no take behind.
    """
    from tqdm import tqdm

    if (episode_id is None) == (scene_id is None):
        raise BadInputError("bad_target", "render into an episode or into a scene: give exactly one of them")
    config = config or RenderConfig()
    catalog = store.catalog
    if scene_id is not None:
        scene = catalog.get_scene(scene_id)
        series_id = catalog.scene_series_id(scene_id)
        if scene.set_id is not None:
            config = replace(config, set_name=catalog.get_set(scene.set_id).backdrop)
    else:
        assert episode_id is not None
        series_id = catalog.get_episode(episode_id).series_id
    plans = plan_scenes(script, series_cast(catalog, series_id, language=config.language), config)
    if not plans:
        raise ScriptError("the script has no scene with dialogue")
    keep_characters(catalog, series_id, {s.name: s for p in plans for s in p.cast}.values())
    speech = speech or offline_speech("espeak" if config.voice_backend == "espeak" else None)
    timer = NullTimer()
    with spoken_ahead(plans, speech, config=config) as made:
        performed = [(plan, perform(plan, speech, config=config, timer=timer, spoken=made)) for plan in plans]
    groups = [[p] for p in performed] if episode_id is not None else [performed]
    takes = []
    with tqdm(total=sum(t.n_frames for _, t in performed), unit="frame", disable=not progress) as bar:
        for group in groups:
            target = scene_id
            if target is None:
                assert episode_id is not None
                first = group[0][0]
                number = len(catalog.list_scenes(episode_id)) + 1
                target = catalog.create_scene(
                    episode_id, _scene_label(first, number), set_id=_set_id(store, series_id, first.set_name)
                ).id
            take = store.takes.begin(
                target, None, source="render", width_px=config.width_px, height_px=config.height_px,
                cast=list(dict.fromkeys(s.name for p, _ in group for s in p.cast)), set_name=group[0][0].set_name,
            )
            writer = SegmentWriter(store, take)
            try:
                take = write_take(writer, group, config=config, timer=timer, on_frame=lambda: bar.update(1))
            except BaseException:
                writer.abort(note="render failed")
                store.delete("take", take.id)
                raise
            if episode_id is not None:
                catalog.update_scene(target, chosen_take_id=take.id)
            takes.append(take)
    return takes
