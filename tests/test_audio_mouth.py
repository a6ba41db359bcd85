"""Audio → mouth: features, the estimator on real and synthetic speech, noise, and the weights file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import testdata_file as real_recording

from lipsync.audio_mouth import (
    ESTIMATORS,
    AudioMouthConfig,
    MouthTracker,
    jaw_of,
    ladder_weights,
    shaped_weights,
    track_mouth,
)
from lipsync.audio_mouth_net import MouthModelError, ShapeNet
from lipsync.features import Decimator, LogMelStream, log_mel
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLES_PER_FRAME
from lipsync.vad import SileroVad
from lipsync.voices import VoiceSpec
from stream.live.inputs.audio_input import AudioModels
from stream.tools.bench_audio import lag_correlation, recording_figures


@pytest.fixture(scope="module")
def models() -> AudioModels:
    return AudioModels.load()


@pytest.fixture(scope="module")
def utterance(speech: SpeechEngine) -> np.ndarray:
    utt = speech.synthesize("Where were you last night? I waited for hours and hours.", VoiceSpec(variant="f2"))
    return utt.pcm


def test_streaming_log_mel_is_torch_stft_log_mel() -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(12_000)).astype(np.float32)
    stream, rows, i = LogMelStream(), [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 700))
        rows.append(stream.push(x[i : i + n]))
        i += n
    assert np.abs(np.concatenate(rows) - log_mel(x)).max() < 1e-3


def test_decimator_delays_by_exactly_48_samples_and_rejects_aliases() -> None:
    t = np.arange(48_000) / 48_000
    d = Decimator()
    out = np.concatenate([d.push(np.sin(2 * np.pi * 1000 * t[i : i + 960]).astype(np.float32)) for i in range(0, 48_000, 960)])
    expected = np.sin(2 * np.pi * 1000 * (3 * np.arange(16_000) - d.delay_samples_48k) / 48_000)
    assert np.abs(out[200:] - expected[200:]).max() < 1e-3
    d = Decimator()
    alias = d.push(np.sin(2 * np.pi * 11_000 * t).astype(np.float32))
    assert np.abs(alias[200:]).max() < 1e-3  # 11 kHz would fold to 5 kHz without the filter


def test_decisions_do_not_depend_on_chunking(models: AudioModels, utterance: np.ndarray) -> None:
    x = utterance.astype(np.float32) / 32768
    a = track_mouth(x, vad=models.vad, shape=models.shape, block_samples=960)
    b = track_mouth(x, vad=models.vad, shape=models.shape, block_samples=1337)
    assert len(a) == len(b)
    for fa, fb in zip(a, b, strict=True):
        assert (fa.weights is None) == (fb.weights is None)
        if fa.weights is not None and fb.weights is not None:
            assert np.allclose(fa.weights, fb.weights, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["en_jfk_16k.wav", "zh_aishell_16k.wav", "grid_bbaf2n.mpg", "grid_lbbc2a.mpg", "grid_swiz3n.mpg"]
)
def test_real_speech_mouth_follows_the_envelope_at_zero_lag(models: AudioModels, name: str) -> None:
    # Real voices the estimator was never tuned on (its settings were chosen on augmented espeak-ng).
    figures = recording_figures(real_recording(name), models)
    print(f"\n{name}: " + ", ".join(f"{e} r={figures[e]['correlation']} lag={figures[e]['best_lag_frames']}" for e in ESTIMATORS))
    chosen = figures[models.config.mouth.estimator]
    assert chosen["correlation"] >= 0.9
    assert chosen["best_lag_frames"] == 0
    assert figures["rig"]["distinct_mouth_drawings"] >= 10  # many mouths, not a handful of sprites
    # The shipped choice measures at least as well as the plain signal estimator.
    assert chosen["correlation"] >= figures["signal"]["correlation"] - 0.01


def test_synthetic_speech_opens_the_mouth_in_time(models: AudioModels, utterance: np.ndarray) -> None:
    frames = track_mouth(utterance, vad=models.vad, shape=models.shape)
    played = np.concatenate([np.zeros(48), utterance.astype(np.float32) / 32768])
    n = len(frames)
    played = np.pad(played, (0, max(0, n * SAMPLES_PER_FRAME - played.shape[0])))[: n * SAMPLES_PER_FRAME]
    envelope = np.sqrt((played.reshape(n, -1) ** 2).mean(axis=1))
    jaw = np.array([jaw_of(f.weights) for f in frames])
    lags = lag_correlation(jaw, envelope)
    assert lags[0] > 0.6 and abs(max(lags, key=lambda k: lags[k])) <= 1


def test_silence_and_noise_keep_the_mouth_shut(models: AudioModels, speech: SpeechEngine) -> None:
    rng = np.random.default_rng(3)
    n = 48_000 * 3
    t = np.arange(n) / 48_000
    noises = {
        "silence": np.zeros(n),
        "white": 0.05 * rng.standard_normal(n),
        "loud white": 0.3 * rng.standard_normal(n),
        "brown": np.cumsum(rng.standard_normal(n)) * 0.001,
        "hum": 0.2 * np.sin(2 * np.pi * 60 * t) + 0.05 * np.sin(2 * np.pi * 180 * t),
    }
    for name, noise in noises.items():
        frames = track_mouth(noise.astype(np.float32), vad=models.vad, shape=models.shape)
        assert all(f.weights is None for f in frames), f"the mouth opened in {name}"
    # Speech over noise: the mouth moves while they speak and shuts in the noise around it.
    voice = speech.synthesize("Hello, can you hear me over all this?", VoiceSpec(variant="m2")).pcm
    x = np.concatenate([noises["white"], noises["white"]])
    start = 48_000
    x[start : start + voice.shape[0]] += voice.astype(np.float32) / 32768
    frames = track_mouth(x.astype(np.float32), vad=models.vad, shape=models.shape)
    during = [jaw_of(f.weights) for f in frames[start // 1920 + 5 : (start + voice.shape[0]) // 1920 - 5]]
    before = [f.weights for f in frames[: start // 1920 - 1]]
    after = [f.weights for f in frames[(start + voice.shape[0]) // 1920 + 8 :]]
    assert np.mean(during) > 0.2 and np.mean(np.array(during) > 0) > 0.6
    assert all(w is None for w in before + after)


def test_openness_sets_the_jaw_whatever_the_shape() -> None:
    rng = np.random.default_rng(4)
    for o in np.linspace(0, 1, 11):
        assert jaw_of(ladder_weights(float(o))) == pytest.approx(o, abs=1e-5)
        for _ in range(5):
            shape = rng.dirichlet(np.ones(15)).astype(np.float32)
            w = shaped_weights(float(o), shape)
            assert w.sum() == pytest.approx(1.0, abs=1e-5) and w.min() >= 0
            assert jaw_of(w) == pytest.approx(o, abs=1e-4)


def test_the_shipped_weights_load_and_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    net = ShapeNet.load()
    assert net.config.lookahead_hops == AudioMouthConfig().lookahead_hops
    assert net(np.zeros((3, net.config.n_inputs), np.float32)).shape == (3, 15)
    with pytest.raises(MouthModelError, match="audio_mouth_train"):
        ShapeNet.load(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"{not safetensors")
    with pytest.raises(MouthModelError, match="cannot read"):
        ShapeNet.load(corrupt)
    from safetensors.numpy import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"layers.0.weight": np.zeros((2, 2), np.float32)}, str(wrong), metadata=ShapeNet.metadata(net.config))
    with pytest.raises(MouthModelError, match="lacks the tensor"):
        ShapeNet.load(wrong)


def test_a_tracker_refuses_a_model_that_looks_further_ahead_than_allowed(models: AudioModels) -> None:
    assert models.shape is not None
    with pytest.raises(ValueError, match="hops ahead"):
        MouthTracker(vad=models.vad, shape=models.shape, config=AudioMouthConfig(lookahead_hops=1))


def test_vad_weights_are_shared_not_reloaded(models: AudioModels) -> None:
    assert isinstance(models.vad, SileroVad)
    assert models.tracker()._vad._model is models.vad  # noqa: SLF001 - one model, many streams
