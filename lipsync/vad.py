"""Voice activity: the silero-vad model from its wheel, run in numpy, one stream per input.

The ``silero-vad`` wheel ships its 16 kHz model as safetensors (``silero_vad_16k.safetensors``:
an STFT as a convolution, four convolutions, an LSTM cell and a sigmoid head). We read that
file with our own loader and run it in numpy:

- the package's ``__init__`` (which we never import) calls ``torch.set_num_threads(1)`` for the
  whole process;
- per 32 ms chunk the model is ~0.1 ms of arithmetic; numpy runs it on the calling thread,
  while tiny torch calls wait on torch's intra-op pool, which on a busy 2-core machine costs
  tens of milliseconds per call;
- the LSTM state is explicit, so one loaded model serves every input (``VadStream`` holds the
  state of one).

It decides on chunks of 512 samples (32 ms) with the previous 64 samples as context.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK_SAMPLES = 512
CONTEXT_SAMPLES = 64
WEIGHTS_FILE = "silero_vad_16k.safetensors"
_TENSORS = (
    "stft_conv.weight", "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
    "conv3.weight", "conv3.bias", "conv4.weight", "conv4.bias", "lstm_cell.weight_ih",
    "lstm_cell.weight_hh", "lstm_cell.bias_ih", "lstm_cell.bias_hh", "final_conv.weight",
    "final_conv.bias",
)


class VadModelError(RuntimeError):
    """The silero-vad weights cannot be found or read."""


def default_weights_path() -> Path:
    """Where the installed silero-vad wheel keeps its 16 kHz safetensors model.

    Found without importing the package (see the module docstring).
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError("the silero-vad package is not installed; install the project's dependencies")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / WEIGHTS_FILE


def _conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: int = 1, pad: int = 0) -> np.ndarray:
    """x (c_in, t), w (c_out, c_in, k) → (c_out, t_out), like torch's conv1d for one item."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad)))
    c_out, c_in, k = w.shape
    t_out = (x.shape[1] - k) // stride + 1
    cols = np.stack([x[:, i * stride : i * stride + k] for i in range(t_out)], axis=-1)  # (c_in, k, t_out)
    y = w.reshape(c_out, c_in * k) @ cols.reshape(c_in * k, t_out)
    return y if b is None else y + b[:, None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


class SileroVad:
    """The silero-vad 16 kHz network (weights only; stateless). Load once, share everywhere."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        missing = [name for name in _TENSORS if name not in tensors]
        if missing:
            raise VadModelError(f"the silero-vad weights lack {', '.join(missing)}")
        self._w = {name: np.ascontiguousarray(tensors[name], np.float32) for name in _TENSORS}
        if self._w["stft_conv.weight"].shape != (258, 1, 256):
            raise VadModelError(
                f"unexpected silero-vad STFT shape {self._w['stft_conv.weight'].shape}; expected (258, 1, 256)"
            )
        self._stft = self._w["stft_conv.weight"][:, 0, :]  # (258, 256)

    @classmethod
    def load(cls, path: Path | None = None) -> SileroVad:
        """Read the safetensors model (default: the one in the silero-vad wheel)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = path or default_weights_path()
        if not path.is_file():
            raise VadModelError(f"silero-vad weights not found at {path}; reinstall silero-vad")
        try:
            return cls(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise VadModelError(f"cannot read the silero-vad weights at {path}: {exc}") from exc

    def step(
        self, audio: np.ndarray, state: tuple[np.ndarray, np.ndarray]
    ) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        """Speech probability of one chunk: ``audio`` is 64 context + 512 new float32 samples."""
        w = self._w
        x = np.pad(audio, (0, 64), mode="reflect")  # (640,)
        frames = np.stack([x[i * 128 : i * 128 + 256] for i in range(4)], axis=1)  # (256, 4)
        spec = self._stft @ frames  # (258, 4): real then imaginary parts
        y = np.sqrt(spec[:129] ** 2 + spec[129:] ** 2)  # (129, 4)
        y = np.maximum(_conv1d(y, w["conv1.weight"], w["conv1.bias"], pad=1), 0.0)  # (128, 4)
        y = np.maximum(_conv1d(y, w["conv2.weight"], w["conv2.bias"], stride=2, pad=1), 0.0)  # (64, 2)
        y = np.maximum(_conv1d(y, w["conv3.weight"], w["conv3.bias"], stride=2, pad=1), 0.0)  # (64, 1)
        y = np.maximum(_conv1d(y, w["conv4.weight"], w["conv4.bias"], pad=1), 0.0)[:, 0]  # (128,)
        h, c = state
        gates = w["lstm_cell.weight_ih"] @ y + w["lstm_cell.bias_ih"] + w["lstm_cell.weight_hh"] @ h + w["lstm_cell.bias_hh"]
        i, f, g, o = np.split(gates, 4)  # torch's LSTMCell order
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        logit = w["final_conv.weight"][0, :, 0] @ np.maximum(h, 0.0) + w["final_conv.bias"][0]
        return float(_sigmoid(logit)), (h.astype(np.float32), c.astype(np.float32))


class VadStream:
    """One input's voice activity: push 16 kHz float32 samples, get a probability per 32 ms chunk."""

    def __init__(self, model: SileroVad) -> None:
        self._model = model
        self._state = (np.zeros(128, np.float32), np.zeros(128, np.float32))
        self._buf = np.zeros(CONTEXT_SAMPLES, np.float32)
        self.chunks = 0

    def push(self, samples: np.ndarray) -> list[float]:
        """Probabilities of the chunks completed by ``samples`` (chunk c = samples [512c, 512c + 512))."""
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32)])
        out: list[float] = []
        while self._buf.shape[0] >= CONTEXT_SAMPLES + CHUNK_SAMPLES:
            p, self._state = self._model.step(self._buf[: CONTEXT_SAMPLES + CHUNK_SAMPLES], self._state)
            out.append(p)
            self._buf = self._buf[CHUNK_SAMPLES:]
            self.chunks += 1
        return out


@dataclass(frozen=True, slots=True)
class VadGateConfig:
    """Hysteresis on the speech probability: open at ``open_at``, close below ``close_below``
    after ``hangover_ms`` of non-speech (short pauses inside speech keep the gate open)."""

    open_at: float = 0.5
    close_below: float = 0.35
    hangover_ms: float = 160.0


class VadGate:
    """Speech / not speech per chunk, with hysteresis and a hangover."""

    def __init__(self, config: VadGateConfig | None = None) -> None:
        self.config = config or VadGateConfig()
        self._open = False
        self._quiet_ms = 0.0

    def update(self, prob: float, *, chunk_ms: float = CHUNK_SAMPLES / 16.0) -> bool:
        cfg = self.config
        if prob >= cfg.open_at:
            self._open, self._quiet_ms = True, 0.0
        elif self._open and prob < cfg.close_below:
            self._quiet_ms += chunk_ms
            if self._quiet_ms >= cfg.hangover_ms:
                self._open = False
        elif self._open:
            self._quiet_ms = 0.0
        return self._open
