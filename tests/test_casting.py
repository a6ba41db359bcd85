"""Casting from the page: introductions, pinned casts, aliases reported, and the cut exported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avatar.casting import (
    CastFileError,
    Traits,
    cast_from_traits,
    introductions,
    parse_cast,
    pinned_spec,
)
from avatar.rig import RigCharacter
from avatar.shots import Shot
from avatar.spec import Cast, Look, auto_cast
from lipsync.script import ScriptError, likely_aliases, parse_script
from lipsync.timeline import LineEvent
from stream.export.shots import write_shot_timeline
from stream.record.offline import RenderConfig, plan_scenes, read_cast_file

MALE_LOOK_HAIR = {"crop", "quiff", "afro", "bald", "long"}


def test_a_white_man_of_forty_is_cast_male_whatever_his_name() -> None:
    intros = introductions([("BOB, 40, a white man, leans on the fridge.", 3)], known=["BOB"])
    bob = cast_from_traits("BOB", intros["BOB"].traits)
    assert intros["BOB"].traits == Traits("male", 40, "adult", None, None, "white", None, False, None, 3)
    assert bob.voice.variant.startswith("m") and not bob.look.lashes
    assert bob.look.hair_style in MALE_LOOK_HAIR and bob.look.accessory != "earrings"
    assert bob.look.skin_rgb in {(255, 224, 200), (247, 208, 178), (236, 192, 150)}
    for name in ("MARGARET", "ALICE", "SUE", "ZED", "ROBIN", "KIM"):  # the name does not decide it
        spec = cast_from_traits(name, Traits.read("a white man", age_text="40"))
        assert spec.voice.variant.startswith("m") and not spec.look.lashes, name
    margaret = cast_from_traits("MARGARET", Traits.read("a white woman, amicable, mild", age_text="37"))
    assert margaret.voice.variant.startswith("f") and margaret.look.lashes and margaret.look.facial_hair == "none"
    assert cast_from_traits("BOB", intros["BOB"].traits) == bob  # deterministic


def test_without_an_introduction_a_common_given_name_or_a_title_decides_the_sex() -> None:
    for name in ("BOB", "Bob", "BOB SMITH", "UNCLE TED", "MR. GRANT"):
        spec = auto_cast(name)
        assert spec.voice.variant.startswith("m") and spec.look.hair_style in MALE_LOOK_HAIR, name
        assert not spec.look.lashes, name
    for name in ("ANNA", "MARGARET", "MRS. HALL", "AUNT MAY"):
        spec = auto_cast(name)
        assert spec.voice.variant.startswith("f") and spec.look.lashes, name
    # Other names keep the digest's answer, the same every time, and both answers occur.
    others = [auto_cast(n).voice.variant[0] for n in ("ZORBLAX", "WAITER", "KESTREL", "NURSE", "QUILL", "TORVEN")]
    assert others == [auto_cast(n).voice.variant[0] for n in ("ZORBLAX", "WAITER", "KESTREL", "NURSE", "QUILL", "TORVEN")]
    assert set(others) == {"m", "f"}


def test_age_hair_skin_build_and_glasses_come_from_the_words() -> None:
    old = Traits.read("an elderly black woman, heavyset, with glasses", age_text="70")
    assert (old.gender, old.age_group, old.skin, old.build, old.glasses) == ("female", "old", "black", "broad", True)
    spec = cast_from_traits("NAN", old)
    assert spec.look.age == "old" and spec.look.build == "broad"
    assert spec.look.accessory in ("glasses", "round_glasses")
    assert spec.look.hair_rgb in {(168, 168, 176), (196, 194, 198)}  # grey
    assert spec.voice.rate_wpm < auto_cast("NAN").voice.rate_wpm + 1
    kid = cast_from_traits("TIM", Traits.read("a little boy with red hair", age_text="8"))
    assert kid.look.age == "child" and kid.look.facial_hair == "none" and kid.voice.pitch > 50
    bald = cast_from_traits("JON", Traits.read("a bald, bearded man in his fifties", age_text="50s"))
    assert (bald.look.hair_style, bald.look.facial_hair, bald.look.age) == ("bald", "beard", "middle")
    assert Traits.read("a woman", age_text="mid-30s").age == 34


def test_introductions_in_a_screenplay_pick_the_look_and_voice() -> None:
    script = parse_script(
        "INT. ROOM - DAY\n\nMARGARET, 37, a white woman, amicable, mild, waits. BOB (40s), a bald man, enters.\n\n"
        "MARGARET\nYou came.\n\nBOB\nI did.\n"
    )
    (plan,) = plan_scenes(script, Cast.builtin(), RenderConfig(width_px=128, height_px=128))
    specs = {s.name: s for s in plan.cast}
    assert specs["MARGARET"].voice.variant.startswith("f") and specs["BOB"].voice.variant.startswith("m")
    assert specs["BOB"].look.hair_style == "bald"
    # the built-in cast keeps its own looks; a page cannot recast MAYA
    (plan,) = plan_scenes(
        parse_script("INT. ROOM\n\nMAYA, 60, an old man.\n\nMAYA\nHi.\n"), Cast.builtin(), RenderConfig()
    )
    assert plan.cast[0] == Cast.builtin().resolve("MAYA")


def test_a_cast_file_pins_looks_and_voices_and_names_bad_fields(tmp_path: Path) -> None:
    text = "# the cast\nBOB: a white man, 40; hair_style=bald voice.variant=m2 pitch=35\nMAYA: clothes_rgb=#3366aa\n"
    entries = parse_cast(text)
    bob = pinned_spec(entries["BOB"])
    assert (bob.look.hair_style, bob.voice.variant, bob.voice.pitch) == ("bald", "m2", 35)
    assert pinned_spec(entries["MAYA"]).look.clothes_rgb == (0x33, 0x66, 0xAA)
    with pytest.raises(CastFileError, match=r"cast file line 2, field 'hat': unknown field 'hat'"):
        parse_cast("BOB: a man\nLEO: hat=big\n")
    with pytest.raises(CastFileError, match=r"line 1, field 'voice.variant': unknown voice variant 'x9'"):
        parse_cast("BOB: voice.variant=x9\n")
    with pytest.raises(CastFileError, match=r"line 1, field 'hair_style': unknown hair_style 'mohawk'"):
        parse_cast("BOB: hair_style=mohawk\n")
    with pytest.raises(CastFileError, match=r"line 3, field 'pitch': 'high' is not a whole number"):
        parse_cast("\nBOB: a man\nBOB: pitch=high\n")
    path = tmp_path / "s.cast"
    path.write_text("LEO: look.facial_hair=beard\n", encoding="utf-8")
    cast = read_cast_file(path, cast=Cast.builtin())
    assert cast.resolve("LEO").look.facial_hair == "beard"
    path.write_text("LEO: look.pitch=3\n", encoding="utf-8")
    with pytest.raises(ScriptError, match=r"s.cast line 1, field 'look.pitch': unknown field"):
        read_cast_file(path, cast=Cast.builtin())


def test_the_title_page_pins_the_cast() -> None:
    script = parse_script("Title: Pins\nCast:\n    BOB: a black man, 60\n    ANN: hair_style=bun\n\nBOB: Hello.\n")
    with pytest.raises(ScriptError, match=r"title page Cast line 2, field 'hair_style': unknown hair_style 'bun'"):
        plan_scenes(script, Cast.builtin(), RenderConfig())
    script = parse_script("Title: Pins\nCast:\n    BOB: a black man, 60; glasses\n\nBOB: Hello.\n")
    (plan,) = plan_scenes(script, Cast.builtin(), RenderConfig())
    bob = plan.cast[0]
    assert bob.voice.variant.startswith("m") and bob.look.age == "middle" and bob.look.skin_rgb[0] < 170


def test_aliases_are_reported_not_merged() -> None:
    script = parse_script("BOB: Hi.\nCYBER BOB: I am the future.\nBOBBY: No.\n")
    assert script.characters == ("BOB", "CYBER BOB", "BOBBY")
    assert likely_aliases(script.characters) == [("CYBER BOB", "BOB")]


def test_the_shot_timeline_has_one_named_clip_per_shot(tmp_path: Path) -> None:
    shots = [(0, Shot(0, 40, "wide", ("MAYA", "LEO"))), (0, Shot(40, 90, "close", ("LEO",))), (90, Shot(0, 30, "medium", ("MAYA",)))]
    events = [LineEvent(0, "LEO", "Hello.", 45 * 1920, 80 * 1920)]
    path = write_shot_timeline(tmp_path / "cut.otio", shots, events, n_frames=120, media_name="cut.mp4")
    doc = json.loads(path.read_text())
    clips = doc["tracks"]["children"][0]["children"]
    assert [c["name"] for c in clips] == ["wide MAYA+LEO", "close LEO", "medium MAYA"]
    assert [c["source_range"]["start_time"]["value"] for c in clips] == [0, 40, 90]
    assert [m["name"] for m in clips[1]["markers"]] == ["LEO: Hello."]


@pytest.mark.parametrize("age", ["child", "middle", "old"])  # "young" draws as an adult
def test_the_wider_rig_range_draws_and_stays_distinct(age: str) -> None:
    base = Cast.builtin().resolve("KAI")
    adult = RigCharacter(base, height_px=160).render(_rest())
    other = RigCharacter(base.__class__(name="KAI", look=_with(base.look, age=age), voice=base.voice, seed=base.seed), height_px=160)
    picture = other.render(_rest())
    assert picture.shape == adult.shape and not np.array_equal(picture, adult)
    broad = RigCharacter(base.__class__(name="KAI", look=_with(base.look, build="broad"), voice=base.voice), height_px=160)
    slim = RigCharacter(base.__class__(name="KAI", look=_with(base.look, build="slim"), voice=base.voice), height_px=160)
    width = [int((r.render(_rest())[-1, :, 3] > 128).sum()) for r in (slim, RigCharacter(base, height_px=160), broad)]
    assert width[0] < width[1] < width[2]
    with pytest.raises(ValueError, match="unknown age 'ancient'"):
        Look(age="ancient")


def _rest():
    from avatar.pose import Pose

    return Pose.rest()


def _with(look: Look, **changes: object) -> Look:
    from dataclasses import replace

    return replace(look, **changes)
