"""Configuration of the live pipeline: one scene (``LiveConfig``) and the server that runs
sessions of them (``ServerConfig``, checked once at start-up)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stream.live.expiry import ConnectionBounds

# A DNS name as a Host header or an origin carries it (underscores allowed: container names).
_DNS_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*", re.IGNORECASE)
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>\[[^\]]*\]|[^:/\[\]]+)(:(?P<port>[0-9]{1,5}))?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """One live scene: its picture, language, line pacing and backend."""

    width_px: int = 512
    height_px: int = 512
    set_name: str = "studio"
    language: str = "en-us"
    first_chunk_ms: int = 200
    gap_ms: int = 200
    max_queued_lines: int = 32
    max_characters: int = 4
    backend: str = "rig"  # "neural": trained mouth models repaint the rig's mouths
    # Who speaks a line that does not say ("voice" in a say or script message): the characters'
    # natural voices, ~0.22 s to the first sound on 2 idle CPU cores (`talkie bench voice`), a
    # session keeping ~0.25 of a core busy while it speaks and the server's calls made one at a
    # time; or espeak-ng, which answers in ~20 ms (many sessions speaking at once).
    voice: Literal["espeak", "natural"] = "natural"
    neural_weights_dir: str | None = None  # None: the shipped lipsync/weights/neural
    # Draw this many of the session's cast (those on stage first, then the cast's order) in the
    # background when it starts (one character at a time, server-wide, in a low-priority
    # process), so a walk-on's first line waits for no drawing. Each costs ~45 MB of the
    # session's memory at 512x512 (every size a live shot shows); 0 draws on demand.
    draw_ahead_characters: int = 8

    def __post_init__(self) -> None:
        if not 0 <= self.draw_ahead_characters <= 64:
            raise ServerConfigError(f"draw ahead must be 0..64 characters, got {self.draw_ahead_characters}")


class ServerConfigError(ValueError):
    """The server cannot start with these settings."""


def _is_host_name(text: str) -> bool:
    """True for a DNS name or an IP address (IPv6 with or without brackets), without a port."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        try:
            return ipaddress.ip_address(text).version == 6
        except ValueError:
            return False
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return _DNS_NAME.fullmatch(text) is not None


def _check_allowed_host(host: object) -> None:
    if not isinstance(host, str) or not _is_host_name(host):
        raise ServerConfigError(
            f"allowed host {host!r} is not a host name or IP address: give the name alone, "
            "without scheme, port, path or wildcard (e.g. --allow-host studio.example)"
        )


def _check_allowed_origin(origin: object) -> None:
    match = _ORIGIN.fullmatch(origin) if isinstance(origin, str) else None
    if match is None or not _is_host_name(match["host"]) or not 0 < int(match["port"] or 80) < 65536:
        raise ServerConfigError(
            f"allowed origin {origin!r} is not an origin: give scheme://host[:port], http or https, "
            "without path or trailing slash (e.g. --allow-origin https://studio.example:8443)"
        )


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The server: where it listens, who may reach it, and its limits.

    ``allowed_hosts`` are names besides its own that requests may address it by (a Host
    header); ``allowed_origins`` are web pages (``scheme://host[:port]``) besides its own that
    may call it. ``stream.web.origin`` enforces both.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    data_dir: Path = Path("data")
    max_sessions: int = 8
    max_sdp_bytes: int = 32 * 1024
    max_message_bytes: int = 64 * 1024
    messages_per_s: float = 20.0
    message_burst: int = 40
    synth_threads: int = 2
    render_threads: int = 2
    connect_timeout_s: float = 30.0  # a session (publisher, viewer) not connected by then ends
    disconnect_grace_s: float = 10.0  # one disconnected this long ends
    live: LiveConfig = field(default_factory=LiveConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.max_sessions <= 256:
            raise ServerConfigError(f"max_sessions must be 1..256, got {self.max_sessions}")
        if not self.is_loopback and not self.token:
            raise ServerConfigError(
                f"listening on {self.host} (not a loopback address) needs an access token: "
                "pass --token or set TALKIE_TOKEN"
            )
        if self.token is not None and len(self.token) < 8:
            raise ServerConfigError("the access token must be at least 8 characters")
        for host in self.allowed_hosts:
            _check_allowed_host(host)
        for origin in self.allowed_origins:
            _check_allowed_origin(origin)

    @property
    def connection_bounds(self) -> ConnectionBounds:
        return ConnectionBounds(
            connect_timeout_s=self.connect_timeout_s, disconnect_grace_s=self.disconnect_grace_s
        )

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
