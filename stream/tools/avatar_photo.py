"""``talkie avatar build --photo`` and ``talkie avatar animate --photo``: a person from one photo.

Build: the photo is read and checked, its face found (``--face N`` when there are several), and
the photo, its landmarks, the name and the voice kept in the data directory by id
(``photos/<id>/``, ``stream.store.photos``). No training: seconds, most of it the landmark model.

Animate: the photo says any speech file. The mouth follows the sound through the face drive
(``lipsync.lip_drive``): the voice gate of the live estimator, the shape network's viseme and a
network trained to open the lips as real lips open for each sound (not as wide as the voice is
loud, which suits a drawn rig but not a real face); blinks, breath and head motion come from the
idle-motion model of a character of that name; H.264 + AAC on the one clock.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from avatar.motion import MotionModel
from avatar.photo.character import HEAD_MOTION_SCALE, PhotoFrames, locate_face
from avatar.photo.image import read_photo
from avatar.photo.landmarks import choose_face, find_faces
from avatar.photo.puppet import PhotoPuppet
from avatar.spec import Cast, CharacterSpec
from lipsync.lip_drive import LipDrive, lip_mouths
from lipsync.neural.video_io import read_audio
from lipsync.timebase import SAMPLES_PER_FRAME
from lipsync.voices import VoiceSpec, name_digest
from stream.media.mp4 import Mp4Writer, VideoEncoding
from stream.store.photos import PhotoLibrary

logger = logging.getLogger(__name__)


def build_from_photo(
    photo: str | Path, *, name: str, data_dir: Path, face: int | None = None, voice: VoiceSpec | None = None
) -> dict[str, Any]:
    """Keep a photo character in ``data_dir``; a summary (id, folder, the face, seconds)."""
    started = time.perf_counter()
    rgb = read_photo(photo)
    faces = find_faces(rgb)
    chosen = choose_face(faces, face=face, label=f"photo {photo}")
    PhotoPuppet(rgb, chosen)  # its geometry must hold before it is kept
    ident = PhotoLibrary(data_dir).add(rgb, chosen, name=name, voice=voice or VoiceSpec(), face=face or 1)
    return {
        "photo_id": ident, "folder": str(PhotoLibrary(data_dir).folder(ident)), "name": name.strip().upper(),
        "faces_found": len(faces), "face": face or 1, "face_width_px": round(chosen.width_px, 1),
        "build_s": round(time.perf_counter() - started, 3),
    }


def audio_mouths(pcm: np.ndarray, drive: LipDrive) -> list[np.ndarray | None]:
    """Per 25 fps frame, the face drive's viseme weights (None while the voice gate is shut)."""
    return lip_mouths(pcm, drive)


class PhotoAnimator:
    """A photo's frames for a sequence of mouth weights, with idle motion (blinks, breath, head)."""

    def __init__(self, rgb: np.ndarray, *, face: int | None = None, name: str = "PHOTO", motion: bool = True) -> None:
        landmarks = locate_face(rgb, face=face, label="the photo")
        self.frames = PhotoFrames(PhotoPuppet(rgb, landmarks))
        seed = int.from_bytes(name_digest(name)[16:24], "big")
        # Motion is scaled as for a rig sprite about 2.2 faces tall.
        self.motion = MotionModel(CharacterSpec(name=name, seed=seed), height_px=max(24, round(2.2 * landmarks.height_px)))
        self.with_motion = motion

    def frame(self, k: int, weights: np.ndarray | None) -> np.ndarray:
        pose = self.motion.pose_at(k, mouth_weights=weights, speaking=weights is not None)
        if not self.with_motion:
            pose = replace(pose, head_dx_px=0.0, head_dy_px=0.0, breath=0.0, eyes_open=1.0)
        return self.frames.frame(pose, head_scale=HEAD_MOTION_SCALE, rise_px=1.0)


def animate_photo(
    photo: str | Path, audio: str | Path, out_path: str | Path, *, face: int | None = None,
    preset: str = "veryfast", drive: LipDrive | None = None,
) -> dict[str, Any]:
    """Write ``out_path``: the photo's person saying ``audio`` (H.264 + AAC); a summary."""
    started = time.perf_counter()
    rgb = read_photo(photo)
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2  # H.264 4:2:0 needs even sides
    rgb = np.ascontiguousarray(rgb[:h, :w])
    animator = PhotoAnimator(rgb, face=face, name=Path(photo).stem)
    pcm = read_audio(audio)
    weights = audio_mouths(pcm, drive or LipDrive.load())
    encoding = VideoEncoding(width_px=w, height_px=h, preset=preset)
    with Mp4Writer(out_path, encoding=encoding) as writer:
        for k, wk in enumerate(weights):
            writer.write_video(animator.frame(k, wk))
            writer.write_audio(pcm[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME])
        n_frames = writer.frames_written
    wall = time.perf_counter() - started
    return {
        "path": str(out_path), "frames": n_frames, "seconds": round(n_frames / 25, 3),
        "speaking_frames": sum(wk is not None for wk in weights), "wall_s": round(wall, 2),
    }


def parse_voice(text: str | None) -> VoiceSpec:
    """``LANG[+VARIANT]`` (``en-us+f2``, ``+m3``, ``fr``) as a checked voice."""
    from stream.store.cast import spec_from_json
    from stream.store.errors import BadInputError

    if not text:
        return VoiceSpec()
    language, _, variant = text.partition("+")
    voice: dict[str, Any] = {}
    if language:
        voice["language"] = language
    if variant:
        voice["variant"] = variant
    try:
        return spec_from_json("VOICE", {"voice": voice}).voice
    except BadInputError as exc:
        raise ValueError(f"--voice {text!r}: {exc}") from None


def build_photo_command(args: Any) -> int:
    """``talkie avatar build --photo PATH --name NAME [--face N] [--voice LANG+VARIANT]``."""
    if args.characters or args.all or args.video:
        raise ValueError("a --photo build makes one character from the photo; name no characters and no --video")
    if not args.name:
        raise ValueError("give the photo character a name: --name ME")
    summary = build_from_photo(
        args.photo, name=args.name, data_dir=Path(args.data_dir), face=args.face, voice=parse_voice(args.voice)
    )
    print(json.dumps(summary, indent=2))
    return 0


def animate_photo_command(args: Any) -> int:
    """``talkie avatar animate --photo PHOTO --audio AUDIO -o OUT.mp4 [--face N]``."""
    if args.model or args.video:
        raise ValueError("--photo animates a photo; leave out --model and --video")
    summary = animate_photo(args.photo, args.audio, args.output, face=args.face, preset=args.preset)
    print(json.dumps(summary, indent=2))
    return 0


def cast_with(folders: list[str], *, data_dir: Path, into: str | None = None) -> Cast:
    """The built-in cast with characters from ``folders`` (PNG art or photo folders).

    With ``into`` (an episode or scene id of the store in ``data_dir``) they also join that
    series: a photo from elsewhere is first kept in the data directory, so the series holds it by
    id, and a name the series already has must look and sound the same (``cast_mismatch``).
    """
    from avatar.custom import art_spec
    from avatar.photo.character import is_photo_folder, load_photo_folder, photo_spec
    from stream.store import Store
    from stream.store.cast import keep_characters

    cast = Cast.builtin()
    specs = []
    for folder in folders:
        if into is not None and is_photo_folder(folder):
            photo = load_photo_folder(folder)
            ident = PhotoLibrary(data_dir).keep(photo)  # a video character's model is kept with its photo
            spec = photo_spec(PhotoLibrary(data_dir).folder(ident))
        else:
            spec = art_spec(Path(folder))
        cast.add(spec)
        specs.append(spec)
    if into is not None:
        store = Store.open(data_dir)
        try:
            catalog = store.catalog
            series_id = catalog.get_episode(into).series_id if into.startswith("ep_") else catalog.scene_series_id(into)
            keep_characters(catalog, series_id, specs)
        finally:
            store.close()
    return cast
