"""The learned half of audio → mouth: a small network that says which viseme a voice is making.

``ShapeNet`` reads 150 ms of log-mel context and 20 ms ahead per 10 ms hop and gives viseme
probabilities (lips rounded, spread, closed for p/b/m, ...); ``lipsync.audio_mouth`` opens that
shape as wide as the voice is loud. Trained by ``lipsync.audio_mouth_train`` on espeak-ng speech;
the weights ship as ``lipsync/weights/audio_mouth.safetensors`` and run here in numpy (per-call
torch overhead and its thread pool would cost more than the arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipsync.mlp import Layers, checked_layers, config_metadata, logits, read_mlp
from lipsync.visemes import N_VISEMES

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "audio_mouth.safetensors"


class MouthModelError(RuntimeError):
    """The audio → mouth weights file is missing, unreadable or of the wrong shape."""


def hop_features(mel_db: np.ndarray, rel_level_db: np.ndarray) -> np.ndarray:
    """(n, n_mels) log-mel rows + (n,) level below the peak → (n, n_mels + 1) network inputs."""
    shape = mel_db - mel_db.mean(axis=1, keepdims=True)
    return np.concatenate([shape / 10.0, (rel_level_db / 10.0)[:, None]], axis=1).astype(np.float32)


@dataclass(frozen=True, slots=True)
class ShapeNetConfig:
    """An MLP over a window of hops: ``context_hops`` before, the hop, ``lookahead_hops`` after.

    Per hop it sees the log-mel spectrum minus its own mean (the spectral shape; n_mels values)
    and the hop's level below the running speech peak / 10 dB (one value).
    """

    n_mels: int = 40
    context_hops: int = 15
    lookahead_hops: int = 2
    hidden: tuple[int, ...] = (128, 64)

    @property
    def window_hops(self) -> int:
        return self.context_hops + 1 + self.lookahead_hops

    @property
    def n_inputs(self) -> int:
        return self.window_hops * (self.n_mels + 1)


class ShapeNet:
    """The trained viseme classifier, run in numpy; weights from a safetensors file."""

    def __init__(self, config: ShapeNetConfig, layers: Layers) -> None:
        self.config = config
        self._layers = checked_layers(layers, [config.n_inputs, *config.hidden, N_VISEMES], MouthModelError)

    @classmethod
    def load(cls, path: Path = DEFAULT_WEIGHTS) -> ShapeNet:
        config, layers = read_mlp(
            path, config_type=ShapeNetConfig, error=MouthModelError, what="audio → mouth",
            train="python -m lipsync.audio_mouth_train",
        )
        return cls(config, layers)

    @staticmethod
    def metadata(config: ShapeNetConfig) -> dict[str, str]:
        return config_metadata(config)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """(n, n_inputs) → (n, 15) viseme probabilities."""
        x = logits(self._layers, windows)
        x = x - x.max(axis=1, keepdims=True)
        e = np.exp(x)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
