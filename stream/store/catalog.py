"""The catalogue: series with their characters and sets, and ordered episodes and scenes.

Names are labels shown to people: any text up to 200 characters without control characters or
path separators (they are never used as paths, and refusing ``/`` and ``\\`` keeps it so for any
tool that might). Positions are 0-based and dense; moving an item shifts its siblings.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from typing import Any

from stream.store.db import Database, new_id, now, require
from stream.store.errors import BadInputError, ConflictError
from stream.store.models import Character, Episode, Scene, Series, SetRecord

MAX_NAME_CHARS = 200
MAX_CHILDREN = 1000  # episodes per series, scenes per episode
MAX_TRANSITION_MS = 2000
FRAME_MS = 40

# kind -> (table, parent column, id prefix)
KINDS: dict[str, tuple[str, str | None, str]] = {
    "series": ("series", None, "ser"),
    "character": ("characters", "series_id", "ch"),
    "set": ("sets", "series_id", "set"),
    "episode": ("episodes", "series_id", "ep"),
    "scene": ("scenes", "episode_id", "sc"),
    "take": ("takes", "scene_id", "tk"),
}

# The takes under an object of each kind (for deleting their media).
_TAKES_UNDER = {
    "series": "SELECT t.id, t.status FROM takes t JOIN scenes s ON t.scene_id = s.id "
    "JOIN episodes e ON s.episode_id = e.id WHERE e.series_id = ?",
    "episode": "SELECT t.id, t.status FROM takes t JOIN scenes s ON t.scene_id = s.id WHERE s.episode_id = ?",
    "scene": "SELECT id, status FROM takes WHERE scene_id = ?",
    "take": "SELECT id, status FROM takes WHERE id = ?",
}


class Unset:
    """Marks an optional update field that was not given (None means 'clear it')."""


UNSET = Unset()


def check_name(kind: str, name: object) -> str:
    """``name`` stripped, or ``BadInputError`` saying what is wrong with it."""
    if not isinstance(name, str):
        raise BadInputError("bad_name", f"a {kind} name must be a string, got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise BadInputError("bad_name", f"the {kind} name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise BadInputError("bad_name", f"the {kind} name is {len(name)} characters; the limit is {MAX_NAME_CHARS}")
    for sep in ("/", "\\"):
        if sep in name:
            raise BadInputError(
                "bad_name", f"the {kind} name {name!r} contains the path separator {sep!r}; names may not contain / or \\"
            )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name) or name in (".", ".."):
        raise BadInputError("bad_name", f"the {kind} name {name!r} contains control characters or is a dot name")
    return name


def check_transition(transition_ms: object) -> int:
    if not isinstance(transition_ms, int) or isinstance(transition_ms, bool):
        raise BadInputError("bad_transition", "transition_ms must be an integer (0 for a hard cut)")
    if not 0 <= transition_ms <= MAX_TRANSITION_MS or transition_ms % FRAME_MS:
        raise BadInputError(
            "bad_transition",
            f"transition_ms must be 0 (hard cut) or a crossfade of whole 40 ms frames up to "
            f"{MAX_TRANSITION_MS}, got {transition_ms}",
        )
    return transition_ms


def character_from_row(row: sqlite3.Row) -> Character:
    return Character(row["id"], row["series_id"], row["name"], json.loads(row["spec"]), row["created_at"])


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- generic ---------------------------------------------------------------------------

    def _get(self, kind: str, ident: str) -> sqlite3.Row:
        table = KINDS[kind][0]
        return require(self.db.row(f"SELECT * FROM {table} WHERE id = ?", (ident,)), kind, ident)

    def rename(self, kind: str, ident: str, name: object) -> None:
        table = KINDS[kind][0]
        name = check_name(kind, name)
        if kind == "character":
            name = name.upper()  # character names match speakers case-insensitively
        with self.db.write() as conn:
            self._get(kind, ident)
            try:
                conn.execute(f"UPDATE {table} SET name = ? WHERE id = ?", (name, ident))
            except sqlite3.IntegrityError:
                raise ConflictError("duplicate_name", f"this series already has a {kind} called {name!r}") from None

    def delete(self, kind: str, ident: str) -> list[str]:
        """Delete the object and everything under it; returns the ids of the takes removed."""
        table, parent, _ = KINDS[kind]
        with self.db.write() as conn:
            row = self._get(kind, ident)
            takes = conn.execute(_TAKES_UNDER[kind], (ident,)).fetchall() if kind in _TAKES_UNDER else []
            busy = [t["id"] for t in takes if t["status"] == "recording"]
            if busy:
                raise ConflictError("recording", f"take {busy[0]} is still recording; stop it before deleting this {kind}")
            conn.execute(f"DELETE FROM {table} WHERE id = ?", (ident,))
            if kind in ("episode", "scene") and parent is not None:
                self._compact(conn, table, parent, row[parent])
        return [t["id"] for t in takes]

    def _siblings(self, conn: sqlite3.Connection, table: str, parent: str, parent_id: str) -> list[str]:
        rows = conn.execute(f"SELECT id FROM {table} WHERE {parent} = ? ORDER BY position, created_at", (parent_id,))
        return [r["id"] for r in rows]

    def _write_order(self, conn: sqlite3.Connection, table: str, ids: list[str]) -> None:
        conn.executemany(f"UPDATE {table} SET position = ? WHERE id = ?", [(i, x) for i, x in enumerate(ids)])

    def _compact(self, conn: sqlite3.Connection, table: str, parent: str, parent_id: str) -> None:
        self._write_order(conn, table, self._siblings(conn, table, parent, parent_id))

    def move(self, kind: str, ident: str, position: object) -> None:
        """Put an episode or scene at ``position`` (0-based) among its siblings."""
        table, parent, _ = KINDS[kind]
        if kind not in ("episode", "scene") or parent is None:
            raise BadInputError("bad_kind", f"only episodes and scenes have a position, not a {kind}")
        with self.db.write() as conn:
            row = self._get(kind, ident)
            ids = [x for x in self._siblings(conn, table, parent, row[parent]) if x != ident]
            ids.insert(self._position(position, len(ids)), ident)
            self._write_order(conn, table, ids)

    @staticmethod
    def _position(position: object, n: int) -> int:
        if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= n:
            raise BadInputError("bad_position", f"position must be an integer from 0 to {n}, got {position!r}")
        return position

    def _insert(self, kind: str, parent_id: str, position: object | None, values: dict[str, Any]) -> str:
        table, parent, prefix = KINDS[kind]
        assert parent is not None
        ident = new_id(prefix)
        with self.db.write() as conn:
            ids = self._siblings(conn, table, parent, parent_id)
            if len(ids) >= MAX_CHILDREN:
                raise ConflictError("too_many", f"a {parent[:-3]} holds at most {MAX_CHILDREN} {kind}s")
            ids.insert(len(ids) if position is None else self._position(position, len(ids)), ident)
            cols = {"id": ident, parent: parent_id, "position": ids.index(ident), "created_at": now(), **values}
            conn.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", tuple(cols.values())
            )
            self._write_order(conn, table, ids)
        return ident

    # -- series, characters, sets ------------------------------------------------------------

    def create_series(self, name: object) -> Series:
        series = Series(new_id("ser"), check_name("series", name), now())
        with self.db.write() as conn:
            conn.execute("INSERT INTO series (id, name, created_at) VALUES (?, ?, ?)", (series.id, series.name, series.created_at))
        return series

    def list_series(self) -> list[Series]:
        return [Series(**dict(r)) for r in self.db.rows("SELECT * FROM series ORDER BY created_at, id")]

    def get_series(self, ident: str) -> Series:
        return Series(**dict(self._get("series", ident)))

    def add_character(self, series_id: str, name: str, spec: dict[str, Any]) -> Character:
        name = check_name("character", name).upper()
        character = Character(new_id("ch"), series_id, name, spec, now())
        with self.db.write() as conn:
            self._get("series", series_id)
            try:
                conn.execute(
                    "INSERT INTO characters (id, series_id, name, spec, created_at) VALUES (?, ?, ?, ?, ?)",
                    (character.id, series_id, name, json.dumps(spec, sort_keys=True), character.created_at),
                )
            except sqlite3.IntegrityError:
                raise ConflictError("duplicate_name", f"the series already has a character called {name}") from None
        return character

    def list_characters(self, series_id: str) -> list[Character]:
        self._get("series", series_id)
        rows = self.db.rows("SELECT * FROM characters WHERE series_id = ? ORDER BY created_at, id", (series_id,))
        return [character_from_row(r) for r in rows]

    def get_character(self, ident: str) -> Character:
        return character_from_row(self._get("character", ident))

    def set_character_spec(self, ident: str, spec: dict[str, Any]) -> Character:
        """Change a character's look, voice or seed: takes recorded before keep what they showed;
        later sessions, takes and renders of the series use the new spec."""
        with self.db.write() as conn:
            self._get("character", ident)
            conn.execute("UPDATE characters SET spec = ? WHERE id = ?", (json.dumps(spec, sort_keys=True), ident))
        return self.get_character(ident)

    def add_set(self, series_id: str, name: object, backdrop: str) -> SetRecord:
        record = SetRecord(new_id("set"), series_id, check_name("set", name), backdrop, now())
        with self.db.write() as conn:
            self._get("series", series_id)
            try:
                conn.execute(
                    "INSERT INTO sets (id, series_id, name, backdrop, created_at) VALUES (?, ?, ?, ?, ?)",
                    (record.id, series_id, record.name, backdrop, record.created_at),
                )
            except sqlite3.IntegrityError:
                raise ConflictError("duplicate_name", f"the series already has a set called {record.name!r}") from None
        return record

    def list_sets(self, series_id: str) -> list[SetRecord]:
        self._get("series", series_id)
        rows = self.db.rows("SELECT * FROM sets WHERE series_id = ? ORDER BY created_at, id", (series_id,))
        return [SetRecord(**dict(r)) for r in rows]

    def get_set(self, ident: str) -> SetRecord:
        return SetRecord(**dict(self._get("set", ident)))

    # -- episodes and scenes -----------------------------------------------------------------

    def create_episode(self, series_id: str, name: object, *, position: object | None = None) -> Episode:
        name = check_name("episode", name)
        self._get("series", series_id)
        return self.get_episode(self._insert("episode", series_id, position, {"name": name}))

    def list_episodes(self, series_id: str) -> list[Episode]:
        self._get("series", series_id)
        rows = self.db.rows("SELECT * FROM episodes WHERE series_id = ? ORDER BY position", (series_id,))
        return [Episode(**dict(r)) for r in rows]

    def get_episode(self, ident: str) -> Episode:
        return Episode(**dict(self._get("episode", ident)))

    def create_scene(
        self, episode_id: str, name: object, *, position: object | None = None,
        set_id: str | None = None, transition_ms: object = 0,
    ) -> Scene:
        values = {"name": check_name("scene", name), "transition_ms": check_transition(transition_ms)}
        episode = self.get_episode(episode_id)
        if set_id is not None:
            self._check_set(set_id, episode.series_id)
        return self.get_scene(self._insert("scene", episode_id, position, {**values, "set_id": set_id}))

    def list_scenes(self, episode_id: str) -> list[Scene]:
        self._get("episode", episode_id)
        rows = self.db.rows("SELECT * FROM scenes WHERE episode_id = ? ORDER BY position", (episode_id,))
        return [Scene(**dict(r)) for r in rows]

    def get_scene(self, ident: str) -> Scene:
        return Scene(**dict(self._get("scene", ident)))

    def scene_series_id(self, scene_id: str) -> str:
        row = self.db.row(
            "SELECT e.series_id FROM scenes s JOIN episodes e ON s.episode_id = e.id WHERE s.id = ?", (scene_id,)
        )
        return str(require(row, "scene", scene_id)["series_id"])

    def _check_set(self, set_id: str, series_id: str) -> None:
        if self.get_set(set_id).series_id != series_id:
            raise BadInputError("bad_set", f"set {set_id} belongs to another series")

    def update_scene(
        self, scene_id: str, *, set_id: str | None | Unset = UNSET, transition_ms: object | Unset = UNSET,
        chosen_take_id: str | None | Unset = UNSET,
    ) -> Scene:
        """Change a scene's set, its transition in, or its chosen take (None: the latest take)."""
        with self.db.write() as conn:
            self.get_scene(scene_id)
            if not isinstance(set_id, Unset):
                if set_id is not None:
                    self._check_set(set_id, self.scene_series_id(scene_id))
                conn.execute("UPDATE scenes SET set_id = ? WHERE id = ?", (set_id, scene_id))
            if not isinstance(transition_ms, Unset):
                conn.execute("UPDATE scenes SET transition_ms = ? WHERE id = ?", (check_transition(transition_ms), scene_id))
            if not isinstance(chosen_take_id, Unset):
                if chosen_take_id is not None:
                    take = self._get("take", chosen_take_id)
                    if take["scene_id"] != scene_id:
                        raise BadInputError("bad_take", f"take {chosen_take_id} belongs to another scene")
                    if take["status"] == "recording":
                        raise ConflictError("recording", f"take {chosen_take_id} is still recording")
                conn.execute("UPDATE scenes SET chosen_take_id = ? WHERE id = ?", (chosen_take_id, scene_id))
        return self.get_scene(scene_id)
