"""Audio features for live speech at 16 kHz: decimation from 48 kHz and log-mel frames.

The analysis clock is 16 kHz in 10 ms hops of 160 samples: hop ``h`` covers samples
``[h * 160, (h + 1) * 160)`` and its 25 ms window ends where the hop ends (samples
``[(h + 1) * 160 - 400, (h + 1) * 160)``, zeros before the start), so a hop's features exist
as soon as its samples do. Four hops make one 25 fps video frame.

Two implementations give the same numbers: ``log_mel`` (whole signals, ``torch.stft``; used for
training) and ``LogMelStream`` (numpy, a few samples at a time; used live, where per-call
torch overhead and its thread pool cost more than the arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ANALYSIS_RATE_HZ = 16_000
DECIMATION = 3  # 48 kHz → 16 kHz
HOP_SAMPLES = 160  # 10 ms at 16 kHz
HOPS_PER_FRAME = 4  # 40 ms video frame


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Log-mel analysis at 16 kHz."""

    window_samples: int = 400
    hop_samples: int = HOP_SAMPLES
    n_fft: int = 512
    n_mels: int = 40
    f_min_hz: float = 60.0
    f_max_hz: float = 7_600.0
    floor_db: float = -100.0

    def __post_init__(self) -> None:
        if self.window_samples > self.n_fft:
            raise ValueError(f"window_samples {self.window_samples} is longer than n_fft {self.n_fft}")
        if not 0 < self.f_min_hz < self.f_max_hz <= ANALYSIS_RATE_HZ / 2:
            raise ValueError(f"need 0 < f_min_hz < f_max_hz <= 8000, got {self.f_min_hz}, {self.f_max_hz}")


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """Triangular HTK-mel filters, (n_mels, n_fft // 2 + 1) float32, each peaking at 1."""
    bins_hz = np.linspace(0.0, ANALYSIS_RATE_HZ / 2, config.n_fft // 2 + 1)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(config.f_min_hz)), _hz_to_mel(np.array(config.f_max_hz)), config.n_mels + 2)
    )
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins_hz[None, :] - lo) / (mid - lo)
    down = (hi - bins_hz[None, :]) / (hi - mid)
    return np.clip(np.minimum(up, down), 0.0, None).astype(np.float32)


def _window(config: FeatureConfig) -> np.ndarray:
    """The periodic Hann window ``torch.hann_window`` makes, zero-padded to n_fft at the end."""
    n = np.arange(config.window_samples)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / config.window_samples)
    return np.pad(w, (0, config.n_fft - config.window_samples)).astype(np.float32)


def band_centres_hz(config: FeatureConfig) -> np.ndarray:
    """Centre frequency of each mel band, (n_mels,)."""
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(config.f_min_hz)), _hz_to_mel(np.array(config.f_max_hz)), config.n_mels + 2)
    )
    return edges[1:-1]


def log_mel(samples: np.ndarray, *, config: FeatureConfig | None = None) -> np.ndarray:
    """Log-mel power (dB) of float32 16 kHz audio, (n_hops, n_mels) with n_hops = len // hop.

    Hop h's window ends at sample (h + 1) * hop; the signal is zero before sample 0.
    """
    cfg = config or FeatureConfig()
    x = torch.as_tensor(np.asarray(samples, np.float32))
    n_hops = x.shape[0] // cfg.hop_samples
    if n_hops == 0:
        return np.zeros((0, cfg.n_mels), np.float32)
    pad_left = cfg.window_samples - cfg.hop_samples
    # Each frame takes n_fft samples ending n_fft - window samples past the hop's end; the
    # window is zero there, so only the window's own samples count.
    x = torch.nn.functional.pad(x[: n_hops * cfg.hop_samples], (pad_left, cfg.n_fft - cfg.window_samples))
    spec = torch.stft(
        x, n_fft=cfg.n_fft, hop_length=cfg.hop_samples, window=torch.from_numpy(_window(cfg)),
        center=False, return_complex=True,
    )  # (n_fft // 2 + 1, n_hops)
    power = spec.abs().pow(2).T  # (n_hops, bins)
    mel = power @ torch.from_numpy(mel_filterbank(cfg)).T  # (n_hops, n_mels)
    db = 10.0 * torch.log10(mel + 10.0 ** (cfg.floor_db / 10.0))
    return db.numpy().astype(np.float32)


class LogMelStream:
    """``log_mel`` a few samples at a time: ``push`` returns the rows of hops completed so far."""

    def __init__(self, *, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        cfg = self.config
        self._window = _window(cfg)[: cfg.window_samples]
        self._fbank = mel_filterbank(cfg).T.copy()  # (bins, n_mels)
        self._buf = np.zeros(cfg.window_samples - cfg.hop_samples, np.float32)
        self._floor = np.float32(10.0 ** (cfg.floor_db / 10.0))
        self.hops = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        cfg = self.config
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32)])
        n = (self._buf.shape[0] - (cfg.window_samples - cfg.hop_samples)) // cfg.hop_samples
        if n <= 0:
            return np.zeros((0, cfg.n_mels), np.float32)
        idx = np.arange(n)[:, None] * cfg.hop_samples + np.arange(cfg.window_samples)[None, :]
        frames = self._buf[idx] * self._window  # (n, window)
        power = np.abs(np.fft.rfft(frames, n=cfg.n_fft, axis=1)) ** 2  # (n, bins)
        rows = (10.0 * np.log10(power.astype(np.float32) @ self._fbank + self._floor)).astype(np.float32)
        self._buf = self._buf[n * cfg.hop_samples :]
        self.hops += n
        return rows


def _lowpass_taps(n_taps: int, cutoff: float) -> np.ndarray:
    """Windowed-sinc low-pass (Blackman), ``cutoff`` as a fraction of the input sample rate."""
    m = np.arange(n_taps) - (n_taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * m) * np.blackman(n_taps)
    return (h / h.sum()).astype(np.float32)


class Decimator:
    """48 kHz → 16 kHz by a linear-phase FIR and keeping every third sample, streaming.

    The filter delays the signal by ``delay_samples_48k`` (48 samples, 1 ms): 16 kHz sample n
    matches 48 kHz sample ``3 * n - delay_samples_48k``. Live inputs delay their output audio
    by the same amount so analysis and playback stay on one clock.
    """

    N_TAPS = 97

    def __init__(self) -> None:
        self._taps = _lowpass_taps(self.N_TAPS, cutoff=7_200 / 48_000)
        self._hist = np.zeros(self.N_TAPS - 1, np.float32)
        self._phase = 0  # index into the next block of the next sample to keep
        self.delay_samples_48k = (self.N_TAPS - 1) // 2

    def push(self, samples_48k: np.ndarray) -> np.ndarray:
        """float32 48 kHz in, float32 16 kHz out (as many samples as are complete)."""
        x = np.concatenate([self._hist, np.asarray(samples_48k, np.float32)])
        y = np.convolve(x, self._taps, mode="valid")  # y[i] ends at new sample i
        keep = y[self._phase :: DECIMATION]
        n_new = samples_48k.shape[0]
        self._phase = (self._phase - n_new) % DECIMATION
        self._hist = x[-(self.N_TAPS - 1) :]
        return keep.astype(np.float32)
