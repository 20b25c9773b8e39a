"""``vtrans.testing.FakeService``: the real service in-process on virtual time, for users' tests.

Every test here bounds its real time: a wait of minutes of virtual time must take well under a
second of real time, or the fake is not doing its one job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import vtrans
from vtrans.testing import FakeService
from vtrans.webhooks import verify

REAL_SECONDS = 1.0
PINNED = {"duration_seconds": 600, "outcome": "completed"}


@pytest.fixture
def fake() -> Iterator[FakeService]:
    with FakeService(seed=3) as service:
        yield service


def test_a_600_s_job_and_a_wait_for_it_take_no_real_time(fake: FakeService) -> None:
    client = fake.client()
    started, virtual = time.perf_counter(), fake.now()
    job = client.create("es", 120, simulate=PINNED)
    assert job.result == "pending"
    assert job.estimated_seconds_remaining is not None
    assert 400 < job.estimated_seconds_remaining < 900, "the simulation's estimate, with its noise"
    seen: list[vtrans.Job] = []
    done = client.wait(job.id, on_progress=seen.append)
    assert time.perf_counter() - started < REAL_SECONDS
    assert done.result == "completed"
    assert done.finished_at is not None
    assert 600 <= fake.now() - virtual < 700, "virtual time went by as the job took"
    assert done.finished_at.timestamp() == pytest.approx(virtual + 600, abs=1)
    assert seen[-1] == done


def test_the_async_client_waits_for_many_at_once(fake: FakeService) -> None:
    async def main() -> list[vtrans.Job]:
        async with fake.async_client() as client:
            jobs = [
                await client.create(
                    "fr", 60, simulate={"duration_seconds": 100.0 * n, "outcome": "completed"}
                )
                for n in range(1, 6)
            ]
            order = [job.id async for job in client.as_completed([j.id for j in jobs])]
            assert order == [j.id for j in jobs], "in the order they finish"
            return await asyncio.gather(*(client.wait(j.id) for j in jobs))

    started = time.perf_counter()
    finished = asyncio.run(main())
    assert time.perf_counter() - started < REAL_SECONDS
    assert [job.result for job in finished] == ["completed"] * 5


def test_failures_and_cancellations_are_the_services_own(fake: FakeService) -> None:
    client = fake.client()
    failing = client.create("de", 30, simulate={"duration_seconds": 200, "error_code": "no_speech_detected"})
    with pytest.raises(vtrans.JobFailed) as failed:
        client.wait(failing.id)
    assert failed.value.code == "no_speech_detected"

    long = client.create("de", 30, simulate=PINNED)
    fake.advance(60)
    assert 0 < (client.get(long.id).progress or 0) < 1
    cancelled = client.cancel(long.id)
    assert cancelled.error is not None
    assert cancelled.error.code == "cancelled"
    with pytest.raises(vtrans.Conflict):
        client.cancel(failing.id)
    with pytest.raises(vtrans.NotFound):
        client.get("job_" + "0" * 32)
    assert {job.id for job in client.jobs(result="error")} == {failing.id, long.id}


def test_a_deadline_is_kept_in_virtual_time(fake: FakeService) -> None:
    client = fake.client()
    job = client.create("ja", 30, simulate=PINNED)
    started, virtual = time.perf_counter(), fake.now()
    with pytest.raises(vtrans.WaitTimeout):
        client.wait(job.id, timeout=45)
    assert time.perf_counter() - started < REAL_SECONDS
    assert 45 <= fake.now() - virtual < 50


def test_events_stream_progress_in_virtual_time(fake: FakeService) -> None:
    client = fake.client()
    job = client.create("it", 30, simulate={"duration_seconds": 40, "outcome": "completed"})
    states = list(client.events(job.id))
    progress = [s.progress for s in states[:-1]]
    assert len(progress) >= 10
    assert progress == sorted(progress)
    assert states[-1].result == "completed"


def test_webhooks_are_captured_signed_when_they_fall_due(fake: FakeService) -> None:
    client = fake.client()
    job = client.create("pt", 30, callback_url="https://example.com/hook", simulate={"duration_seconds": 50})
    fake.advance(49)
    assert fake.webhooks == []
    fake.advance(2)
    [hook] = fake.webhooks
    assert hook.url == "https://example.com/hook"
    assert hook.event.type == "job.completed"
    assert hook.event.data.id == job.id
    event = verify(hook.body, hook.headers, fake.webhook_secret, now=fake.now())
    assert event == hook.event


def test_the_spec_status_is_served_too(fake: FakeService) -> None:
    client = fake.client()
    assert client.wait().result in ("completed", "error")


def test_one_stream_waits_for_more_jobs_than_the_old_batch_limit(fake: FakeService) -> None:
    client = fake.client()
    ids = [
        client.create("fr", 10 + n % 50, simulate={"duration_seconds": 1 + n % 97}).id or ""
        for n in range(1500)
    ]
    started = time.perf_counter()
    finished = list(client.as_completed(ids))
    assert time.perf_counter() - started < 10 * REAL_SECONDS
    assert sorted(job.id or "" for job in finished) == sorted(ids)
    ends = [job.finished_at for job in finished]
    assert ends == sorted(ends), "in the order they finished"


def test_too_many_jobs_for_one_wait_is_a_clear_error(fake: FakeService) -> None:
    with pytest.raises(ValueError, match="up to 10000 jobs"):
        fake.client().wait_many(["job_" + f"{n:032x}" for n in range(10_001)])


def test_closing_twice_is_harmless() -> None:
    with FakeService(seed=3) as fake:
        fake.client().create("es", 60)
        fake.close()  # closed early; the with block closes it again
    fake.close()
