"""Takes: begun, grown one committed segment at a time, finished or recovered after a crash.

A take's length is the sum of its committed segments; lines spoken in it, and the shots the
director cut to, are committed with the segment during which they changed, so after a crash a
take holds whole segments and the lines and shots that overlap them (clamped to its end).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from lipsync.timebase import SAMPLES_PER_FRAME
from stream.store.catalog import check_name
from stream.store.db import Database, new_id, now, require
from stream.store.errors import ConflictError
from stream.store.models import USABLE_TAKE_STATUSES, Segment, Take, TakeLine, TakeShot

MAX_TAKES_PER_SCENE = 1000


def take_from_row(row: sqlite3.Row) -> Take:
    return Take(
        id=row["id"], scene_id=row["scene_id"], name=row["name"], status=row["status"], source=row["source"],
        session_id=row["session_id"], width_px=row["width_px"], height_px=row["height_px"],
        frames=row["frames"], samples=row["samples"], stream_start_frame=row["stream_start_frame"],
        cast=tuple(json.loads(row["cast_names"])), set_name=row["set_name"], note=row["note"],
        created_at=row["created_at"], ended_at=row["ended_at"],
    )


def segment_from_row(row: sqlite3.Row) -> Segment:
    return Segment(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row needs keys()


class Takes:
    def __init__(self, db: Database) -> None:
        self.db = db

    def begin(
        self, scene_id: str, name: str | None, *, source: str, width_px: int, height_px: int,
        session_id: str | None = None, cast: Sequence[str] = (), set_name: str | None = None,
    ) -> Take:
        """A new take in ``scene_id``, status ``recording``; ``name`` defaults to "Take N"."""
        ident = new_id("tk")
        with self.db.write() as conn:
            require(conn.execute("SELECT id FROM scenes WHERE id = ?", (scene_id,)).fetchone(), "scene", scene_id)
            count = conn.execute("SELECT COUNT(*) FROM takes WHERE scene_id = ?", (scene_id,)).fetchone()[0]
            if count >= MAX_TAKES_PER_SCENE:
                raise ConflictError("too_many", f"scene {scene_id} already has {count} takes; delete some first")
            label = check_name("take", name) if name is not None else f"Take {count + 1}"
            conn.execute(
                "INSERT INTO takes (id, scene_id, name, status, source, session_id, width_px, height_px, "
                "cast_names, set_name, created_at) VALUES (?, ?, ?, 'recording', ?, ?, ?, ?, ?, ?, ?)",
                (ident, scene_id, label, source, session_id, width_px, height_px, json.dumps(list(cast)), set_name, now()),
            )
        return self.get(ident)

    def set_stream_start(self, take_id: str, frame: int) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE takes SET stream_start_frame = ? WHERE id = ?", (frame, take_id))

    def add_segment(self, segment: Segment, lines: Sequence[TakeLine] = (), shots: Sequence[TakeShot] = ()) -> None:
        """Index one segment whose files are already in place, with the lines and shots changed
        since the last."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO segments (take_id, seq, first_frame, frames, samples, frame_map, video_file, "
                "video_bytes, video_crc32, audio_file, audio_bytes, audio_crc32) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (segment.take_id, segment.seq, segment.first_frame, segment.frames, segment.samples, segment.frame_map,
                 segment.video_file, segment.video_bytes, segment.video_crc32, segment.audio_file,
                 segment.audio_bytes, segment.audio_crc32),
            )
            self._put_lines(conn, lines)
            self._put_shots(conn, shots)
            conn.execute(
                "UPDATE takes SET frames = frames + ?, samples = samples + ? WHERE id = ?",
                (segment.frames, segment.samples, segment.take_id),
            )

    @staticmethod
    def _put_lines(conn: sqlite3.Connection, lines: Sequence[TakeLine]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO take_lines (take_id, seq, line_id, speaker, text, start_sample, end_sample, "
            "interrupted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(ln.take_id, ln.seq, ln.line_id, ln.speaker, ln.text, ln.start_sample, ln.end_sample, int(ln.interrupted))
             for ln in lines],
        )

    @staticmethod
    def _put_shots(conn: sqlite3.Connection, shots: Sequence[TakeShot]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO take_shots (take_id, seq, start_frame, kind, subjects) VALUES (?, ?, ?, ?, ?)",
            [(s.take_id, s.seq, s.start_frame, s.kind, json.dumps(list(s.subjects))) for s in shots],
        )

    def finish(
        self, take_id: str, *, status: str = "complete", note: str | None = None, lines: Sequence[TakeLine] = (),
        shots: Sequence[TakeShot] = (),
    ) -> Take:
        """Close a take at its committed segments: lines and shots are clamped to its end."""
        with self.db.write() as conn:
            self._put_lines(conn, lines)
            self._put_shots(conn, shots)
            self._close(conn, take_id, status, note)
        return self.get(take_id)

    def _close(self, conn: sqlite3.Connection, take_id: str, status: str, note: str | None) -> None:
        frames = conn.execute("SELECT COALESCE(SUM(frames), 0) FROM segments WHERE take_id = ?", (take_id,)).fetchone()[0]
        end = frames * SAMPLES_PER_FRAME
        conn.execute("DELETE FROM take_lines WHERE take_id = ? AND start_sample >= ?", (take_id, end))
        conn.execute("DELETE FROM take_shots WHERE take_id = ? AND start_frame >= ?", (take_id, frames))
        conn.execute(
            "UPDATE take_lines SET end_sample = ? WHERE take_id = ? AND (end_sample IS NULL OR end_sample > ?)",
            (end, take_id, end),
        )
        conn.execute(
            "UPDATE takes SET status = ?, note = COALESCE(?, note), frames = ?, samples = ?, ended_at = ? WHERE id = ?",
            (status, note, frames, end, now(), take_id),
        )

    def recover(self) -> list[str]:
        """Mark takes left ``recording`` by a crash as ``recovered``; returns their ids."""
        with self.db.write() as conn:
            ids = [r["id"] for r in conn.execute("SELECT id FROM takes WHERE status = 'recording'")]
            for take_id in ids:
                self._close(conn, take_id, "recovered", "the server stopped during this take; kept up to its last segment")
        return ids

    def get(self, take_id: str) -> Take:
        return take_from_row(require(self.db.row("SELECT * FROM takes WHERE id = ?", (take_id,)), "take", take_id))

    def for_scene(self, scene_id: str) -> list[Take]:
        require(self.db.row("SELECT id FROM scenes WHERE id = ?", (scene_id,)), "scene", scene_id)
        rows = self.db.rows("SELECT * FROM takes WHERE scene_id = ? ORDER BY created_at, rowid", (scene_id,))
        return [take_from_row(r) for r in rows]

    def segments(self, take_id: str) -> list[Segment]:
        rows = self.db.rows("SELECT * FROM segments WHERE take_id = ? ORDER BY seq", (take_id,))
        return [segment_from_row(r) for r in rows]

    def lines(self, take_id: str) -> list[TakeLine]:
        rows = self.db.rows("SELECT * FROM take_lines WHERE take_id = ? ORDER BY start_sample, seq", (take_id,))
        return [
            TakeLine(r["take_id"], r["seq"], r["line_id"], r["speaker"], r["text"], r["start_sample"],
                     r["end_sample"], bool(r["interrupted"]))
            for r in rows
        ]

    def shots(self, take_id: str) -> list[TakeShot]:
        """The take's cut in order: each shot lasts until the next one starts (or the take ends)."""
        rows = self.db.rows("SELECT * FROM take_shots WHERE take_id = ? ORDER BY start_frame, seq", (take_id,))
        return [
            TakeShot(r["take_id"], r["seq"], r["start_frame"], r["kind"], tuple(json.loads(r["subjects"])))
            for r in rows
        ]

    def playable(self, scene_id: str, chosen_take_id: str | None) -> Take | None:
        """The take a scene plays: its chosen take, else its latest finished take with frames."""
        if chosen_take_id is not None:
            take = self.get(chosen_take_id)
            if take.status in USABLE_TAKE_STATUSES and take.frames > 0:
                return take
        rows = self.db.rows(
            "SELECT * FROM takes WHERE scene_id = ? AND status IN ('complete', 'recovered') AND frames > 0 "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (scene_id,),
        )
        return take_from_row(rows[0]) if rows else None

    def referenced_files(self) -> dict[str, set[str]]:
        """take id -> the file names its index rows point at (every take has an entry)."""
        files: dict[str, set[str]] = {r["id"]: set() for r in self.db.rows("SELECT id FROM takes")}
        for r in self.db.rows("SELECT take_id, video_file, audio_file FROM segments"):
            files[r["take_id"]].update(f for f in (r["video_file"], r["audio_file"]) if f)
        return files
