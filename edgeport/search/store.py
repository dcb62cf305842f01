"""The trial store: one SQLite file in the search folder.

Each finished trial is one row written in one transaction, so a killed search loses only the
trials in flight. ``meta`` holds the search's settings (to refuse resuming with another space)
and ``stage_runs`` counts the stages built and reused, across resumed sessions. Trials are
written from a ``TrialRecord`` (record.py) and read back as the dicts reports and the objective use.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from edgeport.errors import ArtifactError
from edgeport.search.record import TrialRecord

STORE_NAME = "search.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY, position INTEGER NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
    metrics TEXT NOT NULL, artifacts TEXT NOT NULL, error TEXT, timings TEXT NOT NULL, finished_utc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stage_runs (
    stage TEXT PRIMARY KEY, built INTEGER NOT NULL DEFAULT 0, reused INTEGER NOT NULL DEFAULT 0);
"""


class TrialStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions below
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ArtifactError(f"{self.path}: not a usable trial store ({exc})") from exc

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def get_meta(self, key: str):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value) -> None:
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def add_trial(self, record: TrialRecord) -> None:
        trial = record.to_dict()
        row = (
            trial["id"],
            trial["position"],
            json.dumps(trial["params"]),
            trial["status"],
            json.dumps(trial["metrics"], default=str),
            json.dumps(trial["artifacts"]),
            trial["error"],
            json.dumps(trial["timings"]),
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def update_metrics(self, trial_id: str, metrics: dict) -> None:
        with self._transaction():
            self.db.execute("UPDATE trials SET metrics = ? WHERE id = ?", (json.dumps(metrics, default=str), trial_id))

    def trials(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT id, position, params, status, metrics, artifacts, error, timings, finished_utc "
            "FROM trials ORDER BY position"
        ).fetchall()
        return [
            {
                "id": r[0],
                "position": r[1],
                "params": json.loads(r[2]),
                "status": r[3],
                "metrics": json.loads(r[4]),
                "artifacts": json.loads(r[5]),
                "error": r[6],
                "timings": json.loads(r[7]),
                "finished_utc": r[8],
            }
            for r in rows
        ]

    def done_ids(self) -> set[str]:
        """Trials a resumed search does not run again: failed ones are retried (the cause may be gone)."""
        return {r[0] for r in self.db.execute("SELECT id FROM trials WHERE status != 'failed'")}

    def count_stage(self, stage: str, built: bool) -> None:
        column = "built" if built else "reused"
        with self._transaction():
            self.db.execute("INSERT OR IGNORE INTO stage_runs (stage) VALUES (?)", (stage,))
            self.db.execute(f"UPDATE stage_runs SET {column} = {column} + 1 WHERE stage = ?", (stage,))

    def stage_counts(self) -> dict[str, dict[str, int]]:
        return {
            r[0]: {"built": r[1], "reused": r[2]}
            for r in self.db.execute("SELECT stage, built, reused FROM stage_runs ORDER BY stage")
        }
