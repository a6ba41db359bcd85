"""A series' characters as ``CharacterSpec``s: stored as JSON, so episode 37 looks like episode 1.

The first time a character appears in a series (added by hand, recorded live, or rendered),
its whole spec (look, voice, seed) is kept. From then on renders into the series use the kept
spec, and a live take whose character differs from the kept one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from avatar.spec import Cast, CharacterSpec, Look
from lipsync.voices import VoiceSpec
from stream.store.catalog import Catalog
from stream.store.errors import BadInputError, ConflictError


def spec_to_json(spec: CharacterSpec) -> dict[str, Any]:
    return {"look": asdict(spec.look), "voice": asdict(spec.voice), "seed": spec.seed}


def spec_from_json(name: str, data: dict[str, Any]) -> CharacterSpec:
    """A spec from stored or posted JSON; bad fields raise ``BadInputError`` naming them."""
    try:
        look: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(data.get("look") or {}).items()}
        return CharacterSpec(
            name=name, look=Look(**look), voice=VoiceSpec(**dict(data.get("voice") or {})), seed=int(data.get("seed", 0))
        )
    except (TypeError, ValueError) as exc:
        raise BadInputError("bad_character", f"character {name!r}: {exc}") from None


def series_cast(catalog: Catalog, series_id: str, *, language: str = "en-us") -> Cast:
    """The built-in cast with the series' own characters in place of (or beside) them."""
    cast = Cast.builtin(language=language)
    for character in catalog.list_characters(series_id):
        cast.add(spec_from_json(character.name, character.spec))
    return cast


def keep_characters(catalog: Catalog, series_id: str, specs: Iterable[CharacterSpec]) -> None:
    """Add specs the series lacks; refuse one that differs from the series' character of that name."""
    known = {c.name: c for c in catalog.list_characters(series_id)}
    for spec in specs:
        kept = known.get(spec.name)
        if kept is None:
            known[spec.name] = catalog.add_character(series_id, spec.name, spec_to_json(spec))
        elif spec_from_json(kept.name, kept.spec) != spec:
            raise ConflictError(
                "cast_mismatch",
                f"{spec.name} in this session does not look or sound like the series' {spec.name} "
                f"(character {kept.id}); record with the series' character or rename one of them",
            )
