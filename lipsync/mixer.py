"""Audio mixer: voices summed onto one 48 kHz track, with a soft limiter for overlapping speech."""

from __future__ import annotations

import numpy as np

VOICE_GAIN = 0.8
_KNEE = 0.85


def mix_into(buffer: np.ndarray, pcm: np.ndarray, *, offset: int, gain: float = VOICE_GAIN) -> None:
    """Add int16 ``pcm`` into the float32 ``buffer`` starting at sample ``offset`` (clipped to fit)."""
    if offset >= buffer.shape[0] or offset + pcm.shape[0] <= 0:
        return
    src_lo = max(0, -offset)
    dst_lo = max(0, offset)
    n = min(pcm.shape[0] - src_lo, buffer.shape[0] - dst_lo)
    buffer[dst_lo : dst_lo + n] += pcm[src_lo : src_lo + n].astype(np.float32) * (gain / 32768.0)


def limit(buffer: np.ndarray) -> np.ndarray:
    """Soft-limit float samples into (-1, 1): untouched below the knee, tanh above it."""
    out = buffer.copy()
    over = np.abs(out) > _KNEE
    if over.any():
        x = np.abs(out[over])
        out[over] = np.sign(out[over]) * (_KNEE + (1 - _KNEE) * np.tanh((x - _KNEE) / (1 - _KNEE)))
    return out
