"""PNG-art characters kept in the data directory by id: ``art/<id>/`` (never by a name).

A character drawn from a folder of layered PNGs (``avatar.custom``) is copied here when a series
keeps it (recorded live, rendered, or uploaded from the studio page), so it draws the same in
every server run and in ``talkie render``. The id is ``art_`` and 16 hex digits of the hash of
the files (names and bytes): the same art is kept once, and a series stores the character as
``{"art": id}`` (``stream.store.cast``). A copy is written into a temporary folder, checked (the
art must load), and renamed into place whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from avatar.custom import CharacterArtError, art_spec
from avatar.spec import CharacterSpec
from stream.store.errors import BadInputError, NotFoundError
from stream.store.media import check_id

ART_DIR = "art"

MAX_FILES = 64
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 48 * 2**20
FILE_SUFFIXES = (".png", ".json", ".jpg", ".jpeg", ".npy", ".npz")  # art layers, manifests, a photo's image and mesh


def check_file_name(name: str) -> str:
    """A plain file name of an art folder: no folder part, no hidden file, a known suffix."""
    if (
        not isinstance(name, str) or not name or len(name) > 128 or name.startswith(".")
        or any(c in name for c in "/\\\0") or any(ord(c) < 32 for c in name)
    ):
        raise BadInputError("bad_art", f"art file name {str(name)[:40]!r} must be a plain file name (no folders)")
    if not name.lower().endswith(FILE_SUFFIXES):
        raise BadInputError("bad_art", f"art file {name!r}: only {', '.join(FILE_SUFFIXES)} files are kept")
    return name


class ArtShelf:
    """The store's copies of character art, one folder per distinct set of files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ArtShelf:
        return cls(Path(data_dir) / ART_DIR)

    def holds(self, folder: str | Path) -> bool:
        return self.id_of(folder) is not None

    def id_of(self, folder: str | Path | None) -> str | None:
        """The id of a folder of this shelf (None for any other folder)."""
        if folder is None:
            return None
        path = Path(folder).resolve()
        if path.parent != self.root.resolve() or not path.name.startswith("art_"):
            return None
        return path.name

    def folder(self, ident: object) -> Path:
        """The folder of art ``ident``; ``BadInputError`` for a malformed id, ``NotFoundError``."""
        if not isinstance(ident, str) or not ident.startswith("art_"):
            raise BadInputError("bad_art", f"{str(ident)[:40]!r} is not an art id (art_ and 16 hex digits)")
        try:
            check_id(ident)
        except ValueError:
            raise BadInputError("bad_art", f"{ident!r} is not an art id (art_ and 16 hex digits)") from None
        folder = self.root / ident
        if not folder.is_dir():
            raise NotFoundError("art", ident)
        return folder

    def keep_files(self, files: dict[str, bytes]) -> Path:
        """Keep an art folder given as ``{file name: bytes}``; ``BadInputError`` naming what is
        wrong (a bad name, too many or too large files, art that does not load)."""
        if not files:
            raise BadInputError("bad_art", "no files given; send character.json and the PNGs it names")
        if len(files) > MAX_FILES:
            raise BadInputError("bad_art", f"{len(files)} files; an art folder holds at most {MAX_FILES}")
        total = 0
        for name, data in files.items():
            check_file_name(name)
            if len(data) > MAX_FILE_BYTES:
                raise BadInputError("too_large", f"art file {name!r} is {len(data)} bytes; the limit is {MAX_FILE_BYTES}", http_status=413)
            total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise BadInputError("too_large", f"the art is {total} bytes; the limit is {MAX_TOTAL_BYTES}", http_status=413)
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        final = self.root / ("art_" + digest.hexdigest()[:16])
        if final.is_dir():
            return final.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        try:
            for name, data in files.items():
                with open(staging / name, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            try:
                art_spec(staging)  # it must load, or nothing is kept
            except (CharacterArtError, ValueError, OSError) as exc:
                message = str(exc).replace(str(staging), "the art")
                raise BadInputError("bad_art", message) from None
            try:
                staging.rename(final)
            except OSError:
                if not final.is_dir():  # another request kept the same art first: use that
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final.resolve()

    def keep_folder(self, folder: str | Path) -> Path:
        """Keep the files of a character folder (its top level) on the shelf."""
        folder = Path(folder)
        if self.holds(folder):
            return folder.resolve()
        files = {
            p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(FILE_SUFFIXES)
        }
        return self.keep_files(files)

    def adopt(self, spec: CharacterSpec) -> CharacterSpec:
        """``spec`` drawn from the shelf's copy of its art (a spec without art is returned as is)."""
        if spec.art_dir is None or self.holds(spec.art_dir):
            return spec
        from avatar.photo.character import is_photo_folder

        if is_photo_folder(spec.art_dir):  # a photo character is kept by ``stream.store.photos``
            return spec
        return replace(spec, art_dir=str(self.keep_folder(spec.art_dir)))

    def spec_for(self, files: dict[str, bytes], *, name: str | None = None) -> CharacterSpec:
        """The spec of an art folder given as files, kept on the shelf; ``name`` renames it."""
        folder = self.keep_files(files)
        spec = art_spec(folder)
        return replace(spec, name=name) if name else spec
