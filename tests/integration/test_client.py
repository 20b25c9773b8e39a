"""Both clients against the real service, started as a process (``tests/conftest.py``).

Jobs pin their timeline with ``simulate`` so every wait is short and its outcome known. The sync
``Client`` runs in a worker thread, so a test can act (cancel, kill the service) while it waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest

import vtrans
import vtrans.testing
from conftest import awaitable
from vtrans.client import (
    AsyncClient,
    Client,
    InvalidRequest,
    JobFailed,
    NotFound,
    PollPolicy,
    Unauthorized,
    WaitTimeout,
)
from vtrans.protocol import Job

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

UNKNOWN_JOB = "job_" + "0" * 32


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Api:
    """``Client`` (run in a worker thread) or ``AsyncClient`` behind ``await api.method(...)``;
    ``sent`` records each request attempt (``time.monotonic()``, method, path) and ``answered``
    counts the responses, so ``len(sent) - answered`` requests failed in transport."""

    def __init__(self, kind: str, url: str, *, timeout: float = 10.0, **kwargs: Any) -> None:
        self.kind = kind
        self.sent: list[tuple[float, str, str]] = []
        self.answered = 0
        self.client: Client | AsyncClient
        if kind == "sync":
            hooks: dict[str, list[Any]] = {"request": [self._record], "response": [self._count]}
            http = httpx2.Client(base_url=url, timeout=timeout, event_hooks=hooks)
            self.client = Client(url, timeout=timeout, http_client=http, **kwargs)
        else:

            async def record(request: httpx2.Request) -> None:
                self._record(request)

            async def count(response: httpx2.Response) -> None:
                self._count(response)

            ahooks: dict[str, list[Any]] = {"request": [record], "response": [count]}
            ahttp = httpx2.AsyncClient(base_url=url, timeout=timeout, event_hooks=ahooks)
            self.client = AsyncClient(url, timeout=timeout, http_client=ahttp, **kwargs)

    def _record(self, request: httpx2.Request) -> None:
        self.sent.append((time.monotonic(), request.method, request.url.path))

    def _count(self, response: httpx2.Response) -> None:
        self.answered += 1

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return awaitable(self.kind, getattr(self.client, name))


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> Iterator[Callable[..., Api]]:
    """``api(url, **client_kwargs)``: a client of the parametrized kind (closed at teardown)."""
    made: list[Api] = []

    def make(url: str, **kwargs: Any) -> Api:
        made.append(Api(request.param, url, **kwargs))
        return made[-1]

    yield make
    for each in made:
        if isinstance(each.client, Client):
            each.client.close()


def polled(client: Api, job_id: str | None) -> int:
    """How many requests of ``client`` asked for the job (``GET /v1/jobs/{id}``)."""
    return sum(1 for _, method, path in client.sent if method == "GET" and path == f"/v1/jobs/{job_id}")


async def until(predicate: Callable[[], object], within: float, message: str) -> None:
    """Check ``predicate`` every 10 ms until it is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {message}"
        await anyio.sleep(0.01)


# --- outcomes ---------------------------------------------------------------------------------


async def test_translate_returns_the_completed_job(shared_service: Any, api: Callable[..., Api]) -> None:
    client = api(shared_service.url)
    started = time.monotonic()
    job = await client.translate("fr", 4.0, simulate={"duration_seconds": 1.0, "outcome": "completed"})
    elapsed = time.monotonic() - started
    assert job.result == "completed"
    assert job.language == "fr"
    assert job.video_seconds == 4.0
    assert job.progress == 1.0
    assert job.finished_at is not None
    assert 0.9 <= elapsed <= 1.6  # seen about when it ended (long-poll), not much later
    assert client.sent[0][1:] == ("POST", "/v1/jobs")


async def test_wait_reports_progress_until_completion(shared_service: Any, api: Callable[..., Api]) -> None:
    client = api(shared_service.url)
    created = await client.create("de", 8.0, simulate={"duration_seconds": 1.5, "outcome": "completed"})
    assert created.result == "pending"
    assert created.id is not None
    states: list[Job] = []
    job = await client.wait(created.id, on_progress=states.append)
    assert job.result == "completed"
    assert job.id == created.id
    assert states[-1] == job
    assert all(s.result == "pending" for s in states[:-1])
    progress = [s.progress or 0.0 for s in states]
    assert progress == sorted(progress)
    assert len(progress) >= 6, "with a callback, held polls end at each 10 % of progress"
    assert len(client.sent) <= 1 + 11  # a create, then a long-poll per step


async def test_failure_raises_job_failed_with_code_and_message(
    shared_service: Any, api: Callable[..., Api]
) -> None:
    client = api(shared_service.url)
    created = await client.create(
        "es", 3.0, simulate={"duration_seconds": 0.5, "error_code": "source_unreachable"}
    )
    with pytest.raises(JobFailed) as caught:
        await client.wait(created.id)
    assert caught.value.code == "source_unreachable"
    assert caught.value.message
    assert caught.value.job.id == created.id
    assert caught.value.job.result == "error"
    returned = await client.wait(created.id, raise_on_error=False)
    assert returned.error is not None
    assert returned.error.code == "source_unreachable"


async def test_watch_yields_states_ending_with_the_terminal_one(
    shared_service: Any, api: Callable[..., Api]
) -> None:
    client = api(shared_service.url)
    created = await client.create("it", 3.0, simulate={"duration_seconds": 1.0, "outcome": "error"})
    states = await client.watch(created.id)
    assert states[-1].result == "error"  # yielded, not raised
    assert all(s.result == "pending" for s in states[:-1])


async def test_cancellation_while_waiting_ends_the_wait(shared_service: Any, api: Callable[..., Api]) -> None:
    """Cancelled from elsewhere (another task, or the main thread while ``Client`` waits in a
    worker thread): the waiting client learns it promptly and raises ``JobFailed('cancelled')``."""
    waiter, canceller = api(shared_service.url), api(shared_service.url)
    created = await waiter.create("pt", 60.0, simulate={"duration_seconds": 60.0})
    outcome: dict[str, BaseException] = {}

    async def wait() -> None:
        try:
            await waiter.wait(created.id, timeout=10.0)
        except BaseException as exc:
            outcome["error"] = exc

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(wait)
        # (Not on_progress: a long-poll reports nothing until the server answers.)
        await until(lambda: polled(waiter, created.id), 5.0, "the wait to poll the job")
        cancelled_at = time.monotonic()
        cancelled = await canceller.cancel(created.id)
        assert cancelled.result == "error"
    noticed = time.monotonic() - cancelled_at
    error = outcome.get("error")
    assert isinstance(error, JobFailed), error
    assert error.code == "cancelled"
    assert noticed < 2.0  # not at the 60 s estimate, nor at the 10 s timeout


async def test_timeout_at_the_deadline(shared_service: Any, api: Callable[..., Api]) -> None:
    client = api(shared_service.url)
    created = await client.create("ko", 60.0, simulate={"duration_seconds": 60.0})
    sent_before = len(client.sent)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        await client.wait(created.id, timeout=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed <= 1.0 + 0.5  # the deadline, plus at most one quick request
    polls = client.sent[sent_before:]
    assert polls[-1][0] - started >= 0.98  # the last poll went out at the deadline
    assert caught.value.requests == len(polls)
    assert len(polls) == 2  # the server's 60 s estimate: one poll now, one at the deadline
    assert caught.value.job is not None
    assert caught.value.job.result == "pending"
    assert caught.value.job.id == created.id


async def test_cancel_on_timeout(shared_service: Any, api: Callable[..., Api]) -> None:
    client = api(shared_service.url)
    created = await client.create("ko", 60.0, simulate={"duration_seconds": 60.0})
    with pytest.raises(WaitTimeout):
        await client.wait(created.id, timeout=0.5, cancel_on_timeout=True)
    assert client.sent[-1][1] == "DELETE"
    after = await client.get(created.id)
    assert after.result == "error"
    assert after.error is not None
    assert after.error.code == "cancelled"


async def test_unknown_and_malformed_jobs(shared_service: Any, api: Callable[..., Api]) -> None:
    client = api(shared_service.url)
    with pytest.raises(NotFound, match=UNKNOWN_JOB):
        await client.wait(UNKNOWN_JOB, timeout=5.0)
    assert len(client.sent) == 1  # not retried
    with pytest.raises(NotFound):
        await client.get(UNKNOWN_JOB)
    with pytest.raises(InvalidRequest, match="not a job id"):
        await client.get("job_nope")
    with pytest.raises(InvalidRequest, match="language"):
        await client.create("xx", 5.0)


async def test_wait_on_the_spec_status(shared_service: Any, api: Callable[..., Api]) -> None:
    client = api(shared_service.url)
    job = await client.wait(timeout=10.0)  # the service's own /status job: 1 s after it started
    assert job.result == "completed"
    assert {path for _, _, path in client.sent} == {"/status"}


async def test_jobs_lists_newest_first_across_pages(shared_service: Any, api: Callable[..., Api]) -> None:
    client = api(shared_service.url)
    ids = []
    for _ in range(3):
        job = await client.create("sv", 1.0, simulate={"duration_seconds": 0.0, "outcome": "completed"})
        ids.append(job.id)
    listed = await client.jobs(page_size=2)
    listed_ids = [j.id for j in listed]
    assert len(listed_ids) == len(set(listed_ids))
    ours = [i for i in listed_ids if i in ids]
    assert ours == ids[::-1]  # newest first
    assert sum(1 for _, method, path in client.sent if method == "GET" and path == "/v1/jobs") >= 2
    completed = await client.jobs("completed", page_size=100)
    assert set(ids) <= {j.id for j in completed}
    assert all(j.result == "completed" for j in completed)


async def test_create_is_idempotent_with_a_key(shared_service: Any, api: Callable[..., Api]) -> None:
    client = api(shared_service.url)
    key = f"order-{time.monotonic_ns()}-{client.kind}"
    first = await client.create("nl", 2.0, idempotency_key=key)
    again = await client.create("nl", 2.0, idempotency_key=key)
    assert first.id == again.id


async def test_api_key_is_sent_as_a_bearer_token(service_factory: Any, anyio_backend: str) -> None:
    """The clients' own HTTP clients carry ``api_key`` (a brought ``http_client`` would not)."""
    service = service_factory("--api-key", "s3cret-key")
    with Client(service.url, api_key="s3cret-key") as client:
        assert client.create("fr", 2.0).result == "pending"
    with Client(service.url, api_key="wrong") as client, pytest.raises(Unauthorized, match="API key"):
        client.create("fr", 2.0)
    async with AsyncClient(service.url, api_key="s3cret-key") as aclient:
        assert (await aclient.create("fr", 2.0)).result == "pending"
    async with AsyncClient(service.url, api_key="") as aclient:
        with pytest.raises(Unauthorized) as caught:
            await aclient.create("fr", 2.0)
    assert caught.value.status == 401


# --- surviving the service --------------------------------------------------------------------


async def test_a_wait_survives_the_service_being_killed_and_restarted(
    service_factory: Any, api: Callable[..., Api]
) -> None:
    """SIGKILL mid-wait, then a restart on the same SQLite file: the wait retries through the
    outage (on its default retry budget) and returns the job's real outcome."""
    service = service_factory()
    client = api(service.url)
    created = await client.create("fr", 6.0, simulate={"duration_seconds": 2.0, "outcome": "completed"})
    outcome: dict[str, Any] = {}

    async def wait() -> None:
        try:
            outcome["job"] = await client.wait(created.id, timeout=30.0)
        except BaseException as exc:
            outcome["error"] = exc

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(wait)
        await until(lambda: polled(client, created.id), 5.0, "the wait to poll the job")
        await anyio.to_thread.run_sync(service.kill)
        sent_at_kill = len(client.sent)
        # The client keeps trying while nobody listens (its requests fail)...
        await until(
            lambda: len(client.sent) >= sent_at_kill + 2, 10.0, "the client to retry during the outage"
        )
        await anyio.to_thread.run_sync(service.start)
    assert "error" not in outcome, outcome.get("error")
    job = outcome["job"]
    assert job.result == "completed"
    assert job.id == created.id
    assert len(client.sent) - client.answered >= 2  # it did go through failed requests


# --- memory across waits ----------------------------------------------------------------------

#: Hints ignored, fixed phase: a wait polls 1 s, 2 s, 3 s ... after its start (gaps capped at 1 s).
ONE_SECOND = PollPolicy(first=1.0, factor=2.0, max_interval=1.0, random_phase=False, use_hints=False)


async def test_poll_transport_takes_the_creates_answer_for_the_first_poll(
    shared_service: Any, api: Callable[..., Api]
) -> None:
    """A job of 1.5 s, polled with ``transport="poll"`` by the client that created it: its
    schedule starts at the creation, so a poll at 1 s (pending) and one at 2 s (done) are all it
    takes; the POST's answer stood for a poll at 0. A client that did not create the job polls at
    once, then on the same schedule: one GET more. (Each poll lands half a second from the end:
    only a stall of that long could add or remove one.)"""
    creator, other = api(shared_service.url, poll=ONE_SECOND), api(shared_service.url, poll=ONE_SECOND)
    simulate = {"duration_seconds": 1.5, "outcome": "completed"}
    own = await creator.create("fr", 6.0, simulate=simulate)
    assert (await creator.wait(own.id, transport="poll")).result == "completed"
    assert [(method, path) for _, method, path in creator.sent] == [("POST", "/v1/jobs")] + [
        ("GET", f"/v1/jobs/{own.id}")
    ] * (len(creator.sent) - 1)
    assert 1 <= polled(creator, own.id) <= 2
    assert creator.client.memory.holds is None  # it never asked for a hold

    theirs = await creator.create("fr", 6.0, simulate=simulate)
    assert (await other.wait(theirs.id, transport="poll")).result == "completed"
    assert polled(other, theirs.id) > polled(creator, own.id)


async def test_a_creates_retry_after_places_the_first_poll(
    service_factory: Any, api: Callable[..., Api]
) -> None:
    """A service that tells only ``Retry-After`` (``--hints retry-after``): the create's answer
    says about 3 s, so the first GET comes before the schedule's first point (3 s at the soonest)
    and the job is seen done in a few polls, not long after its end."""
    service = service_factory("--hints", "retry-after")
    client = api(service.url)
    created = await client.create("fr", 6.0, simulate={"duration_seconds": 3.0, "outcome": "completed"})
    done = await client.wait(created.id, transport="poll")
    gets = [at for at, method, path in client.sent if method == "GET" and path == f"/v1/jobs/{created.id}"]
    assert 0.5 < gets[0] - client.sent[0][0] < 3.0
    assert 2 <= len(gets) <= 4
    assert done.finished_at is not None
    assert time.time() - done.finished_at.timestamp() < 1.5  # the lag allowed (0.4 s), and slack


async def test_auto_on_a_server_that_holds_polls_at_once(
    shared_service: Any, api: Callable[..., Api]
) -> None:
    """The service honours ``Prefer: wait``: the client learns that it does, and keeps asking at
    once, one held GET per short job."""
    client = api(shared_service.url, poll=ONE_SECOND)
    for _ in range(2):
        created = await client.create("fr", 6.0, simulate={"duration_seconds": 0.5, "outcome": "completed"})
        assert (await client.wait(created.id)).result == "completed"
        assert polled(client, created.id) == 1
        assert client.client.memory.holds is True


def test_testing_mode_waits_in_real_time_on_a_real_server(service: Any) -> None:
    """``set_testing(True)`` skips waits on virtual transports only: the sandbox's jobs take real
    time, and a virtual wait there would run out its deadline at once (a false WaitTimeout)."""
    with vtrans.testing.set_testing(True), vtrans.Client(service.url) as client:
        job = client.create("fr", 10, simulate={"duration_seconds": 1.5, "outcome": "completed"})
        assert job.id is not None
        started = time.monotonic()
        done = client.wait(job.id, timeout=30, transport="poll")
        took = time.monotonic() - started
    assert done.result == "completed"
    assert 1.0 < took < 10
