"""Typed store errors: each carries a stable ``code``, an HTTP status and a message naming the fault."""

from __future__ import annotations

import errno
import sqlite3

from stream.errors import ClientError


class StoreError(ClientError):
    """A store request that cannot be carried out; the server goes on."""

    http_status = 400


class NotFoundError(StoreError):
    http_status = 404

    def __init__(self, kind: str, ident: object) -> None:
        super().__init__("not_found", f"no {kind} with id {ident!r}")
        self.kind = kind


class ConflictError(StoreError):
    """The request clashes with the current state (a duplicate name, a take still recording)."""

    http_status = 409


class BadInputError(StoreError):
    """A malformed name, position or field."""


class StorageFullError(StoreError):
    """The disk holding the data directory (or the output) is full."""

    http_status = 507


class StorageError(StoreError):
    """The data directory or an output cannot be written, or stored media is damaged."""

    http_status = 500


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT from the OS, PyAV or SQLite ("database or disk is full")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)


def storage_error(exc: BaseException, what: str) -> StoreError:
    """The typed error for an OS/SQLite failure while doing ``what``."""
    if is_disk_full(exc):
        return StorageFullError("disk_full", f"the disk is full while {what}; free some space and retry")
    return StorageError("storage_error", f"{what} failed: {exc}")
