"""What the store holds, as frozen records: series → episodes → scenes → takes → segments.

Times are counts on the one clock: ``frames`` of 40 ms and ``samples`` at 48 kHz, relative to
the start of the take. A take of ``frames`` frames always holds ``frames * 1920`` samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from lipsync.timebase import SAMPLE_RATE_HZ

TakeStatus = Literal["recording", "complete", "recovered"]
ExportStatus = Literal["running", "done", "failed"]
USABLE_TAKE_STATUSES = ("complete", "recovered")


class Record:
    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True, slots=True)
class Series(Record):
    id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Character(Record):
    """A series' character: ``spec`` is a ``CharacterSpec`` as JSON (look, voice, seed)."""

    id: str
    series_id: str
    name: str
    spec: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class SetRecord(Record):
    """A series' set: ``backdrop`` is a set name (``kitchen``) or a colour (``#00ff00``)."""

    id: str
    series_id: str
    name: str
    backdrop: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Episode(Record):
    id: str
    series_id: str
    position: int
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Scene(Record):
    """``transition_ms`` is how this scene comes in after the previous one: 0 = hard cut,
    otherwise a crossfade of that many milliseconds (whole frames)."""

    id: str
    episode_id: str
    position: int
    name: str
    set_id: str | None
    chosen_take_id: str | None
    transition_ms: int
    created_at: float


@dataclass(frozen=True, slots=True)
class Take(Record):
    id: str
    scene_id: str
    name: str
    status: TakeStatus
    source: str  # "live" (a session) or "render" (talkie render)
    session_id: str | None
    width_px: int
    height_px: int
    frames: int
    samples: int
    stream_start_frame: int | None  # the session's frame index of the take's frame 0
    cast: tuple[str, ...]
    set_name: str | None
    note: str | None
    created_at: float
    ended_at: float | None

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE_HZ

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cast": list(self.cast), "duration_s": round(self.duration_s, 3)}


@dataclass(frozen=True, slots=True)
class Segment:
    """A short stretch of a take (0.8 s by default): frame slots ``[first_frame, first_frame + frames)``.

    ``frame_map[i]`` is 1 when slot ``first_frame + i`` has a picture in ``video_file`` (in
    order), 0 when the session skipped it; audio is always whole (``frames * 1920`` samples).
    """

    take_id: str
    seq: int
    first_frame: int
    frames: int
    samples: int
    frame_map: bytes
    video_file: str | None
    video_bytes: int
    video_crc32: int
    audio_file: str
    audio_bytes: int
    audio_crc32: int


@dataclass(frozen=True, slots=True)
class TakeLine(Record):
    """A line spoken in a take, over take samples ``[start_sample, end_sample)``."""

    take_id: str
    seq: int
    line_id: str
    speaker: str
    text: str
    start_sample: int
    end_sample: int | None
    interrupted: bool


@dataclass(frozen=True, slots=True)
class TakeShot(Record):
    """A shot of a take: from take frame ``start_frame`` until the next shot (or the take's
    end), the camera showed ``kind`` (wide, two, medium, close) of ``subjects``, left to right."""

    take_id: str
    seq: int
    start_frame: int
    kind: str
    subjects: tuple[str, ...]

    @property
    def label(self) -> str:
        """``"close MAYA"``, ``"two LEO+MAYA"``: as the director's shots are named."""
        return f"{self.kind} {'+'.join(self.subjects)}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "subjects": list(self.subjects), "label": self.label}


@dataclass(frozen=True, slots=True)
class ExportRecord(Record):
    """One export job: its files live in ``exports/<id>/`` under fixed names."""

    id: str
    episode_id: str | None
    scene_id: str | None
    status: ExportStatus
    progress: float
    frames: int
    samples: int
    error: str | None
    created_at: float
    ended_at: float | None
