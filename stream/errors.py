"""Errors a client caused: each carries a stable ``code`` and a message naming what was wrong."""

from __future__ import annotations


class ClientError(ValueError):
    """A request that cannot be carried out; the session or server goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
