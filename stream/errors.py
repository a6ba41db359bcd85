"""Errors a client caused: each carries a stable ``code``, its HTTP status and a message naming
what was wrong.

Every wing raises these (or subclasses); the web edge turns any of them into the same JSON
``{"error": code, "message": ...}`` with ``http_status``, and the control channel into an
``error`` event. Nothing else of the server stops.
"""

from __future__ import annotations


class ClientError(ValueError):
    """A request that cannot be carried out; the session or server goes on.

    ``http_status`` is the class's unless given: a subclass names a kind of failure (404, 409,
    ...), and a raise site may say more where one class covers several (``busy`` is a 409).
    """

    http_status = 400

    def __init__(self, code: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        if http_status is not None:
            self.http_status = http_status


class OfferError(ClientError):
    """The SDP offer cannot be answered; the message says what it lacks."""

    def __init__(self, message: str, *, code: str = "bad_offer") -> None:
        super().__init__(code, message)


class SessionLimitError(ClientError):
    """No room for another session."""

    http_status = 503

    def __init__(self, message: str) -> None:
        super().__init__("session_limit", message)
