"""A scratch PostgreSQL database per benchmark run (created, then dropped even on failure), and the
CPU time of the PostgreSQL backends serving it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from processes import CPUCounter

#: Where the benchmarks find PostgreSQL: this machine kind runs it on 127.0.0.1:5432, trust auth.
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


async def _execute(admin: str, sql: str) -> None:
    connection = await asyncpg.connect(admin, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _url(admin: str, database: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + database


def available(admin: str = ADMIN) -> str | None:
    """``None`` if PostgreSQL answers at ``admin``, else why not (with how to start it)."""
    try:
        asyncio.run(_execute(admin, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        return f"PostgreSQL at {admin} does not answer ({exc}); start it with: {START_HINT}"
    return None


@contextmanager
def scratch_database(prefix: str = "vtrans_bench", admin: str = ADMIN) -> Iterator[str]:
    """A new, empty database named ``prefix`` and 8 hex digits; yields its URL and drops it on the
    way out (``WITH (FORCE)``: any connection still open to it is closed). Call from synchronous
    code."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_execute(admin, f"CREATE DATABASE {name}"))
    try:
        yield _url(admin, name)
    finally:
        asyncio.run(_execute(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?", 1)[0]


def backend_pids(database: str) -> list[int]:
    """The PostgreSQL backends connected to the databases whose name starts with ``database``
    (a backend's process title names its database)."""
    needle = f" {database}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and needle in title:
            found.append(int(entry.name))
    return found


def backend_cpu(database: str) -> CPUCounter:
    """A counter of the CPU seconds spent by :func:`backend_pids`."""
    return CPUCounter(lambda: backend_pids(database))


async def _server_version(admin: str) -> str:
    connection = await asyncpg.connect(admin, timeout=10)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def server_version(admin: str = ADMIN) -> str:
    return asyncio.run(_server_version(admin))
