"""The store contract: one suite, run unchanged against the memory, SQLite and PostgreSQL stores.

Times are plain numbers (no clock): a stored timeline's state at a time is the simulation's
business, and the store only compares the bounds the simulation hands it. The PostgreSQL runs
use a database of their own (the ``pg_url`` fixture), real SQLite runs a file in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from vtrans.protocol import JobError, Simulate
from vtrans.server import simulation
from vtrans.server.simulation import CANCELLED, SimulationConfig, draw_timeline, window
from vtrans.server.stores import Delivery, NewJob, Store, StoredJob, StoreError, make_store
from vtrans.server.stores.base import delivery_id

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
KINDS = ["memory", "sqlite", "postgresql"]
MakeStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=KINDS)
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Opens stores of one kind on one shared backing (a second SQLite store is on the same file)."""
    kind: str = request.param
    spec = request.getfixturevalue("pg_url") if kind == "postgresql" else kind
    opened: list[Store] = []

    async def open_one() -> Store:
        store = make_store(spec, str(tmp_path / "jobs.db"))
        await store.open()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make: MakeStore) -> Store:
    return await make()


def new_job(
    n: int, *, key: str | None = None, tenant: str = "", callback: bool = False, **sim: object
) -> NewJob:
    """The n-th test job: created at T0, its timeline drawn from seed n (pinned by ``sim``)."""
    simulate = Simulate(**sim) if sim else None  # type: ignore[arg-type]
    timeline = draw_timeline(SimulationConfig(error_rate=0.0), random.Random(n), T0, 10.0 * n, simulate)
    return NewJob(
        id=f"job_{n:032x}",
        tenant=tenant,
        language="fr",
        video_seconds=10.0 * n,
        source_url=f"https://example.com/{n}.mp4",
        callback_url=f"http://127.0.0.1:9/hook/{n}" if callback else None,
        timeline=timeline,
        idempotency_key=key,
    )


async def cancel(store: Store, job: StoredJob, at: float) -> StoredJob | None:
    return await store.cancel(job.id, simulation.cancel(job.timeline, at), window("pending", at))


# --- jobs -------------------------------------------------------------------------------------


async def test_add_then_get_round_trips_every_field(store: Store) -> None:
    assert await store.count() == 0
    job, created = await store.add(new_job(1))
    assert created
    assert await store.get(job.id) == job
    assert job == new_job(1).stored(job.seq)
    failed, _ = await store.add(new_job(2, error_code="quota_exceeded"))
    fetched = await store.get(failed.id)
    assert fetched == failed
    assert fetched is not None
    assert fetched.timeline.error == JobError("quota_exceeded", "The translation failed (quota_exceeded).")
    assert fetched.seq > job.seq
    assert await store.count() == fetched.seq
    assert await store.get("job_" + "f" * 32) is None


async def test_adding_an_existing_id_returns_the_stored_job(store: Store) -> None:
    first, _ = await store.add(new_job(1))
    other_timeline = msgspec.structs.replace(new_job(1), video_seconds=99.0)
    again, created = await store.add(other_timeline)
    assert (again, created) == (first, False)


async def test_an_idempotency_key_returns_the_first_job_of_its_tenant(store: Store) -> None:
    first, created = await store.add(new_job(1, key="k1"))
    again, created_again = await store.add(new_job(2, key="k1"))
    assert created
    assert not created_again
    assert again == first
    other, created_other = await store.add(new_job(3, key="k2"))
    assert created_other
    assert other != first
    theirs, created_theirs = await store.add(new_job(4, key="k1", tenant="acme"))
    assert created_theirs, "another tenant's key is another key"
    assert theirs.tenant == "acme"
    assert await store.get(f"job_{2:032x}") is None


async def test_get_many_finds_what_exists_in_any_number(store: Store) -> None:
    jobs = [(await store.add(new_job(n)))[0] for n in range(1, 4)]
    ids = [f"job_{n:032x}" for n in range(1000, 1700)] + [job.id for job in jobs]
    found = await store.get_many(ids)
    assert found == {job.id: job for job in jobs}
    assert await store.get_many([]) == {}


async def test_cancel_ends_pending_jobs_only(store: Store) -> None:
    pending, _ = await store.add(new_job(1, duration_seconds=100.0))
    done, _ = await store.add(new_job(2, duration_seconds=1.0))
    now = T0 + 10
    cancelled = await cancel(store, pending, now)
    assert cancelled is not None
    assert cancelled.timeline.ends_at == now
    assert cancelled.timeline.outcome == "error"
    assert cancelled.timeline.error == CANCELLED
    assert cancelled.timeline.created_at == pending.timeline.created_at
    assert await store.get(pending.id) == cancelled
    assert await cancel(store, pending, now + 5) == cancelled, "cancelling twice changes nothing"
    assert await cancel(store, done, now) == done
    assert await store.cancel("job_" + "f" * 32, done.timeline, window("pending", now)) is None


async def test_listing_is_newest_first_with_pages_filters_and_tenants(store: Store) -> None:
    jobs = [(await store.add(new_job(n, duration_seconds=float(n))))[0] for n in range(1, 8)]  # end T0+n
    await store.add(new_job(8, duration_seconds=2.0, outcome="error"))
    await store.add(new_job(9, duration_seconds=1.0, tenant="acme"))
    await cancel(store, jobs[-1], T0 + 0.5)
    now = T0 + 4.5  # 1-4 completed, 5-6 pending, 7 cancelled, 8 failed; 9 is acme's

    everything = await store.list_jobs(tenant="", before_seq=None, limit=100, window=None)
    assert [j.seq for j in everything] == sorted((j.seq for j in everything), reverse=True)
    assert len(everything) == 8

    seen: list[StoredJob] = []
    before = None
    while True:
        page = await store.list_jobs(tenant="", before_seq=before, limit=3, window=None)
        seen += page
        if len(page) < 3:
            break
        before = page[-1].seq
    assert [j.id for j in seen] == [j.id for j in everything]

    async def ids(result: simulation.Result, tenant: str | None = "") -> set[int]:
        listed = await store.list_jobs(tenant=tenant, before_seq=None, limit=100, window=window(result, now))
        return {int(j.id[4:], 16) for j in listed}

    assert await ids("completed") == {1, 2, 3, 4}
    assert await ids("pending") == {5, 6}
    assert await ids("error") == {7, 8}
    assert await ids("completed", "acme") == {9}
    assert await ids("completed", None) == {1, 2, 3, 4, 9}

    async def count(result: simulation.Result | None, tenant: str | None = "") -> int:
        return await store.count_jobs(tenant=tenant, window=None if result is None else window(result, now))

    assert [await count(r) for r in ("completed", "pending", "error")] == [4, 2, 2]
    assert (await count(None), await count(None, None), await count("completed", "acme")) == (8, 9, 1)
    assert await count("pending", "nobody") == 0


async def test_meta(store: Store) -> None:
    assert await store.get_meta("status_job_id") is None
    await store.set_meta("status_job_id", "job_a")
    assert await store.get_meta("status_job_id") == "job_a"
    await store.set_meta("status_job_id", "job_b")
    assert await store.get_meta("status_job_id") == "job_b"
    assert await store.meta_setdefault("secret", "s1") == "s1"
    assert await store.meta_setdefault("secret", "s2") == "s1"


# --- webhook deliveries -----------------------------------------------------------------------


def state(delivery: Delivery | None) -> tuple[str, int, float, str | None]:
    assert delivery is not None
    return delivery.state, delivery.attempts, delivery.due_at, delivery.last_error


async def finish(
    store: Store, delivery: Delivery, owner: str, outcome: str, due_at: float, error: str | None = None
) -> bool:
    return await store.finish_delivery(
        delivery.id, owner, state=outcome, attempts=delivery.attempts + 1, due_at=due_at, error=error
    )


async def test_a_job_with_a_callback_has_a_delivery_due_when_it_ends(store: Store) -> None:
    job, _ = await store.add(new_job(1, callback=True, duration_seconds=30.0))
    plain, _ = await store.add(new_job(2, duration_seconds=30.0))
    delivery = await store.delivery(job.id)
    assert delivery is not None
    assert (delivery.id, delivery.job_id, delivery.url) == (delivery_id(job.id), job.id, job.callback_url)
    assert (delivery.due_at, delivery.attempts, delivery.state, delivery.last_error) == (
        T0 + 30,
        0,
        "pending",
        None,
    )
    assert await store.delivery(plain.id) is None
    assert await store.next_delivery_at() == T0 + 30
    assert await store.claim_deliveries(T0 + 29, 10, T0 + 100, "a") == []

    await cancel(store, job, T0 + 5)
    moved = await store.delivery(job.id)
    assert moved is not None
    assert moved.due_at == T0 + 5, "a cancelled job's webhook falls due at once"


async def test_recent_deliveries_are_those_of_the_newest_jobs_of_a_tenant(store: Store) -> None:
    for n in range(1, 7):
        await store.add(new_job(n, callback=n != 3, tenant="acme" if n == 5 else ""))
    recent = await store.recent_deliveries(tenant="", limit=3)
    assert [d.job_id for d in recent] == [f"job_{n:032x}" for n in (6, 4, 2)]
    assert all(d.state == "pending" and d.attempts == 0 for d in recent)
    assert [d.job_id for d in await store.recent_deliveries(tenant="acme", limit=10)] == [f"job_{5:032x}"]
    everyone = await store.recent_deliveries(tenant=None, limit=10)
    assert [d.job_id for d in everyone] == [f"job_{n:032x}" for n in (6, 5, 4, 2, 1)]


async def test_a_claimed_delivery_is_leased_to_its_owner(store: Store) -> None:
    for n in (1, 2, 3):
        await store.add(new_job(n, callback=True, duration_seconds=float(n)))
    now = T0 + 10
    claimed = await store.claim_deliveries(now, 2, now + 30, "a")
    assert [d.due_at for d in claimed] == [T0 + 1, T0 + 2], "the oldest due first, at most the limit"
    rest = await store.claim_deliveries(now, 10, now + 30, "b")
    assert [d.due_at for d in rest] == [T0 + 3]
    assert await store.claim_deliveries(now + 29, 10, now + 60, "b") == [], "leased until now + 30"
    assert await store.next_delivery_at() == now + 30

    first = claimed[0]
    assert not await store.finish_delivery(
        first.id, "b", state="delivered", attempts=1, due_at=now, error=None
    )
    assert await store.finish_delivery(
        first.id, "a", state="pending", attempts=1, due_at=now + 5, error="HTTP 500"
    )
    after = await store.delivery(first.job_id)
    assert after is not None
    assert (after.state, after.attempts, after.due_at, after.last_error) == (
        "pending",
        1,
        now + 5,
        "HTTP 500",
    )
    assert not await store.finish_delivery(
        first.id, "a", state="delivered", attempts=2, due_at=now, error=None
    )

    # The lease of the second runs out: another owner takes it, and the first can no longer record.
    second = claimed[1]
    taken = await store.claim_deliveries(now + 31, 10, now + 61, "c")
    assert {d.id for d in taken} == {second.id, rest[0].id, first.id}
    assert not await store.finish_delivery(
        second.id, "a", state="delivered", attempts=1, due_at=now, error=None
    )
    assert await store.finish_delivery(
        second.id, "c", state="delivered", attempts=1, due_at=now + 31, error=None
    )
    done = await store.delivery(second.job_id)
    assert done is not None
    assert done.state == "delivered"
    assert await store.claim_deliveries(now + 100, 10, now + 200, "d") != []  # the others, leased to c
    assert await store.next_delivery_at() == now + 200
    assert await store.release_deliveries("d") == 2, "the two still pending"
    assert await store.next_delivery_at() == T0 + 3, "the oldest due, no lease in the way"
    assert len(await store.claim_deliveries(now + 100, 10, now + 200, "e")) == 2


# --- many processes ---------------------------------------------------------------------------

SHARED = pytest.mark.parametrize("make", ["postgresql"], indirect=True)


@pytest.mark.parametrize("make", ["memory"], indirect=True)
async def test_a_memory_store_is_its_process_own(make: MakeStore) -> None:
    one, other = await make(), await make()
    job, _ = await one.add(new_job(1))
    assert await other.get(job.id) is None
    assert not one.shared


@pytest.mark.parametrize("make", ["sqlite"], indirect=True)
async def test_a_second_store_on_a_served_sqlite_file_refuses_naming_it(make: MakeStore) -> None:
    served = await make()
    with pytest.raises(StoreError, match="already served by another vtrans process") as refused:
        await make()
    assert served.name in str(refused.value)
    await served.close()
    again = await make()  # once the first is closed, the file is free
    assert await again.count() == 0


@SHARED
async def test_stores_on_one_database_share_it_and_one_key_makes_one_job(make: MakeStore) -> None:
    one, other = await make(), await make()
    assert one.shared
    job, _ = await one.add(new_job(1, callback=True, duration_seconds=1.0))
    assert await other.get(job.id) == job
    for n in range(2, 42, 2):
        key = f"same-{n}"
        results = await asyncio.gather(one.add(new_job(n, key=key)), other.add(new_job(n + 1, key=key)))
        assert sorted(created for _, created in results) == [False, True]
        assert results[0][0] == results[1][0]


@SHARED
async def test_concurrent_claims_never_share_a_delivery(make: MakeStore) -> None:
    stores = [await make() for _ in range(4)]
    for n in range(1, 41):
        await stores[0].add(new_job(n, callback=True, duration_seconds=1.0))
    now = T0 + 10
    batches = await asyncio.gather(
        *(s.claim_deliveries(now, 7, now + 30, f"owner-{i}") for i, s in enumerate(stores * 2))
    )
    claimed = [d.id for batch in batches for d in batch]
    assert len(claimed) == len(set(claimed)) == 40


@SHARED
async def test_a_cancellation_reaches_the_other_processes_once(make: MakeStore) -> None:
    one, other = await make(), await make()
    heard: asyncio.Queue[str | None] = asyncio.Queue()
    await other.listen(heard.put_nowait)
    job, _ = await one.add(new_job(1, duration_seconds=100.0))
    second, _ = await one.add(new_job(2, duration_seconds=100.0))
    await cancel(one, job, T0 + 1)
    assert await asyncio.wait_for(heard.get(), 5) == job.id
    await cancel(one, job, T0 + 2)  # nothing changes: nobody is told
    await cancel(one, second, T0 + 2)
    assert await asyncio.wait_for(heard.get(), 5) == second.id


@SHARED
async def test_a_lost_listening_connection_is_reported_and_restored(make: MakeStore, pg_url: str) -> None:
    one, other = await make(), await make()
    heard: asyncio.Queue[str | None] = asyncio.Queue()
    await other.listen(heard.put_nowait)
    await one.engine.execute(  # type: ignore[attr-defined]
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'vtrans-listen' AND datname = current_database()"
    )
    assert await asyncio.wait_for(heard.get(), 5) is None, "lost: re-check everything"
    assert await asyncio.wait_for(heard.get(), 5) is None, "back: re-check again"
    assert other.in_sync
    job, _ = await one.add(new_job(1, duration_seconds=100.0))
    await cancel(one, job, T0 + 1)
    assert await asyncio.wait_for(heard.get(), 5) == job.id
