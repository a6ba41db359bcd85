"""The live scene producer, frame by frame, without a network: scheduling, sync and interrupts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from avatar.spec import Cast
from lipsync.audio import frame_rms, to_float
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLES_PER_FRAME
from lipsync.visemes import SIL
from stream.live.scene import FrameState, LiveConfig, LiveScene, SceneError


@pytest.fixture
def scene(speech: SpeechEngine) -> Iterator[LiveScene]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield LiveScene(cast=Cast.builtin(), speech=speech, synth_executor=pool, config=LiveConfig())


def run(scene: LiveScene, start: int, n: int) -> list[FrameState]:
    return [scene.produce(k) for k in range(start, start + n)]


def wait_ready(scene: LiveScene) -> None:
    """Wait until queued lines are fully synthesised: these tests produce frames faster than
    real time, which live playback (paced by the clock) never does."""
    for line in list(scene._lines.queue):  # noqa: SLF001 - test looks inside on purpose
        assert line.utt.finished.wait(10.0)


def test_idle_scene_is_silent_and_mouths_rest(scene: LiveScene) -> None:
    states = run(scene, 0, 25)
    assert all(np.all(s.audio == 0) for s in states)
    assert all(not any(s.speaking) for s in states)
    assert all(m[SIL] == 1.0 for s in states for m in s.mouths)


def test_line_starts_on_the_next_frame_with_audio_and_mouth_together(scene: LiveScene) -> None:
    run(scene, 0, 10)
    line = scene.say("maya", "Where were you last night? I waited for hours.", received_at=time.monotonic())
    assert line.speaker == "MAYA"
    wait_ready(scene)
    states = run(scene, 10, 150)
    started = [n for s in states for n in s.notices if n.kind == "started"]
    ended = [n for s in states for n in s.notices if n.kind == "ended"]
    assert [n.sample for n in started] == [10 * SAMPLES_PER_FRAME]
    assert len(ended) == 1 and not ended[0].interrupted
    assert ended[0].sample == started[0].sample + line.utt.n_samples
    audio = np.concatenate([s.audio for s in states])
    maya = scene.view.names.index("MAYA")
    opening = np.array([1.0 - s.mouths[maya][SIL] for s in states])
    energy = frame_rms(to_float(audio))
    assert np.corrcoef(opening, energy)[0, 1] > 0.5
    # The listener never moves their lips.
    leo = scene.view.names.index("LEO")
    assert all(s.mouths[leo][SIL] == 1.0 for s in states)
    # Speaking flags cover the line exactly.
    first, last = 0, (ended[0].sample - 1) // SAMPLES_PER_FRAME - 10
    speaking = [s.speaking[maya] for s in states]
    assert speaking[first] and speaking[last] and not speaking[last + 1]


def test_lines_queue_in_order_with_a_gap(scene: LiveScene) -> None:
    now = time.monotonic()
    a = scene.say("MAYA", "First line.", received_at=now)
    b = scene.say("LEO", "Second line.", received_at=now)
    wait_ready(scene)
    states = run(scene, 0, 150)
    starts = {n.line.id: n.sample for s in states for n in s.notices if n.kind == "started"}
    assert starts[a.id] < starts[b.id]
    gap = starts[b.id] - (starts[a.id] + a.utt.n_samples)
    assert 0 < gap <= (scene.config.gap_ms + 40) * 48


def test_interrupt_stops_audio_at_the_next_frame(scene: LiveScene) -> None:
    scene.say("MAYA", "This is a long line that will be cut off before it can finish. " * 3, received_at=time.monotonic())
    scene.say("LEO", "Never heard.", received_at=time.monotonic())
    wait_ready(scene)
    before = run(scene, 0, 30)
    assert np.abs(np.concatenate([s.audio for s in before[-10:]])).max() > 1000
    scene.interrupt()
    after = run(scene, 30, 20)
    ended = [n for n in after[0].notices if n.kind == "ended"]
    assert len(ended) == 2 and all(n.interrupted for n in ended)
    assert all(np.all(s.audio == 0) for s in after)
    assert not any(n.kind == "started" for s in after for n in s.notices)


def test_cut_in_replaces_the_current_line(scene: LiveScene) -> None:
    scene.say("MAYA", "A long speech about nothing in particular, going on and on.", received_at=time.monotonic())
    wait_ready(scene)
    run(scene, 0, 10)
    cut = scene.say("LEO", "Stop!", received_at=time.monotonic(), cut_in=True)
    wait_ready(scene)
    states = run(scene, 10, 5)
    notices = [n for s in states for n in s.notices]
    assert notices[0].kind == "ended" and notices[0].interrupted
    assert any(n.kind == "started" and n.line is cut for n in notices)


def test_new_speaker_walks_on_until_the_scene_is_full(scene: LiveScene) -> None:
    scene.say("Iris", "Hello.", received_at=time.monotonic())
    scene.say("Omar", "Hi.", received_at=time.monotonic())
    assert scene.view.names == ("MAYA", "LEO", "IRIS", "OMAR")
    with pytest.raises(SceneError, match="full") as info:
        scene.say("Zara", "Me too?", received_at=time.monotonic())
    assert info.value.code == "scene_full"
    assert len(scene.view.names) == 4


@pytest.mark.parametrize(
    ("speaker", "text", "code"),
    [("MAYA", "   ", "bad_line"), ("", "hello", "bad_line"), ("MAYA", "x" * 1001, "bad_line")],
)
def test_bad_lines_are_refused_with_a_reason(scene: LiveScene, speaker: str, text: str, code: str) -> None:
    with pytest.raises(SceneError) as info:
        scene.say(speaker, text, received_at=time.monotonic())
    assert info.value.code == code


def test_frames_must_be_produced_in_order(scene: LiveScene) -> None:
    scene.produce(0)
    with pytest.raises(RuntimeError, match="next frame to produce is 1"):
        scene.produce(5)


def test_compose_is_a_pure_function_of_the_state(scene: LiveScene) -> None:
    states = run(scene, 0, 3)
    a = scene.compose(states[2])
    b = scene.compose(states[2])
    assert a.shape == (512, 512, 3)
    np.testing.assert_array_equal(a, b)


class ToneInput:
    """A fake live input: a tone with an open mouth on frames [5, 15), silence otherwise."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def frame(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        self.asked.append(k)
        if 5 <= k < 15:
            t = np.arange(k * SAMPLES_PER_FRAME, (k + 1) * SAMPLES_PER_FRAME) / 48_000
            weights = np.zeros(15, np.float32)
            weights[10] = 1.0  # "aa"
            return (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16), weights
        return np.zeros(SAMPLES_PER_FRAME, np.int16), None


def test_a_live_input_drives_its_character(scene: LiveScene) -> None:
    tone = ToneInput()
    name = scene.bind_input("iris", tone)
    assert name == "IRIS" and "IRIS" in scene.view.names
    states = run(scene, 0, 20)
    assert tone.asked == list(range(20))
    iris = scene.view.names.index("IRIS")
    for s in states:
        live = 5 <= s.index < 15
        assert s.speaking[iris] == live
        assert (s.mouths[iris][SIL] == 0.0) == live
        assert (np.abs(s.audio).max() > 1000) == live
    with pytest.raises(SceneError, match="already has a live input"):
        scene.bind_input("IRIS", ToneInput())
    scene.unbind_input("IRIS")
    assert scene.produce(20).speaking[iris] is False
