"""``talkie bench video-character --character FOLDER``: what a video character's mouth costs.

On one thread (torch, OpenCV): ms per new mouth (a mouth key not drawn before: crop, model,
paste) with the int8 ahead-of-time package and with the eager float model, over every single
viseme and blends between them, at the card size of a two-character 512x512 scene; then ms per
25 fps frame of that scene (the video character beside MAYA) while the video character says a
line driven by the face drive: the first pass (every new mouth is drawn then) and the steady state
(the same line said again later: its mouths cached, head poses and blinks new), next to the same
person drawn by the photo puppet.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avatar.neural.video_mouth import CardMouth
from avatar.photo.character import (
    PhotoCharacter,
    PhotoFolder,
    load_photo_folder,
    mouth_key,
    mouth_weights,
    photo_spec,
)
from avatar.pose import Pose, pose_mouth_from_weights
from avatar.scene import Compositor, SceneLayout
from avatar.spec import Cast, CharacterSpec
from lipsync.speech import SpeechEngine
from lipsync.visemes import N_VISEMES
from lipsync.voices import VoiceSpec
from stream.tools.speech_shapes import speech_mouths

LINE = "Where were you last night? I waited for hours at the harbour, watching the boats come in."


def _keys() -> list[tuple[int, int, int]]:
    singles = [(v, v, 0) for v in range(1, N_VISEMES)]
    blends = [(a, b, q) for a in range(1, N_VISEMES) for b in range(a + 1, N_VISEMES) for q in (4, 8, 12)]
    return singles + blends[::9]


def _key_ms(character: PhotoCharacter, *, int8: bool) -> dict[str, Any]:
    frames = character.frames
    assert frames.mouth is not None
    old = frames.mouth
    mouth = CardMouth(
        old.model_path, card=old.card, face=frames.puppet.face, box=old.box, clip=old.clip, int8=int8
    )
    keys = _keys()
    mouth.patch(mouth_weights(keys[0]))  # warm up: the first call sets up the painter
    times = []
    for key in keys:
        started = time.perf_counter()
        mouth.patch(mouth_weights(key))
        times.append((time.perf_counter() - started) * 1000)
    return {
        "runner": type(mouth.runner).__name__, "keys": len(keys),
        "ms_median": round(statistics.median(times), 2), "ms_p90": round(float(np.percentile(times, 90)), 2),
    }


def _scene_ms(person: CharacterSpec | PhotoFolder, *, weights: list[np.ndarray | None], width_px: int, height_px: int) -> dict[str, Any]:
    """ms per frame of MAYA and ``person`` (a spec, or a photo folder drawn as loaded)."""
    cast = Cast.builtin()
    layout = SceneLayout.for_count(2, width_px=width_px, height_px=height_px)
    second: CharacterSpec | PhotoCharacter = person if isinstance(person, CharacterSpec) else PhotoCharacter(
        photo_spec(person.folder), height_px=layout.slots[1].height_px, photo=person,
    )
    comp = Compositor(layout=layout, characters=[cast.resolve("MAYA"), second], set_name="kitchen")
    maya, speaker = comp.motion_models()
    out: dict[str, Any] = {}
    for label, start in (("first_pass", 0), ("steady", len(weights))):
        times = []
        for j, w in enumerate(weights):  # steady: the line again, later (other head poses, blinks)
            k = start + j
            poses = [maya.pose_at(k), speaker.pose_at(k, mouth_weights=w, speaking=w is not None)]
            started = time.perf_counter()
            comp.compose(poses)
            times.append((time.perf_counter() - started) * 1000)
        out[label] = {"ms_mean": round(statistics.fmean(times), 2), "ms_p95": round(float(np.percentile(times, 95)), 2),
                      "ms_max": round(max(times), 1)}
    out["mouths_cached"] = comp.rigs[1].cache_info()["patches"]
    return out


def bench_video_character(folder: Path, *, width_px: int = 512, height_px: int = 512) -> dict[str, Any]:
    """The figures (see the module doc) for the video character in ``folder``."""
    import cv2

    photo = load_photo_folder(folder)
    if photo.video is None:
        raise ValueError(f"{folder} is a photo character without a video model; make one with `talkie avatar character`")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        spec = photo_spec(folder)
        comp = Compositor(layout=SceneLayout.for_count(2, width_px=width_px, height_px=height_px),
                          characters=[Cast.builtin().resolve("MAYA"), spec])
        character = comp.rigs[1]
        assert isinstance(character, PhotoCharacter)
        pcm = SpeechEngine().say(LINE, VoiceSpec()).pcm
        weights = speech_mouths()(pcm)
        report: dict[str, Any] = {
            "folder": str(folder), "card_px": [character.width_px, character.height_px],
            "region_side_px": character.frames.mouth.region.side if character.frames.mouth else None,
            "threads": 1, "line_frames": len(weights),
            "distinct_mouths_in_line": len({mouth_key(Pose(mouth=pose_mouth_from_weights(w))) for w in weights if w is not None}),
            "new_mouth_ms_int8": _key_ms(character, int8=True),
            "new_mouth_ms_float": _key_ms(character, int8=False),
            "scene_frame_ms_video_character": _scene_ms(spec, weights=weights, width_px=width_px, height_px=height_px),
        }
        report["scene_frame_ms_photo_puppet"] = _scene_ms(  # the same person, the puppet's mouth
            dataclasses.replace(photo, video=None), weights=weights, width_px=width_px, height_px=height_px,
        )
        return report
    finally:
        torch.set_num_threads(threads)
