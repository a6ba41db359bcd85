"""One SQLite connection shared by the store's repositories, with short serialised transactions.

Every call blocks (it is SQLite): call the store from a worker thread, never the event loop.
SQLite failures come out as typed ``StoreError``s (a full disk is ``StorageFullError``).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stream.store.errors import NotFoundError, StoreError, storage_error
from stream.store.schema import configure, migrate


def new_id(prefix: str) -> str:
    """A fresh id such as ``tk_3f2a9c0d1b7e4a55`` (prefix: ser, ch, set, ep, sc, tk, ex)."""
    return f"{prefix}_{secrets.token_hex(8)}"


def now() -> float:
    """Wall-clock time for ``created_at`` labels only; never for media stamps."""
    return time.time()


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
            self._conn.row_factory = sqlite3.Row
            configure(self._conn)
            self.version = migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            raise storage_error(exc, f"opening the database {path}") from exc
        self._lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction (nested calls join the outer one)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                    raise storage_error(exc, "writing to the store") from exc
                raise
            finally:
                self._depth = 0

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(exc, "reading the store") from exc

    def row(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        found = self.rows(sql, args)
        return found[0] if found else None

    def integrity_check(self) -> str:
        return str(self.rows("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def require(row: sqlite3.Row | None, kind: str, ident: object) -> sqlite3.Row:
    """``row``, or ``NotFoundError`` naming the missing ``kind`` and id."""
    if row is None:
        raise NotFoundError(kind, ident)
    return row


__all__ = ["Database", "StoreError", "new_id", "now", "require"]
