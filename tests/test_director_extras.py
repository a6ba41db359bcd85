"""The director's loose ends: batch hashes that see shot notes and pins, V.O. voices off screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from avatar.directed import DirectedScene
from avatar.spec import Cast
from lipsync.script import parse_script
from lipsync.speech import SpeechEngine
from stream.batch.plan import content_hash
from stream.record.offline import RenderConfig, perform, plan_scenes, shot_plan
from stream.record.script_takes import record_script
from stream.record.stages import NullTimer
from stream.store import Store

SIZE = 192

SCENE = """Title: Harbour
Cast:
    BOB: a white man, 40

INT. KITCHEN - NIGHT

MAYA
Where were you?

{note}BOB
At the harbour.
"""


def _hash(text: str) -> str:
    (plan,) = plan_scenes(parse_script(text), Cast.builtin(), RenderConfig())
    return content_hash(plan, RenderConfig())


def test_the_batch_hash_changes_with_a_shot_note_and_a_cast_pin() -> None:
    plain = _hash(SCENE.format(note=""))
    assert plain == _hash(SCENE.format(note=""))
    noted = _hash(SCENE.format(note="[[shot: close BOB]]\n\n"))
    assert noted != plain
    assert _hash(SCENE.format(note="[[shot: wide]]\n\n")) not in (plain, noted)
    assert _hash(SCENE.format(note="").replace("a white man, 40", "a black woman, 70")) != plain


VOICE_OVER = """\
INT. KITCHEN - NIGHT

NARRATOR (V.O.)
It was the longest night of the summer, and nobody in the house was asleep.

MAYA
Where were you last night? I waited for hours.

LEO
At the harbour, with the boats.

NARRATOR (V.O.)
He was lying, and she knew it.

LEO (O.S.)
I am going to bed.

MAYA
Good night, then. Sleep well.
"""


@pytest.fixture(scope="module")
def voice_over(speech: SpeechEngine) -> tuple[Any, Any, DirectedScene]:
    config = RenderConfig(width_px=SIZE, height_px=SIZE)
    (plan,) = plan_scenes(parse_script(VOICE_OVER), Cast.builtin(), config)
    timeline = perform(plan, speech, config=config, timer=NullTimer())
    directed = DirectedScene(
        scene=plan.scene, timeline=timeline, specs=plan.cast, marks=dict(plan.marks),
        set_name=plan.set_name, width_px=SIZE, height_px=SIZE,
    )  # fmt: skip
    return plan, timeline, directed


def test_a_voice_over_is_heard_without_a_cut_or_a_place_on_stage(voice_over) -> None:
    plan, timeline, directed = voice_over
    shots, index = directed.plan.shots, directed.plan.shot_index()
    assert "NARRATOR" not in directed.plan.marks  # only heard: never on stage
    assert all("NARRATOR" not in s.subjects for s in shots)
    cut_frames = {s.start_frame for s in shots}
    for line, event in zip(plan.scene.lines, timeline.events, strict=True):
        shot = shots[index[event.start_frame]]
        if line.unseen:
            # heard over the picture it falls on: no cut on its first frame, nobody brought on
            assert event.start_frame not in cut_frames or event.start_frame == 0, (line.speaker, shot.label)
            assert line.speaker not in shot.subjects or line.speaker in directed.plan.marks
        else:
            assert line.speaker in shot.subjects, (line.speaker, shot.label)
    # the narrator's voice is in the sound track all the same
    first = timeline.events[0]
    assert first.speaker == "NARRATOR" and timeline.voice_rms["NARRATOR"][first.start_frame : first.start_frame + 50].max() > 0.02
    # LEO (O.S.) is heard from off screen: the camera stays where it was when his line starts
    os_event = timeline.events[4]
    assert shots[index[os_event.start_frame]] == shots[index[os_event.start_frame - 1]]


def test_a_rendered_take_keeps_its_shot_plan_in_the_store(tmp_path: Path, speech: SpeechEngine) -> None:
    config = RenderConfig(width_px=128, height_px=128)
    script = parse_script(VOICE_OVER)
    store = Store.open(tmp_path / "data")
    try:
        series = store.catalog.create_series("S")
        scene = store.catalog.create_scene(store.catalog.create_episode(series.id, "E").id, "Kitchen")
        (take,) = record_script(store, script, scene_id=scene.id, config=config, speech=speech)
        (plan,) = plan_scenes(script, Cast.builtin(), config)
        cut = shot_plan(perform(plan, speech, config=config, timer=NullTimer()), plan, config=config)
        assert cut is not None
        kept = store.takes.shots(take.id)
        assert [(s.start_frame, s.kind, s.subjects) for s in kept] == [
            (s.start_frame, s.kind, s.subjects) for s in cut.shots
        ]
        assert kept[0].label == "wide MAYA+LEO" and all(s.start_frame < take.frames for s in kept)
    finally:
        store.close()
