"""Configuration of the live pipeline: one scene (``LiveConfig``) and the server that runs
sessions of them (``ServerConfig``, checked once at start-up)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path


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
    neural_weights_dir: str | None = None  # None: the shipped lipsync/weights/neural


class ServerConfigError(ValueError):
    """The server cannot start with these settings."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    data_dir: Path = Path("data")
    max_sessions: int = 8
    max_sdp_bytes: int = 32 * 1024
    max_message_bytes: int = 64 * 1024
    messages_per_s: float = 20.0
    message_burst: int = 40
    synth_threads: int = 2
    render_threads: int = 2
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

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
