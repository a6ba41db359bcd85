"""The SQLite schema as numbered migrations, applied in order, each in one transaction.

``PRAGMA user_version`` holds the number of migrations applied. A database written by a newer
talkie (a higher version than this code knows) is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3

from stream.store.errors import StorageError

MIGRATIONS: tuple[str, ...] = (
    # 1: the catalogue, takes with their segment index and lines, and export jobs.
    """
    CREATE TABLE series (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE characters (
        id TEXT PRIMARY KEY,
        series_id TEXT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (series_id, name)
    );
    CREATE TABLE sets (
        id TEXT PRIMARY KEY,
        series_id TEXT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        backdrop TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (series_id, name)
    );
    CREATE TABLE episodes (
        id TEXT PRIMARY KEY,
        series_id TEXT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX episodes_by_series ON episodes (series_id, position);
    CREATE TABLE scenes (
        id TEXT PRIMARY KEY,
        episode_id TEXT NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        set_id TEXT REFERENCES sets(id) ON DELETE SET NULL,
        chosen_take_id TEXT REFERENCES takes(id) ON DELETE SET NULL,
        transition_ms INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX scenes_by_episode ON scenes (episode_id, position);
    CREATE TABLE takes (
        id TEXT PRIMARY KEY,
        scene_id TEXT NOT NULL REFERENCES scenes(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'recovered')),
        source TEXT NOT NULL,
        session_id TEXT,
        width_px INTEGER NOT NULL,
        height_px INTEGER NOT NULL,
        frames INTEGER NOT NULL DEFAULT 0,
        samples INTEGER NOT NULL DEFAULT 0,
        stream_start_frame INTEGER,
        cast_names TEXT NOT NULL DEFAULT '[]',
        set_name TEXT,
        note TEXT,
        created_at REAL NOT NULL,
        ended_at REAL
    );
    CREATE INDEX takes_by_scene ON takes (scene_id, created_at);
    CREATE TABLE segments (
        take_id TEXT NOT NULL REFERENCES takes(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        first_frame INTEGER NOT NULL,
        frames INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        frame_map BLOB NOT NULL,
        video_file TEXT,
        video_bytes INTEGER NOT NULL,
        video_crc32 INTEGER NOT NULL,
        audio_file TEXT NOT NULL,
        audio_bytes INTEGER NOT NULL,
        audio_crc32 INTEGER NOT NULL,
        PRIMARY KEY (take_id, seq)
    );
    CREATE TABLE take_lines (
        take_id TEXT NOT NULL REFERENCES takes(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        line_id TEXT NOT NULL,
        speaker TEXT NOT NULL,
        text TEXT NOT NULL,
        start_sample INTEGER NOT NULL,
        end_sample INTEGER,
        interrupted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (take_id, seq)
    );
    CREATE TABLE exports (
        id TEXT PRIMARY KEY,
        episode_id TEXT REFERENCES episodes(id) ON DELETE SET NULL,
        scene_id TEXT REFERENCES scenes(id) ON DELETE SET NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
        progress REAL NOT NULL DEFAULT 0,
        frames INTEGER NOT NULL DEFAULT 0,
        samples INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at REAL NOT NULL,
        ended_at REAL
    );
    """,
    # 2: the live director's cut of each take: one row per shot change, committed with the
    # segment during which it happened (as lines are).
    """
    CREATE TABLE take_shots (
        take_id TEXT NOT NULL REFERENCES takes(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        start_frame INTEGER NOT NULL,
        kind TEXT NOT NULL,
        subjects TEXT NOT NULL,
        PRIMARY KEY (take_id, seq)
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def configure(conn: sqlite3.Connection) -> None:
    """WAL (readers never block the recorder), foreign keys, and a wait instead of 'locked'.

    ``synchronous=FULL`` syncs the WAL at every commit: a committed segment row survives a
    power cut too, not only a killed process.
    """
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database lacks; returns the version now in force."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StorageError(
            "schema_too_new",
            f"the database is at schema version {version}, newer than this talkie knows "
            f"({SCHEMA_VERSION}); upgrade talkie to open it",
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        # executescript would commit on its own; run the statements inside one transaction so a
        # crash mid-migration leaves the previous version intact.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def _statements(script: str) -> list[str]:
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out
