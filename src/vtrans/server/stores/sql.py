"""The store over SQL, written once for SQLite and PostgreSQL.

The statements use ``$n`` placeholders, which PostgreSQL takes as they are and SQLite as ``?n``;
what differs between the two (connections, transactions, locking a delivery for one process,
telling the other processes) is the :class:`Engine`'s. The rules of a job's state are not here:
the simulation hands over a :class:`~vtrans.server.simulation.Window` of column bounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import msgspec

from vtrans.server.simulation import Timeline, Window
from vtrans.server.stores.base import Delivery, NewJob, OnChange, StoredJob, delivery_id


class Row(Protocol):
    """A result row: a tuple (SQLite) or a record (asyncpg)."""

    def __getitem__(self, index: int) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


#: The schema, with ``{serial}`` (an auto-incrementing integer key) and ``{blob}`` per engine.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        seq {serial},
        id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL DEFAULT '',
        idempotency_key TEXT,
        language TEXT NOT NULL,
        video_seconds DOUBLE PRECISION NOT NULL,
        source_url TEXT,
        callback_url TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        ends_at DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        timeline {blob} NOT NULL,
        UNIQUE (tenant, idempotency_key)
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_ends_at ON jobs (ends_at)",
    "CREATE INDEX IF NOT EXISTS jobs_tenant_seq ON jobs (tenant, seq)",
    # Counting by result (the dashboard): finished jobs by outcome and end.
    "CREATE INDEX IF NOT EXISTS jobs_outcome_ends_at ON jobs (outcome, ends_at)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT,
        lease_owner TEXT,
        leased_until DOUBLE PRECISION NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (due_at) WHERE state = 'pending'",
)

_JOB = "id, seq, tenant, language, video_seconds, source_url, callback_url, timeline, idempotency_key"
_DELIVERY = "id, job_id, url, due_at, attempts, state, last_error"
GET_JOB = f"SELECT {_JOB} FROM jobs WHERE id = $1"
_BY_KEY = f"SELECT {_JOB} FROM jobs WHERE tenant = $1 AND idempotency_key = $2"
_INSERT_JOB = (
    "INSERT INTO jobs (id, tenant, idempotency_key, language, video_seconds, source_url, "
    "callback_url, created_at, ends_at, outcome, timeline) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING RETURNING seq"
)
_INSERT_DELIVERY = "INSERT INTO deliveries (id, job_id, url, due_at) VALUES ($1, $2, $3, $4)"
_CANCEL = "UPDATE jobs SET timeline = $2, ends_at = $3, outcome = $4 WHERE id = $1 AND {pending}"
_DUE_ON_CANCEL = "UPDATE deliveries SET due_at = $2 WHERE job_id = $1 AND state = 'pending'"
_CLAIM = (
    "UPDATE deliveries SET lease_owner = $1, leased_until = $2 WHERE id IN ("
    "SELECT id FROM deliveries WHERE state = 'pending' AND due_at <= $3 AND leased_until <= $3 "
    "ORDER BY due_at LIMIT $4 {lock}) "
    f"RETURNING {_DELIVERY}"
)
_FINISH = (
    "UPDATE deliveries SET state = $3, attempts = $4, due_at = $5, last_error = $6, "
    "lease_owner = NULL, leased_until = 0 WHERE id = $1 AND lease_owner = $2"
)
_RELEASE = (
    "UPDATE deliveries SET lease_owner = NULL, leased_until = 0 WHERE lease_owner = $1 AND state = 'pending'"
)
_NEXT_DELIVERY = (
    "SELECT MIN(CASE WHEN leased_until > due_at THEN leased_until ELSE due_at END) "
    "FROM deliveries WHERE state = 'pending'"
)
_GET_DELIVERY = f"SELECT {_DELIVERY} FROM deliveries WHERE job_id = $1"
_RECENT_DELIVERIES = (
    "SELECT d.id, d.job_id, d.url, d.due_at, d.attempts, d.state, d.last_error "
    "FROM deliveries d JOIN jobs j ON j.id = d.job_id {tenant} ORDER BY j.seq DESC LIMIT $1"
)
_GET_META = "SELECT value FROM meta WHERE key = $1"
_SET_META = (
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_META_DEFAULT = "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
_COUNT = "SELECT COALESCE(MAX(seq), 0) FROM jobs"
#: Ids per ``IN (...)`` list: SQLite allows 32,766 parameters, PostgreSQL 65,535.
_CHUNK = 500


class Connection(Protocol):
    """One connection, or a transaction on one."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return how many rows it changed."""
        ...


class Engine(Connection, Protocol):
    """What differs between SQL databases; the statements themselves are shared."""

    name: str
    shared: bool
    in_sync: bool
    #: The clause that keeps two processes from claiming the same delivery ("" for one process).
    lock_clause: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Connection]: ...

    async def notify(self, connection: Connection, job_id: str) -> None:
        """Tell the other processes, once the transaction commits, that ``job_id`` changed."""
        ...

    async def listen(self, on_change: OnChange) -> None: ...


_timeline = msgspec.json.Decoder(Timeline)
_encode = msgspec.json.encode


def _job(row: Row) -> StoredJob:
    job_id, seq, tenant, language, video_seconds, source_url, callback_url, timeline, key = row
    return StoredJob(
        id=job_id,
        seq=seq,
        tenant=tenant,
        language=language,
        video_seconds=video_seconds,
        source_url=source_url,
        callback_url=callback_url,
        timeline=_timeline.decode(timeline),
        idempotency_key=key,
    )


def _delivery(row: Row) -> Delivery:
    delivery, job_id, url, due_at, attempts, state, error = row
    return Delivery(
        id=delivery,
        job_id=job_id,
        url=url,
        due_at=due_at,
        attempts=attempts,
        state=state,
        last_error=error,
    )


def where(window: Window, first: int) -> tuple[list[str], list[Any]]:
    """SQL conditions for ``window``, with parameters numbered from ``$first``."""
    conditions: list[str] = []
    args: list[Any] = []
    for column, op, value in (
        ("ends_at", ">", window.ends_after),
        ("ends_at", "<=", window.ends_by),
        ("outcome", "=", window.outcome),
    ):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} {op} ${first + len(args) - 1}")
    return conditions, args


class SQLStore:
    """The :class:`~vtrans.server.stores.base.Store` over an :class:`Engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name, self.shared = engine.name, engine.shared
        self._claim = _CLAIM.format(lock=engine.lock_clause)

    @property
    def in_sync(self) -> bool:
        return self.engine.in_sync

    async def open(self) -> None:
        await self.engine.open()

    async def close(self) -> None:
        await self.engine.close()

    async def add(self, job: NewJob) -> tuple[StoredJob, bool]:
        timeline = job.timeline
        async with self.engine.transaction() as tx:
            inserted = await tx.fetch(
                _INSERT_JOB,
                job.id,
                job.tenant,
                job.idempotency_key,
                job.language,
                job.video_seconds,
                job.source_url,
                job.callback_url,
                timeline.created_at,
                timeline.ends_at,
                timeline.outcome,
                _encode(timeline),
            )
            if inserted:
                if job.callback_url is not None:
                    await tx.execute(
                        _INSERT_DELIVERY, delivery_id(job.id), job.id, job.callback_url, timeline.ends_at
                    )
                return job.stored(int(inserted[0][0])), True
            rows = await tx.fetch(GET_JOB, job.id)
            if not rows and job.idempotency_key is not None:
                rows = await tx.fetch(_BY_KEY, job.tenant, job.idempotency_key)
        return _job(rows[0]), False

    async def get(self, job_id: str) -> StoredJob | None:
        rows = await self.engine.fetch(GET_JOB, job_id)
        return _job(rows[0]) if rows else None

    async def get_many(self, job_ids: list[str]) -> dict[str, StoredJob]:
        found: dict[str, StoredJob] = {}
        for i in range(0, len(job_ids), _CHUNK):
            chunk = job_ids[i : i + _CHUNK]
            marks = ", ".join(f"${n}" for n in range(1, len(chunk) + 1))
            rows = await self.engine.fetch(f"SELECT {_JOB} FROM jobs WHERE id IN ({marks})", *chunk)
            found.update((row[0], _job(row)) for row in rows)
        return found

    async def cancel(self, job_id: str, cancelled: Timeline, pending: Window) -> StoredJob | None:
        conditions, args = where(pending, 5)
        sql = _CANCEL.format(pending=" AND ".join(conditions))
        async with self.engine.transaction() as tx:
            updated = await tx.execute(
                sql, job_id, _encode(cancelled), cancelled.ends_at, cancelled.outcome, *args
            )
            if updated:
                await tx.execute(_DUE_ON_CANCEL, job_id, cancelled.ends_at)
                await self.engine.notify(tx, job_id)
            rows = await tx.fetch(GET_JOB, job_id)
        return _job(rows[0]) if rows else None

    async def list_jobs(
        self, *, tenant: str | None, before_seq: int | None, limit: int, window: Window | None
    ) -> list[StoredJob]:
        conditions, args = where(window, 1) if window is not None else ([], [])
        for column, op, value in (("seq", "<", before_seq), ("tenant", "=", tenant)):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} {op} ${len(args)}")
        sql = f"SELECT {_JOB} FROM jobs"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        args.append(limit)
        rows = await self.engine.fetch(f"{sql} ORDER BY seq DESC LIMIT ${len(args)}", *args)
        return [_job(row) for row in rows]

    async def count(self) -> int:
        rows = await self.engine.fetch(_COUNT)
        return int(rows[0][0])

    async def count_jobs(self, *, tenant: str | None, window: Window | None) -> int:
        conditions, args = where(window, 1) if window is not None else ([], [])
        if tenant is not None:
            args.append(tenant)
            conditions.append(f"tenant = ${len(args)}")
        sql = "SELECT COUNT(*) FROM jobs" + (" WHERE " + " AND ".join(conditions) if conditions else "")
        rows = await self.engine.fetch(sql, *args)
        return int(rows[0][0])

    async def get_meta(self, key: str) -> str | None:
        rows = await self.engine.fetch(_GET_META, key)
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self.engine.execute(_SET_META, key, value)

    async def meta_setdefault(self, key: str, value: str) -> str:
        async with self.engine.transaction() as tx:
            await tx.execute(_META_DEFAULT, key, value)
            rows = await tx.fetch(_GET_META, key)
        return str(rows[0][0])

    async def claim_deliveries(
        self, now: float, limit: int, lease_until: float, owner: str
    ) -> list[Delivery]:
        async with self.engine.transaction() as tx:
            rows = await tx.fetch(self._claim, owner, lease_until, now, limit)
        return sorted((_delivery(row) for row in rows), key=lambda d: d.due_at)

    async def finish_delivery(
        self, delivery_id: str, owner: str, *, state: str, attempts: int, due_at: float, error: str | None
    ) -> bool:
        return await self.engine.execute(_FINISH, delivery_id, owner, state, attempts, due_at, error) > 0

    async def release_deliveries(self, owner: str) -> int:
        return await self.engine.execute(_RELEASE, owner)

    async def next_delivery_at(self) -> float | None:
        rows = await self.engine.fetch(_NEXT_DELIVERY)
        return None if rows[0][0] is None else float(rows[0][0])

    async def delivery(self, job_id: str) -> Delivery | None:
        rows = await self.engine.fetch(_GET_DELIVERY, job_id)
        return _delivery(rows[0]) if rows else None

    async def recent_deliveries(self, *, tenant: str | None, limit: int) -> list[Delivery]:
        rows = await (
            self.engine.fetch(_RECENT_DELIVERIES.format(tenant=""), limit)
            if tenant is None
            else self.engine.fetch(_RECENT_DELIVERIES.format(tenant="WHERE j.tenant = $2"), limit, tenant)
        )
        return [_delivery(row) for row in rows]

    async def listen(self, on_change: OnChange) -> None:
        await self.engine.listen(on_change)
