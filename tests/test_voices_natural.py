"""The natural voice (Kokoro) next to espeak-ng: timing from the model's durations, mouths in sync,
determinism, languages and their fallback, broken installs, distinct voices per character."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from avatar.spec import BUILTIN_CAST, Cast, auto_cast
from lipsync.audio import frame_rms, to_float
from lipsync.chunk_cache import ChunkCache
from lipsync.espeak import Espeak, PhonemeEvent
from lipsync.g2p import Clause, english_from_ipa, split_clauses
from lipsync.kokoro import (
    DURATION_UNIT_SAMPLES,
    VOCAB,
    KokoroConfig,
    ModelCorruptError,
    ModelMissingError,
    read_model,
    read_voice,
)
from lipsync.kokoro_calibrate import log_mel
from lipsync.kokoro_graph import (
    GraphEditError,
    KokoroCalibration,
    add_outputs,
    fuse_instance_norms,
    snakes_as_tables,
    stft_as_convolution,
)
from lipsync.mouth_track import MouthTrackConfig
from lipsync.natural import NaturalConfig, Turns, line_calls, phoneme_events
from lipsync.phonemes import visemes_for_phoneme
from lipsync.speech import SpeechEngine
from lipsync.streaming import StreamingUtterance
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from lipsync.visemes import JAW_OPEN, SIL, VISEMES
from lipsync.voices import VoiceSpec, auto_voice, natural_voice, voice_for_text
from stream.live.control import ProtocolError, Say, parse_message
from stream.store.cast import spec_from_json, spec_to_json

TEXT = "Where were you last night? I waited for hours, Maya. Bob brought me maps."
MAYA = VoiceSpec(backend="kokoro", voice_id="af_heart")


@pytest.fixture(scope="module")
def natural() -> Iterator[SpeechEngine]:
    engine = SpeechEngine(voice_backend="natural")
    if engine.natural() is None:
        pytest.skip(f"the natural voice is not installed here ({engine.natural_error}); ./dev installs it")
    yield engine


# -- without the model ---------------------------------------------------------------------------


def test_clauses_end_after_punctuation_but_not_after_titles_or_decimals() -> None:
    assert split_clauses("I met Mr. Smith at 3.5 o'clock, e.g. today. Yes! No?") == [
        "I met Mr. Smith at 3.5 o'clock,", "e.g. today.", "Yes!", "No?",
    ]
    assert split_clauses("他说：“好的。”然后走了！") == ["他说：", "“好的。”", "然后走了！"]


def test_espeak_ipa_becomes_kokoro_symbols() -> None:
    assert english_from_ipa("həlˈo^ʊ wˈe^ɪɾɚ", british=False) == "həlˈO wˈATəɹ"
    assert english_from_ipa("həlˈə^ʊ", british=True) == "həlˈQ"
    assert all(ch in VOCAB for ch in english_from_ipa("a^ɪ d^ʒ t^ʃ ɔ^ɪ a^ʊ", british=False))


def test_marks_fold_into_their_phoneme_and_events_follow_the_durations() -> None:
    # [pad, ˈ, ɑ, ː, ↓, " ", m, .,  pad]: 10 frames of start pad, 2 of them kept (shift 0).
    frames = np.array([10, 1, 3, 1, 1, 2, 2, 4, 3])
    trim = 8 * DURATION_UNIT_SAMPLES
    events = phoneme_events("ˈɑː↓ m.", frames, trim_samples=trim)
    labels = [(e.phoneme, e.start_sample // DURATION_UNIT_SAMPLES) for e in events]
    # stress starts the vowel; length and tone extend it; space and "." are pauses; then the end pad.
    assert labels == [("", 0), ("ˈɑː↓", 2), ("", 8), ("m", 10), ("", 12), ("", 16)]
    assert (frames.sum() * DURATION_UNIT_SAMPLES - trim) // DURATION_UNIT_SAMPLES == 19


def test_offline_calls_speak_whole_lines_as_far_as_a_call_holds() -> None:
    clauses = [Clause("Where were you?", "wɛɹ wɜɹ ju?"), Clause("I waited,", "I wATᵻd,"), Clause("all night.", "ɔl nIt.")]
    # One call for the line: the start pad is paid once, the model pauses between its sentences.
    assert line_calls(clauses, max_tokens=240) == ["wɛɹ wɜɹ ju? I wATᵻd, ɔl nIt."]
    # A call that cannot hold the next clause ends before it; a clause too long is cut at words.
    assert line_calls(clauses, max_tokens=20) == ["wɛɹ wɜɹ ju? I wATᵻd,", "ɔl nIt."]
    assert line_calls([Clause("x", "ab cd ef gh.")], max_tokens=8) == ["ab cd", "ef gh."]


def test_the_chunk_cache_keeps_recent_chunks_read_only_within_its_bound() -> None:
    cache = ChunkCache(max_samples=10)
    events = [PhonemeEvent("a", 0), PhonemeEvent("", 3)]
    pcm = np.arange(4, dtype=np.int16)
    kept = cache.put(("ab.", "af_heart", 1.0), pcm, events)
    pcm[0] = 99  # the cache holds its own copy
    got = cache.get(("ab.", "af_heart", 1.0))
    assert got is kept and got.pcm.tolist() == [0, 1, 2, 3] and got.events == tuple(events)
    assert not got.pcm.flags.writeable
    assert cache.get(("ab.", "af_heart", 1.1)) is None  # another speed is another chunk
    cache.put(("cd.", "am_puck", 1.0), np.zeros(4, np.int16), events)
    cache.get(("ab.", "af_heart", 1.0))  # "ab." is now the most recently used
    cache.put(("ef.", "am_puck", 1.0), np.zeros(4, np.int16), events)  # 12 samples > 10: "cd." goes
    assert cache.get(("cd.", "am_puck", 1.0)) is None
    assert cache.get(("ab.", "af_heart", 1.0)) is not None and cache.n_samples == 8 and len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 2)
    cache.put(("long.", "af_heart", 1.0), np.zeros(11, np.int16), events)  # larger than the bound: not kept
    assert cache.get(("long.", "af_heart", 1.0)) is None and cache.n_samples == 8
    with pytest.raises(ValueError, match="max_samples"):
        ChunkCache(max_samples=-1)
    with pytest.raises(ValueError, match="cache_audio_s"):
        NaturalConfig(cache_audio_s=-1)


def test_turns_go_to_the_oldest_line_first() -> None:
    turns = Turns()
    order: list[int] = []
    first = turns.ticket()
    tickets = [turns.ticket() for _ in range(4)]
    gate = threading.Event()

    def run(ticket: int) -> None:
        with turns.turn(ticket):
            order.append(ticket)

    with turns.turn(first):  # hold the model while the others queue up, newest first
        threads = [threading.Thread(target=run, args=(t,)) for t in reversed(tickets)]
        for t in threads:
            t.start()
        gate.wait(0.2)
    for t in threads:
        t.join()
    assert order == tickets


def test_voice_specs_carry_backend_voice_and_speed_and_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown natural voice 'xx_nobody'"):
        VoiceSpec(backend="kokoro", voice_id="xx_nobody")
    with pytest.raises(ValueError, match="speed must be 0.5..2.0"):
        VoiceSpec(backend="kokoro", voice_id="af_heart", speed=3.0)
    with pytest.raises(ValueError, match="backend must be one of espeak, kokoro"):
        VoiceSpec(backend="festival")
    maya = BUILTIN_CAST[0]
    assert spec_from_json(maya.name, spec_to_json(maya)) == maya
    old = spec_from_json("OLD", {"voice": {"language": "en-us", "variant": "f2"}})  # stored before natural voices
    assert old.voice.backend == "espeak"


def test_languages_map_to_natural_voices_or_fall_back() -> None:
    assert natural_voice(MAYA) == "af_heart"
    mandarin = natural_voice(voice_for_text(MAYA, "你好"))
    assert mandarin is not None and mandarin.startswith("zf_")
    assert natural_voice(voice_for_text(MAYA, "안녕하세요")) is None  # Korean: espeak-ng
    british = natural_voice(replace(MAYA, language="en"))
    assert british is not None and british.startswith("bf_")
    assert natural_voice(MAYA.as_espeak()) is None
    leo = Cast.builtin(language="cmn").resolve("LEO").voice
    assert natural_voice(leo).startswith("zm_")  # type: ignore[union-attr]


def test_every_character_has_its_own_natural_voice() -> None:
    builtin = [spec.voice.voice_id for spec in BUILTIN_CAST]
    assert all(spec.voice.backend == "kokoro" for spec in BUILTIN_CAST)
    assert len(set(builtin)) == len(builtin)
    names = ["ANNA", "BORIS", "CHEN", "DANA", "EMIL", "FARAH", "GUS", "HANA"]
    auto = [auto_cast(n).voice for n in names]
    # Hashed from the name, as the espeak-ng voices are: two names may meet (BORIS and HANA do).
    assert len({(v.voice_id, v.speed) for v in auto}) >= len(names) - 1
    assert not {v.voice_id for v in auto} & set(builtin)  # blends: never a built-in's voice
    for name, voice in zip(names, auto, strict=True):
        female = voice.variant.startswith("f")
        assert all(part[1] == ("f" if female else "m") for part in voice.voice_id.split("+")), name
        assert auto_voice(name) == auto_voice(name.lower())


def test_say_and_script_may_ask_for_espeak() -> None:
    (say,) = parse_message('{"type": "say", "speaker": "MAYA", "text": "Hi", "voice": "espeak"}')
    assert isinstance(say, Say) and say.voice == "espeak"
    (plain,) = parse_message('{"type": "say", "speaker": "MAYA", "text": "Hi"}')
    assert isinstance(plain, Say) and plain.voice is None
    lines = parse_message('{"type": "script", "text": "MAYA: Hi\\nLEO: Yo", "voice": "espeak"}')
    assert [c.voice for c in lines if isinstance(c, Say)] == ["espeak", "espeak"]
    with pytest.raises(ProtocolError, match="'voice' must be 'natural' or 'espeak'"):
        parse_message('{"type": "say", "speaker": "MAYA", "text": "Hi", "voice": "robot"}')


def test_a_missing_model_is_a_clear_error_and_espeak_speaks_instead(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ModelMissingError, match="no_such_part is not installed"):
        read_model(KokoroConfig(model_parts=("no_such_part",)))
    engine = SpeechEngine(voice_backend="natural", kokoro=KokoroConfig(model_parts=("no_such_part",)))
    with caplog.at_level(logging.WARNING, logger="lipsync.speech"):
        first = engine.say("Hello there.", MAYA)
        engine.say("And again.", MAYA)
    assert first.backend == "espeak" and first.n_samples > SAMPLE_RATE_HZ // 2
    assert "no_such_part is not installed" in (engine.natural_error or "")
    warnings = [r for r in caplog.records if "natural voices are unavailable" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per line


def test_a_corrupt_model_or_voice_is_a_clear_error(tmp_path: Path) -> None:
    model = tmp_path / "kokoro.onnx"
    model.write_bytes(b"not a model" * 100)
    with pytest.raises(ModelCorruptError, match="sha256"):
        read_model(KokoroConfig(model_path=str(model)))
    engine = SpeechEngine(voice_backend="natural", kokoro=KokoroConfig(model_path=str(model)))
    assert engine.say("Hello.", MAYA).backend == "espeak"
    assert "reinstall" in (engine.natural_error or "")
    with pytest.raises(ModelMissingError, match="af_heart.bin is missing"):
        read_voice(tmp_path, "af_heart")
    (tmp_path / "af_heart.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(ModelCorruptError, match="af_heart.bin is damaged"):
        read_voice(tmp_path, "af_heart")
    import onnx

    with pytest.raises(GraphEditError, match="no tensor named '/encoder/Clip_output_0'"):
        add_outputs(onnx.ModelProto(), ["/encoder/Clip_output_0"])
    (tmp_path / "calibration.safetensors").write_bytes(b"not a calibration")
    with pytest.raises(GraphEditError, match="cannot be read"):
        KokoroCalibration.load(tmp_path / "calibration.safetensors")
    with pytest.raises(GraphEditError, match="is missing"):
        KokoroCalibration.load(tmp_path / "none.safetensors")


def _run_graph(nodes: list, inputs: dict[str, np.ndarray], inits: dict[str, np.ndarray], edit=None) -> tuple:
    """(output, op types) of a one-output graph, after ``edit`` when given."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(k, onnx.TensorProto.FLOAT, v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if edit is not None:
        edit(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0], [n.op_type for n in model.graph.node]


def test_adain_as_the_export_spells_it_becomes_one_instance_norm_with_the_same_output() -> None:
    from onnx import helper

    rng = np.random.default_rng(3)
    inputs = {
        "x": (rng.standard_normal((1, 6, 500)) * 3 + 1).astype(np.float32),
        "g": rng.random((1, 6, 1)).astype(np.float32),  # 1 + gamma, from the style
        "b": rng.standard_normal((1, 6, 1)).astype(np.float32),
    }
    inits = {"axes": np.array([2], np.int64), "eps": np.array(1e-5, np.float32)}
    adain = [
        helper.make_node("ReduceMean", ["x", "axes"], ["mean"]),
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["square"]),
        helper.make_node("ReduceMean", ["square", "axes"], ["var"]),
        helper.make_node("Add", ["var", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["std"]),
        helper.make_node("Div", ["centred", "std"], ["norm"]),
        helper.make_node("Mul", ["g", "norm"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["y"]),
    ]
    counted: list[int] = []
    before, _ = _run_graph(adain, inputs, inits)
    after, ops = _run_graph(adain, inputs, inits, edit=lambda m: counted.append(fuse_instance_norms(m)))
    assert counted == [1] and "InstanceNormalization" in ops and "ReduceMean" not in ops
    np.testing.assert_allclose(after, before, atol=2e-5)
    expected = (inputs["x"] - inputs["x"].mean(2, keepdims=True)) / np.sqrt(inputs["x"].var(2, keepdims=True) + 1e-5)
    np.testing.assert_allclose(after, expected * inputs["g"] + inputs["b"], atol=2e-5)
    # Over channels (axis 1) is not an instance norm: left as it is.
    inits["axes"] = np.array([1], np.int64)
    _, ops = _run_graph(adain, inputs, inits, edit=fuse_instance_norms)
    assert "InstanceNormalization" not in ops


def test_the_stft_as_a_convolution_gives_the_same_spectrum_and_random_signed_dc_phase() -> None:
    from onnx import helper

    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(20) / 20)).astype(np.float32)
    inputs = {"x": np.random.default_rng(4).standard_normal((1, 4000)).astype(np.float32)}
    inits = {"step": np.array(5, np.int64), "window": window, "length": np.array(20, np.int64)}
    stft = [helper.make_node("STFT", ["x", "step", "window", "length"], ["y"], onesided=1)]
    before, _ = _run_graph(stft, inputs, inits)
    after, ops = _run_graph(stft, inputs, inits, edit=stft_as_convolution)
    assert "STFT" not in ops and "Conv" in ops
    assert after.shape == before.shape == (1, 797, 11, 2)
    np.testing.assert_allclose(after[..., 0], before[..., 0], atol=1e-4)  # real parts
    np.testing.assert_allclose(after[..., 1:10, 1], before[..., 1:10, 1], atol=1e-4)
    # DC and Nyquist: no imaginary part to speak of, but of either sign, as an FFT's rounding leaves it.
    for k in (0, 10):
        imaginary = after[0, :, k, 1]
        assert np.abs(imaginary).max() < 1e-4 and (imaginary > 0).mean() > 0.2 and (imaginary < 0).mean() > 0.2


def test_a_snake_before_a_static_convolution_becomes_a_table_with_the_same_levels() -> None:
    from onnx import helper

    rng = np.random.default_rng(5)
    channels = 8
    inputs = {
        "x": (rng.standard_normal((1, channels, 4000)) * 2 + 0.5).astype(np.float32),
        "g": (0.5 + rng.random(channels)).astype(np.float32),  # 1 + gamma, from the style
        "b": rng.standard_normal(channels).astype(np.float32),
    }
    alpha = rng.uniform(0.4, 1.4, (1, channels, 1)).astype(np.float32)
    inits = {
        "alpha": alpha, "recip": (1.0 / (alpha + 1e-9)).astype(np.float32), "two": np.array(2.0, np.float32),
        "x_scale": np.array(4.0 / 255, np.float32), "x_zero": np.array(110, np.uint8),  # [-1.7, 2.3]: both ends clip
    }
    snake = [
        helper.make_node("InstanceNormalization", ["x", "g", "b"], ["u"], epsilon=1e-5),
        helper.make_node("Mul", ["alpha", "u"], ["au"]),
        helper.make_node("Sin", ["au"], ["sin"]),
        helper.make_node("Pow", ["sin", "two"], ["sin2"]),
        helper.make_node("Mul", ["recip", "sin2"], ["bump"]),
        helper.make_node("Add", ["u", "bump"], ["snake"]),
        helper.make_node("QuantizeLinear", ["snake", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["y"]),
    ]
    counted: list[int] = []
    before, _ = _run_graph(snake, inputs, inits)
    after, ops = _run_graph(snake, inputs, inits, edit=lambda m: counted.append(snakes_as_tables(m)))
    assert counted == [1] and "GatherElements" in ops and "Sin" not in ops and "QuantizeLinear" not in ops
    levels = np.rint((after - before) / inits["x_scale"])
    assert np.abs(levels).max() <= 1 and (levels == 0).mean() > 0.9
    # Inputs far outside the table's span still round to the ends, as they did (0 and 255).
    x = inputs["x"]
    u = (x - x.mean(2, keepdims=True)) / np.sqrt(x.var(2, keepdims=True) + 1e-5) * inputs["g"][:, None] + inputs["b"][:, None]
    x_lo, x_hi = -110 * inits["x_scale"], 145 * inits["x_scale"]
    far_below, far_above = u < x_lo - 1 / alpha - 0.1, u > x_hi + 0.1
    assert far_below.sum() > 50 and far_above.sum() > 50
    assert np.all(after[far_below] == x_lo) and np.all(after[far_above] == x_hi)
    # A snake whose input is read elsewhere too is left as it is.
    _, ops = _run_graph(snake + [helper.make_node("Identity", ["u"], ["also"])], inputs, inits, edit=snakes_as_tables)
    assert "Sin" in ops


def test_espeak_switch_never_loads_the_model() -> None:
    engine = SpeechEngine(voice_backend="espeak")
    utt = engine.say("Hello there.", MAYA)
    assert utt.backend == "espeak" and engine.natural() is None and engine.natural_error is None


# -- with the model ------------------------------------------------------------------------------


@pytest.mark.slow
def test_durations_add_up_to_the_audio(natural: SpeechEngine) -> None:
    voices = natural.natural()
    assert voices is not None
    tokens = [VOCAB[ch] for ch in "həlˈO wˈɜɹld."]
    audio, frames = voices.model.infer(tokens, voice_id="af_heart")
    assert frames.shape == (len(tokens) + 2,)
    assert frames.sum() * DURATION_UNIT_SAMPLES == audio.shape[0]
    assert frames.min() >= 1
    speech = voices.synthesize(TEXT, language="en-us", voice_id="af_heart", speed=1.0)
    starts = [p.start_sample for p in speech.phonemes]
    assert starts == sorted(starts) and starts[-1] <= speech.n_samples


@pytest.mark.slow
def test_viseme_onsets_follow_the_models_phonemes_within_one_frame(natural: SpeechEngine) -> None:
    utt = natural.say(TEXT, MAYA)
    assert utt.backend == "kokoro"
    assert utt.mouth.shape[0] == -(-utt.n_samples // SAMPLES_PER_FRAME)
    min_len = MouthTrackConfig().min_shape_ms * SAMPLE_RATE_HZ / 1000
    dominant = utt.mouth.argmax(axis=1)
    checked = 0
    for i, ph in enumerate(utt.phonemes[:-1]):
        vis = visemes_for_phoneme(ph.phoneme)
        if not vis or utt.phonemes[i + 1].start_sample - ph.start_sample < min_len:
            continue
        f = ph.start_sample // SAMPLES_PER_FRAME
        window = dominant[max(0, f - 1) : f + 2]
        assert vis[0] in window, f"{ph.phoneme!r} at frame {f} wants {VISEMES[vis[0]]}, shows {[VISEMES[v] for v in window]}"
        checked += 1
    assert checked >= 10
    # The mouth opens with the voice's energy (0.74 for espeak-ng on this line, 0.44 here: the model
    # spreads sounds over its tokens less sharply than espeak-ng's events say).
    opening = utt.mouth @ np.asarray(JAW_OPEN)
    assert np.corrcoef(opening, frame_rms(to_float(utt.pcm)))[0, 1] > 0.35


@pytest.mark.slow
def test_the_same_line_gives_the_same_samples(natural: SpeechEngine) -> None:
    voices = natural.natural()
    assert voices is not None
    first = natural.say("Where were you last night?", MAYA)
    natural.say("Something else, in another voice.", replace(MAYA, voice_id="am_puck"))
    voices.cache.clear()  # the model itself, not the cache, must give the same samples
    again = natural.say("Where were you last night?", MAYA)
    np.testing.assert_array_equal(first.pcm, again.pcm)
    assert first.phonemes == again.phonemes
    hits = voices.cache.hits
    cached = natural.say("Where were you last night?", MAYA)  # now from the cache: no model call
    assert voices.cache.hits == hits + 1
    np.testing.assert_array_equal(cached.pcm, first.pcm)
    assert cached.phonemes == first.phonemes


@pytest.mark.slow
def test_lines_spoken_side_by_side_give_the_samples_they_give_alone(natural: SpeechEngine) -> None:
    # A render speaks two lines at once (stream.record.offline.perform): the model runs twice
    # concurrently, and each line must still come out exactly as it does alone.
    voices = natural.natural()
    assert voices is not None
    lines = ["Hello there, friend.", "I waited at the harbour all night."]
    voices.cache.clear()
    alone = [natural.synthesize(text, MAYA).pcm for text in lines]
    voices.cache.clear()
    hits = voices.cache.hits
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(lambda text: natural.synthesize(text, MAYA).pcm, lines))
    assert voices.cache.hits == hits  # both made by the model, not taken from the cache
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "backend"),
    [("Hello there, friend.", "kokoro"), ("你好，你昨天晚上去哪儿了？", "kokoro"), ("안녕하세요, 반갑습니다", "espeak")],
)
def test_english_and_mandarin_are_natural_and_korean_falls_back(natural: SpeechEngine, text: str, backend: str) -> None:
    utt = natural.say(text, voice_for_text(MAYA, text))
    assert utt.backend == backend
    assert utt.n_samples > SAMPLE_RATE_HZ * 0.8
    assert np.abs(utt.pcm).max() > 3000
    assert (utt.mouth[:, SIL] < 0.5).sum() > 10


@pytest.mark.slow
def test_characters_sound_different(natural: SpeechEngine) -> None:
    def pitch_hz(pcm: np.ndarray) -> float:
        x = pcm.astype(np.float32) / 32768
        frames = x[: x.shape[0] // 1920 * 1920].reshape(-1, 1920)
        loud = frames[np.sqrt((frames**2).mean(axis=1)) > 0.05]
        lags = []
        for f in loud:
            ac = np.correlate(f, f, "full")[1919:]
            lo, hi = 48_000 // 400, 48_000 // 70  # 70..400 Hz
            lags.append(lo + int(np.argmax(ac[lo:hi])))
        return 48_000 / float(np.median(lags))

    line = "I waited at the harbour all night long."
    cast = Cast.builtin()
    maya = natural.say(line, cast.resolve("MAYA").voice)
    leo = natural.say(line, cast.resolve("LEO").voice)
    assert maya.backend == leo.backend == "kokoro"
    assert pitch_hz(maya.pcm) > 1.3 * pitch_hz(leo.pcm)


@pytest.mark.slow
def test_a_live_line_starts_with_its_first_words_and_keeps_its_samples(natural: SpeechEngine) -> None:
    text = "I waited at the harbour for hours and hours and hours. Then I went home, and slept."
    whole = natural.with_mouth(natural.synthesize(text, MAYA, live=True))
    chunks: list[int] = []
    voices = natural.natural()
    assert voices is not None
    speak = voices.speak_chunk
    voices.speak_chunk = lambda ph, **kw: (chunks.append(len(ph)), speak(ph, **kw))[1]  # type: ignore[method-assign]
    try:
        utt = StreamingUtterance(text=text, voice=MAYA)
        utt.synthesize(natural, first_chunk_samples=5 * SAMPLES_PER_FRAME)
    finally:
        del voices.speak_chunk
    first_clause = len(voices.phonemizer.clauses(text, "en-us")[0].phonemes)
    assert first_clause > NaturalConfig().first_chunk_tokens >= chunks[0]  # its first words first
    assert len(chunks) >= 3
    assert utt.done and utt.n_samples == whole.n_samples
    diff = np.abs(utt.audio(0, utt.n_samples).astype(np.int32) - whole.pcm.astype(np.int32))
    assert diff.max() <= 2
    rows = np.stack([utt.mouth_row(j) for j in range(utt.n_frames)])
    np.testing.assert_allclose(rows, whole.mouth, atol=1e-6)


@pytest.mark.slow
def test_a_cancelled_live_line_stops_before_its_next_call(natural: SpeechEngine) -> None:
    utt = StreamingUtterance(text=TEXT * 3, voice=MAYA)
    utt.cancel()
    utt.synthesize(natural, first_chunk_samples=SAMPLES_PER_FRAME)
    assert utt.done and utt.n_samples == 0


def test_g2p_uses_the_engines_own_espeak() -> None:
    from lipsync.g2p import Phonemizer

    clauses = Phonemizer(espeak=Espeak()).clauses("Hello there, where were you?", "en-us")
    assert [c.text for c in clauses] == ["Hello there,", "where were you?"]
    assert clauses[0].phonemes.endswith(",") and clauses[1].ends_sentence
    assert all(ch in VOCAB for c in clauses for ch in c.phonemes)


@pytest.mark.slow
def test_a_live_scene_plays_the_natural_voice_with_its_mouth_frame_by_frame(natural: SpeechEngine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from stream.live.scene import LiveConfig, LiveScene

    with ThreadPoolExecutor(max_workers=2) as pool:
        scene = LiveScene(cast=Cast.builtin(), speech=natural, synth_executor=pool, config=LiveConfig())
        for k in range(5):
            scene.produce(k)
        line = scene.say("MAYA", "Where were you? I waited.", received_at=0.0)
        assert line.utt.finished.wait(120.0)  # frames are produced faster than real time here
        states = [scene.produce(k) for k in range(5, 5 + line.utt.n_frames + 10)]
    started = [n for s in states for n in s.notices if n.kind == "started"]
    assert [n.sample for n in started] == [5 * SAMPLES_PER_FRAME]
    maya = scene.view.names.index("MAYA")
    whole = natural.with_mouth(natural.synthesize(line.text, line.utt.voice, live=True))
    # Frame k carries samples [k * 1920, (k + 1) * 1920) of the line and the mouth for them.
    for j in range(line.utt.n_frames):
        expected = whole.pcm[j * SAMPLES_PER_FRAME : (j + 1) * SAMPLES_PER_FRAME].astype(np.float32) * 0.8
        got = states[j].audio[: expected.shape[0]].astype(np.float32)
        assert np.abs(got - expected).max() <= 2  # the mixer's gain (the voice stays under its limiter)
        np.testing.assert_allclose(states[j].mouths[maya], whole.mouth[j], atol=1e-6)


def test_translating_to_phonemes_leaves_espeak_synthesis_unchanged() -> None:
    espeak = Espeak()
    before = espeak.synthesize("Where were you last night?", VoiceSpec())
    assert espeak.text_to_phonemes("Where were you?", "en-us") == espeak.text_to_phonemes("Where were you?", "en-us")
    after = espeak.synthesize("Where were you last night?", VoiceSpec())
    np.testing.assert_array_equal(before.pcm, after.pcm)


@pytest.mark.slow
def test_a_damaged_voice_file_speaks_espeak_and_says_so_once(
    natural: SpeechEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from lipsync.kokoro import default_voices_dir

    for path in default_voices_dir().glob("*.bin"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "am_puck.bin").write_bytes(b"\0" * 100)
    engine = SpeechEngine(voice_backend="natural", kokoro=KokoroConfig(voices_dir=str(tmp_path)))
    if engine.natural() is None:
        pytest.skip(f"the natural voice is not installed here ({engine.natural_error})")
    with caplog.at_level(logging.WARNING, logger="lipsync.speech"):
        leo = [engine.say("Hi.", replace(MAYA, voice_id="am_puck")).backend for _ in range(2)]
    assert leo == ["espeak", "espeak"]
    assert engine.say("Hi.", MAYA).backend == "kokoro"
    warnings = [r.getMessage() for r in caplog.records if "am_puck" in r.getMessage()]
    assert len(warnings) == 1 and "damaged" in warnings[0]


@pytest.mark.slow
def test_static_int8_convolutions_keep_the_shipped_voice_and_timing(natural: SpeechEngine, tmp_path: Path, caplog) -> None:
    from lipsync.kokoro import KokoroModel

    voices = natural.natural()
    assert voices is not None and voices.model.convolutions == "static-int8"
    shipped = KokoroModel(KokoroConfig(convolutions="shipped"))
    assert shipped.convolutions == "shipped"
    for text, voice in (("Where were you last night? I waited for hours.", "af_heart"), ("Bob brought me maps.", "bm_george")):
        tokens = [VOCAB[ch] for ch in " ".join(c.phonemes for c in voices.phonemizer.clauses(text, "en-us")) if ch in VOCAB]
        fast, fast_frames = voices.model.infer(tokens, voice_id=voice)
        slow, slow_frames = shipped.infer(tokens, voice_id=voice)
        assert np.array_equal(fast_frames, slow_frames)  # the same timing, token for token
        a, b = log_mel(fast), log_mel(slow)
        loud = b > b.max() - 60
        # dB: the rebuilt graph is ~1.0 from its float twin, the shipped ~1.3 from float, the two
        # floats ~1.0 apart (their STFTs' rounding noise; lipsync.kokoro_calibrate --check)
        assert np.abs(a - b)[loud].mean() < 2.5
        assert abs(float(np.sqrt(np.mean(fast**2))) / float(np.sqrt(np.mean(slow**2))) - 1) < 0.15
    # A calibration measured on another model is refused, said in the log, and the shipped graph runs.
    calibration = KokoroCalibration.load()
    KokoroCalibration(model_sha256="0" * 64, convs=calibration.convs).save(tmp_path / "other.safetensors")
    with caplog.at_level(logging.WARNING):
        other = KokoroModel(KokoroConfig(calibration_path=str(tmp_path / "other.safetensors")))
    assert other.convolutions == "shipped"
    assert any("measured on another model" in r.getMessage() for r in caplog.records)
