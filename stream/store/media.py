"""Where media lives under the data directory, and how files get there safely.

Layout (ids only, never names)::

    <data>/talkie.db                          the SQLite store (WAL)
    <data>/media/takes/<take_id>/000000.h264  segment 0: H.264 Annex B, keyframe first
    <data>/media/takes/<take_id>/000000.pcm   segment 0: s16le 48 kHz mono
    <data>/exports/<export_id>/episode.{mp4,srt,vtt,otio}

A file is written under a dot-name ending ``.tmp``, fsynced, renamed, and its folder fsynced;
only then does its index row go into SQLite. So after a crash every indexed file is complete,
and a file without an index row (a temp, or one renamed just before the kill) is swept away.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

_ID_RE = re.compile(r"^[a-z]{2,3}_[0-9a-f]{16}$")


def check_id(ident: str) -> str:
    """``ident`` if it is one of ours (so it is safe as a path component)."""
    if not _ID_RE.match(ident):
        raise ValueError(f"{ident!r} is not a store id")
    return ident


class MediaLayout:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.takes_dir = data_dir / "media" / "takes"
        self.exports_dir = data_dir / "exports"

    def take_dir(self, take_id: str) -> Path:
        return self.takes_dir / check_id(take_id)

    def export_dir(self, export_id: str) -> Path:
        return self.exports_dir / check_id(export_id)

    @staticmethod
    def segment_names(seq: int) -> tuple[str, str]:
        return f"{seq:06d}.h264", f"{seq:06d}.pcm"

    def remove_take(self, take_id: str) -> None:
        shutil.rmtree(self.take_dir(take_id), ignore_errors=True)

    def remove_export(self, export_id: str) -> None:
        shutil.rmtree(self.export_dir(export_id), ignore_errors=True)


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` either holds all of it or does not exist."""
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def sweep_take(folder: Path, keep: set[str]) -> list[str]:
    """Delete every file in a take folder that is not in ``keep``; returns the names removed."""
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.name not in keep:
            with contextlib.suppress(OSError):
                entry.unlink() if not entry.is_dir() else shutil.rmtree(entry)
                removed.append(entry.name)
    return removed
