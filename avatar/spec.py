"""Character specs: how a character looks (``Look``) and sounds, the built-in cast, auto-casting.

A ``CharacterSpec`` is the whole identity of a character: the rig draws the same pixels from the
same spec forever, so episode 37 looks like episode 1. Unknown names are auto-cast: every field is
chosen from the name's ``name_digest`` (never Python's ``hash()``, which changes per process).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from lipsync.voices import VoiceSpec, auto_voice, name_digest, normalise_language

Rgb = tuple[int, int, int]

FACE_SHAPES: tuple[str, ...] = ("oval", "round", "square", "heart", "long")
HAIR_STYLES: tuple[str, ...] = ("bob", "long", "buns", "crop", "afro", "ponytail", "quiff", "bald")
FACIAL_HAIR: tuple[str, ...] = ("none", "beard", "moustache", "stubble")
BROW_STYLES: tuple[str, ...] = ("soft", "straight", "arched", "thick", "thin")
CLOTHES_STYLES: tuple[str, ...] = ("tshirt", "hoodie", "blazer", "sweater", "collared")
ACCESSORIES: tuple[str, ...] = ("none", "glasses", "round_glasses", "earrings")
AGES: tuple[str, ...] = ("adult", "child", "young", "middle", "old")
BUILDS: tuple[str, ...] = ("average", "slim", "broad")

# Palettes for auto-casting. Hair avoids near-white and crimson so it can never be mistaken
# for the fixed mouth-interior colours that avatar.measure looks for.
SKIN_TONES: tuple[Rgb, ...] = (
    (255, 224, 200),
    (247, 208, 178),
    (236, 192, 150),
    (224, 172, 128),
    (198, 134, 98),
    (160, 104, 72),
    (122, 80, 56),
    (94, 60, 44),
)
HAIR_COLOURS: tuple[Rgb, ...] = (
    (36, 30, 34),
    (62, 42, 32),
    (104, 68, 44),
    (150, 96, 56),
    (186, 92, 48),
    (216, 176, 108),
    (168, 168, 176),
    (70, 60, 110),
    (40, 92, 110),
)
EYE_COLOURS: tuple[Rgb, ...] = (
    (92, 58, 36),
    (60, 40, 28),
    (64, 118, 176),
    (70, 138, 98),
    (120, 104, 66),
    (96, 112, 128),
)
CLOTHES_COLOURS: tuple[Rgb, ...] = (
    (224, 96, 84),
    (46, 134, 140),
    (150, 118, 200),
    (226, 172, 64),
    (70, 164, 116),
    (52, 72, 124),
    (236, 140, 60),
    (200, 90, 140),
    (90, 150, 210),
    (96, 104, 112),
    (142, 112, 84),
    (240, 196, 80),
)


def _check_rgb(what: str, rgb: Rgb) -> None:
    if len(rgb) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in rgb):
        raise ValueError(f"{what} must be three ints in 0..255, got {rgb!r}")


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


@dataclass(frozen=True, slots=True)
class Look:
    """Everything the rig needs to draw a character. Colours are sRGB 0..255.

    accent_rgb is the secondary clothes colour: the shirt under a blazer, a sweater's stripe,
    a hoodie's drawstrings. lashes adds a lash flick to the eye lines.
    """

    face_shape: str = "oval"
    skin_rgb: Rgb = (236, 192, 150)
    hair_style: str = "crop"
    hair_rgb: Rgb = (62, 42, 32)
    eye_rgb: Rgb = (92, 58, 36)
    brow_style: str = "soft"
    clothes_style: str = "tshirt"
    clothes_rgb: Rgb = (46, 134, 140)
    accent_rgb: Rgb = (246, 244, 238)
    accessory: str = "none"
    facial_hair: str = "none"
    lashes: bool = False
    age: str = "adult"
    """How old the character is drawn: lines around the eyes and mouth for "middle" and "old",
    a softer, rounder face for "child"."""
    build: str = "average"
    """Shoulder width: "slim", "average" or "broad"."""

    def __post_init__(self) -> None:
        _check_choice("face_shape", self.face_shape, FACE_SHAPES)
        _check_choice("hair_style", self.hair_style, HAIR_STYLES)
        _check_choice("brow_style", self.brow_style, BROW_STYLES)
        _check_choice("clothes_style", self.clothes_style, CLOTHES_STYLES)
        _check_choice("accessory", self.accessory, ACCESSORIES)
        _check_choice("facial_hair", self.facial_hair, FACIAL_HAIR)
        _check_choice("age", self.age, AGES)
        _check_choice("build", self.build, BUILDS)
        for what in ("skin_rgb", "hair_rgb", "eye_rgb", "clothes_rgb", "accent_rgb"):
            _check_rgb(what, getattr(self, what))


@dataclass(frozen=True, slots=True)
class CharacterSpec:
    """One character: canonical upper-case name, look, voice and the seed of its idle motion.

    ``art_dir``: a folder of layered PNGs (``avatar.custom``) drawn instead of the rig's look.
    """

    name: str
    look: Look = field(default_factory=Look)
    voice: VoiceSpec = field(default_factory=VoiceSpec)
    seed: int = 0
    art_dir: str | None = None

    def __post_init__(self) -> None:
        canonical = self.name.strip().upper()
        if not canonical:
            raise ValueError("character name must not be empty")
        if len(canonical) > 64:
            raise ValueError(
                f"character name is {len(canonical)} characters; at most 64: {canonical[:20]!r}..."
            )
        object.__setattr__(self, "name", canonical)


def _seed_of(name: str) -> int:
    return int.from_bytes(name_digest(name)[16:24], "big")


def _builtin(name: str, look: Look, voice: VoiceSpec) -> CharacterSpec:
    return CharacterSpec(name=name, look=look, voice=voice, seed=_seed_of(name))


def _natural(voice_id: str, speed: float, *, variant: str, pitch: int, pitch_range: int, rate_wpm: int) -> VoiceSpec:
    """A built-in character's natural voice, with the espeak-ng voice it had as its fallback."""
    return VoiceSpec(
        variant=variant, pitch=pitch, pitch_range=pitch_range, rate_wpm=rate_wpm,
        backend="kokoro", voice_id=voice_id, speed=speed,
    )


BUILTIN_CAST: tuple[CharacterSpec, ...] = (
    _builtin(
        "MAYA",
        Look(
            face_shape="heart",
            skin_rgb=(198, 134, 98),
            hair_style="long",
            hair_rgb=(58, 36, 28),
            eye_rgb=(102, 64, 38),
            brow_style="arched",
            clothes_style="blazer",
            clothes_rgb=(220, 88, 80),
            accent_rgb=(248, 240, 228),
            accessory="earrings",
            lashes=True,
        ),
        _natural("af_heart", 1.0, variant="f2", pitch=62, pitch_range=60, rate_wpm=170),
    ),
    _builtin(
        "LEO",
        Look(
            face_shape="square",
            skin_rgb=(247, 212, 186),
            hair_style="quiff",
            hair_rgb=(190, 96, 46),
            eye_rgb=(70, 138, 98),
            brow_style="thick",
            clothes_style="hoodie",
            clothes_rgb=(46, 134, 140),
            accent_rgb=(240, 240, 232),
            facial_hair="stubble",
        ),
        _natural("am_puck", 1.05, variant="m3", pitch=38, pitch_range=50, rate_wpm=175),
    ),
    _builtin(
        "IRIS",
        Look(
            face_shape="round",
            skin_rgb=(240, 200, 164),
            hair_style="buns",
            hair_rgb=(36, 30, 34),
            eye_rgb=(70, 44, 30),
            brow_style="straight",
            clothes_style="sweater",
            clothes_rgb=(150, 118, 200),
            accent_rgb=(250, 232, 150),
            accessory="round_glasses",
            lashes=True,
        ),
        _natural("af_bella", 1.05, variant="f4", pitch=72, pitch_range=65, rate_wpm=180),
    ),
    _builtin(
        "OMAR",
        Look(
            face_shape="long",
            skin_rgb=(122, 80, 56),
            hair_style="bald",
            hair_rgb=(40, 32, 30),
            eye_rgb=(60, 40, 28),
            brow_style="thick",
            clothes_style="collared",
            clothes_rgb=(226, 172, 64),
            accent_rgb=(250, 246, 236),
            facial_hair="beard",
        ),
        _natural("am_michael", 0.95, variant="m1", pitch=30, pitch_range=45, rate_wpm=160),
    ),
    _builtin(
        "ZARA",
        Look(
            face_shape="round",
            skin_rgb=(94, 60, 44),
            hair_style="afro",
            hair_rgb=(36, 26, 24),
            eye_rgb=(80, 52, 34),
            brow_style="soft",
            clothes_style="tshirt",
            clothes_rgb=(70, 164, 116),
            accent_rgb=(250, 244, 230),
            accessory="earrings",
            lashes=True,
        ),
        _natural("af_sarah", 1.0, variant="f1", pitch=58, pitch_range=55, rate_wpm=165),
    ),
    _builtin(
        "SAM",
        Look(
            face_shape="oval",
            skin_rgb=(252, 222, 200),
            hair_style="ponytail",
            hair_rgb=(216, 176, 108),
            eye_rgb=(64, 118, 176),
            brow_style="thin",
            clothes_style="tshirt",
            clothes_rgb=(52, 72, 124),
            accent_rgb=(240, 196, 80),
            lashes=True,
        ),
        _natural("af_nova", 1.05, variant="f3", pitch=66, pitch_range=50, rate_wpm=185),
    ),
    _builtin(
        "KAI",
        Look(
            face_shape="oval",
            skin_rgb=(224, 172, 128),
            hair_style="crop",
            hair_rgb=(36, 30, 34),
            eye_rgb=(60, 40, 28),
            brow_style="straight",
            clothes_style="collared",
            clothes_rgb=(90, 150, 210),
            accent_rgb=(250, 250, 250),
            accessory="glasses",
        ),
        _natural("am_fenrir", 1.0, variant="m5", pitch=44, pitch_range=55, rate_wpm=170),
    ),
)

_FEMALE_HAIR = ("bob", "long", "buns", "ponytail", "afro")
_MALE_HAIR = ("crop", "quiff", "afro", "bald", "long", "crop")
_MALE_FACIAL = ("none", "none", "beard", "stubble", "moustache")
_AUTO_ACCESSORY = ("none", "none", "none", "glasses", "round_glasses", "earrings")


_GREY_HAIR = (168, 168, 176)


def auto_cast(name: str, *, language: str = "en-us") -> CharacterSpec:
    """A distinct character chosen deterministically from ``name`` (any case gives the same).

    The voice matches the look: a woman's or a man's, older-sounding under grey hair."""
    d = name_digest(name)
    voice = auto_voice(name, language=language, mature=HAIR_COLOURS[d[8] % len(HAIR_COLOURS)] == _GREY_HAIR)
    female = voice.variant.startswith("f")
    hair_style = (_FEMALE_HAIR if female else _MALE_HAIR)[d[7] % (5 if female else 6)]
    facial = "none" if female else _MALE_FACIAL[d[14] % len(_MALE_FACIAL)]
    if hair_style == "bald" and facial == "none":
        facial = "beard"
    accessory = _AUTO_ACCESSORY[d[13] % len(_AUTO_ACCESSORY)]
    if accessory == "earrings" and not female:
        accessory = "none"
    clothes = CLOTHES_COLOURS[d[12] % len(CLOTHES_COLOURS)]
    accent = CLOTHES_COLOURS[(d[12] + 3 + d[15] % 5) % len(CLOTHES_COLOURS)]
    style = CLOTHES_STYLES[d[11] % len(CLOTHES_STYLES)]
    if style in ("blazer", "collared"):
        accent = (246, 244, 238)
    look = Look(
        face_shape=FACE_SHAPES[d[5] % len(FACE_SHAPES)],
        skin_rgb=SKIN_TONES[d[6] % len(SKIN_TONES)],
        hair_style=hair_style,
        hair_rgb=HAIR_COLOURS[d[8] % len(HAIR_COLOURS)],
        eye_rgb=EYE_COLOURS[d[9] % len(EYE_COLOURS)],
        brow_style=BROW_STYLES[d[10] % len(BROW_STYLES)],
        clothes_style=style,
        clothes_rgb=clothes,
        accent_rgb=accent,
        accessory=accessory,
        facial_hair=facial,
        lashes=female,
    )
    return CharacterSpec(name=name, look=look, voice=voice, seed=_seed_of(name))


class Cast:
    """The characters of a series: the built-ins plus added specs, looked up case-insensitively.

    ``resolve`` auto-casts names it does not know (deterministically, so a name always gets the
    same look), without adding them; call ``add`` to keep one.
    """

    def __init__(self, specs: Iterable[CharacterSpec] = (), *, language: str = "en-us") -> None:
        self._language = normalise_language(language)
        self._specs: dict[str, CharacterSpec] = {}
        for spec in specs:
            self.add(spec)

    @classmethod
    def builtin(cls, *, language: str = "en-us") -> Cast:
        """A cast holding the built-in characters (MAYA, LEO, IRIS, OMAR, ZARA, SAM, KAI).

        Their voices speak ``language``; their looks never change.
        """
        lang = normalise_language(language)
        specs = [replace(s, voice=replace(s.voice, language=lang)) for s in BUILTIN_CAST]
        return cls(specs, language=lang)

    def add(self, spec: CharacterSpec) -> None:
        """Add or replace the character with ``spec.name``."""
        self._specs[spec.name] = spec

    def get(self, name: str) -> CharacterSpec | None:
        """The spec called ``name`` (any case), or None when this cast has no such character."""
        return self._specs.get(name.strip().upper())

    def resolve(self, name: str, *, language: str | None = None) -> CharacterSpec:
        """The spec called ``name``, auto-cast from the name when this cast does not have it.

        ``language`` (default: the cast's) is the language the voice speaks; the look and the
        rest of the voice never change with it.
        """
        lang = normalise_language(language) if language is not None else None
        spec = self.get(name)
        if spec is None:
            return auto_cast(name, language=lang or self._language)
        if lang is not None and spec.voice.language != lang:
            return replace(spec, voice=replace(spec.voice, language=lang))
        return spec

    def names(self) -> list[str]:
        return list(self._specs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().upper() in self._specs

    def __iter__(self) -> Iterator[CharacterSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)
