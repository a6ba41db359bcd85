"""The director: blocking, the shot plan and the camera, checked on the plan and on frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatar.blocking import SILENT_RMS, line_frames_of, read_direction
from avatar.directed import DirectedScene
from avatar.measure import mouth_opening
from avatar.shots import (
    MAX_ON_SCREEN,
    Beat,
    DirectorConfig,
    ShotError,
    ShotNote,
    StageCue,
    assign_marks,
    parse_shot_note,
    plan_shots,
)
from avatar.spec import Cast
from lipsync.script import ScriptError, parse_script
from lipsync.speech import SpeechEngine
from stream.record.offline import RenderConfig, perform, plan_scenes, render_script, shot_plan
from stream.record.stages import NullTimer

SIX = """\
INT. KITCHEN - NIGHT

MAYA and LEO sit at the table. BOB, 40, a white man, leans on the fridge.

MAYA
Where were you last night? I waited for hours.

LEO
At the harbour.

BOB
(to MAYA)
He was with me. We fixed the boat, all night long. Ask anyone at the dock, they saw us.

MARGARET, 67, an old woman with grey hair and glasses, walks in.

MARGARET
What is all this shouting about?

IRIS
Nothing, Gran.

[[shot: close OMAR]]

OMAR
I think it is something!

MAYA
Leave it, Omar.

She storms off.

LEO
Well. That went well.
"""
SIZE = 256
CFG = DirectorConfig()


def beats(*spec: tuple[str, int, int]) -> list[Beat]:
    return [Beat(speaker=s, start_frame=a, end_frame=b) for s, a, b in spec]


def check_plan(plan, bts, *, n_frames):  # the rules every plan keeps
    shots = plan.shots
    assert shots[0].start_frame == 0 and shots[-1].end_frame == n_frames
    assert all(a.end_frame == b.start_frame for a, b in zip(shots, shots[1:], strict=False))
    for shot in shots[:-1]:
        assert shot.end_frame - shot.start_frame >= CFG.min_shot_frames, shot
    for shot in shots:
        assert 1 <= len(shot.subjects) <= MAX_ON_SCREEN
        order = [plan.marks[n] for n in shot.subjects]
        assert order == sorted(order), f"{shot.label} breaks the left-to-right order"
    index = plan.shot_index()
    for b in bts:  # the speaker is on screen from the first frame of the line
        assert b.speaker in shots[index[b.start_frame]].subjects, (b, shots[index[b.start_frame]])
    cut_frames = {s.start_frame for s in shots[1:]}
    allowed = {b.start_frame for b in bts} | {p for b in bts for p in b.pauses}
    assert cut_frames <= allowed, f"cuts {sorted(cut_frames - allowed)} fall inside a line"


# -- the plan: pure, no speech -------------------------------------------------------------------


def test_a_dialogue_opens_wide_then_cuts_to_each_speaker() -> None:
    bts = beats(("MAYA", 10, 80), ("LEO", 90, 160), ("MAYA", 170, 240), ("LEO", 250, 330))
    marks = assign_marks(["MAYA", "LEO"], {})
    plan = plan_shots(bts, n_frames=350, marks=marks)
    check_plan(plan, bts, n_frames=350)
    assert plan.shots[0].kind == "wide" and set(plan.shots[0].subjects) == {"MAYA", "LEO"}
    assert [(s.kind, s.subjects) for s in plan.shots[1:]] == [
        ("medium", ("LEO",)), ("medium", ("MAYA",)), ("medium", ("LEO",))
    ]
    assert marks["MAYA"] < marks["LEO"]  # the first speaker stands left
    assert plan == plan_shots(bts, n_frames=350, marks=marks)  # the same scene, the same cut


def test_quick_exchanges_hold_a_two_shot_instead_of_flickering() -> None:
    bts = beats(("MAYA", 10, 80), ("LEO", 90, 100), ("MAYA", 107, 115), ("LEO", 122, 200), ("MAYA", 207, 300))
    plan = plan_shots(bts, n_frames=320, marks=assign_marks(["MAYA", "LEO"], {}))
    check_plan(plan, bts, n_frames=320)
    assert any(s.kind in ("two", "wide") and s.start_frame > 0 for s in plan.shots) or plan.shots[0].end_frame > 115


def test_many_speakers_show_at_most_four_and_always_the_speaker() -> None:
    names = [f"P{i}" for i in range(12)]
    bts = [Beat(speaker=n, start_frame=10 + 60 * i, end_frame=60 + 60 * i) for i, n in enumerate(names)]
    bts += [Beat(speaker=names[i], start_frame=730 + 60 * j, end_frame=780 + 60 * j) for j, i in enumerate((3, 9, 0))]
    plan = plan_shots(bts, n_frames=920, marks=assign_marks(names, {}))
    check_plan(plan, bts, n_frames=920)
    assert len(plan.marks) == 12


def test_reaction_shot_lands_on_a_pause_and_long_speeches_push_in() -> None:
    long_line = Beat(speaker="BOB", start_frame=100, end_frame=240, addressee="MAYA", pauses=(150, 151, 200, 201))
    bts = [Beat(speaker="MAYA", start_frame=10, end_frame=90), long_line, Beat("MAYA", 270, 330)]
    plan = plan_shots(bts, n_frames=360, marks=assign_marks(["MAYA", "BOB"], {}))
    check_plan(plan, bts, n_frames=360)
    kinds = [(s.start_frame, s.kind, s.subjects) for s in plan.shots]
    assert (201, "medium", ("MAYA",)) in kinds  # MAYA listens, cut at a pause between words
    push = plan_shots(
        [Beat("BOB", 10, 40), Beat("MAYA", 50, 250)], n_frames=260, marks=assign_marks(["BOB", "MAYA"], {})
    )
    assert push.shots[-1].push_in and push.shots[-1].subjects == ("MAYA",)


def test_dual_dialogue_is_a_two_shot() -> None:
    bts = [
        Beat("MAYA", 10, 80), Beat("LEO", 90, 150),
        Beat("MAYA", 160, 200, dual_group=1), Beat("LEO", 160, 220, dual_group=1),
    ]  # fmt: skip
    plan = plan_shots(bts, n_frames=240, marks=assign_marks(["MAYA", "LEO"], {}))
    last = plan.shots[plan.shot_index()[160]]
    assert (last.kind, last.subjects, last.start_frame) == ("two", ("MAYA", "LEO"), 160)


def test_notes_override_the_director_and_bad_notes_name_their_line() -> None:
    bts = beats(("MAYA", 10, 80), ("LEO", 90, 160), ("MAYA", 170, 240))
    marks = assign_marks(["MAYA", "LEO"], {})
    notes = [ShotNote(90, "close", ("MAYA",), 12), ShotNote(170, "wide", (), 15)]
    plan = plan_shots(bts, n_frames=260, marks=marks, notes=notes)
    at = plan.shot_index()
    assert (plan.shots[at[90]].kind, plan.shots[at[90]].subjects) == ("close", ("MAYA",))
    assert plan.shots[at[170]].kind == "wide"
    assert parse_shot_note("Two MAYA and LEO") == ("two", ("MAYA", "LEO"))
    with pytest.raises(ShotError, match=r"line 7: unknown shot type 'dolly'"):
        parse_shot_note("dolly MAYA", line=7)
    with pytest.raises(ShotError, match=r"line 9: shot note names ZED, who is not in this scene"):
        plan_shots(bts, n_frames=260, marks=marks, notes=[ShotNote(90, "close", ("ZED",), 9)])


def test_geography_keeps_places_across_scenes_on_one_set() -> None:
    first = assign_marks(["MAYA", "LEO", "IRIS"], {})
    second = assign_marks(["LEO", "MAYA"], first)  # LEO speaks first now: he still stands right
    assert second["MAYA"] < second["LEO"]
    third = assign_marks(["OMAR", "LEO"], first)
    assert third["LEO"] == first["LEO"] and third["OMAR"] not in first.values()


def test_entrances_and_exits_come_from_action_lines() -> None:
    scene = parse_script(SIX).scenes[0]
    frames = [(10 + 100 * i, 80 + 100 * i) for i in range(len(scene.lines))]
    direction = read_direction(scene, frames)
    enters = {(c.name, c.frame) for c in direction.cues if c.enters}
    assert ("MAYA", 0) in enters and ("BOB", 0) in enters
    assert ("MARGARET", 310) in enters and ("MARGARET", 0) not in enters  # walks in before her line
    assert StageCue(frames[7][0], "MAYA", False) in direction.cues  # "She storms off."
    assert direction.notes == (ShotNote(frames[5][0], "close", ("OMAR",), 23),)


# -- frames: the real script, spoken and drawn ----------------------------------------------------


@pytest.fixture(scope="module")
def six(speech: SpeechEngine):
    config = RenderConfig(width_px=SIZE, height_px=SIZE)
    plan = plan_scenes(parse_script(SIX), Cast.builtin(), config)[0]
    timeline = perform(plan, speech, config=config, timer=NullTimer())
    directed = DirectedScene(
        scene=plan.scene, timeline=timeline, specs=plan.cast, marks=dict(plan.marks),
        set_name=plan.set_name, width_px=SIZE, height_px=SIZE,
    )  # fmt: skip
    return plan, timeline, directed


def test_six_speakers_each_seen_with_a_moving_mouth_while_speaking(six) -> None:
    plan, timeline, directed = six
    assert len({line.speaker for line in plan.scene.lines}) == 6
    shots, index = directed.plan.shots, directed.plan.shot_index()
    for line, event in zip(plan.scene.lines, timeline.events, strict=True):
        if line.unseen:
            continue  # a voice over is heard without a cut (tests/test_director_extras.py)
        start, end = event.start_frame, -(-event.end_sample // 1920)
        shot = shots[index[start]]
        assert event.speaker in shot.subjects, f"{event.speaker} is off screen at the start of their line"
        openings = []
        for k in range(start, end):
            box = directed.mouth_boxes(k).get(event.speaker)
            if box is not None:
                openings.append(mouth_opening(directed.frame(k), box))
        assert len(openings) >= 12 and max(openings) > 0 and len(set(openings)) > 3, event.speaker


def test_no_cut_inside_a_word_and_shots_last(six) -> None:
    _, timeline, directed = six
    starts = {e.start_frame for e in timeline.events}
    shots = directed.plan.shots
    for shot in shots[1:]:
        k = shot.start_frame
        if k in starts:
            continue
        for name, rms in timeline.voice_rms.items():
            assert rms[k] < SILENT_RMS and rms[k - 1] < SILENT_RMS, f"cut at frame {k} falls inside {name}'s word"
    assert all(s.end_frame - s.start_frame >= CFG.min_shot_frames for s in shots[:-1])


def test_sides_never_flip_within_the_scene(six) -> None:
    _, _, directed = six
    marks = directed.plan.marks
    for shot in directed.plan.shots:
        f = directed.camera.framing(shot)
        xs = [slot.x_px for slot in f.slots]
        assert xs == sorted(xs)
        assert [marks[n] for n in f.names] == sorted(marks[n] for n in f.names)
        if len(f.names) == 1 and len(marks) > 1:  # a single faces into the frame, toward the others
            others = [m for n, m in marks.items() if n != f.names[0]]
            faces_right = sum(others) / len(others) > marks[f.names[0]]
            centre = f.slots[0].x_px + f.slots[0].width_px / 2
            assert (centre < SIZE / 2) == faces_right


def test_close_ups_are_drawn_at_close_up_size(six) -> None:
    _, _, directed = six
    close = next(s for s in directed.plan.shots if s.kind == "close")
    assert close.subjects == ("OMAR",) and close.noted
    f, compositor, _ = directed.camera.setup(close)
    assert compositor.rigs[0].height_px == f.slots[0].height_px > 1.5 * SIZE


def test_the_same_script_gives_byte_identical_frames(six, speech: SpeechEngine) -> None:
    plan, timeline, directed = six
    again = DirectedScene(
        scene=plan.scene, timeline=timeline, specs=plan.cast, marks=dict(plan.marks),
        set_name=plan.set_name, width_px=SIZE, height_px=SIZE,
    )  # fmt: skip
    assert again.plan == directed.plan
    for k in range(0, timeline.n_frames, 7):
        assert np.array_equal(again.frame(k), directed.frame(k)), k


def test_bad_shot_note_in_a_script_names_its_line(tmp_path: Path) -> None:
    bad = "INT. ROOM\n\nMAYA\nHi.\n\n[[shot: close ZED]]\n\nLEO\nHello.\n"
    with pytest.raises(ScriptError, match=r"line 6: shot note names ZED"):
        render_script(parse_script(bad), tmp_path / "x.mp4", config=RenderConfig(width_px=128, height_px=128))
    bad = "INT. ROOM\n\nMAYA\nHi.\n\n[[shot: zoomy MAYA]]\n\nLEO\nHello.\n"
    with pytest.raises(ScriptError, match=r"line 6: unknown shot type 'zoomy'"):
        render_script(parse_script(bad), tmp_path / "x.mp4", config=RenderConfig(width_px=128, height_px=128))


def test_shot_plan_of_a_render_matches_the_director(six) -> None:
    plan, timeline, directed = six
    assert shot_plan(timeline, plan, config=RenderConfig(width_px=SIZE, height_px=SIZE)) == directed.plan
    assert line_frames_of(timeline)[0][0] == timeline.events[0].start_frame
