"""The live director: cuts land on a line's first frame, overrides hold, walk-ons come prepared."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from avatar.livecut import IDLE_WIDE_FRAMES, LiveCutter
from avatar.measure import mouth_opening
from avatar.shots import Shot, assign_marks
from avatar.spec import Cast
from lipsync.speech import SpeechEngine
from stream.live.cast import SceneError
from stream.live.config import LiveConfig
from stream.live.control import PinCast, Prepare, ProtocolError, Say, SetShot, parse_message
from stream.live.frames import FrameState
from stream.live.scene import LiveScene


@pytest.fixture
def scene(speech: SpeechEngine) -> Iterator[LiveScene]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield LiveScene(
            cast=Cast.builtin(), speech=speech, synth_executor=pool, config=LiveConfig(width_px=256, height_px=256)
        )


def run(scene: LiveScene, start: int, n: int) -> list[FrameState]:
    return [scene.produce(k) for k in range(start, start + n)]


def say(scene: LiveScene, who: str, text: str) -> None:
    line = scene.say(who, text, received_at=time.monotonic())
    assert line.utt.finished.wait(10.0)


def test_the_cutter_cuts_on_first_frames_reacts_and_settles_wide() -> None:
    cut = LiveCutter(marks=assign_marks(["MAYA", "LEO"], {}))
    assert cut.step(0, started=[], talkers=[]).kind == "two"
    assert cut.step(40, started=[("MAYA", False)], talkers=["MAYA"]).subjects == ("MAYA",)
    assert cut.step(100, started=[("LEO", True)], talkers=["LEO"]).label == "close LEO"
    quick = cut.step(110, started=[("MAYA", False)], talkers=["MAYA"])  # too soon for a single
    assert (quick.kind, quick.subjects) == ("two", ("MAYA", "LEO"))
    for k in range(111, 200):
        shot = cut.step(k, started=[], talkers=["MAYA"] if k < 160 else [])
    assert shot.kind in ("medium", "two")
    for k in range(200, 200 + IDLE_WIDE_FRAMES + 40):
        shot = cut.step(k, started=[], talkers=[])
    assert shot.kind == "two" and shot.subjects == ("MAYA", "LEO")  # idle: both, still living


def test_a_live_line_cuts_to_its_speaker_on_its_first_frame(scene: LiveScene) -> None:
    run(scene, 0, 40)
    say(scene, "MAYA", "Where were you last night?")
    states = run(scene, 40, 80)
    say(scene, "LEO", "Out by the harbour, watching the boats.")
    states += run(scene, 120, 120)
    for who in ("MAYA", "LEO"):
        first = next(s for s in states if any(n.kind == "started" and n.line.speaker == who for n in s.notices))
        assert first.shot is not None and first.shot.subjects == (who,), (who, first.shot)
        picture = scene.compose(first)
        later = [s for s in states if s.index > first.index and s.shot == first.shot][:20]
        box = first.view.camera.mouth_boxes(first.shot)[who]
        openings = {mouth_opening(scene.compose(s), box) for s in later}
        assert len(openings) > 2, f"{who}'s mouth does not move in their shot"
        assert picture.shape == (256, 256, 3)


def test_shot_control_message_overrides_and_bad_shots_say_why(scene: LiveScene) -> None:
    assert parse_message(json.dumps({"type": "shot", "shot": "close MAYA"})) == [SetShot("close MAYA")]
    commands = parse_message(json.dumps({"type": "script", "text": "MAYA: Hi.\nIRIS: Hello."}))
    assert commands[0] == Prepare(names=("MAYA", "IRIS")) and isinstance(commands[1], Say)
    with pytest.raises(ProtocolError):
        parse_message(json.dumps({"type": "shot"}))
    run(scene, 0, 5)
    scene.set_shot("close LEO")
    states = run(scene, 5, 60)
    assert states[0].shot is not None and states[0].shot.label == "close LEO"
    say(scene, "MAYA", "Hello there.")
    states = run(scene, 65, 60)
    assert all(s.shot is not None and s.shot.label == "close LEO" for s in states)  # held
    scene.set_shot("auto")
    say(scene, "MAYA", "Hello again.")
    states = run(scene, 125, 40)
    assert any(s.shot is not None and s.shot.subjects == ("MAYA",) for s in states)
    with pytest.raises(SceneError, match="ZED, who is not on stage"):
        scene.set_shot("close ZED")
    with pytest.raises(SceneError, match="unknown shot type 'dolly'"):
        scene.set_shot("dolly MAYA")


def test_a_prepared_walk_on_joins_without_drawing_again(scene: LiveScene) -> None:
    scene.prepare(["IRIS"])
    rigs = scene._rigs  # noqa: SLF001 - the test checks the drawing was done ahead
    assert rigs is not None
    master = rigs._master("IRIS")  # noqa: SLF001
    say(scene, "IRIS", "Hello, everyone.")
    assert "IRIS" in scene.view.names
    assert rigs._master("IRIS") is master  # noqa: SLF001 - the walk-on reused the prepared drawing
    states = run(scene, 0, 40)
    started = next(s for s in states if s.notices)
    assert started.shot is not None and "IRIS" in started.shot.subjects


def test_a_cast_message_pins_a_look_and_voice_for_the_session(scene: LiveScene) -> None:
    (pin,) = parse_message(json.dumps({"type": "cast", "character": "LEO", "spec": "hair_style=bald pitch=30"}))
    assert pin == PinCast(character="LEO", spec="hair_style=bald pitch=30")
    view = scene.pin(pin.character, pin.spec)
    leo = next(s for s in view.specs if s.name == "LEO")
    assert (leo.look.hair_style, leo.voice.pitch) == ("bald", 30)
    with pytest.raises(SceneError, match=r"'cast' message line 1, field 'hat': unknown field 'hat'"):
        scene.pin("LEO", "hat=tall")
    with pytest.raises(SceneError, match=r"field 'voice.variant': unknown voice variant 'q1'"):
        scene.pin("LEO", "voice.variant=q1")


def test_a_walk_on_after_the_cast_was_drawn_ahead_draws_nothing(scene: LiveScene, monkeypatch) -> None:
    import avatar.camera as camera_module

    for name in scene.cast_names():  # what the session's drawing-ahead job does, one name a job
        scene.prepare([name])
    drawn: list[object] = []
    real_build, real_stage = camera_module.build_character, camera_module.render_set
    monkeypatch.setattr(camera_module, "build_character", lambda *a, **k: drawn.append(a) or real_build(*a, **k))
    monkeypatch.setattr(camera_module, "render_set", lambda *a, **k: drawn.append(a) or real_stage(*a, **k))
    run(scene, 0, 10)
    say(scene, "IRIS", "Sorry I am late.")
    say(scene, "OMAR", "Me too.")
    states = run(scene, 10, 80)
    assert scene.view.names == ("MAYA", "LEO", "IRIS", "OMAR")
    assert drawn == [], "a walk-on drew a character or the set on the line's path"
    first = next(s for s in states if any(n.kind == "started" and n.line.speaker == "IRIS" for n in s.notices))
    assert first.shot is not None and "IRIS" in first.shot.subjects  # on screen from her first frame


def test_the_live_wide_of_four_stands_everyone_on_one_stage(scene: LiveScene) -> None:
    view = scene.set_scene(names=["MAYA", "LEO", "IRIS", "OMAR"])
    assert view.camera is not None
    layout = view.compositor.layout
    assert layout.panels == ()  # no video-call grid
    marks = view.camera.marks
    slots = dict(zip(view.names, layout.slots, strict=True))
    left_to_right = sorted(view.names, key=lambda n: marks[n])
    xs = [slots[n].x_px for n in left_to_right]
    assert xs == sorted(xs) and len(set(xs)) == 4
    assert len({(s.y_px + s.height_px, s.height_px) for s in layout.slots}) == 1  # side by side, same size
    wide = view.camera.framing(Shot(0, 1, "wide", tuple(left_to_right)))  # the offline director's wide
    assert [slots[n] for n in wide.names] == list(wide.slots)
