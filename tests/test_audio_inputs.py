"""Live audio inputs in a scene, without a network: delay, sync, buffer policy, several speakers, files."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from avatar.measure import mouth_opening
from avatar.spec import Cast
from lipsync.audio_mouth import jaw_of
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLES_PER_FRAME
from lipsync.voices import VoiceSpec
from stream.live.inputs.audio_input import (
    AudioInput,
    AudioModels,
    InputConfig,
    InputError,
    decode_audio,
)
from stream.live.scene import LiveConfig, LiveScene
from stream.tools.bench_audio import lag_correlation

PACKET = 960


@pytest.fixture(scope="module")
def models() -> AudioModels:
    return AudioModels.load()


@pytest.fixture(scope="module")
def voice(speech: SpeechEngine) -> np.ndarray:
    return speech.synthesize("Where were you last night? I waited for hours and hours.", VoiceSpec(variant="f2")).pcm


@pytest.fixture
def scene(speech: SpeechEngine) -> Iterator[LiveScene]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield LiveScene(cast=Cast.builtin(), speech=speech, synth_executor=pool, config=LiveConfig(width_px=320, height_px=240))


def live(source: AudioInput, pcm: np.ndarray, n_frames: int, *, start_k: int = 0) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Real-time order without the wall clock: two 20 ms packets arrive per 40 ms frame."""
    pcm = np.concatenate([pcm, np.zeros(n_frames * SAMPLES_PER_FRAME, np.int16)])
    out = []
    for k in range(n_frames):
        for half in range(2):
            i = (2 * k + half) * PACKET
            source.feed(pcm[i : i + PACKET])
        out.append(source.frame(start_k + k))
    return out


def test_voice_is_the_input_delayed_and_the_mouth_matches_it(models: AudioModels, voice: np.ndarray) -> None:
    source = AudioInput(input_id="t", kind="mic", character="MAYA", models=models)
    frames = live(source, voice, voice.shape[0] // SAMPLES_PER_FRAME + 20)
    audio = np.concatenate([a for a, _ in frames])
    k0 = next(k for k, (a, _) in enumerate(frames) if a.any())  # the first frame played
    # The voice comes out sample for sample: it starts within a hop of the input's start (the
    # buffer skips to its target delay) shifted by the analysis filter's 48 samples.
    offsets = [o for o in range(0, 2000) if np.array_equal(frames[k0][0][:200], voice[o : o + 200])]
    assert len(offsets) == 1
    o = offsets[0]
    assert np.array_equal(audio[k0 * SAMPLES_PER_FRAME :][:100_000], voice[o:][:100_000])
    # Sample o arrived with its 20 ms packet; it plays when frame k0 is produced (after the
    # frame's two packets): the added delay, mouth and voice alike.
    arrived_ms, played_ms = (o // PACKET + 1) * 20, (k0 + 1) * 40
    assert 60 <= played_ms - arrived_ms <= models.config.delay_ms + 20
    # Mouth and voice: the best match is at zero lag.
    jaw = np.array([jaw_of(w) for _, w in frames])
    envelope = np.sqrt(np.mean((audio.reshape(len(frames), -1).astype(np.float32) / 32768) ** 2, axis=1))
    lags = lag_correlation(jaw, envelope)
    assert max(lags, key=lambda k: lags[k]) == 0 and lags[0] > 0.6
    assert source.stats.underflows == 0 and source.stats.speech_frames > 20


def test_underflow_gives_silence_and_a_shut_mouth_then_recovers(models: AudioModels, voice: np.ndarray) -> None:
    source = AudioInput(input_id="t", kind="mic", character="MAYA", models=models)
    live(source, voice[:48_000], 25)
    stalled = [source.frame(25 + k) for k in range(5)]  # the network stalls: nothing arrives
    assert all(not a.any() and w is None for a, w in stalled)
    assert source.stats.underflows == 1
    after = live(source, voice[48_000:], 40, start_k=30)
    assert any(w is not None for _, w in after)


def test_a_burst_after_a_stall_is_skipped_back_to_the_target_delay(models: AudioModels, voice: np.ndarray) -> None:
    source = AudioInput(input_id="t", kind="mic", character="MAYA", models=models)
    live(source, voice[:24_000], 10)
    source.feed(voice[24_000:72_000])  # one second arrives at once
    source.frame(10)
    assert source.stats.skipped_hops > 0
    assert source.margin_samples() <= source.config.jitter_ms * 48 + 480 + SAMPLES_PER_FRAME


def jaws(scene: LiveScene, states: list, name: str) -> np.ndarray:
    """Per frame: is ``name``'s mouth open (as decided for the frame, before drawing)?

    Openness follows loudness, so quiet syllables ask for small openings; whether a renderer
    can show every small opening is the renderer's business (``render_mouths``)."""
    i = scene.view.names.index(name)
    return np.array([jaw_of(s.mouths[i]) > 0 for s in states])


def render_mouths(scene: LiveScene, states: list, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    boxes = dict(zip(scene.view.names, scene.view.compositor.mouth_boxes(), strict=True))
    pictures = [scene.compose(s) for s in states]
    return {n: np.array([mouth_opening(p, boxes[n]) for p in pictures]) for n in names}


def test_two_inputs_a_silent_character_moves_under_5_percent_of_a_speaking_one(
    scene: LiveScene, models: AudioModels, voice: np.ndarray
) -> None:
    rng = np.random.default_rng(0)
    maya = AudioInput(input_id="a", kind="whip", character="MAYA", models=models)
    leo = AudioInput(input_id="b", kind="whip", character="LEO", models=models)
    scene.bind_input("MAYA", maya)
    scene.bind_input("LEO", leo)
    n = voice.shape[0] // SAMPLES_PER_FRAME + 15
    room = (rng.standard_normal(n * SAMPLES_PER_FRAME) * 300).astype(np.int16)  # LEO's mic hears a room
    padded = np.concatenate([voice, np.zeros(n * SAMPLES_PER_FRAME - voice.shape[0], np.int16)])
    states = []
    for k in range(n):
        for half in range(2):
            i = (2 * k + half) * PACKET
            maya.feed(padded[i : i + PACKET])
            leo.feed(room[i : i + PACKET])
        states.append(scene.produce(k))
    opening = render_mouths(scene, states[::2], ("MAYA", "LEO"))
    assert jaws(scene, states, "MAYA").mean() > 0.3  # the speaker's mouth is open often ...
    assert opening["MAYA"].sum() > 0  # ... and on screen
    assert opening["LEO"].sum() < 0.05 * opening["MAYA"].sum()
    maya_i, leo_i = scene.view.names.index("MAYA"), scene.view.names.index("LEO")
    assert any(s.speaking[maya_i] for s in states) and not any(s.speaking[leo_i] for s in states)
    # The scene's audio is both inputs mixed: the voice is there.
    mixed = np.concatenate([s.audio for s in states]).astype(np.float32)
    assert np.sqrt(np.mean(mixed**2)) > 1000


def test_overlapping_speakers_both_move(scene: LiveScene, models: AudioModels, speech: SpeechEngine, voice: np.ndarray) -> None:
    other = speech.synthesize("No, I was at the harbour, watching the boats come in.", VoiceSpec(variant="m3")).pcm
    a = AudioInput(input_id="a", kind="mic", character="MAYA", models=models)
    b = AudioInput(input_id="b", kind="whip", character="IRIS", models=models)
    assert scene.bind_input("maya", a) == "MAYA"
    assert scene.bind_input("iris", b) == "IRIS"  # walks on: there is room
    assert "IRIS" in scene.view.names
    n = max(voice.shape[0], other.shape[0]) // SAMPLES_PER_FRAME + 10
    pa = np.pad(voice, (0, n * SAMPLES_PER_FRAME - voice.shape[0]))
    pb = np.pad(other, (0, n * SAMPLES_PER_FRAME - other.shape[0]))
    states = []
    for k in range(n):
        for half in range(2):
            i = (2 * k + half) * PACKET
            a.feed(pa[i : i + PACKET])
            b.feed(pb[i : i + PACKET])
        states.append(scene.produce(k))
    opening = render_mouths(scene, states[::2], ("MAYA", "IRIS", "LEO"))
    maya, iris = jaws(scene, states, "MAYA"), jaws(scene, states, "IRIS")
    assert maya.mean() > 0.3 and iris.mean() > 0.3  # both talk the whole time ...
    assert (maya & iris).mean() > 0.1  # ... over each other: often both mouths are open at once
    assert opening["MAYA"].sum() > 0 and opening["IRIS"].sum() > 0  # on screen too
    assert opening["LEO"].max() == 0


def _encode(pcm: np.ndarray, fmt: str, codec: str, rate: int = 48_000) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48_000
        resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=rate)
        for f in resampler.resample(frame):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "codec"), [("wav", "pcm_s16le"), ("ogg", "libopus"), ("mp3", "libmp3lame"), ("mp4", "aac")])
def test_files_decode_to_mono_48k(voice: np.ndarray, fmt: str, codec: str) -> None:
    try:
        data = _encode(voice, fmt, codec)
    except (av.FFmpegError, ValueError) as exc:
        pytest.skip(f"this FFmpeg cannot write {codec}: {exc}")
    pcm = decode_audio(data, config=InputConfig())
    assert pcm.dtype == np.int16 and abs(pcm.shape[0] - voice.shape[0]) < 0.1 * 48_000
    assert np.sqrt(np.mean(pcm.astype(np.float32) ** 2)) > 0.5 * np.sqrt(np.mean(voice.astype(np.float32) ** 2))


def test_bad_files_are_refused_clearly(voice: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an audio file|could not be decoded|no audio") as info:
        decode_audio(b"this is not audio at all" * 10, config=InputConfig())
    assert info.value.code == "bad_audio"
    wav = _encode(voice, "wav", "pcm_s16le")
    with pytest.raises(InputError, match="limit is 1000") as info:
        decode_audio(wav, config=InputConfig(max_upload_bytes=1000))
    assert info.value.code == "too_large"
    with pytest.raises(InputError, match="longer than the limit of 1 s") as info:
        decode_audio(wav, config=InputConfig(max_file_s=1.0))
    assert info.value.code == "too_long"


def test_a_file_plays_every_frame_then_ends(models: AudioModels, voice: np.ndarray) -> None:
    ended: list[str] = []
    player = AudioInput(input_id="f", kind="file", character="MAYA", models=models, live=False)
    player.on_end = lambda s: ended.append(s.id)
    player.feed(voice)
    player.finish()
    frames = []
    for k in range(voice.shape[0] // SAMPLES_PER_FRAME + 5):
        frames.append(player.frame(k))
        if player.ended:
            break
    audio = np.concatenate([a for a, _ in frames])
    assert np.array_equal(audio[48 : 48 + voice.shape[0] - 2000], voice[: voice.shape[0] - 2000])
    assert ended == ["f"] and player.stats.skipped_hops == 0
