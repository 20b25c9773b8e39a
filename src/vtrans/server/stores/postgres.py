"""PostgreSQL, for many service processes on one or many hosts (asyncpg).

What makes several processes agree: every write is a transaction; a cancellation sends
``NOTIFY vtrans_jobs, '<job id>'`` with its commit, which every process ``LISTEN``\\ s for to wake
its waiters and evict its cached copy; and a webhook delivery is leased to one process at a time
(``FOR UPDATE SKIP LOCKED``). Notifications are best-effort: while the listening connection is
down, :attr:`PostgresEngine.in_sync` is false (the service caches nothing), and once it is back,
``on_change(None)`` tells the service to re-check everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from vtrans.server.stores.base import OnChange, StoreError
from vtrans.server.stores.sql import SCHEMA, Connection, Row, SQLStore

log = logging.getLogger(__name__)

CHANNEL = "vtrans_jobs"
#: Serialises schema creation when several processes start at once.
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(7224817312)"
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
#: Waits between attempts to get the listening connection back, in seconds.
_RECONNECT = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def redact(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class _Transaction:
    def __init__(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        self.connection = connection

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return list(await self.connection.fetch(sql, *args))
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            status: str = await self.connection.execute(sql, *args)
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc
        return _rowcount(status)


def _rowcount(status: str) -> int:
    """The rows a statement changed, from its status (``UPDATE 3``)."""
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else 0


class PostgresEngine:
    """A pool of connections, and one more that listens for the other processes' changes."""

    shared = True
    lock_clause = "FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url, self.pool_size = url, pool_size
        self.name = redact(url)
        self.in_sync = True
        self._pool: asyncpg.Pool | None = None
        self._on_change: OnChange | None = None
        self._listener: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                server_settings={"application_name": "vtrans"},
                timeout=10,
            )
            async with self._pool.acquire() as connection, connection.transaction():
                await connection.execute(_SCHEMA_LOCK)
                for statement in SCHEMA:
                    await connection.execute(statement.format(serial="BIGSERIAL PRIMARY KEY", blob="BYTEA"))
        except (*_ERRORS, ValueError) as exc:
            await self.close()
            raise StoreError(f"cannot use PostgreSQL at {self.name}: {exc}") from None

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._listener is not None:
            with contextlib.suppress(*_ERRORS):
                await self._listener.close(timeout=2)
            self._listener = None
        if self._pool is not None:
            with contextlib.suppress(*_ERRORS):
                await asyncio.wait_for(self._pool.close(), 5)
            self._pool = None

    def _pool_or_fail(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"the PostgreSQL store {self.name} is closed")
        return self._pool

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return list(await self._pool_or_fail().fetch(sql, *args))
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            status: str = await self._pool_or_fail().execute(sql, *args)
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc
        return _rowcount(status)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        try:
            async with self._pool_or_fail().acquire() as connection, connection.transaction():
                yield _Transaction(connection)
        except _ERRORS as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def notify(self, connection: Connection, job_id: str) -> None:
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, job_id)

    async def listen(self, on_change: OnChange) -> None:
        self._on_change = on_change
        try:
            await self._connect_listener()
        except _ERRORS as exc:
            raise StoreError(f"cannot listen on PostgreSQL at {self.name}: {exc}") from None

    async def _connect_listener(self) -> None:
        connection = await asyncpg.connect(
            self.url, server_settings={"application_name": "vtrans-listen"}, timeout=10
        )
        await connection.add_listener(CHANNEL, self._notified)
        connection.add_termination_listener(self._lost)
        self._listener = connection

    def _notified(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if self._on_change is not None:
            self._on_change(str(payload))

    def _lost(self, connection: object) -> None:
        """The listening connection closed: changes may be missed until it is back."""
        self._listener = None
        if self._closing or self._on_change is None:
            return
        log.warning("lost the PostgreSQL listening connection; caching nothing until it is back")
        self.in_sync = False
        self._on_change(None)
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._connect_listener()
            except _ERRORS as exc:
                delay = _RECONNECT[min(attempt, len(_RECONNECT) - 1)]
                log.warning("cannot listen on PostgreSQL yet (%s); retrying in %.2fs", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            log.info("listening on PostgreSQL again; re-checking every waiter")
            self.in_sync = True
            if self._on_change is not None:
                self._on_change(None)
            return


def postgres_store(url: str) -> SQLStore:
    return SQLStore(PostgresEngine(url))
