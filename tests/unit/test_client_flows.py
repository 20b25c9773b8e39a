"""The real ``Client`` and ``AsyncClient`` against a scripted peer on a fully virtual clock.

Every test runs twice, once per client. The peer is an ``httpx2.MockTransport`` whose handler
records each request with the virtual time it was sent at; :class:`FakeClock` only moves when the
client sleeps (or when the peer says a request took time), so nothing here waits for real, except
the ``set_testing`` tests, which measure that the real clock is *not* used.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx2
import msgspec
import pytest

import vtrans.testing
from conftest import HookRecorder
from vtrans.client import (
    APIError,
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    JobFailed,
    NotFound,
    PollPolicy,
    ProtocolError,
    RetryPolicy,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    WaitTimeout,
)
from vtrans.client.hooks import Hook, RequestDetails, WaitDetails
from vtrans.client.waiting import WaitOptions
from vtrans.protocol import Job, Status

pytestmark = pytest.mark.anyio

URL = "http://vtrans.test"
JOB_ID = "job_" + "a" * 32
PATH = f"/v1/jobs/{JOB_ID}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the virtual world ------------------------------------------------------------------------


class FakeClock:
    """Virtual time: ``now()`` is ``t``; sleeping adds to ``t`` and is recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.start = self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"asked to sleep {seconds}"
        self.sleeps.append(seconds)
        self.t += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    @property
    def elapsed(self) -> float:
        return self.t - self.start


@dataclass
class Seen:
    at: float  # virtual seconds since the clock's start, when the request was sent
    request: httpx2.Request

    @property
    def timeout(self) -> dict[str, float]:
        timeout: dict[str, float] = self.request.extensions["timeout"]
        return timeout


Answer = Callable[[httpx2.Request, int, float], httpx2.Response]


class FakeServer:
    """A scripted peer: ``answer(request, n, at)`` is called for the n-th request (0-based) sent at
    virtual time ``at``; each request takes ``latency`` virtual seconds."""

    def __init__(self, clock: FakeClock, answer: Answer, latency: float = 0.0) -> None:
        self.clock, self.answer, self.latency = clock, answer, latency
        self.seen: list[Seen] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        at = self.clock.elapsed
        self.seen.append(Seen(at, request))
        self.clock.t += self.latency
        return self.answer(request, len(self.seen) - 1, at)

    @property
    def times(self) -> list[float]:
        return [s.at for s in self.seen]

    def requests(self, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if method is None or s.request.method == method]


def job(result: str = "pending", **fields: Any) -> dict[str, Any]:
    return {"id": JOB_ID, "result": result, "language": "fr", "video_seconds": 10.0, **fields}


def ok(body: Any = None, status: int = 200, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json=job() if body is None else body, headers=headers)


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    body = {"type": "urn:vtrans:problem:x", "title": "Nope", "status": status, "detail": detail}
    return httpx2.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/problem+json", **(headers or {})},
    )


def html(status: int = 200) -> httpx2.Response:
    page = "<!DOCTYPE html><html><body><h1>Bad Gateway</h1><p>nginx</p></body></html>"
    return httpx2.Response(status, content=page.encode(), headers={"Content-Type": "text/html"})


def raw(content: bytes, content_type: str = "application/json") -> httpx2.Response:
    return httpx2.Response(200, content=content, headers={"Content-Type": content_type})


Step = httpx2.Response | type[Exception] | Callable[[httpx2.Request], httpx2.Response]


def script(*steps: Step) -> Answer:
    """Answer the n-th request with ``steps[n]`` (the last one forever): a response, a callable of
    the request, or an ``httpx2`` transport exception class to raise."""

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        step = steps[min(n, len(steps) - 1)]
        if isinstance(step, type):
            raise step("simulated failure", request=request)
        if isinstance(step, httpx2.Response):  # a copy: a response is read once, and shared by tests
            return httpx2.Response(step.status_code, headers=step.headers, content=step.content)
        return step(request)

    return answer


def timed(done_at: float, result: str = "completed", hint: bool = False) -> Answer:
    """A job pending until ``done_at`` virtual seconds, its progress growing, then ``result``."""

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if at >= done_at:
            error = {"code": "no_speech_detected", "message": "No speech."} if result == "error" else None
            return ok(job(result, progress=1.0, error=error))
        extra = {"estimated_seconds_remaining": done_at - at} if hint else {}
        return ok(job("pending", progress=round(at / done_at, 6), **extra))

    return answer


#: The policy of the tests of the mechanics (schedule, deadline, long-poll, retries): explicit, not
#: the defaults, which the benchmark tunes. Fixed phase: polls at 0, 0.5, 0.75, 1.125 ...
SCHEDULE = PollPolicy(first=0.5, factor=1.5, max_interval=30.0, random_phase=False, long_poll=30.0)


def schedule(first: float, factor: float, until: float) -> list[float]:
    """Poll times of the fixed-phase geometric schedule up to the first one >= ``until``."""
    points, i = [0.0], 0
    while points[-1] < until:
        points.append(first * factor**i)
        i += 1
    return points


# --- the two clients behind one interface -----------------------------------------------------


class Api:
    """Either client behind one awaitable interface: ``await api.wait(...)``; iterators
    (``watch``, ``jobs``) come back as lists."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            if hasattr(result, "__aiter__"):
                return [item async for item in result]
            if inspect.isgenerator(result) or hasattr(result, "__next__"):
                return list(result)
            return result

        return call


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@dataclass
class World:
    api: Api
    server: FakeServer
    clock: FakeClock


Make = Callable[..., World]


@pytest.fixture
def make(kind: str) -> Iterator[Make]:
    """``make(answer, latency=0.0, **client_kwargs)``: a client of the parametrized kind on a
    :class:`FakeServer` and a :class:`FakeClock` (fixed-phase polls unless ``poll`` says otherwise)."""
    made: list[Client | AsyncClient] = []

    def factory(answer: Answer, *, latency: float = 0.0, **kwargs: Any) -> World:
        clock = kwargs.pop("clock", None) or FakeClock()
        server = FakeServer(clock, answer, latency)
        kwargs.setdefault("poll", PollPolicy(random_phase=False))
        kwargs.setdefault("rng", random.Random(1))
        kwargs.setdefault("clock", clock)
        timeout = kwargs.pop("timeout", 10.0)
        client: Client | AsyncClient
        if kind == "sync":
            http = httpx2.Client(base_url=URL, transport=httpx2.MockTransport(server), timeout=timeout)
            client = Client(URL, http_client=http, timeout=timeout, **kwargs)
        else:
            ahttp = httpx2.AsyncClient(base_url=URL, transport=httpx2.MockTransport(server), timeout=timeout)
            client = AsyncClient(URL, http_client=ahttp, timeout=timeout, **kwargs)
        made.append(client)
        return World(Api(client), server, clock)

    yield factory
    for client in made:
        if isinstance(client, Client):
            client.close()


# --- waiting: results, schedule, deadline -----------------------------------------------------


@pytest.mark.parametrize("latency", [0.0, 0.01])
async def test_wait_polls_on_the_geometric_schedule_and_no_more(make: Make, latency: float) -> None:
    """No hints: requests go out exactly at 0, first, first*factor, ... until one sees the end."""
    w = make(timed(4.0), latency=latency, poll=SCHEDULE)
    result = await w.api.wait(JOB_ID)
    assert result.result == "completed"
    assert result.id == JOB_ID
    expected = schedule(SCHEDULE.first, SCHEDULE.factor, until=4.0)  # 0, 0.5, 0.75, 1.125, ... 5.70
    assert w.server.times == pytest.approx(expected, abs=1e-6)
    assert all(s.request.method == "GET" and s.request.url.path == PATH for s in w.server.seen)


async def test_wait_reads_the_servers_estimate(make: Make) -> None:
    """A new client assumes estimates less reliable than the sandbox's: it sleeps to the earliest
    plausible end of the first (7.5 s), then closes in, in a few steps; it sees the end within the
    lag it allows."""
    w = make(timed(7.5, hint=True), poll=SCHEDULE)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert 0.0 < w.clock.sleeps[0] < 7.5
    assert 0.0 <= w.server.times[-1] - 7.5 <= SCHEDULE.hint_floor
    assert len(w.server.seen) <= 5


def biased(done_at: float, bias: float) -> Answer:
    """A job pending until ``done_at``, answered as the service answers: the estimate is ``bias``
    times the time really left (in ms, at least 1 ms), ``Retry-After`` in whole seconds; a server
    that ignores ``Prefer: wait``."""

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if at >= done_at:
            return ok(job("completed", progress=1.0))
        estimate = max(0.001, round(bias * (done_at - at), 3))
        retry_after = {"Retry-After": str(min(60, math.ceil(estimate)))}
        return ok(job("pending", estimated_seconds_remaining=estimate), headers=retry_after)

    return answer


@pytest.mark.parametrize("latency", [0.0, 0.002, 0.05])
@pytest.mark.parametrize("duration", [3.0, 10.0, 60.0, 300.0, 1800.0])
async def test_the_default_client_sees_through_an_estimate_20_percent_too_long(
    make: Make, duration: float, latency: float
) -> None:
    """The default policy, on its first job: the countdown of the answers (1.2 s per second) shows
    the estimate's bias. Detected within max(0.5 s, 5 % of D) for at most 4 requests."""
    w = make(biased(duration, 1.2), latency=latency, poll=None)  # poll=None: the client's default
    assert (await w.api.wait(JOB_ID)).result == "completed"
    lag = w.clock.elapsed - duration
    assert 0.0 <= lag <= max(0.5, 0.05 * duration), (lag, w.server.times)
    assert len(w.server.seen) <= 4, w.server.times


async def test_a_client_learns_that_its_servers_estimates_are_exact(make: Make) -> None:
    """Exact estimates, job after job: the client learns it (``Quality``), and soon needs one poll
    at the end that the create's estimate gives (the jobs' own timestamps, all 10 s, agree)."""
    w, jobs = service(make, hints=True, poll=dataclasses.replace(LEARN, hint_floor=0.25))
    counts = []
    for _ in range(40):
        created = await w.api.create("fr", 20.0)
        assert (await w.api.wait(created.id, transport="poll")).result == "completed"
        counts.append(len(jobs.polls(created.id)))
        assert jobs.polls(created.id)[-1] - 10.0 <= 0.25 + 1e-9
    assert memory(w).estimates.model.wobble <= 0.04
    assert counts[:3] != [2, 2, 2]
    assert counts[-10:] == [1] * 10


async def test_wait_reads_retry_after_when_the_body_has_no_estimate(make: Make) -> None:
    """``Retry-After: 3`` says the job needs at most 3 more seconds: the client comes back before."""
    w = make(script(ok(headers={"Retry-After": "3"}), ok(job("completed"))), poll=SCHEDULE)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert 0.5 < w.clock.sleeps[0] < 3.0
    assert len(w.server.seen) == 2


async def test_a_job_that_outlives_its_estimate_is_polled_soon_and_often(make: Make) -> None:
    """The estimate said 2 s but the job took 2.5 s: the client re-polls every ``hint_floor`` (the
    lag it allows on a short job), not on a schedule from the start."""

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if at >= 2.5:
            return ok(job("completed"))
        return ok(job("pending", estimated_seconds_remaining=max(0.001, 2.0 - at)))

    w = make(answer, poll=SCHEDULE)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert w.server.times[-1] - 2.5 <= SCHEDULE.hint_floor + 1e-9
    assert len(w.server.seen) <= 7


@pytest.mark.parametrize("latency", [0.0, 0.013])
async def test_deadline_is_kept_and_the_last_poll_is_at_the_deadline(make: Make, latency: float) -> None:
    w = make(timed(1000.0), latency=latency, poll=SCHEDULE)
    with pytest.raises(WaitTimeout) as caught:
        await w.api.wait(JOB_ID, timeout=30.0)
    times = w.server.times
    assert all(t <= 30.0 + 1e-9 for t in times), times
    assert times[-1] == pytest.approx(30.0, abs=1e-9)
    assert sum(w.clock.sleeps) <= 30.0 + 1e-9
    assert w.clock.elapsed == pytest.approx(30.0 + latency, abs=1e-9)
    error = caught.value
    assert error.requests == len(w.server.seen)
    assert error.waited == pytest.approx(30.0 + latency, abs=1e-6)
    assert error.job is not None
    assert error.job.result == "pending"
    assert error.job.progress == pytest.approx(times[-1] / 1000.0)  # the *last* state seen
    # About log_1.5(30 / 0.5) + 2 requests: the schedule, plus the poll at the deadline.
    assert len(times) == len([t for t in schedule(SCHEDULE.first, SCHEDULE.factor, 30.0) if t < 30.0]) + 1
    assert isinstance(error, TimeoutError)
    assert "30.0s" in str(error)


async def test_an_estimate_past_the_deadline_is_not_overslept(make: Make) -> None:
    w = make(timed(100.0, hint=True), poll=SCHEDULE)
    with pytest.raises(WaitTimeout):
        await w.api.wait(JOB_ID, timeout=10.0)
    assert w.server.times == pytest.approx([0.0, 10.0])
    assert w.clock.sleeps == pytest.approx([10.0])


async def test_a_job_done_at_the_deadline_is_returned(make: Make) -> None:
    w = make(timed(10.0, hint=False), poll=SCHEDULE)
    result = await w.api.wait(JOB_ID, timeout=10.0)
    assert result.result == "completed"
    assert w.server.times[-1] == pytest.approx(10.0)


async def test_timeout_zero_polls_once(make: Make) -> None:
    w = make(timed(5.0))
    with pytest.raises(WaitTimeout) as caught:
        await w.api.wait(JOB_ID, timeout=0)
    assert caught.value.requests == 1
    assert w.clock.sleeps == []


async def test_cancel_on_timeout_sends_delete(make: Make) -> None:
    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if request.method == "DELETE":
            return ok(job("error", error={"code": "cancelled", "message": "Cancelled."}))
        return ok(job("pending"))

    w = make(answer)
    with pytest.raises(WaitTimeout) as caught:
        await w.api.wait(JOB_ID, timeout=5.0, cancel_on_timeout=True)
    methods = [s.request.method for s in w.server.seen]
    assert methods[-1] == "DELETE"
    assert methods.count("DELETE") == 1
    assert w.server.seen[-1].request.url.path == PATH
    assert w.server.seen[-2].at == pytest.approx(5.0)  # the last poll, at the deadline, then DELETE
    assert caught.value.job is not None
    assert caught.value.job.id == JOB_ID


async def test_no_delete_without_cancel_on_timeout(make: Make) -> None:
    w = make(timed(1e9))
    with pytest.raises(WaitTimeout):
        await w.api.wait(JOB_ID, timeout=5.0)
    assert {s.request.method for s in w.server.seen} == {"GET"}


async def test_a_failed_cancel_still_raises_the_timeout(make: Make) -> None:
    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if request.method == "DELETE":
            return problem(409, "Job already ended as 'completed'.")
        return ok(job("pending"))

    w = make(answer)
    with pytest.raises(WaitTimeout):
        await w.api.wait(JOB_ID, timeout=2.0, cancel_on_timeout=True)
    assert [s.request.method for s in w.server.seen][-1] == "DELETE"


async def test_failed_job_raises_job_failed(make: Make) -> None:
    w = make(timed(1.0, result="error"))
    with pytest.raises(JobFailed) as caught:
        await w.api.wait(JOB_ID)
    assert caught.value.code == "no_speech_detected"
    assert caught.value.message == "No speech."
    assert caught.value.job.result == "error"
    assert JOB_ID in str(caught.value)


async def test_failed_job_is_returned_with_raise_on_error_false(make: Make) -> None:
    w = make(timed(1.0, result="error"))
    result = await w.api.wait(JOB_ID, raise_on_error=False)
    assert result.result == "error"
    assert result.error is not None
    assert result.error.code == "no_speech_detected"


async def test_on_progress_is_called_with_each_new_state(make: Make) -> None:
    states = [
        job("pending", progress=0.1),
        job("pending", progress=0.1),
        job("pending", progress=0.5),
        job("pending", progress=0.5),
        job("completed", progress=1.0),
    ]
    w = make(script(*(ok(s) for s in states)))
    seen: list[Job] = []
    result = await w.api.wait(JOB_ID, on_progress=seen.append)
    assert [(j.result, j.progress) for j in seen] == [("pending", 0.1), ("pending", 0.5), ("completed", 1.0)]
    assert seen[-1] == result
    assert len(w.server.seen) == 5


@pytest.mark.parametrize("outcome", ["completed", "error"])
async def test_watch_yields_the_states_ending_with_the_terminal_one(make: Make, outcome: str) -> None:
    w = make(timed(3.0, result=outcome))
    states = await w.api.watch(JOB_ID)
    assert states[-1].result == outcome  # an error is yielded, not raised
    assert all(s.result == "pending" for s in states[:-1])
    progress = [s.progress for s in states[:-1]]
    assert progress == sorted(progress)
    assert len(progress) == len(set(progress))  # each state once
    assert len(states) == len(w.server.seen)


async def test_wait_without_job_id_polls_the_spec_status(make: Make) -> None:
    w = make(script(ok({"result": "pending"}), ok({"result": "pending"}), ok({"result": "completed"})))
    result = await w.api.wait()
    assert isinstance(result, Status)
    assert result.done
    assert msgspec.json.encode(result) == b'{"result":"completed"}'  # exactly the spec's answer
    assert [s.request.url.path for s in w.server.seen] == ["/status"] * 3
    assert all(not s.request.url.query for s in w.server.seen)


async def test_status_without_job_id_tolerates_extra_fields(make: Make) -> None:
    w = make(script(ok({"result": "error", "whatever": [1, 2], "progress": 1})))
    result = await w.api.status()
    assert result == Status(result="error")
    assert msgspec.json.encode(result) == b'{"result":"error"}'
    assert w.server.seen[0].request.url.path == "/status"


async def test_status_of_one_job_asks_the_spec_endpoint_for_it(make: Make) -> None:
    w = make(script(ok(job("pending", progress=0.5))))
    assert await w.api.status(JOB_ID) == Status(result="pending")
    assert w.server.seen[0].request.url.path == "/status"
    assert w.server.seen[0].request.url.params["job_id"] == JOB_ID


async def test_a_failed_spec_status_raises_job_failed(make: Make) -> None:
    w = make(script(ok({"result": "pending"}), ok({"result": "error"})))
    with pytest.raises(JobFailed) as caught:
        await w.api.wait()
    assert caught.value.code == "unknown"
    assert "the job failed" in str(caught.value)


async def test_cancel_on_timeout_is_not_sent_for_the_spec_status(make: Make) -> None:
    w = make(script(ok({"result": "pending"})))
    with pytest.raises(WaitTimeout):
        await w.api.wait(timeout=3.0, cancel_on_timeout=True)
    assert {s.request.method for s in w.server.seen} == {"GET"}


# --- long-poll --------------------------------------------------------------------------------


def holding(done_at: float, clock: FakeClock) -> Answer:
    """A server that honours ``Prefer: wait=N``: it holds the answer until the job ends or N
    seconds pass (moving the virtual clock), and says so in ``Preference-Applied``."""

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        prefer = request.headers.get("prefer", "")
        hold = float(prefer.partition("wait=")[2] or 0) if "wait=" in prefer else 0.0
        if at < done_at and hold > 0:
            held = min(hold, done_at - at)
            clock.t += held
            at += held
            if at < done_at:
                return ok(job("pending"), headers={"Preference-Applied": f"wait={hold:g}"})
        return ok(job("completed" if at >= done_at else "pending"))

    return answer


async def test_long_poll_costs_one_request_per_hold_and_no_lag(make: Make) -> None:
    clock = FakeClock()
    w = make(holding(70.0, clock), clock=clock, poll=SCHEDULE)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert w.server.times == pytest.approx([0.0, 30.0, 60.0])
    assert clock.elapsed == pytest.approx(70.0)  # seen the moment it ended
    assert all(s.request.headers["prefer"] == "wait=30" for s in w.server.seen)


async def test_long_poll_never_holds_past_the_deadline(make: Make) -> None:
    clock = FakeClock()
    w = make(holding(1e9, clock), clock=clock, poll=SCHEDULE)
    with pytest.raises(WaitTimeout):
        await w.api.wait(JOB_ID, timeout=45.0)
    assert clock.elapsed <= 45.0 + 1e-9
    assert w.server.times[-1] == pytest.approx(45.0)


async def test_poll_transport_never_asks_the_server_to_hold(make: Make) -> None:
    w = make(timed(2.0))
    assert (await w.api.wait(JOB_ID, transport="poll")).result == "completed"
    assert all("prefer" not in s.request.headers for s in w.server.seen)


# --- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        problem(500, "Internal error."),
        html(502),
        problem(503, "Overloaded."),
        httpx2.Response(504, content=b"Gateway Timeout"),
        problem(429, "Slow down.", {"Retry-After": "2"}),
        problem(503, "Maintenance.", {"Retry-After": "2"}),
    ],
    ids=["500", "502-html", "503", "504", "429-retry-after", "503-retry-after"],
)
async def test_transient_statuses_are_retried(make: Make, failure: httpx2.Response) -> None:
    w = make(script(ok(job("pending")), failure, failure, ok(job("completed"))), poll=SCHEDULE)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert len(w.server.seen) == 4  # exactly: one poll, two failures, the answer
    poll_sleep, *retry_sleeps = w.clock.sleeps
    assert poll_sleep == pytest.approx(SCHEDULE.first)
    if "retry-after" in failure.headers:
        assert retry_sleeps == [2.0, 2.0]
    else:
        assert 0.1 <= retry_sleeps[0] <= 0.2  # backoff 0.2 s, jittered in [0.5, 1]
        assert 0.2 <= retry_sleeps[1] <= 0.4


async def test_retry_after_is_cut_to_max_retry_after(make: Make) -> None:
    w = make(
        script(problem(503, "Down.", {"Retry-After": "3600"}), ok(job("completed"))),
        retry=RetryPolicy(max_retry_after=5.0),
    )
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert w.clock.sleeps == [5.0]


async def test_retry_after_as_an_http_date_is_honoured(make: Make) -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    w = make(
        script(problem(429, "Later.", {"Retry-After": when}), ok(job("completed"))),
        retry=RetryPolicy(budget=60.0),
    )
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert 17.0 <= w.clock.sleeps[0] <= 20.0


async def test_retry_after_never_sleeps_past_the_deadline(make: Make) -> None:
    w = make(script(ok(job("pending")), problem(503, "Down.", {"Retry-After": "60"})))
    with pytest.raises(WaitTimeout):
        await w.api.wait(JOB_ID, timeout=10.0)
    assert w.clock.elapsed <= 10.0 + 1e-9
    assert w.server.times[-1] == pytest.approx(10.0)


GARBAGE = {
    "html": html(200),
    "invalid-json": raw(b'{"result": "pend'),
    "unknown-result": ok({"result": "processing"}),
    "empty": raw(b""),
    "not-an-object": ok(["pending"]),
    "text": raw(b"pending", "text/plain"),
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
async def test_garbage_for_a_while_is_retried(make: Make, garbage: httpx2.Response) -> None:
    w = make(script(ok(job("pending")), garbage, garbage, garbage, ok(job("completed"))))
    result = await w.api.wait(JOB_ID)
    assert result.result == "completed"
    assert len(w.server.seen) == 5


@pytest.mark.parametrize("attempts", [1, 4, 8])
@pytest.mark.parametrize("garbage", list(GARBAGE.values())[:3], ids=list(GARBAGE)[:3])
async def test_persistent_garbage_is_a_protocol_error_after_the_budget(
    make: Make, garbage: httpx2.Response, attempts: int
) -> None:
    w = make(script(garbage), retry=RetryPolicy(attempts=attempts, budget=60.0))
    with pytest.raises(ProtocolError) as caught:
        await w.api.wait(JOB_ID)
    assert len(w.server.seen) == attempts
    assert len(w.clock.sleeps) == attempts - 1
    assert "GET" in str(caught.value)


async def test_persistent_5xx_is_service_unavailable_after_the_budget(make: Make) -> None:
    w = make(script(problem(503, "We are down for maintenance.")), retry=RetryPolicy(attempts=5))
    with pytest.raises(ServiceUnavailable) as caught:
        await w.api.wait(JOB_ID)
    assert len(w.server.seen) == 5
    assert caught.value.status == 503
    assert "down for maintenance" in str(caught.value)


async def test_default_retry_budget_is_five_seconds_with_the_last_attempt_at_its_end(make: Make) -> None:
    w = make(script(html(502)))
    with pytest.raises(ServiceUnavailable):
        await w.api.get(JOB_ID)
    assert RetryPolicy().budget == 5.0
    assert w.server.times[-1] == pytest.approx(5.0)
    assert w.clock.elapsed == pytest.approx(5.0)
    assert len(w.server.seen) < RetryPolicy().attempts
    # Exponential: 0.2, 0.4, 0.8 ... each jittered in [0.5, 1] of the step; the last cut to the budget.
    for n, slept in enumerate(w.clock.sleeps[:-1], start=1):
        assert 0.5 * 0.2 * 2 ** (n - 1) <= slept <= 0.2 * 2 ** (n - 1)


TRANSPORT_ERRORS = [httpx2.ConnectError, httpx2.ReadTimeout, httpx2.RemoteProtocolError, httpx2.ReadError]


@pytest.mark.parametrize("error", TRANSPORT_ERRORS, ids=lambda e: e.__name__)
async def test_transport_errors_for_a_while_are_retried(make: Make, error: type[Exception]) -> None:
    w = make(script(ok(job("pending")), error, error, ok(job("completed"))))
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert len(w.server.seen) == 4


@pytest.mark.parametrize("error", TRANSPORT_ERRORS, ids=lambda e: e.__name__)
async def test_persistent_transport_errors_are_a_transport_error(make: Make, error: type[Exception]) -> None:
    w = make(script(error), retry=RetryPolicy(attempts=3))
    with pytest.raises(TransportError) as caught:
        await w.api.wait(JOB_ID)
    assert len(w.server.seen) == 3
    assert isinstance(caught.value.__cause__, error)


async def test_failures_budget_is_per_request_not_per_wait(make: Make) -> None:
    """Two failures between each successful poll never exhaust a budget of three."""
    steps: list[Step] = []
    for _ in range(6):
        steps += [ok(job("pending")), httpx2.ConnectError, problem(503, "Busy.")]
    w = make(script(*steps, ok(job("completed"))), retry=RetryPolicy(attempts=3))
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert len(w.server.seen) == 19


async def test_a_transient_failure_never_becomes_a_wrong_result(make: Make) -> None:
    """Whatever goes wrong in between, the answer is the terminal state the server reported."""
    rng = random.Random(5)
    bad: list[Step] = [html(502), raw(b"{"), httpx2.ConnectError, problem(500, "x"), ok({"result": "done"})]
    steps: list[Step] = []
    for _ in range(30):
        steps.append(rng.choice(bad) if rng.random() < 0.4 else ok(job("pending")))
    w = make(script(*steps, ok(job("error", error={"code": "internal_error", "message": "Boom."}))))
    result = await w.api.wait(JOB_ID, raise_on_error=False)
    assert result.result == "error"
    assert result.error is not None
    assert result.error.code == "internal_error"


# --- the retry budgets: a dead service, an outage in the middle of a wait ---------------------


def down_between(start: float, end: float, then: Answer) -> Answer:
    """Refuse connections from ``start`` to ``end`` virtual seconds, and answer as ``then`` otherwise."""

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if start <= at < end:
            raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)
        return then(request, n, at)

    return answer


DEAD = down_between(0.0, math.inf, timed(1.0))
CALLS: dict[str, tuple[Any, ...]] = {
    "get": (JOB_ID,),
    "status": (),
    "cancel": (JOB_ID,),
    "create": ("fr", 10.0),
    "jobs": (),
}


@pytest.mark.parametrize("call", list(CALLS))
async def test_a_dead_service_fails_a_call_after_the_five_second_budget(make: Make, call: str) -> None:
    w = make(DEAD)
    with pytest.raises(TransportError, match="Connection refused"):
        await getattr(w.api, call)(*CALLS[call])
    assert w.server.times[-1] == pytest.approx(5.0)  # the last attempt at the end of the budget
    assert w.clock.elapsed == pytest.approx(5.0)


@pytest.mark.parametrize("budget", [0.5, 2.0, 12.0])
async def test_the_budget_is_the_callers_to_set(make: Make, budget: float) -> None:
    w = make(DEAD, retry=RetryPolicy(budget=budget, attempts=100))
    with pytest.raises(TransportError):
        await w.api.get(JOB_ID)
    assert w.clock.elapsed == pytest.approx(budget)


async def test_the_budget_counts_from_the_first_failed_attempt_not_its_end(make: Make) -> None:
    """Attempts that each take 4 s to fail: the second starts before 5 s, the third would not."""
    w = make(DEAD, latency=4.0)
    with pytest.raises(TransportError):
        await w.api.get(JOB_ID)
    assert len(w.server.seen) == 2
    assert w.clock.elapsed <= 5.0 + 4.0


@pytest.mark.parametrize(
    "retry", [RetryPolicy.FAIL_FAST, RetryPolicy(attempts=1)], ids=["FAIL_FAST", "attempts=1"]
)
async def test_fail_fast_gives_up_at_the_first_failure(make: Make, retry: RetryPolicy) -> None:
    w = make(DEAD, retry=retry)
    with pytest.raises(TransportError):
        await w.api.get(JOB_ID)
    assert len(w.server.seen) == 1
    assert w.clock.sleeps == []


async def test_fail_fast_stops_a_wait_at_its_first_failure_too(make: Make) -> None:
    w = make(down_between(1.0, math.inf, timed(100.0)), poll=SCHEDULE, retry=RetryPolicy.FAIL_FAST)
    with pytest.raises(TransportError):
        await w.api.wait(JOB_ID)
    assert [t for t in w.server.times if t >= 1.0] == [w.server.times[-1]]  # one failure, no retry


async def test_a_wait_that_never_had_an_answer_gives_up_on_the_budget(make: Make) -> None:
    """A wrong URL or a dead service fails a wait as fast as a call, whatever its timeout."""
    w = make(DEAD)
    with pytest.raises(TransportError):
        await w.api.wait(JOB_ID, timeout=600.0)
    assert w.clock.elapsed == pytest.approx(5.0)


async def test_a_wait_whose_first_hold_is_cut_rides_out_the_restart(make: Make) -> None:
    """No answer yet, but the first long-poll was held, then cut: the service exists, and the
    wait rides out its restart (8 s of refused connections) as after an answer."""

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if n == 0:
            w.clock.t += 3.0  # held 3 s, then the service restarts
            raise httpx2.ReadError("connection reset by peer", request=request)
        if at < 8.0:
            raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)
        return ok(job("completed", progress=1.0))

    w = make(answer, poll=SCHEDULE)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert w.clock.elapsed >= 8.0


async def test_a_reset_before_any_hold_is_no_sign_of_a_service(make: Make) -> None:
    w = make(script(httpx2.ReadError), poll=SCHEDULE)
    with pytest.raises(TransportError):
        await w.api.wait(JOB_ID, timeout=600)
    assert w.clock.elapsed == pytest.approx(5.0)


async def test_a_wait_rides_out_an_outage_far_longer_than_the_budget(make: Make) -> None:
    w = make(down_between(1.0, 40.0, timed(20.0)), poll=SCHEDULE)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    failed = [t for t in w.server.times if 1.0 <= t < 40.0]
    assert len(failed) > RetryPolicy().attempts  # failures in a row for 39 s
    assert w.server.times[-1] - 40.0 <= RetryPolicy().max_backoff  # seen again soon after it came back


async def test_a_wait_rides_out_an_outage_until_its_deadline(make: Make) -> None:
    w = make(down_between(1.0, math.inf, timed(100.0)), poll=SCHEDULE)
    with pytest.raises(WaitTimeout) as caught:
        await w.api.wait(JOB_ID, timeout=30.0)
    assert w.server.times[-1] == pytest.approx(30.0)
    assert w.clock.elapsed == pytest.approx(30.0)
    assert isinstance(caught.value.__cause__, TransportError)


async def test_a_wait_without_deadline_gives_up_after_the_outage_budget(make: Make) -> None:
    w = make(down_between(1.0, math.inf, timed(100.0)), poll=SCHEDULE, retry=RetryPolicy(outage=30.0))
    with pytest.raises(TransportError):
        await w.api.wait(JOB_ID)
    first_failure = min(t for t in w.server.times if t >= 1.0)
    assert w.server.times[-1] == pytest.approx(first_failure + 30.0)


@pytest.mark.parametrize(
    "values",
    [{"budget": -1.0}, {"outage": -1.0}, {"budget": math.nan}, {"attempts": 0}],
    ids=["budget<0", "outage<0", "budget=nan", "attempts=0"],
)
def test_a_bad_retry_policy_is_refused(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**values)  # type: ignore[arg-type]


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, InvalidRequest),
        (401, Unauthorized),
        (403, Unauthorized),
        (404, NotFound),
        (409, Conflict),
        (413, InvalidRequest),
        (422, InvalidRequest),
    ],
)
async def test_refusals_map_to_typed_errors_with_the_detail(
    make: Make, status: int, error: type[APIError]
) -> None:
    detail = f"Precise explanation number {status}."
    w = make(script(problem(status, detail)))
    with pytest.raises(error) as caught:
        await w.api.get(JOB_ID)
    assert detail in str(caught.value)
    assert caught.value.status == status
    assert caught.value.problem is not None
    assert caught.value.problem.detail == detail
    assert len(w.server.seen) == 1  # never retried


async def test_a_refusal_without_problem_body_still_says_something(make: Make) -> None:
    w = make(script(httpx2.Response(409, content=b"not now", headers={"Content-Type": "text/plain"})))
    with pytest.raises(Conflict) as caught:
        await w.api.get(JOB_ID)
    assert "not now" in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "content_type"),
    [
        (html(404), "text/html"),
        (httpx2.Response(404, content=b"Not Found", headers={"Content-Type": "text/plain"}), "text/plain"),
        (httpx2.Response(404), "no Content-Type"),
    ],
)
@pytest.mark.parametrize("call", ["get", "wait"])
async def test_a_404_that_is_not_json_is_a_wrong_url_not_a_missing_job(
    make: Make, answer: httpx2.Response, content_type: str, call: str
) -> None:
    w = make(script(answer))
    with pytest.raises(ProtocolError) as caught:
        await getattr(w.api, call)(JOB_ID)
    assert f"answered 404 with {content_type}" in str(caught.value)
    assert "the URL may be wrong" in str(caught.value)
    assert len(w.server.seen) == 1, "not retried: another try finds no more of a route"
    assert w.clock.sleeps == []


async def test_a_404_in_json_is_not_found_even_without_a_problem(make: Make) -> None:
    w = make(script(httpx2.Response(404, json={"message": "no such job"})))
    with pytest.raises(NotFound, match="no such job"):
        await w.api.get(JOB_ID)
    assert len(w.server.seen) == 1


async def test_wait_on_an_unknown_job_is_not_found_at_once(make: Make) -> None:
    w = make(script(problem(404, f"There is no job with id {JOB_ID!r}.")))
    with pytest.raises(NotFound, match="There is no job"):
        await w.api.wait(JOB_ID, timeout=30.0)
    assert len(w.server.seen) == 1
    assert w.clock.sleeps == []


async def test_invalid_job_ids_are_refused_before_any_request(make: Make) -> None:
    w = make(script(ok()))
    for bad in ["", "../admin", "a/b"]:
        with pytest.raises(ValueError, match="not a job id"):
            await w.api.get(bad)
    assert w.server.seen == []


# --- create, list, translate ------------------------------------------------------------------


def created(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content)
    return ok(job("pending", language=body["language"], video_seconds=body["video_seconds"]), status=201)


async def test_create_sends_an_idempotency_key_and_retries_reuse_it(make: Make) -> None:
    w = make(script(problem(503, "Busy."), httpx2.ConnectError, html(502), created))
    result = await w.api.create("de", 12.5, simulate={"duration_seconds": 3.0})
    assert result.language == "de"
    posts = w.server.requests("POST")
    assert len(posts) == 4
    keys = {s.request.headers.get("idempotency-key") for s in posts}
    assert len(keys) == 1
    (key,) = keys
    assert key
    assert 16 <= len(key) <= 255
    body = json.loads(posts[0].request.content)
    assert body["language"] == "de"
    assert body["video_seconds"] == 12.5
    assert body["simulate"]["duration_seconds"] == 3.0
    assert posts[0].request.url.path == "/v1/jobs"
    assert posts[0].request.headers["content-type"] == "application/json"


async def test_each_create_has_its_own_key_unless_given(make: Make) -> None:
    w = make(script(created))
    await w.api.create("fr", 5.0)
    await w.api.create("fr", 5.0)
    await w.api.create("fr", 5.0, idempotency_key="my-order-42")
    keys = [s.request.headers["idempotency-key"] for s in w.server.seen]
    assert keys[0] != keys[1]
    assert keys[2] == "my-order-42"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_seconds_that_are_not_finite_are_refused_before_any_request(make: Make, bad: float) -> None:
    w = make(script(created))
    with pytest.raises(ValueError, match=f"video_seconds must be a finite number of seconds, not {bad}"):
        await w.api.create("es", bad)  # JSON has no NaN: it would be sent as null
    with pytest.raises(ValueError, match=r"simulate\.duration_seconds must be a finite number"):
        await w.api.create("es", 5.0, simulate={"duration_seconds": bad})
    assert w.server.seen == []


async def test_create_refused_is_invalid_request_with_the_detail(make: Make) -> None:
    w = make(script(problem(422, "Unknown language 'xx'; supported: de, fr.")))
    with pytest.raises(InvalidRequest, match="Unknown language 'xx'"):
        await w.api.create("xx", 5.0)
    assert len(w.server.seen) == 1


async def test_jobs_follows_the_pages(make: Make) -> None:
    ids = [f"job_{i:032x}" for i in range(5)]

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        start = int(request.url.params.get("cursor", "0"))
        limit = int(request.url.params["limit"])
        items = [job("completed", id=i) for i in ids[start : start + limit]]
        cursor = str(start + limit) if start + limit < len(ids) else None
        return ok({"items": items, "next_cursor": cursor})

    w = make(answer)
    listed = await w.api.jobs(page_size=2)
    assert [j.id for j in listed] == ids
    assert len(w.server.seen) == 3
    assert [s.request.url.params.get("cursor") for s in w.server.seen] == [None, "2", "4"]
    await w.api.jobs("completed", page_size=50)
    assert w.server.seen[-1].request.url.params["result"] == "completed"


async def test_translate_creates_then_waits(make: Make) -> None:
    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if request.method == "POST":
            return created(request)
        return ok(job("completed" if at >= 2.0 else "pending"))

    w = make(answer)
    result = await w.api.translate("ja", 30.0)
    assert result.result == "completed"
    assert w.server.seen[0].request.method == "POST"
    assert all(s.request.url.path == PATH for s in w.server.seen[1:])


# --- per-request timeouts ---------------------------------------------------------------------


async def test_every_request_gets_a_usable_timeout_up_to_the_deadline(make: Make) -> None:
    """Near the deadline a request's timeout shrinks, but never to zero: a zero timeout cannot succeed."""
    w = make(script(ok(job("pending")), problem(503, "Busy.", {"Retry-After": "60"})), timeout=5.0)
    with pytest.raises(WaitTimeout):
        await w.api.wait(JOB_ID, timeout=10.0)
    assert len(w.server.seen) >= 2
    for seen in w.server.seen:
        assert 0.2 <= seen.timeout["read"] <= 10.0, (seen.at, seen.timeout)


async def test_the_clients_timeout_bounds_polls_to_a_server_that_ignores_long_poll(make: Make) -> None:
    """``timeout`` bounds each request. A server that ignored ``Prefer: wait`` once is polled
    plainly after that, so a stalled answer costs ``timeout``, not the long-poll's hold."""
    w = make(timed(20.0), timeout=0.5)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    for seen in w.server.seen[1:]:
        assert seen.timeout["read"] <= 0.5, (seen.at, seen.request.headers.get("prefer"), seen.timeout)


# --- hooks ------------------------------------------------------------------------------------


def finished(result: str, ago: float) -> dict[str, Any]:
    """A terminal job that the service says finished ``ago`` (real, wall-clock) seconds ago."""
    at = datetime.now(timezone.utc) - timedelta(seconds=ago)
    error = {"code": "no_speech_detected", "message": "No speech."} if result == "error" else None
    return job(result, progress=1.0, finished_at=at.isoformat(), error=error)


async def test_hooks_hear_of_each_request_and_retry_with_the_details(make: Make) -> None:
    hook = HookRecorder()
    steps: tuple[Step, ...] = (problem(503, "Busy."), httpx2.ConnectError, ok(job("completed")))
    w = make(script(*steps), latency=0.25, hooks=[hook])
    await w.api.get(JOB_ID)
    route = "/v1/jobs/{id}"
    assert [(r.method, r.path, r.route, r.job_id) for r in hook.requests] == [
        ("GET", PATH, route, JOB_ID)
    ] * 3
    assert [(r.attempt, r.status, r.error) for r in hook.requests] == [
        (1, 503, None),
        (2, None, "ConnectError"),
        (3, 200, None),
    ]
    assert [r.elapsed for r in hook.requests] == pytest.approx([0.25] * 3)
    assert [r.attempt for r in hook.retries] == [1, 2]
    assert [r.delay for r in hook.retries] == pytest.approx(w.clock.sleeps)
    assert [type(r.caused_by) for r in hook.retries] == [ServiceUnavailable, TransportError]
    assert hook.retries[0].failing_for == pytest.approx(0.25)
    assert hook.retries[1].failing_for == pytest.approx(0.25 + w.clock.sleeps[0] + 0.25)
    assert hook.waits == []  # a get is not a wait


async def test_a_finished_wait_is_reported_with_its_cost_and_lag(make: Make) -> None:
    hook = HookRecorder()
    w = make(script(ok(job("pending")), ok(job("pending")), ok(finished("completed", ago=0.5))), hooks=[hook])
    result = await w.api.wait(JOB_ID, transport="poll")
    [done] = hook.waits
    assert (done.job_id, done.job_ids, done.result, done.transport, done.error) == (
        JOB_ID,
        (),
        "completed",
        "poll",
        None,
    )
    assert done.job == result
    assert done.waited == pytest.approx(w.clock.elapsed)
    assert (done.requests, done.retries) == (3, 0)
    assert done.lag is not None
    assert 0.5 <= done.lag < 1.5  # learned now, finished 0.5 s ago (wall clock)
    assert [r.status for r in hook.requests] == [200, 200, 200]


@pytest.mark.parametrize("raise_on_error", [True, False])
async def test_a_failed_job_is_reported_as_error(make: Make, raise_on_error: bool) -> None:
    hook = HookRecorder()
    w = make(script(ok(finished("error", ago=0.0))), hooks=[hook])
    if raise_on_error:
        with pytest.raises(JobFailed):
            await w.api.wait(JOB_ID)
    else:
        await w.api.wait(JOB_ID, raise_on_error=False)
    [done] = hook.waits
    assert done.result == "error"
    assert isinstance(done.error, JobFailed) if raise_on_error else done.error is None


async def test_a_timed_out_wait_is_reported_as_timeout(make: Make) -> None:
    hook = HookRecorder()
    w = make(timed(100.0), hooks=[hook])
    with pytest.raises(WaitTimeout) as caught:
        await w.api.wait(JOB_ID, timeout=10.0)
    [done] = hook.waits
    assert (done.result, done.error, done.lag) == ("timeout", caught.value, None)
    assert done.waited == pytest.approx(10.0)
    assert done.requests == len(w.server.seen)


async def test_a_wait_that_raises_is_reported_as_failed(make: Make) -> None:
    hook = HookRecorder()
    w = make(script(problem(404, "No such job.")), hooks=[hook])
    with pytest.raises(NotFound) as caught:
        await w.api.wait(JOB_ID)
    [done] = hook.waits
    assert (done.result, done.error, done.requests) == ("failed", caught.value, 1)


async def test_the_spec_status_and_batches_are_reported(make: Make) -> None:
    hook = HookRecorder()
    other = "job_" + "b" * 32
    batch = {"items": [job("completed", id=JOB_ID), job("error", id=other)], "pending": 0}
    w = make(script(ok({"result": "completed"}), ok({"result": "pending"}), ok(batch)), hooks=[hook])
    await w.api.wait()
    await w.api.status(JOB_ID)
    await w.api.wait_many([JOB_ID, other])
    status, batch_wait = hook.waits
    assert (status.job_id, status.result, status.lag) == (None, "completed", None)
    assert (batch_wait.job_id, batch_wait.job_ids, batch_wait.result) == (None, (JOB_ID, other), "error")
    assert [(r.route, r.job_id) for r in hook.requests] == [
        ("/status", None),
        ("/status", JOB_ID),
        ("/v1/jobs/wait", None),
    ]


async def test_a_hook_that_raises_is_logged_and_never_breaks_the_call(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Hook):
        def on_request(self, details: RequestDetails) -> None:
            raise RuntimeError("boom")

        def on_wait(self, details: WaitDetails) -> None:
            raise RuntimeError("boom")

    after = HookRecorder()
    w = make(script(ok(job("pending")), ok(job("completed"))), hooks=[Broken(), after])
    assert (await w.api.wait(JOB_ID)).result == "completed"
    assert len(after.requests) == 2  # the hooks after it were still called
    assert len(after.waits) == 1
    raised = [r for r in caplog.records if "hook" in r.getMessage() and r.exc_info]
    assert len(raised) == 3


def test_hooks_must_be_hooks() -> None:
    with pytest.raises(TypeError, match="Hook instances"):
        Client(URL, hooks=[print])  # type: ignore[list-item]


# --- vtrans.testing ---------------------------------------------------------------------------


@pytest.fixture
def real_client(kind: str) -> Iterator[Callable[[Answer], Api]]:
    """A client on the real ``SystemClock`` (no ``clock=``), its peer answering instantly."""
    made: list[Client | AsyncClient] = []

    def factory(answer: Answer) -> Api:
        n = [0]

        def handler(request: httpx2.Request) -> httpx2.Response:
            n[0] += 1
            return answer(request, n[0] - 1, 0.0)

        client: Client | AsyncClient
        if kind == "sync":
            client = Client(
                URL, http_client=httpx2.Client(base_url=URL, transport=httpx2.MockTransport(handler))
            )
        else:
            http = httpx2.AsyncClient(base_url=URL, transport=httpx2.MockTransport(handler))
            client = AsyncClient(URL, http_client=http)
        made.append(client)
        return Api(client)

    yield factory
    for client in made:
        if isinstance(client, Client):
            client.close()


async def test_set_testing_makes_long_waits_instant(real_client: Callable[[Answer], Api]) -> None:
    api = real_client(script(ok(job("pending", estimated_seconds_remaining=30.0)), ok(job("completed"))))
    started = time.monotonic()
    with vtrans.testing.set_testing(True):
        assert vtrans.testing.is_testing()
        assert (await api.wait(JOB_ID)).result == "completed"
    assert time.monotonic() - started < 2.0
    assert not vtrans.testing.is_testing()


async def test_set_testing_makes_timeouts_and_retries_instant(real_client: Callable[[Answer], Api]) -> None:
    api = real_client(script(problem(503, "Later.", {"Retry-After": "20"}), ok(job("pending"))))
    started = time.monotonic()
    with vtrans.testing.set_testing(True), pytest.raises(WaitTimeout) as caught:
        await api.wait(JOB_ID, timeout=30.0)
    assert time.monotonic() - started < 2.0
    assert caught.value.waited >= 30.0  # 30 virtual seconds passed, deadline and all
    assert caught.value.requests <= 15


# --- memory: what a client learns across waits ------------------------------------------------


@dataclass
class Poll:
    at: float  # virtual seconds since the job's creation (its POST was sent)
    prefer: str | None


class Service:
    """A scripted service of many jobs: ``POST /v1/jobs`` creates the next one, pending for
    ``duration(video_seconds)`` virtual seconds from its POST; ``GET /v1/jobs/{id}`` answers its
    state, and ``polls(id)`` lists those GETs. With ``hints``, pending answers (the create's too)
    carry the exact time left; with ``retry_after``, only a ``Retry-After`` of it, in whole
    seconds, capped at that many. ``holds`` is what it does with ``Prefer: wait=N``: ``"ignore"`` it;
    hold (moving the clock) until the job ends or N seconds pass and say so in every answer
    (``"always"``, as the vtrans service does), or only in pending ones (``"pending"``, as RFC 7240
    allows: ``Preference-Applied`` is optional)."""

    def __init__(
        self,
        clock: FakeClock,
        duration: Callable[[float], float] = lambda video: 10.0,
        *,
        hints: bool = False,
        retry_after: float | None = None,
        holds: str = "ignore",
        result: str = "completed",
    ) -> None:
        self.clock, self.duration, self.hints, self.holds, self.result = clock, duration, hints, holds, result
        self.retry_after = retry_after
        self.jobs: dict[str, tuple[float, float, float]] = {}  # id: (created, ends, video_seconds)
        self.gets: dict[str, list[Poll]] = {}

    def __call__(self, request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if request.method == "POST":
            video = json.loads(request.content)["video_seconds"]
            job_id = f"job_{len(self.jobs):032x}"
            self.jobs[job_id] = (at, at + self.duration(video), video)
            self.gets[job_id] = []
            return ok(self.state(job_id, at), status=201, headers=self.retry_after_header(job_id, at))
        job_id = request.url.path.rsplit("/", 1)[1]
        created, ends, _ = self.jobs[job_id]
        prefer = request.headers.get("prefer")
        self.gets[job_id].append(Poll(at - created, prefer))
        headers = {}
        if prefer and self.holds != "ignore":
            hold = float(prefer.partition("wait=")[2])
            held = max(0.0, min(hold, ends - at))
            self.clock.t += held
            at += held
            if self.holds == "always" or at < ends:
                headers["Preference-Applied"] = f"wait={hold:g}"
        return ok(self.state(job_id, at), headers={**headers, **self.retry_after_header(job_id, at)})

    def retry_after_header(self, job_id: str, at: float) -> dict[str, str]:
        _, ends, _ = self.jobs[job_id]
        if self.retry_after is None or at >= ends:
            return {}
        return {"Retry-After": str(max(1, math.ceil(min(ends - at, self.retry_after))))}

    def state(self, job_id: str, at: float) -> dict[str, Any]:
        created, ends, video = self.jobs[job_id]
        if at >= ends:
            error = {"code": "internal_error", "message": "Boom."} if self.result == "error" else None
            times = {"created_at": stamp(created), "finished_at": stamp(ends)}
            return job(self.result, id=job_id, video_seconds=video, progress=1.0, error=error, **times)
        extra = {"estimated_seconds_remaining": ends - at} if self.hints else {}
        return job(
            "pending", id=job_id, video_seconds=video, progress=(at - created) / (ends - created), **extra
        )

    def polls(self, job_id: str | None) -> list[float]:
        """When the job was polled, in seconds since its POST was sent."""
        return [p.at for p in self.gets[job_id or ""]]


def stamp(at: float) -> str:
    """A virtual time as the service dates a job (RFC 3339)."""
    return datetime.fromtimestamp(at, timezone.utc).isoformat()


#: Fixed phase: without learning, a created job's polls are at exactly 2, 3, 4.5, 6.75 ... s.
LEARN = PollPolicy(first=2.0, factor=1.5, max_interval=30.0, random_phase=False, long_poll=30.0)


def service(
    make: Make, latency: float = 0.0, poll: PollPolicy = LEARN, **kwargs: Any
) -> tuple[World, Service]:
    clock = FakeClock()
    jobs = Service(clock, **kwargs)
    return make(jobs, clock=clock, latency=latency, poll=poll), jobs


def memory(w: World) -> Any:
    return w.api.client.memory


@pytest.mark.parametrize("latency", [0.0, 0.01])
async def test_poll_transport_takes_the_creates_answer_for_the_first_poll(make: Make, latency: float) -> None:
    """Nothing to learn from a GET right after the POST: the schedule starts at the creation, its
    first poll ``first`` after it, and has exactly the polls it implies (one fewer than a wait that
    starts with a poll)."""
    w, jobs = service(make, latency)
    created = await w.api.create("fr", 20.0)
    assert (await w.api.wait(created.id, transport="poll")).result == "completed"
    expected = schedule(LEARN.first, LEARN.factor, until=10.0)[1:]  # 2, 3, 4.5, 6.75, 10.125
    assert jobs.polls(created.id) == pytest.approx(expected, abs=1e-9)
    assert w.server.requests("POST")[0].at == 0.0
    assert all(p.prefer is None for p in jobs.gets[created.id or ""])
    assert memory(w).holds is None  # a wait that never asks learns nothing of holds


@pytest.mark.parametrize("latency", [0.0, 0.01])
async def test_a_creates_estimate_sets_the_first_poll(make: Make, latency: float) -> None:
    """The create's answer said 10 s: the first poll comes before, at its earliest plausible end;
    the next answers close in on the end."""
    w, jobs = service(make, latency, hints=True)
    created = await w.api.create("fr", 20.0)
    assert created.estimated_seconds_remaining == 10.0
    assert (await w.api.wait(created.id, transport="poll")).result == "completed"
    polls = jobs.polls(created.id)
    assert 3.0 < polls[0] < 10.0
    assert 0.0 <= polls[-1] - 10.0 <= LEARN.hint_floor + 2 * latency + 1e-9
    assert len(polls) <= 4


@pytest.mark.parametrize("latency", [0.0, 0.01])
async def test_a_creates_retry_after_sets_the_first_poll(make: Make, latency: float) -> None:
    """A server that gives only ``Retry-After``: the create's (10) says as much as a poll's would,
    so the first poll comes before 10 s, not at the schedule's first point (2 s)."""
    w, jobs = service(make, latency, retry_after=math.inf)
    created = await w.api.create("fr", 20.0)
    assert (await w.api.wait(created.id, transport="poll")).result == "completed"
    polls = jobs.polls(created.id)
    assert 3.0 < polls[0] < 10.0
    assert 0.0 <= polls[-1] - 10.0 <= 0.5 + 2 * latency  # the bound of BENCHMARKS.md
    assert len(polls) <= 4


async def test_a_capped_retry_after_is_learned_and_the_jobs_size_leads_the_search(make: Make) -> None:
    """``Retry-After`` capped at 60 s, on jobs that take 2 s per video-second. The first wait finds
    that "60" is a cap (it said so for longer than 60 s); once ten jobs taught the client how long
    a video-second takes, a job of 400 s is first polled near its end and seen done within 5 % of
    it, in a few requests, where the first waits polled a minute apart."""
    w, jobs = service(make, poll=PollPolicy(), duration=lambda video: 2.0 * video, retry_after=60.0)
    await learn_from(w, jobs, [100.0 + 10 * i for i in range(11)])
    assert memory(w).estimates.cap == 60.0
    created = await w.api.create("fr", 200.0)
    await w.api.wait(created.id, transport="poll")
    polls = jobs.polls(created.id)
    assert 0.0 <= polls[-1] - 400.0 <= 0.05 * 400.0
    assert len(polls) <= 3
    assert len(jobs.polls("job_" + "0" * 32)) >= 4  # the first job: 200 s, a poll a minute


@pytest.mark.parametrize(
    ("expected", "growth"),
    [(300.0, 1.2), ((300.0, 320.0), 1.2), ((300.0, 1800.0), 6 ** (1 / 5)), ((1.0, 1e6), 1.5)],
    ids=["about-300", "narrow", "heygen", "anything"],
)
async def test_the_callers_expected_duration_sets_the_first_poll(
    make: Make, expected: float | tuple[float, float], growth: float
) -> None:
    """No hint from the server, but the caller knows a translation takes, say, 5 to 30 minutes:
    nothing before 300 s after the creation, then polls about 5 steps apart across the range, a
    growth between ``learned_factor`` (x1.2, for a narrow range or a number) and ``factor``."""
    w, jobs = service(make, duration=lambda video: 600.0, poll=dataclasses.replace(LEARN, max_interval=600.0))
    created = await w.api.create("fr", 20.0)
    assert (await w.api.wait(created.id, transport="poll", expected=expected)).result == "completed"
    low = expected if isinstance(expected, float) else expected[0]
    points = [low * growth**i for i in range(40)]
    assert jobs.polls(created.id) == pytest.approx(
        [t for t in points if t < 600.0] + [min(t for t in points if t >= 600.0)]
    )


async def test_the_callers_expected_duration_on_a_spec_status_wait(make: Make) -> None:
    """``GET /status``: nothing is known of the job's creation, so the range counts from the start
    of the wait, whose first poll goes out at once."""
    w = make(timed(600.0), poll=dataclasses.replace(LEARN, max_interval=600.0))
    assert (await w.api.wait(expected=(300.0, 1800.0))).result == "completed"
    growth = 6 ** (1 / 5)
    assert w.server.times == pytest.approx([0.0, 300.0, 300.0 * growth, 300.0 * growth**2])


async def test_a_servers_estimate_beats_the_callers_expectation(make: Make) -> None:
    w, jobs = service(make, hints=True)
    created = await w.api.create("fr", 20.0)
    assert (await w.api.wait(created.id, transport="poll", expected=(300.0, 1800.0))).result == "completed"
    assert jobs.polls(created.id)[-1] < 11.0


@pytest.mark.parametrize("expected", [0.0, -5.0, (10.0, 5.0), (0.0, 5.0), math.nan, (1.0, math.inf)])
async def test_an_impossible_expected_duration_is_refused(expected: float | tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="expected"):
        WaitOptions(expected=expected)


async def test_the_first_sleep_keeps_the_deadline(make: Make) -> None:
    w, jobs = service(make)
    created = await w.api.create("fr", 20.0)
    with pytest.raises(WaitTimeout) as caught:
        await w.api.wait(created.id, timeout=1.0, transport="poll")
    assert jobs.polls(created.id) == pytest.approx([1.0])  # at the deadline, not at 2 s
    assert caught.value.requests == 1


async def test_a_wait_that_starts_after_the_first_point_polls_at_once(make: Make) -> None:
    w, jobs = service(make)
    created = await w.api.create("fr", 20.0)
    w.clock.t += 60.0  # the caller did something else for a minute
    assert (await w.api.wait(created.id, transport="poll")).result == "completed"
    assert jobs.polls(created.id) == pytest.approx([60.0])


@pytest.mark.parametrize("latency", [0.0, 0.01])
async def test_auto_learns_that_the_server_ignores_long_polls(make: Make, latency: float) -> None:
    """The first wait asks for a hold at once, as always; the server ignores it. The next created
    job's wait takes the create's answer for its first poll, like ``transport="poll"``."""
    w, jobs = service(make, latency)
    first = await w.api.create("fr", 20.0)
    assert memory(w).holds is None
    assert (await w.api.wait(first.id)).result == "completed"
    assert jobs.polls(first.id)[0] == pytest.approx(latency)  # at once, on the create's answer
    assert jobs.gets[first.id or ""][0].prefer == "wait=30"
    assert memory(w).holds is False

    second = await w.api.create("fr", 20.0)
    assert (await w.api.wait(second.id)).result == "completed"
    expected = schedule(LEARN.first, LEARN.factor, until=10.0)[1:]
    assert jobs.polls(second.id) == pytest.approx(expected, abs=1e-9)
    assert all(p.prefer is None for p in jobs.gets[second.id or ""][1:])  # asked once at most
    assert memory(w).holds is False


async def test_auto_polls_at_once_on_a_server_that_holds(make: Make) -> None:
    """A server that honours ``Prefer: wait`` sees the end of a job the moment it comes: every
    wait asks at once, and one held request per job is all it takes."""
    w, jobs = service(make, holds="always")
    for n in range(3):
        created = await w.api.create("fr", 20.0)
        start = w.clock.elapsed
        assert (await w.api.wait(created.id)).result == "completed"
        assert [p.prefer for p in jobs.gets[created.id or ""]] == ["wait=30"], n
        assert jobs.polls(created.id)[0] == pytest.approx(start - jobs.jobs[created.id or ""][0])
        assert w.clock.elapsed == pytest.approx(jobs.jobs[created.id or ""][1])  # no lag
        assert memory(w).holds is True


async def test_a_hold_that_ends_with_the_job_is_not_taken_for_a_server_that_ignores_holds(
    make: Make,
) -> None:
    """The server held the poll until the job ended (10 s), and answered the terminal state
    without ``Preference-Applied`` (optional in RFC 7240; the ``holding`` peer above does the
    same). That answer shows nothing of a server that ignores holds: the next wait still asks at
    once."""
    w, jobs = service(make, holds="pending")
    first = await w.api.create("fr", 20.0)
    assert (await w.api.wait(first.id)).result == "completed"
    assert w.clock.elapsed == pytest.approx(10.0)  # it was held
    assert memory(w).holds is not False
    second = await w.api.create("fr", 20.0)
    await w.api.wait(second.id)
    assert jobs.polls(second.id) == pytest.approx([0.0])


@pytest.mark.parametrize("transport", ["poll", "auto"])
async def test_a_second_wait_on_the_same_job_polls_at_once(make: Make, transport: str) -> None:
    w, jobs = service(make)
    if transport == "auto":
        await w.api.wait((await w.api.create("fr", 20.0)).id)  # learn that holds are ignored
    created = await w.api.create("fr", 20.0)
    await w.api.wait(created.id, transport=transport)
    before = len(jobs.polls(created.id))
    again = w.clock.elapsed - jobs.jobs[created.id or ""][0]
    assert (await w.api.wait(created.id, transport=transport)).result == "completed"
    assert jobs.polls(created.id)[before:] == pytest.approx([again])


async def test_a_job_created_by_another_client_is_polled_at_once(make: Make) -> None:
    clock = FakeClock()
    jobs = Service(clock)
    creator = make(jobs, clock=clock, poll=LEARN)
    waiter = make(jobs, clock=clock, poll=LEARN)
    created = await creator.api.create("fr", 20.0)
    assert (await waiter.api.wait(created.id, transport="poll")).result == "completed"
    assert jobs.polls(created.id)[0] == 0.0
    assert len(jobs.polls(created.id)) == len(schedule(LEARN.first, LEARN.factor, until=10.0))


#: Videos of a stream of jobs: enough of them for any warm-up, of varied lengths.
VIDEOS = [40.0, 60.0, 80.0, 100.0, 20.0, 50.0, 70.0, 30.0, 90.0, 45.0] * 4


def learned_first(w: World, video: float) -> float | None:
    """Where the client would first poll a job of ``video`` it created; ``None``: the policy's own
    ``first`` (nothing learned, or not later than ``first``)."""
    policy: PollPolicy = w.api.client.poll
    first: float | None = memory(w).pace.first(policy, video)
    return first if first is not None and first > policy.first else None


async def learn_from(w: World, jobs: Service, videos: list[float], transport: str = "poll") -> None:
    """Create and wait for one job per video."""
    for video in videos:
        created = await w.api.create("fr", video)
        done = await w.api.wait(created.id, transport=transport, raise_on_error=False)
        assert done.result == jobs.result


@pytest.mark.parametrize("latency", [0.0, 0.01])
async def test_after_a_stream_of_jobs_the_first_poll_comes_at_the_learned_pace(
    make: Make, latency: float
) -> None:
    """Jobs take 0.5 s per video-second. After a stream of them, a new job's first poll comes at
    its video times the learned rate: later than the policy's ``first``, twice as late for twice
    the video, and, all jobs being alike, near this one's end (within a factor 2 before, or 20 %
    after); three polls at most see the end, where the schedule from ``first`` takes ten."""
    policy = dataclasses.replace(LEARN, learn_quantile=0.2)
    w, jobs = service(make, latency, policy, duration=lambda video: 0.5 * video)
    await learn_from(w, jobs, VIDEOS)
    first = learned_first(w, 120.0)
    assert first is not None
    assert learned_first(w, 240.0) == pytest.approx(2 * first)
    assert learned_first(w, 12.0) is None or learned_first(w, 12.0) == pytest.approx(first / 10)
    created = await w.api.create("fr", 120.0)
    assert (await w.api.wait(created.id, transport="poll")).result == "completed"
    polls = jobs.polls(created.id)
    assert polls[0] == pytest.approx(first, rel=1e-9)
    assert 0.5 * 60.0 < polls[0] < 1.2 * 60.0
    assert len(polls) <= 3 < len(schedule(LEARN.first, LEARN.factor, until=60.0)) - 1


@pytest.mark.parametrize("latency", [0.0, 0.01])
async def test_auto_on_a_server_that_ignores_holds_learns_too(make: Make, latency: float) -> None:
    """The first wait polls at once after its create (the server might hold): pending, a round
    trip after the creation, which bounds nothing worth learning. (A first job done by the first
    scheduled poll once taught the pace a bound of one round trip.)"""
    policy = dataclasses.replace(LEARN, learn_quantile=0.2)
    w, jobs = service(make, latency, poll=policy, duration=lambda video: 0.5 * video)
    await learn_from(w, jobs, [3.0, *VIDEOS], transport="auto")
    first = learned_first(w, 120.0)
    assert first is not None
    assert 0.5 * 60.0 < first < 1.2 * 60.0
    created = await w.api.create("fr", 120.0)
    await w.api.wait(created.id)
    assert jobs.polls(created.id)[0] == pytest.approx(first, rel=1e-9)


async def test_with_learn_false_the_first_poll_stays_at_first(make: Make) -> None:
    policy = dataclasses.replace(LEARN, learn_quantile=0.2, learn=False)
    w, jobs = service(make, poll=policy, duration=lambda video: 0.5 * video)
    await learn_from(w, jobs, VIDEOS)
    assert learned_first(w, 120.0) is None
    created = await w.api.create("fr", 120.0)
    await w.api.wait(created.id, transport="poll")
    assert jobs.polls(created.id) == pytest.approx(schedule(LEARN.first, LEARN.factor, until=60.0)[1:])


async def test_failed_jobs_teach_nothing(make: Make) -> None:
    """A failure can come at any time before the planned end: it bounds nothing."""
    policy = dataclasses.replace(LEARN, learn_quantile=0.2)
    w, jobs = service(make, poll=policy, result="error", duration=lambda video: 0.5 * video)
    await learn_from(w, jobs, VIDEOS)
    assert learned_first(w, 120.0) is None
    jobs.result = "completed"
    created = await w.api.create("fr", 120.0)
    await w.api.wait(created.id, transport="poll")
    assert jobs.polls(created.id)[0] == pytest.approx(LEARN.first)


async def test_held_waits_teach_nothing(make: Make) -> None:
    """A wait that asks the server to hold its polls does not start from the creation."""
    policy = dataclasses.replace(LEARN, learn_quantile=0.2)
    w, jobs = service(make, poll=policy, holds="always", duration=lambda video: 0.5 * video)
    await learn_from(w, jobs, VIDEOS, transport="auto")
    assert memory(w).holds is True
    assert learned_first(w, 120.0) is None


async def test_waits_that_followed_the_creates_estimate_do_not_push_the_learned_pace_late(
    make: Make,
) -> None:
    """Jobs take 0.5 s per video-second. Once the pace is learned, the service starts sending
    estimates: their waits first poll at half the estimate, not at the learned time, and find
    the job pending, which says nothing of the learned time. After 40 of them, a job whose
    create carries no estimate must still be first polled near its end (as in the test above:
    at most 20 % after it), not long after."""
    policy = dataclasses.replace(LEARN, learn_quantile=0.2)
    w, jobs = service(make, poll=policy, duration=lambda video: 0.5 * video)
    await learn_from(w, jobs, VIDEOS)
    before = learned_first(w, 120.0)
    assert before is not None
    assert before < 1.2 * 60.0
    jobs.hints = True
    await learn_from(w, jobs, VIDEOS)
    jobs.hints = False
    created = await w.api.create("fr", 120.0)
    await w.api.wait(created.id, transport="poll")
    assert jobs.polls(created.id)[0] < 1.2 * 60.0, (before, learned_first(w, 120.0))


async def test_waits_that_start_late_do_not_pull_the_learned_pace_down(make: Make) -> None:
    """Create a batch, then wait for each in turn: all but the first are over before their wait
    starts, and are polled once, at once. Being done by then says nothing of the learned first
    poll, long before: after 5 such batches, a job created and waited for at once is still first
    polled at the learned time."""
    policy = dataclasses.replace(LEARN, learn_quantile=0.2)
    w, jobs = service(make, poll=policy, duration=lambda video: 0.5 * video)
    await learn_from(w, jobs, VIDEOS)
    before = learned_first(w, 120.0)
    assert before is not None
    for _ in range(5):
        batch = [await w.api.create("fr", 120.0) for _ in range(8)]
        for created in batch:
            await w.api.wait(created.id, transport="poll")
    created = await w.api.create("fr", 120.0)
    await w.api.wait(created.id, transport="poll")
    assert jobs.polls(created.id)[0] >= before * 0.9, (before, learned_first(w, 120.0))


async def test_a_stream_of_identical_jobs_on_a_virtual_clock_is_waited_for(make: Make) -> None:
    """Same video, same duration, a clock that only moves when the client sleeps: every job is
    last seen pending at the same time. Every wait still returns its job."""
    w, _ = service(make)
    for n in range(30):
        created = await w.api.create("fr", 20.0)
        assert (await w.api.wait(created.id, transport="poll")).result == "completed", n


async def test_in_testing_mode_nothing_is_remembered(make: Make) -> None:
    """Each call has a clock of its own: a time remembered from another call would mean nothing."""
    answer = script(
        lambda request: ok(job("pending"), status=201) if request.method == "POST" else ok(job("completed"))
    )
    w = make(answer, poll=LEARN)
    with vtrans.testing.set_testing(True):
        created = await w.api.create("fr", 20.0)
        assert (await w.api.wait(created.id)).result == "completed"
        assert (await w.api.wait(created.id, transport="poll")).result == "completed"
    assert len(w.server.requests("GET")) == 2
    assert memory(w).holds is None
    assert memory(w).take(JOB_ID) is None


# --- many jobs at once -------------------------------------------------------------------------

OTHER, THIRD = "job_" + "b" * 32, "job_" + "c" * 32


def sse(*jobs: dict[str, Any], retry: int = 1000) -> httpx2.Response:
    """An event stream of one ``done`` event per job, then its end."""
    frames = [f"retry: {retry}\n\n"]
    frames += [f"event: done\nid: {j['id']}\ndata: {json.dumps(j)}\n\n" for j in jobs]
    return httpx2.Response(
        200, content="".join(frames).encode(), headers={"Content-Type": "text/event-stream"}
    )


def asked_ids(seen: Seen) -> list[str]:
    ids: list[str] = json.loads(seen.request.content)["ids"]
    return ids


async def test_many_jobs_are_waited_for_through_one_stream(make: Make) -> None:
    done = [job("completed", id=i) for i in (JOB_ID, OTHER, THIRD)]
    w = make(script(sse(*done)))
    jobs = await w.api.wait_many([JOB_ID, OTHER, THIRD])
    assert [j.id for j in jobs] == [JOB_ID, OTHER, THIRD]
    [stream] = w.server.seen
    assert stream.request.headers["accept"] == "text/event-stream"
    assert asked_ids(stream) == [JOB_ID, OTHER, THIRD]


async def test_a_stream_that_ends_early_is_followed_by_one_for_the_jobs_left(make: Make) -> None:
    w = make(
        script(sse(job("error", id=OTHER)), sse(job("completed", id=JOB_ID), job("completed", id=THIRD)))
    )
    finished = await w.api.as_completed([JOB_ID, OTHER, THIRD])
    assert [j.id for j in finished] == [OTHER, JOB_ID, THIRD], "in the order they finished"
    first, second = w.server.seen
    assert asked_ids(first) == [JOB_ID, OTHER, THIRD]
    assert asked_ids(second) == [JOB_ID, THIRD], "only the jobs still pending"


async def test_a_server_that_answers_batches_whole_is_long_polled(make: Make) -> None:
    """An older vtrans (or any server without the stream) answers the same request as a held
    long-poll in JSON: the client takes it, and long-polls from then on."""
    first = {"items": [job("completed", id=OTHER)], "pending": 1}
    second = {"items": [job("completed", id=JOB_ID)], "pending": 0}
    held = {"Preference-Applied": "wait=30"}
    w = make(script(ok(first, headers=held), ok(second, headers=held)))
    jobs = await w.api.wait_many([JOB_ID, OTHER])
    assert [j.id for j in jobs] == [JOB_ID, OTHER]
    opened, polled = w.server.seen
    assert opened.request.headers["accept"] == "text/event-stream"
    assert "accept" not in polled.request.headers or polled.request.headers["accept"] != "text/event-stream"
    assert polled.request.headers["prefer"] == "wait=30"
    assert asked_ids(polled) == [JOB_ID]


@pytest.mark.parametrize(
    "no_route",
    [problem(404, "There is no resource at /v1/jobs/wait."), html(404)],
    ids=["problem", "html"],
)
async def test_a_server_without_batches_has_each_job_polled(make: Make, no_route: httpx2.Response) -> None:
    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        if request.url.path == "/v1/jobs/wait":
            return httpx2.Response(no_route.status_code, headers=no_route.headers, content=no_route.content)
        job_id = request.url.path.rsplit("/", 1)[1]
        return ok(job("completed" if at >= 1 else "pending", id=job_id))

    w = make(answer, poll=SCHEDULE)
    jobs = await w.api.wait_many([JOB_ID, OTHER])
    assert [j.result for j in jobs] == ["completed", "completed"]
    paths = [s.request.url.path for s in w.server.seen]
    assert paths[0] == "/v1/jobs/wait"
    assert paths.count("/v1/jobs/wait") == 1, "asked once, then polled each"
    assert {p for p in paths[1:]} == {f"/v1/jobs/{JOB_ID}", f"/v1/jobs/{OTHER}"}


# --- progress while waiting ---------------------------------------------------------------------


def stepping(done_at: float, clock: FakeClock, step: float = 0.25) -> Answer:
    """A server that honours holds and progress steps: a held poll ends at the next step of a job
    whose progress grows linearly to ``done_at``."""

    def answer(request: httpx2.Request, n: int, at: float) -> httpx2.Response:
        prefer = request.headers.get("prefer", "")
        if at >= done_at:
            return ok(job("completed", progress=1.0))
        if "progress=" not in prefer:
            clock.t += done_at - at
            return ok(job("completed", progress=1.0), headers={"Preference-Applied": "wait=30"})
        next_step = min(done_at, (math.floor(at / done_at / step + 1e-9) + 1) * step * done_at)
        clock.t += next_step - at
        progress = round(next_step / done_at, 6)
        body = job("completed", progress=1.0) if next_step >= done_at else job("pending", progress=progress)
        return ok(body, headers={"Preference-Applied": "wait=30, progress"})

    return answer


async def test_following_progress_asks_for_holds_that_end_at_each_step(make: Make) -> None:
    clock = FakeClock()
    w = make(stepping(100.0, clock), clock=clock, poll=dataclasses.replace(SCHEDULE, progress_step=0.25))
    seen: list[Job] = []
    await w.api.wait(JOB_ID, on_progress=seen.append)
    assert [j.progress for j in seen] == [0.25, 0.5, 0.75, 1.0]
    assert all(s.request.headers["prefer"] == "wait=30, progress=0.25" for s in w.server.seen)
    assert w.clock.sleeps == [], "each stepped answer is followed by the next hold at once"


async def test_without_a_progress_callback_holds_are_whole(make: Make) -> None:
    clock = FakeClock()
    w = make(stepping(100.0, clock), clock=clock, poll=SCHEDULE)
    assert (await w.api.wait(JOB_ID)).result == "completed"
    [only] = w.server.seen
    assert only.request.headers["prefer"] == "wait=30"


async def test_watch_follows_progress_too(make: Make) -> None:
    clock = FakeClock()
    w = make(stepping(40.0, clock, 0.1), clock=clock, poll=SCHEDULE)
    states = await w.api.watch(JOB_ID)
    assert len(states) == 10
    assert states[-1].result == "completed"
