"""Stitching: scenes play their takes back to back on one continuous timeline.

Every clip starts on a whole frame, so clip i's frame j is timeline frame ``start_frame + j``
and its sample s is timeline sample ``start_frame * 1920 + s``: pts stay continuous and audio
is sample-exact at every join, however many takes. A hard cut puts the next clip right after the
last frame; a crossfade of F frames overlaps the two clips by F frames (the timeline is F frames
shorter), mixing their pictures and ramping their audio linearly, sample by sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from lipsync.timebase import FRAME_MS, SAMPLES_PER_FRAME
from lipsync.timeline import LineEvent
from stream.store import Scene, Store, Take, TakeShot
from stream.store.errors import ConflictError
from stream.store.segments import read_take


class NothingToExportError(ConflictError):
    def __init__(self, what: str) -> None:
        super().__init__("nothing_to_export", f"{what} has no recorded take to play; record or render a take first")


@dataclass(frozen=True, slots=True)
class Clip:
    """One take placed on the timeline."""

    scene: Scene
    take: Take
    start_frame: int
    fade_in_frames: int  # overlap with the previous clip (0: a hard cut)

    @property
    def frames(self) -> int:
        return self.take.frames

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.take.frames


@dataclass(frozen=True, slots=True)
class Timeline:
    title: str
    clips: tuple[Clip, ...]
    width_px: int
    height_px: int
    events: tuple[LineEvent, ...]  # line events in timeline samples
    clip_events: tuple[tuple[LineEvent, ...], ...]  # per clip, in take samples
    skipped_scenes: tuple[Scene, ...]  # scenes with no usable take
    clip_shots: tuple[tuple[TakeShot, ...], ...] = ()  # per clip, the director's cut in take frames

    @property
    def n_frames(self) -> int:
        return self.clips[-1].end_frame if self.clips else 0

    @property
    def n_samples(self) -> int:
        return self.n_frames * SAMPLES_PER_FRAME


def plan_scenes(store: Store, scenes: list[Scene], *, title: str) -> Timeline:
    """The timeline of ``scenes`` in order, each playing its chosen (else latest) take."""
    clips: list[Clip] = []
    skipped: list[Scene] = []
    clip_events: list[tuple[LineEvent, ...]] = []
    clip_shots: list[tuple[TakeShot, ...]] = []
    events: list[LineEvent] = []
    for scene in scenes:
        take = store.takes.playable(scene.id, scene.chosen_take_id)
        if take is None:
            skipped.append(scene)
            continue
        fade = 0
        if clips and scene.transition_ms:
            # A crossfade cannot be longer than half of either clip it joins.
            fade = min(scene.transition_ms // FRAME_MS, clips[-1].frames // 2, take.frames // 2)
        start = clips[-1].end_frame - fade if clips else 0
        clips.append(Clip(scene, take, start, fade))
        own = tuple(
            LineEvent(i, ln.speaker, ln.text, ln.start_sample, ln.end_sample or take.samples)
            for i, ln in enumerate(store.takes.lines(take.id))
        )
        clip_events.append(own)
        clip_shots.append(tuple(store.takes.shots(take.id)))
        base = start * SAMPLES_PER_FRAME
        events += [
            LineEvent(len(events) + i, e.speaker, e.text, base + e.start_sample, base + e.end_sample)
            for i, e in enumerate(own)
        ]
    if not clips:
        raise NothingToExportError(title)
    first = clips[0].take
    return Timeline(
        title, tuple(clips), first.width_px, first.height_px, tuple(events), tuple(clip_events), tuple(skipped),
        tuple(clip_shots),
    )


def plan_episode(store: Store, episode_id: str) -> Timeline:
    episode = store.catalog.get_episode(episode_id)
    return plan_scenes(store, store.catalog.list_scenes(episode_id), title=f"episode {episode.name!r}")


def plan_scene(store: Store, scene_id: str) -> Timeline:
    scene = store.catalog.get_scene(scene_id)
    return plan_scenes(store, [scene], title=f"scene {scene.name!r}")


def _fit(frame: av.VideoFrame, width_px: int, height_px: int) -> av.VideoFrame:
    if frame.width == width_px and frame.height == height_px and frame.format.name == "yuv420p":
        return frame
    return frame.reformat(width=width_px, height=height_px, format="yuv420p")


def _mix(a: av.VideoFrame, b: av.VideoFrame, weight_b: float) -> av.VideoFrame:
    pa = a.to_ndarray().astype(np.float32)
    pb = b.to_ndarray().astype(np.float32)
    mixed = np.rint(pa + (pb - pa) * weight_b).astype(np.uint8)
    return av.VideoFrame.from_ndarray(mixed, format="yuv420p")


def _ramp(a: np.ndarray, b: np.ndarray, j: int, fade_frames: int) -> np.ndarray:
    """Frame j of a linear audio crossfade from ``a`` to ``b`` over ``fade_frames`` frames."""
    total = fade_frames * SAMPLES_PER_FRAME
    n = np.arange(j * SAMPLES_PER_FRAME, (j + 1) * SAMPLES_PER_FRAME, dtype=np.float64)
    gain = (n + 0.5) / total
    return np.rint(a.astype(np.float64) * (1.0 - gain) + b.astype(np.float64) * gain).astype(np.int16)


def iter_timeline(store: Store, timeline: Timeline) -> Iterator[tuple[av.VideoFrame, np.ndarray]]:
    """Every timeline frame in order as (yuv420p picture at the timeline's size, 1920 samples)."""
    w, h = timeline.width_px, timeline.height_px
    tail: list[tuple[av.VideoFrame, np.ndarray]] = []
    clips = timeline.clips
    for i, clip in enumerate(clips):
        fade_out = clips[i + 1].fade_in_frames if i + 1 < len(clips) else 0
        held = tail
        tail = []
        for j, (frame, pcm) in enumerate(read_take(store, clip.take)):
            frame = _fit(frame, w, h)
            if j < clip.fade_in_frames:
                before, before_pcm = held[j]
                yield _mix(before, frame, (j + 1) / (clip.fade_in_frames + 1)), _ramp(before_pcm, pcm, j, clip.fade_in_frames)
            elif j >= clip.frames - fade_out:
                tail.append((frame, pcm))
            else:
                yield frame, pcm
