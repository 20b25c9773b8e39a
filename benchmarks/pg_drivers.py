"""asyncpg against psycopg 3 (async) on what the PostgreSQL store does, side by side in one run.

Four measures, each on its own table in a scratch database that is dropped at the end:

- ``get``: one job row by its primary key, one at a time (the store's read), median latency;
- ``insert``: a job and its webhook delivery in one transaction (the store's create), median latency;
- ``pool``: 32 tasks reading rows through a pool of 8 connections, rows per second;
- ``notify``: the latency from ``pg_notify`` on one connection to the callback on a listening one.

Rounds interleave the drivers so the machine's noise hits both alike. Run from the repository
root (needs PostgreSQL on 127.0.0.1:5432 with trust auth, and both drivers installed)::

    .venv/bin/pip install asyncpg 'psycopg[binary,pool]'
    .venv/bin/python benchmarks/pg_drivers.py [--rounds 5] [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# psycopg is not a dependency of the project, only of this comparison: the ignores let mypy
# check this file without it installed.
import asyncpg
import psycopg  # type: ignore[import-not-found, unused-ignore]
import psycopg_pool  # type: ignore[import-not-found, unused-ignore]

import pgdb
from machine import cpu_model, version

SCHEMA = (
    "CREATE TABLE jobs (seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL, ends_at DOUBLE PRECISION, "
    "timeline BYTEA NOT NULL)",
    "CREATE TABLE deliveries (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, due_at DOUBLE PRECISION)",
)
BLOB = b'{"created_at":1.0,"planned_end":2.0,"ends_at":2.0,"outcome":"completed","error":null}'
INSERT = "INSERT INTO jobs (id, ends_at, timeline) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING seq"
DELIVERY = "INSERT INTO deliveries (id, job_id, due_at) VALUES ($1, $2, $3)"
GET = "SELECT id, seq, ends_at, timeline FROM jobs WHERE id = $1"


def psql(sql: str) -> str:
    """The statement with psycopg's placeholders (``%s``) for asyncpg's (``$n``)."""
    for n in range(9, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


class Driver(Protocol):
    name: str

    async def setup(self, dsn: str) -> None: ...
    async def get(self, job_id: str) -> Any: ...
    async def insert(self, job_id: str) -> Any: ...
    async def pool_get(self, job_id: str) -> Any: ...
    async def notify_latency(self, n: int) -> list[float]: ...
    async def close(self) -> None: ...


class AsyncpgDriver:
    name = "asyncpg"

    async def setup(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = await asyncpg.connect(dsn)
        self.pool = await asyncpg.create_pool(dsn, min_size=8, max_size=8)

    async def get(self, job_id: str) -> Any:
        return await self.conn.fetchrow(GET, job_id)

    async def insert(self, job_id: str) -> Any:
        async with self.conn.transaction():
            await self.conn.fetch(INSERT, job_id, 1.0, BLOB)
            await self.conn.execute(DELIVERY, "msg" + job_id, job_id, 1.0)

    async def pool_get(self, job_id: str) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(GET, job_id)

    async def notify_latency(self, n: int) -> list[float]:
        listener = await asyncpg.connect(self.dsn)
        arrived: asyncio.Queue[float] = asyncio.Queue()
        await listener.add_listener("bench", lambda *_: arrived.put_nowait(time.perf_counter()))
        lags = []
        for _ in range(n):
            sent = time.perf_counter()
            await self.conn.execute("SELECT pg_notify('bench', 'x')")
            lags.append(await arrived.get() - sent)
        await listener.close()
        return lags

    async def close(self) -> None:
        await self.conn.close()
        await self.pool.close()


class PsycopgDriver:
    name = "psycopg"

    async def setup(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        self.pool = psycopg_pool.AsyncConnectionPool(dsn, min_size=8, max_size=8, open=False)
        await self.pool.open(wait=True)

    async def get(self, job_id: str) -> Any:
        cursor = await self.conn.execute(psql(GET), (job_id,), prepare=True)
        return await cursor.fetchone()

    async def insert(self, job_id: str) -> Any:
        async with self.conn.transaction():
            await self.conn.execute(psql(INSERT), (job_id, 1.0, BLOB), prepare=True)
            await self.conn.execute(psql(DELIVERY), ("msg" + job_id, job_id, 1.0), prepare=True)

    async def pool_get(self, job_id: str) -> Any:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(psql(GET), (job_id,), prepare=True)
            return await cursor.fetchone()

    async def notify_latency(self, n: int) -> list[float]:
        listener = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        await listener.execute("LISTEN bench")
        lags = []
        generator = listener.notifies()
        for _ in range(n):
            sent = time.perf_counter()
            await self.conn.execute("SELECT pg_notify('bench', 'x')")
            await anext(generator)
            lags.append(time.perf_counter() - sent)
        await listener.close()
        return lags

    async def close(self) -> None:
        await self.conn.close()
        await self.pool.close()


async def timed(n: int, op: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - start)
    return samples


async def throughput(n: int, op: Callable[[int], Awaitable[Any]], tasks: int = 32) -> float:
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await op(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return n / (time.perf_counter() - start)


async def one_round(driver: Driver, ids: list[str]) -> dict[str, float]:
    """Each measure once: medians of latencies (seconds), and rows per second."""
    n = len(ids)
    prefix = f"job_{uuid.uuid4().hex[:8]}"
    get = await timed(n, lambda i: driver.get(ids[i]))
    insert = await timed(n // 3, lambda i: driver.insert(f"{prefix}{i}"))
    pool = await throughput(n * 3, lambda i: driver.pool_get(ids[i % n]))
    notify = await driver.notify_latency(n // 6)
    return {
        "get": statistics.median(get),
        "insert": statistics.median(insert),
        "pool": pool,
        "notify": statistics.median(notify),
    }


async def run(args: argparse.Namespace, dsn: str) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    setup = await asyncpg.connect(dsn)
    for statement in SCHEMA:
        await setup.execute(statement)
    ids = [f"job_{uuid.uuid4().hex}" for _ in range(args.n)]
    await setup.executemany(
        "INSERT INTO jobs (id, ends_at, timeline) VALUES ($1, 1.0, $2)", [(i, BLOB) for i in ids]
    )
    await setup.close()
    drivers: list[Driver] = [AsyncpgDriver(), PsycopgDriver()]
    for driver in drivers:
        await driver.setup(dsn)
        results[driver.name] = {"get": [], "insert": [], "pool": [], "notify": []}
    for _ in range(args.rounds):
        for driver in drivers:
            for measure, value in (await one_round(driver, ids)).items():
                results[driver.name][measure].append(value)
    for driver in drivers:
        await driver.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    with pgdb.scratch_database("vtrans_bench") as dsn:
        results = asyncio.run(run(args, dsn))
    print(
        f"PostgreSQL drivers, {cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"asyncpg {version('asyncpg')}, psycopg {version('psycopg')}; "
        f"median of {args.rounds} rounds (min to max)\n"
    )
    print("| driver | get (µs) | insert + delivery (µs) | pool of 8, 32 tasks (rows/s) | notify (µs) |")
    print("|---|---:|---:|---:|---:|")

    def cell(values: list[float], scale: float) -> str:
        med, lo, hi = (v * scale for v in (statistics.median(values), min(values), max(values)))
        return f"{med:,.0f} ({lo:,.0f} to {hi:,.0f})"

    for name, r in results.items():
        cells = [cell(r["get"], 1e6), cell(r["insert"], 1e6), cell(r["pool"], 1), cell(r["notify"], 1e6)]
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"\nReproduce: .venv/bin/python benchmarks/pg_drivers.py --rounds {args.rounds} --n {args.n}")


if __name__ == "__main__":
    main()
