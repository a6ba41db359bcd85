"""Script parsing: every Fountain element we read, plain NAME: lines, names, limits and errors.

Scripts are written as lists of lines, so source line k is element k - 1 of the list.
"""

from __future__ import annotations

import dataclasses

import pytest

from lipsync.script import (
    MAX_LINE_CHARS,
    MAX_SCRIPT_CHARS,
    Action,
    Line,
    Scene,
    Script,
    ScriptError,
    parse_script,
)


def lines(*rows: str) -> str:
    return "\n".join(rows)


def only_scene(script: Script) -> Scene:
    assert len(script.scenes) == 1
    return script.scenes[0]


# --- Fountain ------------------------------------------------------------------------------


def test_title_page_keys_lowercased_with_continuations_and_emphasis_stripped() -> None:
    script = parse_script(
        lines(
            "Title: _**BRICK & STEEL**_",
            "Credit: Written by",
            "Authors:",
            "    Stu Maschwitz",
            "    Jane Doe",
            "Draft date: 1/20/2012",
            "",
            "BRICK",
            "Hello.",
        )
    )
    assert script.format == "fountain"
    assert script.title == {
        "title": "BRICK & STEEL",
        "credit": "Written by",
        "authors": "Stu Maschwitz\nJane Doe",
        "draft date": "1/20/2012",
    }
    assert [(line.speaker, line.text, line.source_line) for line in script.lines] == [
        ("BRICK", "Hello.", 8)
    ]


def test_script_without_title_page_has_empty_title() -> None:
    assert parse_script(lines("BRICK", "Hello.")).title == {}


def test_scene_headings_all_prefixes_numbers_stripped_and_forced() -> None:
    script = parse_script(
        lines(
            "Opening words.",  # 1: before any heading
            "",
            "INT. KITCHEN - NIGHT #1#",  # 3
            "",
            "MAYA",
            "Hi.",
            "",
            "ext. garden - day #12A#",  # 8
            "",
            "EST. CITY",  # 10
            "",
            "INT./EXT. CAR - MOVING",  # 12
            "",
            "I/E. PORCH",  # 14
            "",
            ".SNIPER SCOPE POV",  # 16: forced
            "",
            "SAM",
            "Bye.",
        )
    )
    assert [(scene.heading, scene.source_line) for scene in script.scenes] == [
        (None, 1),
        ("INT. KITCHEN - NIGHT", 3),
        ("ext. garden - day", 8),
        ("EST. CITY", 10),
        ("INT./EXT. CAR - MOVING", 12),
        ("I/E. PORCH", 14),
        ("SNIPER SCOPE POV", 16),
    ]
    assert script.scenes[0].actions == (Action("Opening words.", 1),)
    assert script.scenes[1].lines[0].text == "Hi."
    assert script.scenes[-1].lines[0].speaker == "SAM"
    assert script.scenes[2].lines == () and script.scenes[2].actions == ()


def test_cue_directly_under_a_heading_is_accepted() -> None:
    script = parse_script(lines("INT. KITCHEN - NIGHT", "MAYA", "Hi."))
    scene = only_scene(script)
    assert scene.heading == "INT. KITCHEN - NIGHT"
    assert scene.lines == (Line("MAYA", "Hi.", None, None, 2, None),)


def test_ellipsis_is_not_a_forced_heading() -> None:
    script = parse_script(lines("...and then silence.", "", "MAYA", "Hi."))
    assert [scene.heading for scene in script.scenes] == [None]
    assert script.scenes[0].actions == (Action("...and then silence.", 1),)


def test_character_cue_needs_blank_line_before_and_text_after() -> None:
    script = parse_script(
        lines(
            "The door opens.",
            "MAYA",  # 2: no blank line before -> action
            "walks in.",
            "",
            "SAM",  # 5: a cue
            "You're late.",
            "",
            "THE END",  # 8: nothing after -> action
        )
    )
    scene = only_scene(script)
    assert scene.lines == (Line("SAM", "You're late.", None, None, 5, None),)
    assert scene.actions == (
        Action("The door opens.\nMAYA\nwalks in.", 1),
        Action("THE END", 8),
    )


def test_forced_cue_allows_mixed_case_and_extensions_are_split_off() -> None:
    script = parse_script(
        lines(
            "@McCLANE",
            "Yippee ki-yay.",
            "",
            "STEEL (V.O.)",
            "Beer's ready!",
            "",
            "BRICK (O.S.) (cont'd)",
            "Coming.",
            "",
            "HANS (CONT'D)",
            "Shoot the glass.",
            "",
            "R2-D2",
            "Beep.",
        )
    )
    assert [(line.speaker, line.extension, line.source_line) for line in script.lines] == [
        ("MCCLANE", None, 1),
        ("STEEL", "V.O.", 4),
        ("BRICK", "O.S. CONT'D", 7),
        ("HANS", "CONT'D", 10),
        ("R2-D2", None, 13),
    ]


def test_mixed_case_line_without_at_is_action_not_cue() -> None:
    script = parse_script(lines("McCLANE", "Yippee.", "", "HANS", "Hi."))
    assert script.characters == ("HANS",)
    assert script.scenes[0].actions == (Action("McCLANE\nYippee.", 1),)


def test_contd_speech_is_the_same_character() -> None:
    script = parse_script(
        lines("MAYA", "Wait.", "", "She turns.", "", "MAYA (CONT'D)", "Come back.")
    )
    assert script.characters == ("MAYA",)
    assert [line.extension for line in script.lines] == [None, "CONT'D"]


def test_parentheticals_and_multiline_dialogue_joined() -> None:
    script = parse_script(
        lines(
            "BRICK",
            "(whispering)",
            "Are they",
            "cold?",
            "(beat)",
            "Really   cold?",
            "",
            "STEEL",
            "(quietly,",
            " almost to himself)",
            "(smiles) Yes.",
        )
    )
    brick, steel = script.lines
    assert brick.text == "Are they cold? Really cold?"
    assert brick.parenthetical == "whispering; beat"
    assert steel.text == "Yes."
    assert steel.parenthetical == "quietly, almost to himself; smiles"


def test_two_space_line_keeps_dialogue_going_and_blank_line_ends_it() -> None:
    script = parse_script(lines("DEALER", "Ten.", "  ", "Four.", "", "Then nothing."))
    scene = only_scene(script)
    assert scene.lines[0].text == "Ten. Four."
    assert scene.actions == (Action("Then nothing.", 6),)


def test_cue_with_only_a_parenthetical_is_kept_as_action() -> None:
    script = parse_script(lines("MAYA", "(nods)", "", "SAM", "Good."))
    scene = only_scene(script)
    assert script.characters == ("SAM",)
    assert scene.actions == (Action("MAYA\n(nods)", 1),)


def test_dual_dialogue_pairs_get_unique_shared_group_ids() -> None:
    script = parse_script(
        lines(
            "BRICK",
            "Screw retirement.",
            "",
            "STEEL ^",
            "Screw retirement.",
            "",
            "They stare.",
            "",
            "BRICK",
            "Beer?",
            "",
            "@McCLANE (V.O.) ^",
            "Beer.",
            "",
            "STEEL",
            "Fine.",
        )
    )
    groups = [(line.speaker, line.dual_group) for line in script.lines]
    assert groups == [
        ("BRICK", 1),
        ("STEEL", 1),
        ("BRICK", 2),
        ("MCCLANE", 2),
        ("STEEL", None),
    ]
    assert script.lines[3].extension == "V.O."


def test_dual_caret_after_action_is_not_paired() -> None:
    script = parse_script(lines("BRICK", "Hi.", "", "He leaves.", "", "STEEL ^", "Bye."))
    assert [line.dual_group for line in script.lines] == [None, None]
    assert script.lines[1].speaker == "STEEL"


def test_transitions_are_neither_dialogue_nor_cues_nor_action() -> None:
    script = parse_script(
        lines(
            "MAYA",
            "Go.",
            "",
            "CUT TO:",
            "",
            "SAM",
            "Gone.",
            "",
            "> BURN TO WHITE.",
            "",
            "SMASH CUT TO:",
            "The end.",
        )
    )
    scene = only_scene(script)
    assert [(line.speaker, line.text) for line in scene.lines] == [
        ("MAYA", "Go."),
        ("SAM", "Gone."),
    ]
    assert scene.actions == (Action("The end.", 12),)
    assert "CUT TO:" not in script.characters


def test_centered_text_is_action() -> None:
    script = parse_script(lines("MAYA", "Hi.", "", ">THE END<"))
    assert script.scenes[0].actions == (Action("THE END", 4),)


def test_notes_removed_and_line_numbers_stay_right() -> None:
    script = parse_script(
        lines(
            "MAYA",  # 1
            "Hello [[a note",  # 2
            "that spans",
            "three lines]] there.",
            "[[a note on its own line]]",  # 5: vanishes, does not end the speech
            "Still me.",
            "",
            "SAM",  # 8
            "Hi [[x]] back.",
        )
    )
    maya, sam = script.lines
    assert (maya.text, maya.source_line) == ("Hello there. Still me.", 1)
    assert (sam.text, sam.source_line) == ("Hi back.", 8)


def test_boneyard_removed_across_lines_and_unterminated_runs_to_end() -> None:
    script = parse_script(
        lines(
            "/* An old scene",  # 1
            "",
            "OLD",
            "Cut line.",
            "*/",  # 5
            "",
            "MAYA",  # 7
            "Keep /* not this */ this.",
            "",
            "SAM",  # 10
            "Last line.",
            "/*",
            "",
            "GHOST",
            "Never heard.",
        )
    )
    assert [(line.speaker, line.text, line.source_line) for line in script.lines] == [
        ("MAYA", "Keep this.", 7),
        ("SAM", "Last line.", 10),
    ]


def test_unterminated_note_is_kept_as_text() -> None:
    script = parse_script(lines("MAYA", "See [[this", "", "SAM", "Hi [[x]]."))
    assert [line.text for line in script.lines] == ["See [[this", "Hi ."]


def test_forced_action_keeps_an_all_caps_line_from_being_a_cue() -> None:
    script = parse_script(lines("!BANG!", "The glass shatters.", "", "MAYA", "What was that?"))
    scene = only_scene(script)
    assert script.characters == ("MAYA",)
    assert scene.actions == (Action("BANG!\nThe glass shatters.", 1),)


def test_all_caps_line_without_bang_is_a_cue() -> None:
    script = parse_script(lines("BANG!", "The glass shatters."))
    assert script.lines == (Line("BANG!", "The glass shatters.", None, None, 1, None),)


def test_lyrics_in_dialogue_are_text_and_standalone_are_action() -> None:
    script = parse_script(
        lines(
            "~Willy Wonka! Willy Wonka!",
            "",
            "CHARLIE",
            "~The amazing chocolatier!",
            "~Willy Wonka!",
        )
    )
    scene = only_scene(script)
    assert scene.lines[0].text == "The amazing chocolatier! Willy Wonka!"
    assert scene.actions == (Action("Willy Wonka! Willy Wonka!", 1),)


def test_sections_synopses_and_page_breaks_are_ignored() -> None:
    script = parse_script(
        lines(
            "# ACT ONE",
            "",
            "= Maya confronts Sam.",
            "",
            "INT. HOUSE - DAY",
            "",
            "MAYA",
            "Where?",
            "",
            "===",
            "",
            "SAM",
            "Here.",
        )
    )
    scene = only_scene(script)
    assert scene.heading == "INT. HOUSE - DAY"
    assert scene.actions == ()
    assert [line.text for line in scene.lines] == ["Where?", "Here."]


def test_emphasis_markers_stripped_and_escaped_star_kept() -> None:
    script = parse_script(
        lines(
            "MAYA",
            "This is *italic*, **bold**, ***both*** and _underlined_.",
            "",
            "SAM",
            "\\*sigh\\* 5 * 3 is my_var_name.",
            "",
            "*Rain* falls.",
        )
    )
    maya, sam = script.lines
    assert maya.text == "This is italic, bold, both and underlined."
    assert sam.text == "*sigh* 5 * 3 is my_var_name."
    assert script.scenes[0].actions == (Action("Rain falls.", 7),)


def test_unicode_fountain_cues() -> None:
    script = parse_script(lines("小明", "你好！", "", "민수", "안녕하세요."))
    assert [(line.speaker, line.text) for line in script.lines] == [
        ("小明", "你好！"),
        ("민수", "안녕하세요."),
    ]


def test_windows_newlines_and_bom() -> None:
    script = parse_script("\ufeffINT. ROOM\r\n\r\nMAYA\r\nHi.\r\n")
    assert script.scenes[0].heading == "INT. ROOM"
    assert script.lines[0].source_line == 3


# --- plain NAME: line ----------------------------------------------------------------------


def test_plain_lines_with_parenthetical_actions_and_headings() -> None:
    script = parse_script(
        lines(
            "Maya: (whispering) Where were you?",
            "She puts the kettle on.",
            "",
            "Sam: Out.",
            "# Kitchen",
            "MAYA: Doing *what*?",
            "INT. HALL - NIGHT",
            "Sam (V.O.): Nothing.",
        )
    )
    assert script.format == "plain"
    assert [(scene.heading, scene.source_line) for scene in script.scenes] == [
        (None, 1),
        ("Kitchen", 5),
        ("INT. HALL - NIGHT", 7),
    ]
    first = script.scenes[0]
    assert first.lines == (
        Line("MAYA", "Where were you?", "whispering", None, 1, None),
        Line("SAM", "Out.", None, None, 4, None),
    )
    assert first.actions == (Action("She puts the kettle on.", 2),)
    assert script.scenes[1].lines[0].text == "Doing what?"
    assert script.scenes[2].lines[0].extension == "V.O."


def test_plain_unicode_names_and_text() -> None:
    script = parse_script(
        lines("小明: 你好", "민수: 안녕하세요", "小明：今天天气很好。", "José: ¡Hola!")
    )
    assert script.format == "plain"
    assert [(line.speaker, line.text) for line in script.lines] == [
        ("小明", "你好"),
        ("민수", "안녕하세요"),
        ("小明", "今天天气很好。"),
        ("JOSÉ", "¡Hola!"),
    ]
    assert script.characters == ("小明", "민수", "JOSÉ")


def test_plain_names_allow_spaces_dots_apostrophes_and_digits() -> None:
    script = parse_script(lines("Mrs. O'Neil: Tea?", "Robot 2: Beep.", "Mary-Ann: No."))
    assert script.characters == ("MRS. O'NEIL", "ROBOT 2", "MARY-ANN")


def test_plain_non_dialogue_lines_are_actions() -> None:
    script = parse_script(
        lines("MAYA: We leave at 10:30.", "At 10:30 they leave.", "SAM: Fine.", "// a comment")
    )
    scene = only_scene(script)
    assert scene.actions == (Action("At 10:30 they leave.", 2),)
    assert [line.text for line in scene.lines] == ["We leave at 10:30.", "Fine."]


def test_plain_with_title_page() -> None:
    script = parse_script(lines("Title: Kitchen Talk", "", "MAYA: Hi.", "SAM: Hey."))
    assert script.format == "plain"
    assert script.title == {"title": "Kitchen Talk"}
    assert script.characters == ("MAYA", "SAM")


def test_fountain_dialogue_containing_colons_stays_fountain() -> None:
    script = parse_script(
        lines("INT. ROOM", "", "MAYA", "Listen: this matters.", "", "SAM", "Okay.")
    )
    assert script.format == "fountain"
    assert script.lines[0].text == "Listen: this matters."


def test_mostly_prose_with_a_few_name_lines_and_no_cues_is_plain() -> None:
    script = parse_script(lines("MAYA: Hi.", "She leaves.", "The door shuts behind her."))
    assert script.format == "plain"
    assert script.lines == (Line("MAYA", "Hi.", None, None, 1, None),)
    assert [action.source_line for action in script.scenes[0].actions] == [2, 3]


# --- names, aliases, characters ------------------------------------------------------------


def test_speakers_are_matched_case_insensitively() -> None:
    script = parse_script(lines("Maya: One.", "MAYA: Two.", "maya: Three.", "Sam: Four."))
    assert script.characters == ("MAYA", "SAM")
    assert {line.speaker for line in script.lines} == {"MAYA", "SAM"}


def test_aliases_resolve_case_insensitively() -> None:
    script = parse_script(
        lines("Mom: Dinner!", "Sam: Coming.", "MAYA: Now."), aliases={"mom": "Maya"}
    )
    assert [line.speaker for line in script.lines] == ["MAYA", "SAM", "MAYA"]
    assert script.characters == ("MAYA", "SAM")


def test_aliases_apply_to_fountain_cues() -> None:
    script = parse_script(lines("MOM (O.S.)", "Dinner!"), aliases={"Mom": "MAYA"})
    assert (script.lines[0].speaker, script.lines[0].extension) == ("MAYA", "O.S.")


def test_characters_in_order_of_first_appearance() -> None:
    script = parse_script(lines("SAM: a", "MAYA: b", "SAM: c", "# Two", "LEE: d", "MAYA: e"))
    assert script.characters == ("SAM", "MAYA", "LEE")
    assert [line.text for line in script.lines] == ["a", "b", "c", "d", "e"]


def test_parsed_values_are_frozen() -> None:
    line = parse_script("MAYA: Hi.").lines[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.text = "Bye."  # type: ignore[misc]


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n"])
def test_empty_script_is_an_error(text: str) -> None:
    with pytest.raises(ScriptError, match="script is empty") as info:
        parse_script(text)
    assert info.value.line is None


@pytest.mark.parametrize(
    "text",
    [
        "INT. KITCHEN - NIGHT\n\nThe kettle boils.",
        "Just some prose without anyone talking.",
        "/* everything\nis boneyard */",
        "Title: Nothing Said\n\nINT. ROOM",
    ],
)
def test_script_without_dialogue_is_an_error(text: str) -> None:
    with pytest.raises(ScriptError, match="no dialogue found") as info:
        parse_script(text)
    assert "NAME: line" in str(info.value)


def test_script_over_max_chars_names_length_and_limit() -> None:
    text = "MAYA: " + "a" * 100
    with pytest.raises(ScriptError, match=r"script is 106 characters, over the limit of 50"):
        parse_script(text, max_chars=50)


def test_default_script_limit() -> None:
    assert MAX_SCRIPT_CHARS == 200_000
    with pytest.raises(ScriptError, match="over the limit of 200000"):
        parse_script("MAYA: hi\n" * 30_000)


def test_dialogue_over_max_line_chars_names_source_line_length_and_limit() -> None:
    text = lines("INT. ROOM", "", "SAM", "Fine.", "", "MAYA", "a" * 30, "b" * 30)
    with pytest.raises(ScriptError) as info:
        parse_script(text, max_line_chars=50)
    assert info.value.line == 6
    assert str(info.value).startswith("line 6: dialogue is 61 characters, over the limit of 50")


def test_default_line_limit_applies_to_plain_lines() -> None:
    assert MAX_LINE_CHARS == 1_000
    parse_script("MAYA: " + "a" * MAX_LINE_CHARS)
    with pytest.raises(ScriptError, match="line 2: dialogue is 1001 characters") as info:
        parse_script("SAM: hi\nMAYA: " + "a" * (MAX_LINE_CHARS + 1))
    assert info.value.line == 2


@pytest.mark.parametrize("value", [b"MAYA: hi", None, ["MAYA: hi"]])
def test_non_str_script_is_an_error(value: object) -> None:
    with pytest.raises(ScriptError, match="script must be a str"):
        parse_script(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("aliases", [{"Mom": ""}, {"Mom": "   "}])
def test_alias_to_empty_name_is_an_error(aliases: dict[str, str]) -> None:
    with pytest.raises(ScriptError, match="alias 'Mom' maps to an empty name"):
        parse_script("MOM: hi", aliases=aliases)


def test_empty_alias_name_is_an_error() -> None:
    with pytest.raises(ScriptError, match="empty name"):
        parse_script("MOM: hi", aliases={" ": "MAYA"})


def test_script_error_is_a_value_error_with_optional_line() -> None:
    error = ScriptError("bad cue", line=7)
    assert isinstance(error, ValueError)
    assert (error.line, error.reason, str(error)) == (7, "bad cue", "line 7: bad cue")
    assert ScriptError("bad").line is None


@pytest.mark.parametrize(
    "text",
    [
        "MAYA\n" + "*a " * 60_000,  # unpaired emphasis markers
        "MAYA: hi\nA" + " " * 180_000 + "x",  # a long run inside a would-be name
        "INT. " + " " * 180_000 + "x\n\nMAYA\nhi",
        "MAYA\n" + "(x\n" * 60_000,  # unclosed parentheticals
    ],
)
def test_hostile_input_at_the_size_limit_parses(text: str) -> None:
    # Quadratic scanning once took over a minute on these; the patterns are linear now.
    script = parse_script(text, max_line_chars=MAX_SCRIPT_CHARS)
    assert script.characters == ("MAYA",)
