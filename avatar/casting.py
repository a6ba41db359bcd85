"""Casting from the page: a character's introduction in an action line chooses look and voice.

Screenplays introduce a character the first time they appear: ``MARGARET, 37, a white woman,
amicable, mild`` or ``BOB (40s), bald, glasses``. ``introductions`` finds these; ``Traits``
reads the words that matter (gender, age, hair, skin, build, facial hair, glasses) and
``cast_from_traits`` turns them into a ``CharacterSpec``: the name's auto-cast, with every
trait the page states taking precedence. Deterministic: the same page casts the same people.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

from avatar.spec import SKIN_TONES, CharacterSpec, Look, auto_cast
from lipsync.voices import (
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    VoiceSpec,
    auto_natural_voice,
    name_digest,
)

# NAME, 37, ... | NAME (37) ... | NAME (40s), ...  — the name in CAPS, then an age or a comma.
_INTRO_RE = re.compile(
    r"(?<![\w'])(?P<name>[A-Z][A-Z'\-]+(?: [A-Z][A-Z'\-]+){0,2})"
    r"(?:\s*\((?P<age_p>[^)]{1,20})\)|,\s*(?P<age_c>\d{1,2}s?|(?:early|mid|late)[ -]\d0s)\b)"
    r"(?P<rest>[^.;]*)"
)
_WORDS = {
    "female": r"\b(?:woman|women|girl|lady|female|she|her|mother|mom|mum|wife|sister|daughter|grandmother|aunt|queen|actress|waitress)\b",
    "male": r"\b(?:man|men|boy|guy|gentleman|male|he|his|father|dad|husband|brother|son|grandfather|uncle|king|actor|waiter)\b",
    "child": r"\b(?:child|kid|boy|girl|toddler|little)\b",
    "young": r"\b(?:young|teen|teenager|teenage|youthful|student)\b",
    "middle": r"\b(?:middle[- ]aged)\b",
    "old": r"\b(?:old|elderly|aged|ancient|grey-haired|gray-haired|white-haired|grandmother|grandfather|retired|wrinkled)\b",
    "bald": r"\b(?:bald|balding|shaved head|shaven head)\b",
    "long_hair": r"\blong(?:[- ]haired| hair)\b",
    "short_hair": r"\bshort(?:[- ]haired| hair)\b|\bcrew[- ]cut\b",
    "curly": r"\b(?:curly|afro|curls)\b",
    "ponytail": r"\bponytail\b",
    "bun": r"\bbuns?\b",
    "blond": r"\b(?:blond|blonde|fair-haired)\b",
    "red_hair": r"\b(?:red-haired|redhead|red hair|ginger)\b",
    "dark_hair": r"\b(?:dark-haired|dark hair|black hair|brunette)\b",
    "grey_hair": r"\b(?:grey|gray|silver|white)[- ]hair(?:ed)?\b",
    "white_skin": r"\b(?:white|pale|fair-skinned|caucasian)\b",
    "black_skin": r"\b(?:black|dark-skinned|african)\b",
    "brown_skin": r"\b(?:brown|latina|latino|hispanic|indian|arab|south asian|mixed[- ]race|olive-skinned)\b",
    "east_asian": r"\b(?:asian|chinese|japanese|korean|east asian)\b",
    "glasses": r"\b(?:glasses|spectacles|bespectacled)\b",
    "beard": r"\b(?:bearded|beard)\b",
    "moustache": r"\b(?:moustache|mustache|moustached)\b",
    "stubble": r"\b(?:stubble|unshaven|stubbled)\b",
    "broad": r"\b(?:broad|burly|stocky|heavy|heavyset|big|large|stout|chubby|plump|muscular|hulking)\b",
    "slim": r"\b(?:slim|thin|skinny|slight|lanky|wiry|slender|petite|gaunt)\b",
}
_PATTERNS = {k: re.compile(v, re.IGNORECASE) for k, v in _WORDS.items()}


@dataclass(frozen=True, slots=True)
class Traits:
    """What the page says of a character; None where it says nothing."""

    gender: str | None = None  # "female" | "male"
    age: int | None = None  # years
    age_group: str | None = None  # "child" | "young" | "adult" | "middle" | "old"
    hair: str | None = None  # a Look hair style
    hair_colour: str | None = None  # "blond" | "red" | "dark" | "grey"
    skin: str | None = None  # "white" | "brown" | "black" | "east_asian"
    build: str | None = None  # "slim" | "broad"
    glasses: bool = False
    facial_hair: str | None = None
    source_line: int | None = None

    @classmethod
    def read(cls, text: str, *, age_text: str | None = None, source_line: int | None = None) -> Traits:
        """The traits in a description such as ``"a white man, balding, glasses"``."""
        has = {k: bool(p.search(text)) for k, p in _PATTERNS.items()}
        gender = None
        if has["female"] != has["male"]:
            gender = "female" if has["female"] else "male"
        age = _age(age_text or "")
        group = _age_group(age) if age is not None else None
        for word in ("child", "old", "middle", "young"):
            if group is None and has[word] and not (word == "child" and not _child_words(text)):
                group = word
        hair = next(
            (style for key, style in (("bald", "bald"), ("ponytail", "ponytail"), ("bun", "buns"),
                                      ("curly", "afro"), ("long_hair", "long"), ("short_hair", "crop"))
             if has[key]),
            None,
        )  # fmt: skip
        colour = next(
            (c for key, c in (("grey_hair", "grey"), ("blond", "blond"), ("red_hair", "red"), ("dark_hair", "dark"))
             if has[key]),
            None,
        )  # fmt: skip
        skin = next((s for s in ("east_asian", "black", "brown", "white") if has[f"{s}_skin" if s != "east_asian" else s]), None)
        facial = next((f for f in ("beard", "moustache", "stubble") if has[f]), None)
        build = "broad" if has["broad"] and not has["slim"] else ("slim" if has["slim"] else None)
        return cls(gender, age, group, hair, colour, skin, build, has["glasses"], facial, source_line)


def _age(text: str) -> int | None:
    m = re.search(r"(?:(early|mid|late)[ -])?\b(\d{1,2})(s)?\b", text, re.IGNORECASE)
    if m is None:
        return None
    age = int(m.group(2))
    if m.group(3):  # "40s", "mid-30s"
        age += {"early": 1, "mid": 4, "late": 7}.get((m.group(1) or "").lower(), 3)
    return age


def _age_group(age: int) -> str:
    return "child" if age < 13 else "young" if age < 30 else "adult" if age < 45 else "middle" if age < 62 else "old"


def _child_words(text: str) -> bool:
    return bool(re.search(r"\b(?:child|kid|toddler|little (?:boy|girl)|young (?:boy|girl)|boy|girl)\b", text, re.I))


@dataclass(frozen=True, slots=True)
class Introduction:
    """``name`` introduced at ``source_line`` with ``traits``."""

    name: str
    traits: Traits
    source_line: int


def introductions(actions: Iterable[tuple[str, int]], *, known: Iterable[str] = ()) -> dict[str, Introduction]:
    """First introduction per name found in (action text, source line) pairs, in order.

    A CAPS name followed by an age (``, 37``, ``(40s)``) is an introduction; a CAPS name of a
    ``known`` character followed by a comma and a description is one too
    (``BOB, a white man``).
    """
    known_names = set(known)
    found: dict[str, Introduction] = {}
    for text, line in actions:
        for m in _INTRO_RE.finditer(text):
            name = m.group("name").strip()
            age_text = m.group("age_p") or m.group("age_c")
            if name in found or (age_text and not re.search(r"\d|old|young|teen", age_text, re.I)):
                continue
            found[name] = Introduction(name, Traits.read(m.group("rest"), age_text=age_text, source_line=line), line)
        for name in known_names - set(found):
            plain = re.search(r"(?<![\w'])" + re.escape(name) + r"\s*,\s*(?P<rest>(?:an?|the)\s[^.;]*)", text)
            if plain:
                found[name] = Introduction(name, Traits.read(plain.group("rest"), source_line=line), line)
    return found


_SKIN = {
    "white": (SKIN_TONES[0], SKIN_TONES[1], SKIN_TONES[2]),
    "east_asian": (SKIN_TONES[1], SKIN_TONES[2], SKIN_TONES[3]),
    "brown": (SKIN_TONES[3], SKIN_TONES[4], SKIN_TONES[5]),
    "black": (SKIN_TONES[5], SKIN_TONES[6], SKIN_TONES[7]),
}
_HAIR_RGB = {
    "blond": ((216, 176, 108), (226, 190, 128)),
    "red": ((186, 92, 48), (160, 78, 40)),
    "dark": ((36, 30, 34), (62, 42, 32)),
    "grey": ((168, 168, 176), (196, 194, 198)),
}
_FEMALE_STYLES = ("bob", "long", "buns", "ponytail", "afro")
_MALE_STYLES = ("crop", "quiff", "crop", "afro", "bald")


def cast_from_traits(name: str, traits: Traits, *, language: str = "en-us") -> CharacterSpec:
    """``name``'s auto-cast, with what ``traits`` states overriding it."""
    base = auto_cast(name, language=language)
    d = name_digest(name)
    look, voice = base.look, base.voice
    female = voice.variant.startswith("f") if traits.gender is None else traits.gender == "female"
    group = traits.age_group or "adult"
    if traits.gender is not None and female != voice.variant.startswith("f"):
        variants = FEMALE_VARIANTS if female else MALE_VARIANTS
        voice = replace(voice, variant=variants[d[1] % len(variants)], pitch=(58 + d[2] % 22) if female else (30 + d[2] % 22))
    pitch = voice.pitch + {"child": 22, "young": 6, "adult": 0, "middle": -4, "old": -8}[group]
    rate = voice.rate_wpm + {"child": 10, "young": 8, "adult": 0, "middle": -8, "old": -22}[group]
    voice = replace(
        voice, pitch=max(0, min(100, pitch)), rate_wpm=max(80, min(450, rate)),
        voice_id=auto_natural_voice(name, female=female, mature=group in ("middle", "old"))
        if voice.backend == "kokoro" else voice.voice_id,
    )  # fmt: skip
    styles = _FEMALE_STYLES if female else _MALE_STYLES
    hair = traits.hair or (look.hair_style if (look.hair_style in styles) else styles[d[7] % len(styles)])
    if group == "child" and hair == "bald":
        hair = styles[0]
    colour = traits.hair_colour or ("grey" if group == "old" else None)
    hair_rgb = _HAIR_RGB[colour][d[8] % 2] if colour else look.hair_rgb
    if colour is None and group != "old" and hair_rgb in _HAIR_RGB["grey"]:
        hair_rgb = _HAIR_RGB["dark"][d[8] % 2]
    skin = _SKIN[traits.skin][d[6] % 3] if traits.skin else look.skin_rgb
    facial = traits.facial_hair or ("none" if female or group in ("child", "young") else look.facial_hair)
    if female or group == "child":
        facial = "none" if not traits.facial_hair or female or group == "child" else facial
    if hair == "bald" and facial == "none" and not female and traits.facial_hair is None and group != "young":
        facial = "beard"
    accessory = look.accessory
    if traits.glasses:
        accessory = "round_glasses" if d[13] % 2 else "glasses"
    elif accessory in ("glasses", "round_glasses") and traits.source_line is not None:
        accessory = "none"
    if accessory == "earrings" and not female:
        accessory = "none"
    look = replace(
        look,
        skin_rgb=skin,
        hair_style=hair,
        hair_rgb=hair_rgb,
        facial_hair=facial,
        accessory=accessory,
        lashes=female,
        age=group,
        build=traits.build or "average",
    )
    return CharacterSpec(name=base.name, look=look, voice=voice, seed=base.seed)


class CastFileError(ValueError):
    """A cast entry that cannot be used; the message names the source, line and field."""

    def __init__(self, message: str, *, source: str, line: int, field: str | None = None) -> None:
        self.line = line
        self.field = field
        where = f"{source} line {line}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class CastEntry:
    """One pinned character: a description (cast as an introduction would) and exact fields."""

    name: str
    description: str
    look: tuple[tuple[str, object], ...]
    voice: tuple[tuple[str, object], ...]
    line: int


_LOOK_FIELDS = {f.name: f for f in fields(Look)}
_VOICE_FIELDS = {f.name: f for f in fields(VoiceSpec)}
_FIELD_RE = re.compile(r"(?P<key>[A-Za-z_][\w.]*)\s*=\s*(?P<value>#[0-9A-Fa-f]{3,6}|\d{1,3},\d{1,3},\d{1,3}|[^\s;]+)")


def parse_cast(text: str, *, source: str = "cast file", first_line: int = 1) -> dict[str, CastEntry]:
    """Cast entries, one a line: ``NAME: description; field=value ...``.

    ``BOB: a white man, 40, balding`` casts BOB as the page would; fields pin exactly:
    ``MAYA: hair_style=bob clothes_rgb=#3366aa voice.variant=f3 pitch=60`` (look fields by name
    or ``look.NAME``, voice fields by name or ``voice.NAME``). ``#`` starts a comment line.
    Raises ``CastFileError`` naming the line and the field for an unknown field or bad value."""
    out: dict[str, CastEntry] = {}
    for i, raw in enumerate(text.splitlines()):
        line = first_line + i
        row = raw.strip()
        if not row or row.startswith("#"):
            continue
        name, sep, rest = row.partition(":")
        if not sep or not name.strip() or not any(c.isalpha() for c in name):
            raise CastFileError("expected 'NAME: description; field=value ...'", source=source, line=line)
        look: dict[str, object] = {}
        voice: dict[str, object] = {}
        for m in _FIELD_RE.finditer(rest):
            key, value = m.group("key"), m.group("value")
            part, _, field = key.rpartition(".")
            if part not in ("", "look", "voice") or (
                field not in _LOOK_FIELDS and field not in _VOICE_FIELDS
            ) or (part == "look" and field not in _LOOK_FIELDS) or (part == "voice" and field not in _VOICE_FIELDS):
                known = ", ".join([*_LOOK_FIELDS, *(f"voice.{f}" for f in _VOICE_FIELDS)])
                raise CastFileError(f"unknown field {key!r}; known: {known}", source=source, line=line, field=key)
            is_look = part == "look" or (part == "" and field in _LOOK_FIELDS)
            target = look if is_look else voice
            target[field] = _value(field, value, is_look=is_look, source=source, line=line, key=key)
        description = _FIELD_RE.sub("", rest).replace(";", " ").strip(" ,")
        entry = CastEntry(name.strip().upper(), description, tuple(look.items()), tuple(voice.items()), line)
        pinned_spec(entry, source=source)  # check every value now, naming its line
        out[entry.name] = entry
    return out


def _value(field: str, value: str, *, is_look: bool, source: str, line: int, key: str) -> object:
    kind = (_LOOK_FIELDS if is_look else _VOICE_FIELDS)[field].type
    def bad(message: str) -> CastFileError:
        return CastFileError(message, source=source, line=line, field=key)

    if field.endswith("_rgb"):
        if value.startswith("#"):
            digits = value[1:] if len(value) == 7 else "".join(c * 2 for c in value[1:])
            if len(digits) != 6:
                raise bad(f"bad colour {value!r}; write #rrggbb")
            return tuple(int(digits[j : j + 2], 16) for j in (0, 2, 4))
        parts = value.split(",")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise bad(f"bad colour {value!r}; write #rrggbb or r,g,b")
        return tuple(int(p) for p in parts)
    if kind in (bool, "bool"):
        if value.lower() not in ("true", "false", "yes", "no"):
            raise bad(f"{value!r} is not true or false")
        return value.lower() in ("true", "yes")
    if kind in (int, "int"):
        if not value.lstrip("-").isdigit():
            raise bad(f"{value!r} is not a whole number")
        return int(value)
    if field == "variant" and value not in ("", *MALE_VARIANTS, *FEMALE_VARIANTS):
        raise bad(f"unknown voice variant {value!r}; use one of {', '.join((*MALE_VARIANTS, *FEMALE_VARIANTS))}")
    return value


def pinned_spec(entry: CastEntry, *, language: str = "en-us", source: str = "cast file") -> CharacterSpec:
    """The character ``entry`` pins: cast from its description, then its exact fields."""
    spec = cast_from_traits(entry.name, Traits.read(entry.description, age_text=entry.description), language=language)
    look_fields: dict[str, Any] = dict(entry.look)
    voice_fields: dict[str, Any] = dict(entry.voice)
    field = None
    try:
        for field in look_fields:
            replace(spec.look, **{field: look_fields[field]})
        look = replace(spec.look, **look_fields)
        for field in voice_fields:
            replace(spec.voice, **{field: voice_fields[field]})
        voice = replace(spec.voice, **voice_fields)
    except (TypeError, ValueError) as exc:
        raise CastFileError(str(exc), source=source, line=entry.line, field=field) from None
    return replace(spec, look=look, voice=voice)
