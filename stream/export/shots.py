"""An editable cut of an offline render: an OpenTimelineIO timeline with one clip per shot.

Each clip covers one shot of the rendered MP4 and is named by shot type and who is in it
("close MAYA", "two LEO+MAYA"), so an editor sees every cut the director made and can re-cut;
each line is a marker on the clip it starts in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import opentimelineio as otio

from avatar.shots import Shot
from lipsync.timebase import FPS, SAMPLE_RATE_HZ
from lipsync.timeline import LineEvent


def build_shot_timeline(
    shots: Sequence[tuple[int, Shot]], events: Sequence[LineEvent], *, n_frames: int, media_name: str, title: str
) -> otio.schema.Timeline:
    """``shots``: (first frame of its scene in the file, shot) in order, tiling ``n_frames``."""
    rate = float(FPS)
    result = otio.schema.Timeline(name=title)
    result.global_start_time = otio.opentime.RationalTime(0, rate)
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(n_frames, rate))
    for offset, shot in shots:
        start, length = offset + shot.start_frame, shot.end_frame - shot.start_frame
        clip = otio.schema.Clip(
            name=shot.label,
            media_reference=otio.schema.ExternalReference(target_url=media_name, available_range=available),
            source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(length, rate)
            ),
            metadata={"talkie": {
                "shot": shot.kind, "subjects": list(shot.subjects), "push_in": shot.push_in, "noted": shot.noted,
            }},
        )  # fmt: skip
        for event in events:
            frame = event.start_sample * FPS // SAMPLE_RATE_HZ
            if start <= frame < start + length:
                clip.markers.append(
                    otio.schema.Marker(
                        name=f"{event.speaker}: {event.text}"[:200],
                        marked_range=otio.opentime.TimeRange(
                            otio.opentime.RationalTime(event.start_sample, SAMPLE_RATE_HZ),
                            otio.opentime.RationalTime(event.end_sample - event.start_sample, SAMPLE_RATE_HZ),
                        ),
                        color=otio.schema.MarkerColor.GREEN,
                    )
                )
        video.append(clip)
    result.tracks.append(video)
    return result


def write_shot_timeline(
    path: Path, shots: Sequence[tuple[int, Shot]], events: Sequence[LineEvent], *, n_frames: int, media_name: str
) -> Path:
    """Write the cut as ``path`` (``.otio``, JSON); returns the path."""
    timeline = build_shot_timeline(shots, events, n_frames=n_frames, media_name=media_name, title=path.stem)
    otio.adapters.write_to_file(timeline, str(path))
    return path
