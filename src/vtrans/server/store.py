"""Where jobs live: a SQLite file by default (``:memory:`` for tests).

A stored job is its creation request plus its drawn :class:`Timeline`; its state is computed
from that, so the store only changes on creation and cancellation.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vtrans.protocol import JobError, Result
from vtrans.server.simulation import CANCELLED, Timeline


@dataclass(frozen=True)
class Delivery:
    """A webhook to send: its ``id`` is the ``webhook-id``, stable across retries."""

    id: str
    job_id: str
    url: str
    due_at: float
    attempts: int
    #: ``pending``, ``delivered``, ``failed`` (retries exhausted) or ``gone`` (the receiver said 410).
    state: str
    last_error: str | None


@dataclass(frozen=True)
class StoredJob:
    """A job as persisted: what it was created with and its timeline."""

    id: str
    seq: int
    language: str
    video_seconds: float
    source_url: str | None
    callback_url: str | None
    timeline: Timeline


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    language TEXT NOT NULL,
    video_seconds REAL NOT NULL,
    source_url TEXT,
    callback_url TEXT,
    created_at REAL NOT NULL,
    planned_end REAL NOT NULL,
    ends_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    progress_exponent REAL NOT NULL,
    estimate_factor REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ends_at ON jobs (ends_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, due_at);
"""
_COLUMNS = (
    "id, seq, language, video_seconds, source_url, callback_url, created_at, planned_end, "
    "ends_at, outcome, error_code, error_message, progress_exponent, estimate_factor"
)
_GET = f"SELECT {_COLUMNS} FROM jobs WHERE id = ?"
_CACHE_SIZE = 10_000
_DELIVERY = "id, job_id, url, due_at, attempts, state, last_error"
_RESULT_FILTERS: dict[str, str] = {
    "pending": "ends_at > :now",
    "completed": "ends_at <= :now AND outcome = 'completed'",
    "error": "ends_at <= :now AND outcome = 'error'",
}


class Store:
    """Jobs in SQLite. Every write is committed before it is acknowledged (WAL journal).

    Calls are short indexed statements, made inline from the event loop; a lock makes the
    store safe to share with other threads too.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a process crash (kill -9); only power loss can cost
            # the last transactions.
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # Decoded jobs by id. A row changes only through ``cancel``, which evicts it: this
        # assumes this connection is the only writer (one serving process per database file).
        self._cache: dict[str, StoredJob] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def count(self) -> int:
        """How many jobs were ever created (the ordinal of the next one, for seeded runs)."""
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
        return int(row[0])

    def add(
        self,
        *,
        id: str,
        language: str,
        video_seconds: float,
        source_url: str | None,
        callback_url: str | None,
        timeline: Timeline,
        idempotency_key: str | None = None,
    ) -> tuple[StoredJob, bool]:
        """Insert a job; with an ``idempotency_key`` already used, return that job instead.

        Returns the job and whether it was created now.
        """
        error = timeline.error
        with self._lock, self._db:
            self._db.execute("BEGIN")
            if idempotency_key is not None:
                row = self._db.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return _job(row), False
            cursor = self._db.execute(
                "INSERT INTO jobs (id, idempotency_key, language, video_seconds, source_url, "
                "callback_url, created_at, planned_end, ends_at, outcome, error_code, "
                "error_message, progress_exponent, estimate_factor) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    id,
                    idempotency_key,
                    language,
                    video_seconds,
                    source_url,
                    callback_url,
                    timeline.created_at,
                    timeline.planned_end,
                    timeline.ends_at,
                    timeline.outcome,
                    error.code if error else None,
                    error.message if error else None,
                    timeline.progress_exponent,
                    timeline.estimate_factor,
                ),
            )
            seq = int(cursor.lastrowid or 0)
            if callback_url is not None:
                self._db.execute(
                    "INSERT INTO deliveries (id, job_id, url, due_at) VALUES (?, ?, ?, ?)",
                    (f"msg_{id.removeprefix('job_')}", id, callback_url, timeline.ends_at),
                )
        return StoredJob(id, seq, language, video_seconds, source_url, callback_url, timeline), True

    def get(self, job_id: str) -> StoredJob | None:
        with self._lock:
            job = self._cache.get(job_id)
            if job is None:
                row = self._db.execute(_GET, (job_id,)).fetchone()
                if row is None:
                    return None
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                job = self._cache[job_id] = _job(row)
        return job

    def get_many(self, job_ids: list[str]) -> dict[str, StoredJob]:
        """The jobs among ``job_ids`` that exist, by id."""
        found: dict[str, StoredJob] = {}
        for i in range(0, len(job_ids), 500):
            chunk = job_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE id IN ({marks})", chunk
                ).fetchall()
            found.update((row[0], _job(row)) for row in rows)
        return found

    def cancel(self, job_id: str, now: float) -> StoredJob | None:
        """End a pending job now as ``error``/``cancelled``; a finished job is left as it is."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            updated = self._db.execute(
                "UPDATE jobs SET ends_at = ?, outcome = 'error', error_code = ?, error_message = ? "
                "WHERE id = ? AND ends_at > ?",
                (now, CANCELLED.code, CANCELLED.message, job_id, now),
            ).rowcount
            self._cache.pop(job_id, None)
            if updated:
                self._db.execute(
                    "UPDATE deliveries SET due_at = ? WHERE job_id = ? AND state = 'pending'", (now, job_id)
                )
        return self.get(job_id)

    def list_jobs(
        self, *, before_seq: int | None, limit: int, result: Result | None, now: float
    ) -> list[StoredJob]:
        """Up to ``limit`` jobs, newest first, older than ``before_seq``, with ``result`` at ``now``."""
        where = ["seq < :before"] if before_seq is not None else []
        if result is not None:
            where.append(_RESULT_FILTERS[result])
        sql = f"SELECT {_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT :limit"
        params: dict[str, Any] = {"before": before_seq, "now": now, "limit": limit}
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_job(row) for row in rows]

    def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_DELIVERY} FROM deliveries WHERE state = 'pending' AND due_at <= ? "
                "ORDER BY due_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Delivery(*row) for row in rows]

    def next_delivery_at(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(due_at) FROM deliveries WHERE state = 'pending'").fetchone()
        return None if row[0] is None else float(row[0])

    def delivery(self, job_id: str) -> Delivery | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_DELIVERY} FROM deliveries WHERE job_id = ?", (job_id,)
            ).fetchone()
        return None if row is None else Delivery(*row)

    def update_delivery(
        self, delivery_id: str, *, state: str, attempts: int, due_at: float, error: str | None
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, due_at = ?, last_error = ? WHERE id = ?",
                (state, attempts, due_at, error, delivery_id),
            )

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _job(row: tuple[Any, ...]) -> StoredJob:
    (
        job_id,
        seq,
        language,
        video_seconds,
        source_url,
        callback_url,
        created_at,
        planned_end,
        ends_at,
        outcome,
        error_code,
        error_message,
        exponent,
        estimate_factor,
    ) = row
    outcome_: Literal["completed", "error"] = "error" if outcome == "error" else "completed"
    return StoredJob(
        id=job_id,
        seq=seq,
        language=language,
        video_seconds=video_seconds,
        source_url=source_url,
        callback_url=callback_url,
        timeline=Timeline(
            created_at=created_at,
            planned_end=planned_end,
            ends_at=ends_at,
            outcome=outcome_,
            error=JobError(error_code, error_message) if error_code else None,
            progress_exponent=exponent,
            estimate_factor=estimate_factor,
        ),
    )
