"""Photo characters kept in the data directory by id: ``photos/<id>/`` (never by a name).

An id is ``ph_`` and 16 hex digits of the hash of the photo's pixels and the chosen face (and,
for a video character, its model's bytes), so adding the same photo twice gives the same folder.
A video character's model files are copied into its folder with the photo. The folder is written beside its final place
and renamed into it when complete. A series keeps its photo character as that id
(``stream.store.cast``), so every episode draws the same person.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from avatar.photo.folder import PhotoFolder, VideoModelRef, write_photo_folder
from avatar.photo.landmarks import FaceLandmarks
from avatar.spec import CharacterSpec
from lipsync.voices import VoiceSpec
from stream.store.errors import BadInputError, NotFoundError
from stream.store.media import check_id

PHOTOS_DIR = "photos"


def photo_id(rgb: np.ndarray, face: int, *, video: VideoModelRef | None = None) -> str:
    digest = hashlib.sha256()
    digest.update(f"{rgb.shape[0]}x{rgb.shape[1]}:{face}:".encode())
    digest.update(np.ascontiguousarray(rgb).tobytes())
    if video is not None:  # the same frame with another model is another character
        digest.update(f"video:{video.clip}:{video.frame}:".encode())
        digest.update(video.path.read_bytes())
    return "ph_" + digest.hexdigest()[:16]


class PhotoLibrary:
    """The data directory's photo characters."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / PHOTOS_DIR

    def add(
        self, rgb: np.ndarray, landmarks: FaceLandmarks, *, name: str, voice: VoiceSpec, face: int,
        matte: np.ndarray | None = None, video: VideoModelRef | None = None,
    ) -> str:
        """Keep a photo character (blocking: file I/O, and the person's matte unless given);
        returns its id. The same photo and face give the same id; the folder's manifest then
        takes the newest name and voice. With ``video``, a video character: the model's files
        are kept in the folder too."""
        ident = photo_id(rgb, face, video=video)
        final = self.root / ident
        tmp = self.root / f".{ident}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        write_photo_folder(tmp, rgb, landmarks, name=name, voice=voice, face=face, matte=matte, video=video)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return ident

    def folder(self, ident: object) -> Path:
        """The folder of photo ``ident``; ``BadInputError`` for a malformed id, ``NotFoundError``."""
        if not isinstance(ident, str):
            raise BadInputError("bad_photo", f"a photo id must be a string such as ph_0123456789abcdef, got {ident!r}")
        try:
            check_id(ident)
        except ValueError:
            raise BadInputError("bad_photo", f"{ident!r} is not a photo id (ph_ and 16 hex digits)") from None
        if not ident.startswith("ph_"):
            raise BadInputError("bad_photo", f"{ident!r} is not a photo id (ph_ and 16 hex digits)")
        folder = self.root / ident
        if not (folder / "character.json").is_file():
            raise NotFoundError("photo", ident)
        return folder

    def id_of(self, folder: str | Path | None) -> str | None:
        """The id of a folder of this library (None for any other folder)."""
        if folder is None:
            return None
        path = Path(folder).resolve()
        if path.parent != self.root.resolve():
            return None
        return path.name if path.name.startswith("ph_") else None

    def adopt(self, spec: CharacterSpec) -> CharacterSpec:
        """``spec`` drawn from this library's copy of its photo folder (kept now if it is elsewhere);
        any other spec is returned as is."""
        from avatar.photo.folder import is_photo_folder, load_photo_folder

        if spec.art_dir is None or self.id_of(spec.art_dir) is not None or not is_photo_folder(spec.art_dir):
            return spec
        ident = self.keep(load_photo_folder(spec.art_dir))
        return replace(spec, art_dir=str(self.folder(ident).resolve()))

    def keep(self, photo: PhotoFolder) -> str:
        """Keep a loaded photo (or video) character folder from anywhere; returns its id."""
        return self.add(
            photo.rgb, photo.landmarks, name=photo.name, voice=photo.voice, face=photo.face, matte=photo.matte,
            video=photo.video,
        )
