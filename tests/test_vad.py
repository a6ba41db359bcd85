"""Voice activity: our numpy run of silero-vad's shipped weights, and the gate on top of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lipsync.audio import resample, to_float
from lipsync.speech import SpeechEngine
from lipsync.vad import (
    SileroVad,
    VadGate,
    VadGateConfig,
    VadModelError,
    VadStream,
    default_weights_path,
)
from lipsync.voices import VoiceSpec


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad.load()


def speech_16k(speech: SpeechEngine, text: str = "Where were you last night? I waited for hours.") -> np.ndarray:
    utt = speech.synthesize(text, VoiceSpec(variant="m3"))
    return to_float(resample(utt.pcm, from_hz=48_000, to_hz=16_000))


def test_numpy_model_matches_the_same_network_in_torch(vad: SileroVad, speech: SpeechEngine) -> None:
    """The port is exact: the same weights through torch's own conv1d and LSTMCell agree."""
    from safetensors.torch import load_file

    w = load_file(str(default_weights_path()))
    lstm = torch.nn.LSTMCell(128, 128)
    lstm.load_state_dict({k.split(".", 1)[1]: v for k, v in w.items() if k.startswith("lstm_cell")})
    f = torch.nn.functional
    x = torch.from_numpy(speech_16k(speech)[: 512 * 40])
    ctx, state, ref = torch.zeros(1, 64), None, []
    with torch.no_grad():
        for i in range(40):
            inp = torch.cat([ctx, x[i * 512 : (i + 1) * 512][None]], dim=1)
            y = f.conv1d(f.pad(inp[:, None], (0, 64), mode="reflect"), w["stft_conv.weight"], stride=128)
            y = torch.sqrt(y[:, :129] ** 2 + y[:, 129:] ** 2)
            y = f.relu(f.conv1d(y, w["conv1.weight"], w["conv1.bias"], padding=1))
            y = f.relu(f.conv1d(y, w["conv2.weight"], w["conv2.bias"], stride=2, padding=1))
            y = f.relu(f.conv1d(y, w["conv3.weight"], w["conv3.bias"], stride=2, padding=1))
            y = f.relu(f.conv1d(y, w["conv4.weight"], w["conv4.bias"], padding=1))[..., 0]
            state = lstm(y, state)
            ref.append(float(torch.sigmoid(f.conv1d(f.relu(state[0])[..., None], w["final_conv.weight"], w["final_conv.bias"]))))
            ctx = inp[:, -64:]
    ours = VadStream(vad).push(x.numpy())
    assert np.abs(np.array(ours) - np.array(ref)).max() < 1e-4


def test_speech_is_speech_and_noise_is_not(vad: SileroVad, speech: SpeechEngine) -> None:
    rng = np.random.default_rng(0)
    x = speech_16k(speech)
    probs = np.array(VadStream(vad).push(x))
    assert (probs > 0.5).mean() > 0.5
    n = 16_000 * 3
    t = np.arange(n) / 16_000
    for name, noise in {
        "silence": np.zeros(n),
        "white": 0.1 * rng.standard_normal(n),
        "brown": np.cumsum(rng.standard_normal(n)) * 0.002,
        "hum": 0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t),
    }.items():
        p = np.array(VadStream(vad).push(noise.astype(np.float32)))
        assert p.max() < 0.5, f"{name}: max speech probability {p.max():.2f}"


def test_stream_is_the_same_however_it_is_chunked(vad: SileroVad, speech: SpeechEngine) -> None:
    x = speech_16k(speech)
    whole = VadStream(vad).push(x)
    stream, parts, i = VadStream(vad), [], 0
    rng = np.random.default_rng(1)
    while i < x.shape[0]:
        n = int(rng.integers(1, 900))
        parts += stream.push(x[i : i + n])
        i += n
    assert parts == whole


def test_gate_has_hysteresis_and_a_hangover() -> None:
    gate = VadGate(VadGateConfig(open_at=0.5, close_below=0.35, hangover_ms=96))
    assert not gate.update(0.4)  # below open_at: stays shut
    assert gate.update(0.6)
    assert gate.update(0.4)  # between: stays open
    assert gate.update(0.1) and gate.update(0.1)  # 64 ms of quiet: still open
    assert not gate.update(0.1)  # 96 ms: shut


def test_missing_or_corrupt_weights_say_so(tmp_path: Path) -> None:
    with pytest.raises(VadModelError, match="not found"):
        SileroVad.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(VadModelError, match="cannot read"):
        SileroVad.load(bad)
