"""Cross-talk: two microphones in one room, each hearing the other person 20 dB quieter.

Material: a conversation of two espeak-ng voices (turns, pauses, one stretch of talking over
each other); each microphone gets its own voice, the other's through a short room echo at -20
dB, and a -60 dBFS noise floor (``lipsync.conversation``). Played through live inputs as a
session does (20 ms packets, a frame per 40 ms).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_TESTDATA

from avatar.measure import mouth_opening
from avatar.spec import Cast
from lipsync.conversation import (
    RoomConfig,
    RttmError,
    Turn,
    activity,
    espeak_conversation,
    format_rttm,
    parse_rttm,
    read_rttm,
    room_mics,
    speaker_tracks,
)
from lipsync.crosstalk import CrossTalk, CrossTalkConfig
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from stream.live.inputs.audio_input import AudioInput, AudioModels
from stream.live.inputs.room import Room
from stream.live.scene import LiveConfig, LiveScene
from stream.tools.bench_crosstalk import (
    conversation_figures,
    cut_testdata_conversation,
    leakage,
    play_room,
)

PACKET = 960


@pytest.fixture(scope="module")
def models() -> AudioModels:
    return AudioModels.load()


@pytest.fixture(scope="module")
def talk(speech: SpeechEngine) -> tuple[dict[str, np.ndarray], list[Turn]]:
    return espeak_conversation(speech, n_lines=4, overlap_every=3)


@pytest.fixture(scope="module")
def mics(talk: tuple[dict[str, np.ndarray], list[Turn]]) -> dict[str, np.ndarray]:
    return room_mics(talk[0], config=RoomConfig(bleed_db=-20.0, noise_dbfs=-60.0))


def test_the_material_has_turns_pauses_and_real_overlap(talk: tuple[dict[str, np.ndarray], list[Turn]]) -> None:
    tracks, turns = talk
    assert [t.speaker for t in turns] == ["A", "B", "A", "B"]
    assert turns[3].start_s < turns[2].end_s - 0.5  # B starts while A is still talking
    assert turns[1].start_s > turns[0].end_s + 0.2  # a pause between turns
    # each track is silent outside its speaker's turns
    t = np.arange(tracks["A"].shape[0]) / SAMPLE_RATE_HZ
    inside = activity(turns, "A", t, length_s=1 / SAMPLE_RATE_HZ)
    assert np.abs(tracks["A"][~inside]).max() == 0 and np.abs(tracks["A"][inside]).max() > 0.1


def test_the_microphone_of_a_silent_person_is_bleed_20_db_down_over_the_noise_floor(
    talk: tuple[dict[str, np.ndarray], list[Turn]], mics: dict[str, np.ndarray]
) -> None:
    tracks, turns = talk
    a_only = slice(int(turns[0].start_s * SAMPLE_RATE_HZ), int(turns[0].end_s * SAMPLE_RATE_HZ))
    own = np.sqrt(np.mean((mics["A"][a_only] / 32768.0) ** 2))
    heard = np.sqrt(np.mean((mics["B"][a_only] / 32768.0) ** 2))
    assert 20 * np.log10(heard / own) == pytest.approx(-20.0, abs=1.0)
    quiet = mics["B"][: int(0.3 * SAMPLE_RATE_HZ)] / 32768.0  # before anyone talks
    assert 20 * np.log10(np.sqrt(np.mean(quiet**2))) == pytest.approx(-60.0, abs=1.0)


def test_the_silent_character_stays_shut_while_the_other_talks(
    models: AudioModels, talk: tuple[dict[str, np.ndarray], list[Turn]], mics: dict[str, np.ndarray]
) -> None:
    _, turns = talk
    alone = leakage(play_room(mics, models, room=False), turns)
    together = leakage(play_room(mics, models, room=True), turns)
    for name in ("A", "B"):
        # Without the room each mouth opens on the other's voice (the problem) ...
        assert alone[name]["leakage_pct"] > 30
        # ... with it, the silent mouth moves at most 5% of what it moves for its own speaker.
        assert together[name]["motion_pct"] <= 5.0
        assert together[name]["leakage_pct"] <= 5.0
        # Its own speech still opens it as often as before, and real overlap moves both mouths.
        assert together[name]["own_open_pct"] >= alone[name]["own_open_pct"] - 5
        assert together[name]["frames_both"] > 5 and together[name]["overlap_open_pct"] >= 60


def test_one_input_in_a_room_plays_the_same_frames_as_without(models: AudioModels, mics: dict[str, np.ndarray]) -> None:
    pcm = mics["A"][: 6 * SAMPLE_RATE_HZ]
    room = Room()
    inside = AudioInput(input_id="a", kind="mic", character="MAYA", models=models, room=room)
    room.join(inside)
    plain = AudioInput(input_id="b", kind="mic", character="MAYA", models=models)
    n = pcm.shape[0] // SAMPLES_PER_FRAME + 5
    padded = np.pad(pcm, (0, n * SAMPLES_PER_FRAME - pcm.shape[0]))
    opened = 0
    for k in range(n):
        for half in range(2):
            i = (2 * k + half) * PACKET
            inside.feed(padded[i : i + PACKET])
            plain.feed(padded[i : i + PACKET])
        (a1, w1), (a2, w2) = inside.frame(k), plain.frame(k)
        assert np.array_equal(a1, a2)
        assert (w1 is None) == (w2 is None) and (w1 is None or np.array_equal(w1, w2))
        opened += w1 is not None
    assert opened > 20 and inside.stats.bleed_frames == 0


def test_on_screen_the_silent_character_stays_shut_and_stats_carry_the_bleed(
    speech: SpeechEngine, models: AudioModels, talk: tuple[dict[str, np.ndarray], list[Turn]],
    mics: dict[str, np.ndarray],
) -> None:
    _, turns = talk
    characters = {"A": "MAYA", "B": "LEO"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        scene = LiveScene(cast=Cast.builtin(), speech=speech, synth_executor=pool, config=LiveConfig(width_px=320, height_px=240))
        room = Room()
        inputs = {
            name: AudioInput(input_id=f"in-{name}", kind="whip", character=c, models=models, room=room)
            for name, c in characters.items()
        }
        for source in inputs.values():
            scene.bind_input(source.character, source)
            room.join(source)
        states, starts = [], []
        for k in range(mics["A"].shape[0] // SAMPLES_PER_FRAME):
            for half in range(2):
                i = (2 * k + half) * PACKET
                for name, source in inputs.items():
                    source.feed(mics[name][i : i + PACKET])
            played = inputs["A"].stats.frames_played
            states.append(scene.produce(k))
            starts.append(inputs["A"].played_from if inputs["A"].stats.frames_played > played else -1)
        boxes = dict(zip(scene.view.names, scene.view.compositor.mouth_boxes(), strict=True))
        every = [(s, t) for s, t in zip(states, starts, strict=True) if t >= 0][::2]
        pictures = [scene.compose(s) for s, _ in every]
    t = np.array([start for _, start in every]) / SAMPLE_RATE_HZ
    for name, character in characters.items():
        stats = inputs[name].stats.as_dict()
        assert stats["bleed_frames"] > 10  # the other's voice opened the gate; the mouth stayed shut
        assert stats["bleed_db"] == pytest.approx(-20.0, abs=4.0)  # the room's -20 dB, learned
        other = "B" if name == "A" else "A"
        me, them = activity(turns, name, t), activity(turns, other, t)
        opening = np.array([mouth_opening(p, boxes[character]) for p in pictures])
        assert opening[me & ~them].sum() > 0
        assert opening[them & ~me].sum() <= 0.05 * opening[me & ~them].sum()


def test_identical_inputs_do_not_silence_each_other() -> None:
    rng = np.random.default_rng(1)
    xt = CrossTalk()
    for _ in range(100):
        rows = rng.normal(10.0, 6.0, size=(4, 40)).astype(np.float32)
        own = xt.decide({"a": rows, "b": rows.copy()})
        assert own["a"].all() and own["b"].all()


def test_a_loud_voice_and_its_quiet_copy_are_credited_to_the_loud_input() -> None:
    rng = np.random.default_rng(2)
    xt = CrossTalk()
    floor = np.full((4, 40), -40.0, np.float32)
    verdicts = []
    spectrum = rng.normal(20.0, 8.0, size=40)
    for f in range(150):
        spectrum = 0.8 * spectrum + 0.2 * rng.normal(20.0, 8.0, size=40)  # a voice changes smoothly
        rows = spectrum + np.linspace(0.0, -3.0, 4)[:, None]
        voice = rows.astype(np.float32) if f % 30 < 20 else floor.copy()
        copy = 10 * np.log10(10 ** (voice / 10) * 10 ** (-2.0) + 10 ** (floor / 10))
        own = xt.decide({"a": voice, "b": copy.astype(np.float32)})
        if f >= 50 and f % 30 < 20:
            verdicts.append((own["a"].all(), own["b"].any()))
    assert all(a for a, _ in verdicts) and not any(b for _, b in verdicts)
    assert xt.bleed_db("b") == pytest.approx(-20.0, abs=3.0)
    assert CrossTalk().bleed_db("b") is None


def test_bad_cross_talk_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="own_share"):
        CrossTalkConfig(own_share=1.5)
    with pytest.raises(ValueError, match="same number of hops"):
        CrossTalk().decide({"a": np.zeros((4, 40)), "b": np.zeros((3, 40))})


def test_rttm_round_trip_and_clear_errors(tmp_path: Path) -> None:
    turns = [Turn("alice", 0.5, 1.25), Turn("bob", 1.5, 2.0)]
    text = format_rttm(turns, file_id="talk")
    assert text.splitlines()[0] == "SPEAKER talk 1 0.500 1.250 <NA> <NA> alice <NA> <NA>"
    path = tmp_path / "talk.rttm"
    path.write_text(";; comment\n" + text)
    assert read_rttm(path) == turns
    with pytest.raises(RttmError, match="line 1 has 5 fields"):
        parse_rttm("SPEAKER talk 1 0.5 1.0\n")
    with pytest.raises(RttmError, match="must be numbers"):
        parse_rttm("SPEAKER talk 1 zero 1.0 <NA> <NA> a <NA> <NA>\n")
    with pytest.raises(RttmError, match="duration > 0"):
        parse_rttm("SPEAKER talk 1 0.5 -1 <NA> <NA> a <NA> <NA>\n")
    with pytest.raises(RttmError, match="no SPEAKER lines"):
        parse_rttm("\n")
    with pytest.raises(RttmError, match="cannot read the RTTM file"):
        read_rttm(tmp_path / "missing.rttm")


def test_speaker_tracks_cut_one_recording_by_its_turns() -> None:
    pcm = (np.ones(SAMPLE_RATE_HZ * 3) * 1000).astype(np.int16)
    tracks = speaker_tracks(pcm, [Turn("a", 0.0, 1.0), Turn("b", 0.8, 1.2)])
    a, b = tracks["a"], tracks["b"]
    assert a[int(0.5 * SAMPLE_RATE_HZ)] == pytest.approx(1000 / 32768) and a[int(1.5 * SAMPLE_RATE_HZ)] == 0
    assert b[int(0.9 * SAMPLE_RATE_HZ)] > 0 and a[int(0.9 * SAMPLE_RATE_HZ)] > 0  # overlap: both carry it
    assert b[int(2.5 * SAMPLE_RATE_HZ)] == 0


@pytest.mark.slow
def test_conversation_bench_reads_a_recording_and_its_rttm(
    models: AudioModels, talk: tuple[dict[str, np.ndarray], list[Turn]], tmp_path: Path
) -> None:
    import av

    tracks, turns = talk
    mixed = np.clip(np.round((tracks["A"] + tracks["B"]) * 32768), -32768, 32767).astype(np.int16)
    wav = tmp_path / "talk.wav"
    with av.open(str(wav), mode="w") as out:
        stream = out.add_stream("pcm_s16le", rate=SAMPLE_RATE_HZ, layout="mono")
        frame = av.AudioFrame.from_ndarray(mixed.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    rttm = tmp_path / "talk.rttm"
    rttm.write_text(format_rttm(turns))
    report = conversation_figures(wav, rttm, models)
    assert report["speakers"] == ["A", "B"]
    for level in ("-20dB", "-15dB"):
        assert report["bleed"][level]["crosstalk"]["leakage_pct"] <= 5.0
        assert report["bleed"][level]["alone"]["leakage_pct"] > 30
    one = tmp_path / "one.rttm"
    one.write_text(format_rttm([Turn("A", 0.0, 1.0)]))
    with pytest.raises(ValueError, match="one speaker"):
        conversation_figures(wav, one, models)


@pytest.mark.slow
def test_real_voices_leak_no_more_than_5_percent(models: AudioModels) -> None:
    talk = cut_testdata_conversation(SHARED_TESTDATA, models)
    if talk is None:
        pytest.skip(f"real-world test files are absent from {SHARED_TESTDATA}")
    pcm, turns = talk
    mics = room_mics(speaker_tracks(pcm, turns), config=RoomConfig(bleed_db=-15.0))
    together = leakage(play_room(mics, models, room=True), turns)
    for name in ("A", "B"):
        assert together[name]["leakage_pct"] <= 5.0 and together[name]["motion_pct"] <= 5.0
        assert together[name]["overlap_open_pct"] >= 60
