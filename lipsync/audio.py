"""Audio helpers on the 48 kHz clock: resampling, frame energy, log-mel features."""

from __future__ import annotations

import av
import numpy as np

from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME


def resample(pcm: np.ndarray, *, from_hz: int, to_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Resample mono int16 PCM with libswresample; the output has exactly round(n * to / from) samples.

    Time positions map by the same ratio, so events stay on their samples.
    """
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"resample expects mono int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
    n_out = round(pcm.shape[0] * to_hz / from_hz)
    if from_hz == to_hz or pcm.shape[0] == 0:
        return pcm.copy() if n_out == pcm.shape[0] else np.zeros(n_out, np.int16)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_hz)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = from_hz
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    out = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    if out.shape[0] < n_out:
        out = np.pad(out, (0, n_out - out.shape[0]))
    return out[:n_out]


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM → float32 in [-1, 1)."""
    return pcm.astype(np.float32) / 32768.0


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float PCM → int16, clipped."""
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)


def frame_rms(samples: np.ndarray, *, frame_samples: int = SAMPLES_PER_FRAME) -> np.ndarray:
    """RMS energy per video frame (the last partial frame is zero-padded)."""
    x = samples.astype(np.float32)
    if x.dtype != np.float32 or np.abs(x).max(initial=0.0) > 1.5:
        x = x / 32768.0
    n_frames = -(-x.shape[0] // frame_samples)
    x = np.pad(x, (0, n_frames * frame_samples - x.shape[0]))
    return np.sqrt(np.mean(x.reshape(n_frames, frame_samples) ** 2, axis=1))
