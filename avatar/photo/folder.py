"""A photo character's folder: one photo, its landmarks and matte, a name and a voice (and, for
a video character, the person's video model), written and read back with every part checked.

A folder (``talkie avatar build --photo``, or the store's ``photos/<id>/``) holds::

    character.json   {"kind": "photo", "name": "ME", "voice": {...}, "photo": "photo.png", "face": 1}
    photo.png        the photo, upright RGB
    landmarks.npy    (478, 2) float32: the chosen face's landmarks in photo pixels
    matte.png        how much each pixel is the person (selfie segmentation, 8-bit)

A video character (``talkie avatar character``, the end of ``talkie avatar build --video``) is a
photo folder whose photo is a frame of the person's video (closed mouth, frontal) and which also
holds their video model::

    character.json   ... "video_model": {"file": "mouth.safetensors", "clip": 0, "frame": 72}
    mouth.safetensors            the shape-driven student (avatar/neural/video_mouth.py)
    mouth.int8.cpu.pt2 (+.json)  its int8 ahead-of-time package, when one was made
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avatar.photo.image import PhotoError, read_photo
from avatar.photo.landmarks import N_POINTS, FaceLandmarks, choose_face, find_faces, segment_person
from avatar.spec import CharacterSpec
from lipsync.voices import VoiceSpec, name_digest

MANIFEST = "character.json"
PHOTO_FILE = "photo.png"
LANDMARKS_FILE = "landmarks.npy"
MATTE_FILE = "matte.png"
MODEL_FILE = "mouth.safetensors"


@dataclass(frozen=True, slots=True)
class VideoModelRef:
    """A person's video model (``talkie avatar build --video``) and which of its clips (and
    frame of the video) the photo is: that clip's calibration maps mouths to this person."""

    path: Path
    clip: int | None = None
    frame: int | None = None

    def files(self) -> list[tuple[Path, str]]:
        """(source, name in a character folder) of the weights and, when present, the int8 package."""
        from accel.aot import artifact_path

        out = [(self.path, MODEL_FILE)]
        package = artifact_path(self.path, "int8")
        if package.is_file() and Path(f"{package}.json").is_file():
            name = artifact_path(MODEL_FILE, "int8").name
            out += [(package, name), (Path(f"{package}.json"), f"{name}.json")]
        return out


@dataclass(frozen=True, slots=True)
class PhotoFolder:
    folder: Path
    name: str
    voice: VoiceSpec
    face: int
    rgb: np.ndarray
    landmarks: FaceLandmarks
    matte: np.ndarray | None  # (H, W) float32 0..1, or None: the whole photo is the character
    video: VideoModelRef | None = None  # a video character: its mouth is the model's


def is_photo_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is a photo character (its manifest says ``"kind": "photo"``)."""
    manifest = Path(folder) / MANIFEST
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == "photo"


def locate_face(rgb: np.ndarray, *, face: int | None, label: str) -> FaceLandmarks:
    """The landmarks of the chosen face (blocking: runs the landmark model)."""
    return choose_face(find_faces(rgb), face=face, label=label)


def write_photo_folder(
    folder: Path, rgb: np.ndarray, landmarks: FaceLandmarks, *, name: str, voice: VoiceSpec, face: int,
    matte: np.ndarray | None = None, video: VideoModelRef | None = None,
) -> Path:
    """Write a photo character folder (the photo re-encoded as PNG: no metadata kept); the matte
    is found now unless given (blocking: the segmentation model). With ``video`` the model's
    files are copied in: a video character."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if video is not None:
        for source, file in video.files():
            if source.resolve() != (folder / file).resolve():
                shutil.copyfile(source, folder / file)
    Image.fromarray(rgb, "RGB").save(folder / PHOTO_FILE)
    if matte is None:
        matte = segment_person(rgb)
    Image.fromarray(np.clip(np.rint(matte * 255.0), 0, 255).astype(np.uint8), "L").save(folder / MATTE_FILE)
    np.save(folder / LANDMARKS_FILE, landmarks.points.astype(np.float32))
    meta: dict[str, object] = {"kind": "photo", "name": name.strip().upper(), "voice": _voice_json(voice), "photo": PHOTO_FILE, "face": face}
    if video is not None:
        meta["video_model"] = {"file": MODEL_FILE, "clip": video.clip, "frame": video.frame}
    (folder / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder


def _voice_json(voice: VoiceSpec) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(voice)


def load_photo_folder(folder: str | Path) -> PhotoFolder:
    """Read and check a photo character folder; ``PhotoError`` names what is missing."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PhotoError("bad_photo_folder", f"{manifest} cannot be read: {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != "photo":
        raise PhotoError("bad_photo_folder", f"{manifest} is not a photo character's manifest")
    name = meta.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PhotoError("bad_photo_folder", f"{manifest}: 'name' must be a non-empty string")
    try:
        voice = VoiceSpec(**(meta.get("voice") or {}))
    except TypeError as exc:
        raise PhotoError("bad_photo_folder", f"{manifest}: bad 'voice': {exc}") from None
    rgb = read_photo(folder / PHOTO_FILE)
    try:
        points = np.load(folder / LANDMARKS_FILE, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PhotoError("bad_photo_folder", f"{folder / LANDMARKS_FILE} cannot be read: {exc}") from None
    if points.shape != (N_POINTS, 2) or not np.all(np.isfinite(points)):
        raise PhotoError("bad_photo_folder", f"{folder / LANDMARKS_FILE}: expected ({N_POINTS}, 2) finite points, got {points.shape}")
    matte = None
    if (folder / MATTE_FILE).is_file():
        try:
            with Image.open(folder / MATTE_FILE) as im:
                matte = np.asarray(im.convert("L"), np.float32) / 255.0
        except OSError as exc:
            raise PhotoError("bad_photo_folder", f"{folder / MATTE_FILE} cannot be read: {exc}") from None
        if matte.shape != rgb.shape[:2]:
            raise PhotoError("bad_photo_folder", f"{folder / MATTE_FILE} is {matte.shape[1]}x{matte.shape[0]}; the photo is {rgb.shape[1]}x{rgb.shape[0]}")
    face = meta.get("face", 1)
    return PhotoFolder(
        folder, name.strip().upper(), voice, int(face) if isinstance(face, int) else 1, rgb,
        FaceLandmarks(points.astype(np.float32)), matte, _video_model(folder, meta.get("video_model")),
    )


def _video_model(folder: Path, raw: object) -> VideoModelRef | None:
    """The manifest's ``video_model``, its weights checked (``PhotoError`` naming the file)."""
    if raw is None:
        return None
    manifest = folder / MANIFEST
    if not isinstance(raw, dict) or not isinstance(raw.get("file"), str) or "/" in raw["file"] or "\\" in raw["file"]:
        raise PhotoError("bad_photo_folder", f"{manifest}: 'video_model' must be {{\"file\": \"{MODEL_FILE}\", ...}}, got {raw!r}")
    clip, frame = raw.get("clip"), raw.get("frame")
    if not all(v is None or (isinstance(v, int) and v >= 0) for v in (clip, frame)):
        raise PhotoError("bad_photo_folder", f"{manifest}: 'video_model' clip and frame must be whole numbers >= 0")
    from avatar.neural.video_mouth import load_video_model
    from lipsync.neural.checkpoint import CheckpointError

    path = folder / raw["file"]
    if not path.is_file():
        raise PhotoError("bad_video_model", f"{path} is missing: this video character's folder lost its model")
    try:
        load_video_model(path)
    except CheckpointError as exc:
        raise PhotoError("bad_video_model", f"{path}: {exc}") from None
    return VideoModelRef(path, clip, frame)


def photo_spec(folder: str | Path, *, name: str | None = None, voice: VoiceSpec | None = None) -> CharacterSpec:
    """A ``CharacterSpec`` drawn from a photo folder (checked now)."""
    photo = load_photo_folder(folder)
    canonical = (name or photo.name).strip().upper()
    seed = int.from_bytes(name_digest(canonical)[16:24], "big")
    return CharacterSpec(name=canonical, voice=voice or photo.voice, seed=seed, art_dir=str(Path(folder).resolve()))
