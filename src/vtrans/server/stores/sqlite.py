"""The embedded default: one SQLite file, served by one process.

Statements are short and indexed, so they run inline on the event loop. The file is locked
(``flock``) while a process serves it: a second process refuses to start instead of answering
from a copy of the data that the first one changes under it. WAL journal, ``synchronous=NORMAL``:
durable across ``kill -9``; only a power loss can cost the last transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from vtrans.protocol import JobError
from vtrans.server.simulation import Timeline
from vtrans.server.stores.base import OnChange, StoreError
from vtrans.server.stores.sql import SCHEMA, Connection, Row, SQLStore

#: ``PRAGMA user_version`` of the schema in :data:`~vtrans.server.stores.sql.SCHEMA`.
VERSION = 2
#: RETURNING and ON CONFLICT DO NOTHING.
MIN_SQLITE = (3, 35, 0)
_PLACEHOLDER = re.compile(r"\$(\d+)")


def _sqlite(sql: str) -> str:
    """The statement with SQLite's numbered placeholders (``?1``) for PostgreSQL's (``$1``)."""
    return _PLACEHOLDER.sub(r"?\1", sql)


class SQLiteEngine:
    """One SQLite connection, and a lock on the file while it is served."""

    shared = False
    in_sync = True
    lock_clause = ""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path, self.read_only = Path(path), read_only
        self.name = str(self.path)
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._tx = asyncio.Lock()
        self._sql: dict[str, str] = {}

    async def open(self) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: vtrans needs {'.'.join(map(str, MIN_SQLITE))} "
                "or newer (Python's sqlite3 module is linked against it)."
            )
        if self.read_only:
            await self._open_read_only()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the SQLite file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._release()
            raise StoreError(
                f"{self.path} is already served by another vtrans process: an SQLite file is served "
                "by one process at a time (use --store postgresql://… to run several)"
            ) from None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            _migrate(self._db)
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"cannot use the SQLite file {self.path}: {exc}") from None

    async def _open_read_only(self) -> None:
        """A look at a file that another process may be serving: no lock, no schema change."""
        try:
            self._db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the SQLite file {self.path}: {exc}") from None
        if version != VERSION:
            await self.close()
            raise StoreError(f"{self.path} is not a vtrans database of schema {VERSION} (it has {version})")

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _statement(self, sql: str) -> str:
        statement = self._sql.get(sql)
        if statement is None:
            statement = self._sql[sql] = _sqlite(sql)
        return statement

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"the SQLite store {self.path} is closed")
        return self._db

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return self._connection().execute(self._statement(sql), args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite ({self.path}): {exc}") from exc

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            return self._connection().execute(self._statement(sql), args).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite ({self.path}): {exc}") from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteEngine]:
        async with self._tx:
            await self.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                await self.execute("ROLLBACK")
                raise
            await self.execute("COMMIT")

    async def notify(self, connection: Connection, job_id: str) -> None:
        pass  # no other process serves this file

    async def listen(self, on_change: OnChange) -> None:
        pass


def sqlite_store(path: str | os.PathLike[str], *, read_only: bool = False) -> SQLStore:
    """The store in the SQLite file ``path``; ``read_only`` to look at a file another process serves."""
    return SQLStore(SQLiteEngine(path, read_only=read_only))


def _migrate(db: sqlite3.Connection) -> None:
    """Create the schema, or bring a file of an earlier version up to date."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == VERSION:
        return
    if version > VERSION:
        raise sqlite3.DatabaseError(
            f"it was written by a newer vtrans (schema {version}, this one knows {VERSION})"
        )
    db.execute("BEGIN IMMEDIATE")
    try:
        old = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if "planned_end" in old:
            _from_version_1(db)
        for statement in SCHEMA:
            db.execute(statement.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB"))
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _from_version_1(db: sqlite3.Connection) -> None:
    """Version 1 (vtrans 0.1) kept a timeline's fields in columns, and leased no delivery."""
    db.execute("ALTER TABLE jobs RENAME TO jobs_v1")
    db.execute("DROP INDEX IF EXISTS jobs_ends_at")
    db.execute("DROP INDEX IF EXISTS deliveries_due")
    db.execute(SCHEMA[0].format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB"))
    rows = db.execute(
        "SELECT seq, id, idempotency_key, language, video_seconds, source_url, callback_url, created_at, "
        "planned_end, ends_at, outcome, error_code, error_message, progress_exponent, estimate_factor "
        "FROM jobs_v1 ORDER BY seq"
    ).fetchall()
    for (seq, job_id, key, language, video, source, callback, created, planned, ends, outcome, code, message,
         exponent, factor) in rows:  # fmt: skip
        timeline = Timeline(
            created_at=created,
            planned_end=planned,
            ends_at=ends,
            outcome="error" if outcome == "error" else "completed",
            error=JobError(code, message) if code else None,
            progress_exponent=exponent,
            estimate_factor=factor,
        )
        db.execute(
            "INSERT INTO jobs (seq, id, tenant, idempotency_key, language, video_seconds, source_url, "
            "callback_url, created_at, ends_at, outcome, timeline) "
            "VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, job_id, key, language, video, source, callback, created, ends, outcome,
             msgspec.json.encode(timeline)),
        )  # fmt: skip
    db.execute("DROP TABLE jobs_v1")
    db.execute("ALTER TABLE deliveries ADD COLUMN lease_owner TEXT")
    db.execute("ALTER TABLE deliveries ADD COLUMN leased_until DOUBLE PRECISION NOT NULL DEFAULT 0")
