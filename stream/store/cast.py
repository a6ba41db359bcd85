"""A series' characters as ``CharacterSpec``s: stored as JSON, so episode 37 looks like episode 1.

The first time a character appears in a series (added by hand, recorded live, or rendered),
its whole spec (look, voice, seed) is kept. From then on renders into the series use the kept
spec, and a live take whose character differs from the kept one is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from avatar.spec import Cast, CharacterSpec, Look
from lipsync.voices import (
    BACKENDS,
    FEMALE_VARIANTS,
    LANGUAGE_ALIASES,
    MALE_VARIANTS,
    VoiceSpec,
    normalise_language,
)
from stream.store.art import ArtShelf
from stream.store.catalog import Catalog
from stream.store.errors import BadInputError, ConflictError
from stream.store.photos import PhotoLibrary

VARIANTS = ("", *MALE_VARIANTS, *FEMALE_VARIANTS)
MAX_SEED = 2**64 - 1  # seeds are 64-bit, as the built-ins' are
_LOOK_CHOICES = {f.name for f in fields(Look) if f.type in (str, "str")}
_LOOK_COLOURS = {f.name for f in fields(Look) if f.name.endswith("_rgb")}


def spec_to_json(spec: CharacterSpec) -> dict[str, Any]:
    out = {"look": asdict(spec.look), "voice": asdict(spec.voice), "seed": spec.seed}
    photo = photo_of(spec)
    if photo is not None:  # a photo character: kept by the id of its folder in the data directory
        out["photo"] = photo
    elif spec.art_dir is not None and Path(spec.art_dir).name.startswith("art_"):
        out["art"] = Path(spec.art_dir).name  # PNG art kept in the data directory (``stream.store.art``)
    return out


def merged_voice(voice: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A stored voice with the fields a user gave; going back to espeak-ng (``"backend": "espeak"``
    without a ``voice_id``) drops the natural voice id, which that backend cannot have."""
    merged = {**voice, **given}
    if given.get("backend") == "espeak" and "voice_id" not in given:
        merged.pop("voice_id", None)
    return merged


def photo_of(spec: CharacterSpec) -> str | None:
    """The photo id of a photo character kept in a data directory (``photos/<id>/``), else None."""
    if spec.art_dir is None or not Path(spec.art_dir).name.startswith("ph_"):
        return None
    from avatar.photo.character import is_photo_folder

    return Path(spec.art_dir).name if is_photo_folder(spec.art_dir) else None


def spec_from_json(
    name: str, data: dict[str, Any], *, photos: PhotoLibrary | None = None, art: ArtShelf | None = None
) -> CharacterSpec:
    """A spec from stored or posted JSON; bad fields raise ``BadInputError`` naming them.

    Every field is checked for its type as well as its range, so what is stored is what the
    renderer and espeak-ng can use: a language espeak-ng knows (stored by its espeak-ng name,
    "english" as "en-us"), a variant of ``VARIANTS``, whole numbers in range, colours of three
    whole numbers 0..255.
    """

    def bad(message: str) -> BadInputError:
        return BadInputError("bad_character", f"character {name!r}: {message}")

    look = _object(data, "look", bad)
    for key, value in look.items():
        if key in _LOOK_COLOURS:
            if not _is_rgb(value):
                raise bad(f"'look.{key}' must be three whole numbers 0..255, got {_show(value)}")
            look[key] = tuple(value)
        elif key in _LOOK_CHOICES and not isinstance(value, str):
            raise bad(f"'look.{key}' must be a string, got {_show(value)}")
        elif key == "lashes" and not isinstance(value, bool):
            raise bad(f"'look.lashes' must be true or false, got {_show(value)}")
    voice = _object(data, "voice", bad)
    if "language" in voice:
        voice["language"] = _language(voice["language"], bad)
    if "variant" in voice and voice["variant"] not in VARIANTS:
        choices = ", ".join(repr(v) for v in VARIANTS)
        raise bad(f"'voice.variant' must be one of {choices}, got {_show(voice['variant'])}")
    for key in ("pitch", "pitch_range", "rate_wpm"):
        if key in voice and not _is_int(voice[key]):
            raise bad(f"'voice.{key}' must be a whole number, got {_show(voice[key])}")
    if "backend" in voice and voice["backend"] not in BACKENDS:
        raise bad(f"'voice.backend' must be one of {', '.join(map(repr, BACKENDS))}, got {_show(voice['backend'])}")
    if "voice_id" in voice and not (isinstance(voice["voice_id"], str) and len(voice["voice_id"]) <= 64):
        raise bad(f"'voice.voice_id' must be a natural voice such as 'af_heart', got {_show(voice['voice_id'])}")
    if "speed" in voice and (isinstance(voice["speed"], bool) or not isinstance(voice["speed"], int | float)):
        raise bad(f"'voice.speed' must be a number 0.5..2.0, got {_show(voice['speed'])}")
    seed = data.get("seed", 0)
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise bad(f"'seed' must be a whole number 0..{MAX_SEED}, got {_show(seed)}")
    art_dir = None
    if data.get("photo") is not None:
        if photos is None:
            raise bad("a photo character needs the data directory that keeps its photo")
        art_dir = str(photos.folder(data["photo"]).resolve())
    elif data.get("art") is not None:
        if art is None:
            raise bad("a PNG-art character needs the data directory that keeps its art")
        art_dir = str(art.folder(data["art"]).resolve())
    try:
        return CharacterSpec(name=name, look=Look(**look), voice=VoiceSpec(**voice), seed=seed, art_dir=art_dir)
    except (TypeError, ValueError) as exc:
        raise bad(str(exc)) from None


def speech_languages() -> frozenset[str]:
    """Every language name the speech engine takes: the friendly aliases, their espeak-ng names,
    and each language espeak-ng's data holds (lower case; found once)."""
    return _espeak_languages() | frozenset(LANGUAGE_ALIASES) | frozenset(LANGUAGE_ALIASES.values())


@functools.cache
def _espeak_languages() -> frozenset[str]:
    try:
        import espeakng_loader
    except ImportError:  # no espeak-ng data here: the promised languages only
        return frozenset()
    folder = Path(espeakng_loader.get_data_path()) / "lang"
    return frozenset(path.name.lower() for path in folder.rglob("*") if path.is_file())


def _language(value: object, bad: Callable[[str], BadInputError]) -> str:
    if not isinstance(value, str) or len(value) > 32:
        raise bad(f"'voice.language' must be a language name such as 'en-us', got {_show(value)}")
    language = normalise_language(value)
    if language not in speech_languages():
        raise bad(
            f"'voice.language' {value!r} is not a language the speech engine knows; use 'en-us', 'en' (British), "
            "'cmn' (Mandarin), 'ko', 'ja', 'fr', 'de', 'es' or another espeak-ng language"
        )
    return language


def _object(data: dict[str, Any], part: str, bad: Callable[[str], BadInputError]) -> dict[str, Any]:
    value = data.get(part)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(f"'{part}' must be an object of {part} fields, got {_show(value)}")
    return dict(value)


def _is_rgb(value: object) -> bool:
    return isinstance(value, list | tuple) and len(value) == 3 and all(_is_int(c) and 0 <= c <= 255 for c in value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def series_cast(catalog: Catalog, series_id: str, *, language: str = "en-us") -> Cast:
    """The built-in cast with the series' own characters in place of (or beside) them."""
    cast = Cast.builtin(language=language)
    photos = PhotoLibrary(catalog.db.path.parent)
    art = ArtShelf.for_data_dir(catalog.db.path.parent)
    for character in catalog.list_characters(series_id):
        cast.add(spec_from_json(character.name, character.spec, photos=photos, art=art))
    return cast


def keep_characters(catalog: Catalog, series_id: str, specs: Iterable[CharacterSpec]) -> None:
    """Add specs the series lacks; refuse one that differs from the series' character of that name."""
    known = {c.name: c for c in catalog.list_characters(series_id)}
    photos = PhotoLibrary(catalog.db.path.parent)
    art = ArtShelf.for_data_dir(catalog.db.path.parent)
    for given in specs:
        spec = photos.adopt(art.adopt(given))  # PNG art and photos are copied into the data directory, kept by id
        kept = known.get(spec.name)
        if kept is None:
            known[spec.name] = catalog.add_character(series_id, spec.name, spec_to_json(spec))
        elif spec_from_json(kept.name, kept.spec, photos=photos, art=art) != spec:
            raise ConflictError(
                "cast_mismatch",
                f"{spec.name} in this session does not look or sound like the series' {spec.name} "
                f"(character {kept.id}); record with the series' character or rename one of them",
            )
