"""A video character: the person of a video-built model, kept as a photo character whose mouth
is the model's (``talkie avatar character``, and the last step of ``talkie avatar build --video``).

The photo is one frame of the person's video: among the model's clip reference frames (each its
clip's most closed mouth), the most frontal one with the mouth shut. It is kept in the data
directory by id like any photo character (``photos/<id>/``: the frame, its landmarks, a matte,
the name and the voice) with the model's files copied in (avatar/photo/folder.py), so scenes,
series casts, live sessions and the REST API take it as they take a photo character.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from avatar.neural.video_mouth import load_video_model
from avatar.neural.video_track import shape_of
from avatar.photo.folder import VideoModelRef
from avatar.photo.image import PhotoError
from avatar.photo.landmarks import FaceLandmarks, choose_face, find_faces
from avatar.photo.puppet import PhotoPuppet
from lipsync.neural.video_io import iter_frames, open_source
from lipsync.voices import VoiceSpec
from stream.store.photos import PhotoLibrary

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 16  # reference frames looked at (each a seek and a landmark pass)
CHEEKS = (234, 454)


def frontal_score(face: FaceLandmarks) -> float:
    """How far from a frontal, closed-mouth face (0 is best): the nose's offset from the middle
    of the cheeks and the eye line's tilt, in face widths, plus the lips' opening in face heights."""
    p = face.points
    mid = (p[CHEEKS[0]] + p[CHEEKS[1]]) / 2
    width = max(face.width_px, 1e-6)
    yaw = abs(float(p[2, 0] - mid[0])) / width
    eyes = p[263] - p[33]
    roll = abs(float(np.arctan2(eyes[1], eyes[0])))
    return yaw + 0.5 * roll + shape_of(face)[0]


def pick_reference(video: Path, frames: list[int]) -> tuple[int, int, np.ndarray, FaceLandmarks]:
    """(frame index, clip index, RGB, landmarks) of the best of ``frames`` (one per clip, in
    clip order) of ``video``."""
    source = open_source(video, require_audio=False, min_seconds=0)
    best: tuple[float, int, int, np.ndarray, FaceLandmarks] | None = None
    for clip, k in list(enumerate(frames))[:MAX_CANDIDATES]:
        if not 0 <= k < source.n_frames:
            continue
        rgb = next(iter_frames(source, start=k, stop=k + 1), None)
        if rgb is None:
            continue
        faces = find_faces(rgb)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.width_px)  # the talker: the largest face
        score = frontal_score(face)
        if best is None or score < best[0]:
            best = (score, k, clip, rgb.copy(), face)
    if best is None:
        raise PhotoError(
            "no_face", f"{video}: no face found in the model's reference frames {frames[:MAX_CANDIDATES]}; "
            "is this the video the model was built on?"
        )
    _, k, clip, rgb, face = best
    return k, clip, rgb, face


def video_character(
    model: str | Path, *, video: str | Path, name: str, data_dir: Path, voice: VoiceSpec | None = None
) -> dict[str, Any]:
    """Keep the person of ``model`` (built on ``video``) as a character in ``data_dir``; a
    summary with its id and folder (blocking: a few landmark passes, the matte, file copies)."""
    started = time.perf_counter()
    model = Path(model)
    _, extra = load_video_model(model)
    frames = [int(k) for k in extra.get("reference_frames") or [0]]
    k, clip, rgb, face = pick_reference(Path(video), frames)
    PhotoPuppet(rgb, face)  # its geometry must hold before it is kept
    choose_face([face], face=None, label=f"{video} frame {k}")  # the size check photos get
    library = PhotoLibrary(data_dir)
    ref = VideoModelRef(model, clip=clip, frame=k)
    ident = library.add(rgb, face, name=name, voice=voice or VoiceSpec(), face=1, video=ref)
    folder = library.folder(ident)
    files = sorted(p.name for p in folder.iterdir())
    logger.info("video character %s kept as %s (frame %d of %s)", name, ident, k, video)
    return {
        "photo_id": ident, "folder": str(folder), "name": name.strip().upper(), "frame": k, "clip": clip,
        "int8_package": any(f.endswith(".int8.cpu.pt2") for f in files), "files": files,
        "build_s": round(time.perf_counter() - started, 3),
    }


def finish_video_build(
    model: Path, *, video: Path, name: str, data_dir: Path, voice: VoiceSpec | None = None, compile_int8: bool = True,
) -> dict[str, Any]:
    """After ``talkie avatar build --video``: the int8 ahead-of-time package beside the model
    (minutes, unless ``compile_int8`` is off), then the character kept in ``data_dir``."""
    compiled = None
    if compile_int8:
        from stream.tools.avatar_animate import compile_model

        compiled = compile_model(model, precision="int8")
    summary = video_character(model, video=video, name=name, data_dir=data_dir, voice=voice)
    return {**summary, "compiled": compiled}


def character_command(args: Any) -> int:
    """``talkie avatar character --model M --video V [--name N] [--voice LANG+VARIANT] [--data-dir D]``."""
    from stream.tools.avatar_photo import parse_voice

    video = Path(args.video)
    summary = video_character(
        Path(args.model), video=video, name=args.name or video.stem, data_dir=Path(args.data_dir),
        voice=parse_voice(args.voice),
    )
    print(json.dumps(summary, indent=2))
    return 0
