"""The episode store: SQLite (WAL) plus media files under one data directory.

``Store.open(data_dir)`` creates or migrates the database and recovers from a crash: takes
left ``recording`` become ``recovered`` (kept up to their last committed segment), media files
without an index row are deleted, and exports left running are marked failed. Recovery needs
the data directory's lock (``talkie.lock``, held while the store is open): a second process on
the same directory (a CLI beside a server) shares the database but never "recovers" takes the
first is still recording. Every method blocks; the server calls them from worker threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from stream.store.catalog import Catalog
from stream.store.db import Database
from stream.store.errors import StorageError, storage_error
from stream.store.exports import Exports
from stream.store.media import MediaLayout, sweep_take
from stream.store.takes import Takes

logger = logging.getLogger(__name__)

DB_NAME = "talkie.db"
LOCK_NAME = "talkie.lock"


@dataclass(frozen=True, slots=True)
class Recovery:
    """What start-up found after an unclean stop."""

    recovered_takes: tuple[str, ...] = ()
    removed_files: int = 0
    failed_exports: tuple[str, ...] = ()


class Store:
    def __init__(self, data_dir: Path, db: Database, *, lock_fd: int | None = None) -> None:
        self.data_dir = data_dir
        self.db = db
        self._lock_fd = lock_fd
        self.media = MediaLayout(data_dir)
        self.catalog = Catalog(db)
        self.takes = Takes(db)
        self.exports = Exports(db)

    @classmethod
    def open(cls, data_dir: Path, *, recover: bool = True) -> Store:
        """Open (creating and migrating) the store in ``data_dir``; errors say what to fix."""
        data_dir = Path(data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            for sub in (data_dir / "media" / "takes", data_dir / "exports"):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError("storage_error", f"cannot use data directory {data_dir}: {exc.strerror or exc}") from exc
        if not os.access(data_dir, os.W_OK | os.X_OK):
            raise StorageError("storage_error", f"cannot use data directory {data_dir}: it is not writable")
        lock_fd = _try_lock(data_dir / LOCK_NAME)
        try:
            store = cls(data_dir, Database(data_dir / DB_NAME), lock_fd=lock_fd)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        if recover and lock_fd is None:
            logger.warning("store %s: another talkie process has it open; crash recovery left to it", data_dir)
        elif recover:
            report = store.recover()
            if report.recovered_takes or report.removed_files or report.failed_exports:
                logger.warning(
                    "store %s: recovered takes %s, removed %d unindexed files, failed exports %s",
                    data_dir, list(report.recovered_takes), report.removed_files, list(report.failed_exports),
                )
        return store

    def recover(self) -> Recovery:
        """Close what a crash left open and delete media no index row points at."""
        recovered = self.takes.recover()
        failed = self.exports.fail_interrupted()
        for export_id in failed:
            self.media.remove_export(export_id)
        removed = 0
        keep = self.takes.referenced_files()
        try:
            for folder in self.media.takes_dir.iterdir():
                if folder.name in keep:
                    removed += len(sweep_take(folder, keep[folder.name]))
                else:  # a take deleted from the index whose folder outlived a crash
                    removed += sum(1 for _ in folder.iterdir()) if folder.is_dir() else 1
                    shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else folder.unlink()
        except OSError as exc:
            raise storage_error(exc, "sweeping unindexed media") from exc
        return Recovery(tuple(recovered), removed, tuple(failed))

    def delete(self, kind: str, ident: str) -> list[str]:
        """Delete a series, character, set, episode, scene or take, and the media of its takes."""
        take_ids = self.catalog.delete(kind, ident)
        for take_id in take_ids:
            self.media.remove_take(take_id)
        return take_ids

    def integrity_check(self) -> str:
        return self.db.integrity_check()

    @property
    def owns_lock(self) -> bool:
        return self._lock_fd is not None

    def close(self) -> None:
        self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None when another process holds it.

    The kernel drops the lock when its holder dies, so a killed server never blocks recovery.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd
