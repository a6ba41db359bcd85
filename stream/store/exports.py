"""Export jobs: a row per export with its progress; the files sit in ``exports/<id>/``."""

from __future__ import annotations

from stream.store.db import Database, new_id, now, require
from stream.store.models import ExportRecord


class Exports:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, *, episode_id: str | None = None, scene_id: str | None = None) -> ExportRecord:
        ident = new_id("ex")
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO exports (id, episode_id, scene_id, status, created_at) VALUES (?, ?, ?, 'running', ?)",
                (ident, episode_id, scene_id, now()),
            )
        return self.get(ident)

    def progress(self, export_id: str, fraction: float) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE exports SET progress = ? WHERE id = ?", (round(fraction, 4), export_id))

    def finish(self, export_id: str, *, frames: int, samples: int) -> ExportRecord:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE exports SET status = 'done', progress = 1, frames = ?, samples = ?, ended_at = ? WHERE id = ?",
                (frames, samples, now(), export_id),
            )
        return self.get(export_id)

    def fail(self, export_id: str, error: str) -> ExportRecord:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE exports SET status = 'failed', error = ?, ended_at = ? WHERE id = ?", (error, now(), export_id)
            )
        return self.get(export_id)

    def get(self, export_id: str) -> ExportRecord:
        return ExportRecord(**dict(require(self.db.row("SELECT * FROM exports WHERE id = ?", (export_id,)), "export", export_id)))

    def all(self) -> list[ExportRecord]:
        return [ExportRecord(**dict(r)) for r in self.db.rows("SELECT * FROM exports ORDER BY created_at DESC")]

    def fail_interrupted(self) -> list[str]:
        """Exports left running by a crash: failed, their partial files removed by the caller."""
        with self.db.write() as conn:
            ids = [r["id"] for r in conn.execute("SELECT id FROM exports WHERE status = 'running'")]
            conn.execute(
                "UPDATE exports SET status = 'failed', error = 'the server stopped during this export', "
                "ended_at = ? WHERE status = 'running'",
                (now(),),
            )
        return ids
