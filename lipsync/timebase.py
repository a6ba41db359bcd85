"""The one clock: audio sample count at 48 kHz, with video frames derived from it.

Frame ``k`` shows the mouth for audio samples ``[k * SAMPLES_PER_FRAME, (k + 1) * SAMPLES_PER_FRAME)``.
Video pts are frame indices in a 90 kHz time base; audio pts are sample indices in 1/48000.
Nothing here reads the wall clock.
"""

from __future__ import annotations

from fractions import Fraction

SAMPLE_RATE_HZ = 48_000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE_HZ // FPS  # 1920
VIDEO_CLOCK_HZ = 90_000
TICKS_PER_FRAME = VIDEO_CLOCK_HZ // FPS  # 3600
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_HZ)
AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE_HZ)
FRAME_MS = 1000 // FPS  # 40


def frames_for_samples(n_samples: int) -> int:
    """Number of whole video frames needed to cover ``n_samples`` audio samples (rounds up)."""
    return -(-n_samples // SAMPLES_PER_FRAME)


def frame_of_sample(sample: int) -> int:
    """The frame that shows audio sample ``sample``."""
    return sample // SAMPLES_PER_FRAME


def samples_to_seconds(n_samples: int) -> float:
    return n_samples / SAMPLE_RATE_HZ


def seconds_to_samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE_HZ)


def video_pts(frame_index: int) -> int:
    """pts of frame ``frame_index`` in the 90 kHz video time base."""
    return frame_index * TICKS_PER_FRAME
