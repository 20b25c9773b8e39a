"""Zero-lag waiting on the real service: long-poll, Server-Sent Events, signed webhooks, batches.

Every test runs the service as a process on 127.0.0.1 and watches the wire: an ``httpx2`` event
hook records each request the client sends and each answer it gets, and a small webhook receiver
(``http.server`` in a thread) records each delivery. Jobs are pinned to short timelines
(``simulate``); nothing sleeps to synchronise — tests poll with a bounded deadline.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import random
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread
import httpx2
import msgspec
import pytest

import vtrans
from servers.receiver import Receiver
from vtrans.protocol import Job, Simulate, parse_prefer_wait, sign_webhook
from vtrans.webhooks import WebhookVerificationError, verify

pytestmark = pytest.mark.integration

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
KINDS = ("sync", "async")

#: The signing secret of the services here: ``whsec_`` and 32 random bytes in base64.
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
#: Webhooks signed with SECRET, retried quickly (3 retries, 0.2 s apart) so retries fit in a test.
PUSH_ARGS = ("--webhook-secret", SECRET, "--webhook-retry-delays", "0.2,0.2,0.2")
#: The hold the client asks for by default (``PollPolicy.long_poll``; under the service's 60 s cap).
#: Waits here have timeouts over 30.5 s, so that the hold is not cut to end before their deadline.
ASKED_WAIT = 30
#: Detection lag allowed for a push transport: one round trip, loosely (a noisy VM).
MAX_LAG = 0.5


class Service(Protocol):
    """What these tests use of ``conftest.ServiceProcess``."""

    url: str

    def start(self) -> object: ...

    def kill(self) -> None: ...

    def log_tail(self, lines: int = 40) -> str: ...


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def push(module_service_factory: Callable[..., Service]) -> Service:
    """One service for the module: default long-poll cap (60 s), webhooks signed with SECRET."""
    return module_service_factory(*PUSH_ARGS)


# --- watching the wire ------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """A request as sent, or an answer as received (``status`` 0 for a request)."""

    at: float  # time.time()
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    status: int = 0


@dataclass
class Recorder:
    """Every request an ``httpx2`` client sends and every answer it receives, via event hooks."""

    sent: list[Exchange] = field(default_factory=list)
    answers: list[Exchange] = field(default_factory=list)

    def on_request(self, request: httpx2.Request) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.sent.append(Exchange(time.time(), request.method, request.url.path, headers))

    def on_response(self, response: httpx2.Response) -> None:
        request = response.request
        headers = {k.lower(): v for k, v in response.headers.items()}
        self.answers.append(
            Exchange(time.time(), request.method, request.url.path, headers, response.status_code)
        )

    def sync_client(self, url: str) -> httpx2.Client:
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [self.on_request],
            "response": [self.on_response],
        }
        return httpx2.Client(base_url=url, timeout=10.0, event_hooks=hooks)

    def async_client(
        self, url: str, transport: httpx2.AsyncBaseTransport | None = None
    ) -> httpx2.AsyncClient:
        async def on_request(request: httpx2.Request) -> None:
            self.on_request(request)

        async def on_response(response: httpx2.Response) -> None:
            self.on_response(response)

        hooks: dict[str, list[Callable[..., Any]]] = {"request": [on_request], "response": [on_response]}
        return httpx2.AsyncClient(base_url=url, timeout=10.0, event_hooks=hooks, transport=transport)

    def requests(self, method: str, path: str) -> list[Exchange]:
        return [r for r in self.sent if r.method == method and r.path == path]

    def replies(self, method: str, path: str) -> list[Exchange]:
        return [r for r in self.answers if r.method == method and r.path == path]


class Api:
    """A ``vtrans.Client`` (called in a worker thread) or a ``vtrans.AsyncClient``, the same way."""

    def __init__(self, kind: str, url: str, **kwargs: Any) -> None:
        self.kind, self.rec = kind, Recorder()
        self.sync: vtrans.Client | None = None
        self.aio: vtrans.AsyncClient | None = None
        if kind == "sync":
            self.sync = vtrans.Client(url, http_client=self.rec.sync_client(url), **kwargs)
        else:
            self.aio = vtrans.AsyncClient(url, http_client=self.rec.async_client(url), **kwargs)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``client.name(*args, **kwargs)``; an iterator's items come back as a list."""
        items: list[Any] = []
        if self.sync is not None:
            method = getattr(self.sync, name)

            def run() -> Any:
                result = method(*args, **kwargs)
                if isinstance(result, Iterator):
                    items.extend(result)
                    return items
                return result

            return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        assert self.aio is not None
        result = getattr(self.aio, name)(*args, **kwargs)
        if isinstance(result, AsyncIterator):
            async for item in result:
                items.append(item)
            return items
        return await result

    async def each(self, name: str, on_item: Callable[[Any], object], *args: Any, **kwargs: Any) -> None:
        """Iterate ``client.name(*args, **kwargs)``, calling ``on_item`` with each item as it comes."""
        if self.sync is not None:
            method = getattr(self.sync, name)

            def run() -> None:
                for item in method(*args, **kwargs):
                    on_item(item)

            await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
            return
        assert self.aio is not None
        async for item in getattr(self.aio, name)(*args, **kwargs):
            on_item(item)

    async def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.aio is not None:
            await self.aio.aclose()


@pytest.fixture
async def api() -> AsyncIterator[Callable[..., Api]]:
    """``api(kind, url, **client_kwargs)``: a recorded client of either kind, closed at teardown."""
    made: list[Api] = []

    def make(kind: str, url: str, **kwargs: Any) -> Api:
        made.append(Api(kind, url, **kwargs))
        return made[-1]

    yield make
    for each in made:
        await each.close()


async def eventually(predicate: Callable[[], T | None], within: float, message: str) -> T:
    """Poll ``predicate`` (without blocking the event loop) until it is truthy; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {message}")
        await anyio.sleep(0.01)


def finished_at(job: Job) -> float:
    assert job.finished_at is not None, job
    return job.finished_at.timestamp()


def ids_path(job: Job) -> str:
    assert job.id is not None
    return f"/v1/jobs/{job.id}"


# --- 1. long-poll -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_wait_is_one_held_get_with_no_lag(push: Service, api: Callable[..., Api], kind: str) -> None:
    client = api(kind, push.url)
    job = await client.call("create", "es", 90, simulate={"duration_seconds": 2.5})
    done = await client.call("wait", job.id, timeout=45)
    returned = time.time()

    assert done.result == "completed"
    assert done.id == job.id
    lag = returned - finished_at(done)
    assert 0 <= lag < MAX_LAG, f"wait() learned of the end {lag:.3f} s late"
    assert finished_at(done) - job.created_at.timestamp() == pytest.approx(2.5, abs=0.05)

    path = ids_path(job)
    assert [(r.method, r.path) for r in client.rec.sent[:1]] == [("POST", "/v1/jobs")]
    gets = client.rec.requests("GET", path)
    assert len(client.rec.sent) == 1 + len(gets), client.rec.sent
    assert 1 <= len(gets) <= 2, f"{len(gets)} GETs for one 2.5 s job"
    for get in gets:
        assert parse_prefer_wait(get.headers.get("prefer")) == ASKED_WAIT, get.headers
    for answer in client.rec.replies("GET", path):
        assert answer.status == 200
        assert answer.headers.get("preference-applied") == f"wait={ASKED_WAIT}", answer.headers
        assert "prefer" in answer.headers.get("vary", "").lower()
    # The first GET was held by the service until the job ended, not answered at once.
    first_answer = client.rec.replies("GET", path)[0]
    assert first_answer.at - gets[0].at > 2.0


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_a_progress_callback_gets_each_step_through_held_polls(
    push: Service, api: Callable[..., Api], kind: str
) -> None:
    """The default transport, with ``on_progress``: each held GET ends at the next 10 % of the
    job's progress, so the callback sees it move — one request per step, no lag at the end."""
    client = api(kind, push.url)
    job = await client.call("create", "es", 90, simulate={"duration_seconds": 3, "outcome": "completed"})
    seen: list[Job] = []
    done = await client.call("wait", job.id, timeout=45, on_progress=seen.append)
    assert time.time() - finished_at(done) < MAX_LAG
    progress = [state.progress or 0.0 for state in seen]
    assert progress == sorted(progress)
    assert len(progress) >= 8, progress
    steps = [b - a for a, b in itertools.pairwise(progress[:-1])]
    assert all(0.099 <= step < 0.14 for step in steps), progress  # a step of 10 %, plus the trip
    gets = client.rec.requests("GET", ids_path(job))
    assert 9 <= len(gets) <= 12, f"{len(gets)} GETs for ten steps"
    assert all(g.headers["prefer"] == f"wait={ASKED_WAIT}, progress=0.1" for g in gets)
    answers = client.rec.replies("GET", ids_path(job))
    assert all(a.headers["preference-applied"] == f"wait={ASKED_WAIT}, progress" for a in answers)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_poll_transport_never_asks_the_server_to_hold(
    push: Service, api: Callable[..., Api], kind: str
) -> None:
    client = api(kind, push.url)
    job = await client.call("create", "es", 90, simulate={"duration_seconds": 1.0})
    done = await client.call("wait", job.id, timeout=20, transport="poll")
    assert done.result == "completed"
    gets = client.rec.requests("GET", ids_path(job))
    assert len(gets) >= 2, "a 1 s job is polled (answered at once), so it takes more than one GET"
    assert all("prefer" not in get.headers for get in gets), gets
    assert all("preference-applied" not in a.headers for a in client.rec.answers), client.rec.answers


def test_long_poll_hold_is_cut_before_the_deadline(push: Service) -> None:
    rec = Recorder()
    with vtrans.Client(push.url, http_client=rec.sync_client(push.url)) as client:
        job = client.create("es", 90, simulate={"duration_seconds": 60})
        assert job.id is not None
        started = time.monotonic()
        with pytest.raises(vtrans.WaitTimeout) as caught:
            client.wait(job.id, timeout=1.5)
        waited = time.monotonic() - started
        client.cancel(job.id)
    assert 1.4 <= waited < 2.5, f"a 1.5 s timeout took {waited:.2f} s (the hold must not outlast it)"
    assert caught.value.job is not None
    assert caught.value.job.result == "pending"
    holds = [parse_prefer_wait(r.headers.get("prefer")) for r in rec.requests("GET", ids_path(job))]
    assert holds, rec.sent
    assert all(h is None or h <= 1.5 for h in holds), holds


def test_a_capped_hold_is_followed_by_the_next_hold_at_once(service_factory: Callable[..., Service]) -> None:
    """With ``--max-wait 1`` a 3.5 s job costs about ⌈D/W⌉ + 1 held GETs: each answer says
    ``Preference-Applied: wait=1``, the client asks again at once, and learns of the end at once."""
    svc = service_factory("--max-wait", "1")
    rec = Recorder()
    duration, cap = 3.5, 1
    with vtrans.Client(svc.url, http_client=rec.sync_client(svc.url)) as client:
        job = client.create("es", 90, simulate={"duration_seconds": duration})
        done = client.wait(job.id, timeout=45)
        returned = time.time()
    assert done.result == "completed"
    path = ids_path(job)
    gets, answers = rec.requests("GET", path), rec.replies("GET", path)
    assert all(parse_prefer_wait(g.headers.get("prefer")) == ASKED_WAIT for g in gets), gets
    assert all(a.headers.get("preference-applied") == f"wait={cap}" for a in answers), answers
    # Every held (still pending) answer is followed by the next GET at once, not by a sleep on
    # the service's estimate: the service is already pushing.
    gaps = [nxt.at - answer.at for answer, nxt in zip(answers, gets[1:], strict=False)]
    assert all(gap < 0.25 for gap in gaps), f"gaps after a full {cap} s hold: {gaps}"
    expected = math.ceil(duration / cap) + 1
    assert expected - 1 <= len(gets) <= expected + 1, f"{len(gets)} GETs; expected about {expected}"
    assert returned - finished_at(done) < MAX_LAG


# --- 2. cancellation wakes waiters ------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["long-poll", "sse", "events"])
@pytest.mark.parametrize("kind", KINDS)
async def test_cancellation_wakes_a_waiter_at_once(
    push: Service, api: Callable[..., Api], kind: str, how: str
) -> None:
    client = api(kind, push.url)
    job = await client.call("create", "fr", 600, simulate={"duration_seconds": 60})
    path = ids_path(job)
    seen: list[Job] = []
    outcome: dict[str, Any] = {}

    async def waiter() -> None:
        try:
            if how == "events":
                await client.each("events", seen.append, job.id, timeout=45)
            else:
                transport = "sse" if how == "sse" else "auto"
                await client.call("wait", job.id, timeout=45, on_progress=seen.append, transport=transport)
        except vtrans.JobFailed as exc:
            outcome["failed"] = exc
        outcome["at"] = time.time()

    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            if how == "long-poll":
                await eventually(lambda: client.rec.requests("GET", path), 5, "the long-poll to go out")
            else:  # the stream is open and the service in its loop once the first event came
                await eventually(lambda: seen, 5, "the first event of the stream")
            async with httpx2.AsyncClient(base_url=push.url, timeout=5.0) as http:
                cancelled_at = time.time()
                response = await http.delete(path)
            assert response.status_code == 200, response.text
            assert response.json()["error"]["code"] == "cancelled"

    woke = outcome["at"] - cancelled_at
    assert woke < 1.0, f"the waiter learned of the cancellation {woke:.2f} s after the DELETE"
    if how == "events":
        assert seen[-1].result == "error"
        assert seen[-1].error is not None
        assert seen[-1].error.code == "cancelled"
        assert all(state.result == "pending" for state in seen[:-1])
    else:
        failed = outcome.get("failed")
        assert isinstance(failed, vtrans.JobFailed), outcome
        assert failed.code == "cancelled"
        assert failed.job.id == job.id
    if how == "long-poll":
        # One GET, held by the service across the DELETE, then woken by it.
        gets, answers = client.rec.requests("GET", path), client.rec.replies("GET", path)
        assert len(gets) == 1, gets
        assert gets[0].at < cancelled_at <= answers[0].at
        # With a progress callback, the hold would also have ended at the job's next 10 %.
        assert answers[0].headers.get("preference-applied") == f"wait={ASKED_WAIT}, progress"
    else:
        assert len(client.rec.requests("GET", f"{path}/events")) == 1, client.rec.sent


# --- 3. Server-Sent Events --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_events_yield_progress_then_the_terminal_state(
    push: Service, api: Callable[..., Api], kind: str
) -> None:
    client = api(kind, push.url)
    job = await client.call("create", "de", 120, simulate={"duration_seconds": 1.5})
    arrivals: list[tuple[float, Job]] = []
    await client.each("events", lambda state: arrivals.append((time.time(), state)), job.id, timeout=45)

    states = [state for _, state in arrivals]
    assert len(states) >= 3, states  # progress at the start, after ~1 s, then the end
    assert all(state.result == "pending" for state in states[:-1])
    progress = [state.progress or 0.0 for state in states[:-1]]
    assert progress == sorted(progress)
    assert progress[-1] > 0
    last_at, last = arrivals[-1]
    assert last.result == "completed"
    assert last.progress == 1.0
    assert last_at - finished_at(last) < MAX_LAG
    assert len(client.rec.requests("GET", f"{ids_path(job)}/events")) == 1, client.rec.sent


@dataclass(frozen=True)
class Frame:
    event: str
    id: str
    data: dict[str, Any]


def read_stream(
    http: httpx2.Client, path: str, headers: dict[str, str] | None = None
) -> tuple[str, list[Frame]]:
    """The raw stream until the service closes it: its ``retry:`` value and its events."""
    retry, frames, fields = "", [], dict[str, str]()
    with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers.get("cache-control") == "no-store"
        for line in response.iter_lines():
            if not line:
                if "event" in fields:
                    frames.append(Frame(fields["event"], fields["id"], msgspec.json.decode(fields["data"])))
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if name == "retry":
                retry = value.strip()
            else:
                fields[name] = value.removeprefix(" ")
    return retry, frames


def test_the_raw_stream_resumes_and_never_loses_the_end(push: Service) -> None:
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        job = http.post(
            "/v1/jobs", json={"language": "it", "video_seconds": 30, "simulate": {"duration_seconds": 1.2}}
        )
        assert job.status_code == 201
        path = f"/v1/jobs/{job.json()['id']}/events"

        retry, frames = read_stream(http, path)
        assert retry.isdigit()
        assert int(retry) > 0
        assert [f.event for f in frames[:-1]] == ["progress"] * (len(frames) - 1)
        assert len(frames) >= 2
        assert frames[-1].event == "done"
        assert frames[-1].id == "done"
        assert frames[-1].data["result"] == "completed"
        ids = [f.id for f in frames[:-1]]
        assert all(i.startswith("p") and i[1:].isdigit() for i in ids), ids
        assert len(set(ids)) == len(ids), ids
        assert all(f.data["result"] == "pending" for f in frames[:-1])
        assert all(int(f.id[1:]) == int(f.data["progress"] * 100) for f in frames[:-1]), frames

        # Reconnecting after the end with the last progress id still gets the terminal event.
        retry_again, resumed = read_stream(http, path, {"Last-Event-ID": ids[-1]})
        assert retry_again == retry
        assert [(f.event, f.id) for f in resumed] == [("done", "done")]
        assert resumed[0].data == frames[-1].data


def test_a_resumed_stream_does_not_repeat_the_event_it_was_resumed_from(push: Service) -> None:
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        # Progress stays at 0 % for seconds: a 1000 s job (progress = fraction ** 0.8 at most).
        created = http.post(
            "/v1/jobs", json={"language": "ja", "video_seconds": 60, "simulate": {"duration_seconds": 1000}}
        )
        job_id = created.json()["id"]
        path = f"/v1/jobs/{job_id}/events"

        def first_event(headers: dict[str, str], then: Callable[[], object] = lambda: None) -> Frame:
            fields: dict[str, str] = {}
            with http.stream("GET", path, headers=headers) as response:
                for line in response.iter_lines():
                    if line.startswith("retry:"):
                        then()  # the service is in its loop: what it sends next it sends now
                    elif line.startswith(("event:", "id:", "data:")):
                        name, _, value = line.partition(":")
                        fields[name] = value.strip()
                    elif not line and "event" in fields:
                        return Frame(fields["event"], fields["id"], msgspec.json.decode(fields["data"]))
            raise AssertionError("the stream ended without an event")

        fresh = first_event({})
        assert (fresh.event, fresh.id) == ("progress", "p0")

        def cancel() -> None:
            assert http.delete(f"/v1/jobs/{job_id}").status_code == 200

        resumed = first_event({"Last-Event-ID": "p0"}, then=cancel)
        assert (resumed.event, resumed.id) == ("done", "done"), "p0 was sent again after Last-Event-ID: p0"
        assert resumed.data["error"]["code"] == "cancelled"


@pytest.mark.anyio
async def test_a_stream_sends_keep_alives_and_ends_at_its_lifetime() -> None:
    """Not configurable from the command line: the stream generator itself, with a short
    keep-alive and lifetime (the client then reconnects with ``Last-Event-ID``)."""
    from vtrans.protocol import JobCreate
    from vtrans.server.config import ServerConfig, StreamConfig
    from vtrans.server.http.events import frames as sse_frames
    from vtrans.server.service import Service
    from vtrans.server.stores.memory import MemoryStore

    stream = StreamConfig(progress_interval=5.0, keepalive=0.1, max_lifetime=0.45, retry_ms=250)
    service = Service(ServerConfig(store="memory", stream=stream), MemoryStore())
    await service.start()
    view, _ = await service.create(JobCreate("fr", 60, simulate=Simulate(duration_seconds=1000)), tenant="")
    frames: list[bytes] = []
    started = time.monotonic()
    with anyio.fail_after(3):
        async for chunk in sse_frames(await service.events(view.job.id, None, tenant=""), stream.retry_ms):
            frames.append(chunk)
    lived = time.monotonic() - started
    await service.stop()
    assert frames[0] == b"retry: 250\n\n"
    assert frames[1].startswith(b"event: progress\nid: p0\n")
    assert frames[-1] == frames[0], "a stream that ends before its job ends with its retry hint"
    keep_alives = frames[2:-1]
    assert all(f == b": keep-alive\n\n" for f in keep_alives), frames
    assert 3 <= len(keep_alives) <= 5, frames
    assert 0.44 <= lived < 1.5


@pytest.mark.anyio
async def test_the_client_resumes_a_stream_that_reached_its_lifetime() -> None:
    """In process (``create_app`` over ``httpx2.ASGITransport``), because the stream's lifetime is
    not configurable from the command line: each stream lives 0.5 s, the job 1.6 s. The client
    reconnects with ``Last-Event-ID`` each time and still ends with the terminal state."""
    from vtrans.server.config import ServerConfig, StreamConfig
    from vtrans.server.http import create_app

    stream = StreamConfig(progress_interval=0.2, keepalive=0.1, max_lifetime=0.5)
    app = create_app(ServerConfig(store="memory", status_delay_min=1, status_delay_max=1, stream=stream))
    rec = Recorder()
    http = rec.async_client("http://vtrans.test", transport=httpx2.ASGITransport(app=app))
    await app.service.start()  # ASGITransport runs no lifespan
    async with vtrans.AsyncClient("http://vtrans.test", http_client=http) as client:
        job = await client.create("fr", 10, simulate={"duration_seconds": 1.6, "outcome": "completed"})
        assert job.id is not None
        with anyio.fail_after(10):
            states = [state async for state in client.events(job.id, timeout=45)]
    await app.service.stop()

    streams = rec.requests("GET", f"{ids_path(job)}/events")
    assert 3 <= len(streams) <= 5, streams  # a new stream every 0.5 s for 1.6 s
    resumed_from = [r.headers.get("last-event-id") for r in streams]
    assert resumed_from[0] is None
    assert all(i is not None and i.startswith("p") for i in resumed_from[1:]), resumed_from
    assert states[-1].result == "completed"
    pending = [state.progress or 0.0 for state in states[:-1]]
    assert all(state.result == "pending" for state in states[:-1])
    assert pending == sorted(pending)
    assert len(set(pending)) == len(pending), "a resumed stream repeated a progress event"


# --- 4. webhooks ------------------------------------------------------------------------------


def create_with_callback(http: httpx2.Client, url: str, **simulate: Any) -> dict[str, Any]:
    body = {"language": "pt", "video_seconds": 45, "callback_url": url, "simulate": simulate}
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def delivery(http: httpx2.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/jobs/{job_id}/webhook")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def settled(http: httpx2.Client, job_id: str, state: str) -> Callable[[], dict[str, Any] | None]:
    """A predicate: the job's delivery once it is in ``state``."""

    def check() -> dict[str, Any] | None:
        found = delivery(http, job_id)
        return found if found["state"] == state else None

    return check


def test_a_finished_job_is_posted_once_signed(
    push: Service, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver()
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        job = create_with_callback(http, hooks.url, duration_seconds=0.5)
        state = wait_until(settled(http, job["id"], "delivered"), 5.0, message="the webhook to be delivered")
        got = hooks.hooks
        final = http.get(f"/v1/jobs/{job['id']}").json()

    assert len(got) == 1, got
    [hook] = got
    assert (hook.method, hook.path) == ("POST", "/hooks/vtrans")
    assert hook.headers["content-type"].startswith("application/json")
    assert timestamp(final["finished_at"]) - 0.05 <= hook.at < timestamp(final["finished_at"]) + 1.0, (
        "sent when the job ended"
    )
    assert state["attempts"] == 1
    assert state["id"] == hook.headers["webhook-id"]
    assert state["last_error"] is None
    assert hook.headers["webhook-signature"].startswith("v1,")
    stamp = hook.headers["webhook-timestamp"]
    assert stamp.isdigit()
    assert abs(int(stamp) - hook.at) < 5

    event = verify(hook.body, hook.headers, SECRET)
    assert event.type == "job.completed"
    assert event.data.id == job["id"]
    assert event.data.result == "completed"
    assert event.data.callback_url == hooks.url
    assert abs(event.timestamp.timestamp() - int(stamp)) < 2

    # What a receiver must refuse.
    tampered = hook.body.replace(b"job.completed", b"job.failed")
    assert tampered != hook.body
    with pytest.raises(WebhookVerificationError):
        verify(tampered, hook.headers, SECRET)
    with pytest.raises(WebhookVerificationError):
        verify(hook.body, hook.headers, "whsec_" + base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(WebhookVerificationError):
        verify(hook.body, {**hook.headers, "webhook-id": "msg_someone_else"}, SECRET)
    with pytest.raises(WebhookVerificationError):  # replayed 6 minutes later
        verify(hook.body, hook.headers, SECRET, now=int(stamp) + 360)
    assert verify(hook.body, hook.headers, SECRET, now=int(stamp) + 240).data.id == job["id"]
    # A validly signed delivery with an old timestamp is still refused: a replay.
    old = int(stamp) - 600
    replayed = {
        **hook.headers,
        "webhook-timestamp": str(old),
        "webhook-signature": sign_webhook(SECRET, hook.headers["webhook-id"], old, hook.body),
    }
    with pytest.raises(WebhookVerificationError):
        verify(hook.body, replayed, SECRET)
    assert verify(hook.body, replayed, SECRET, now=old).data.id == job["id"]  # only the time is wrong


def timestamp(value: str | None) -> float:
    """A wire timestamp (RFC 3339, ``Z``) as Unix seconds."""
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_a_failed_job_is_posted_as_job_failed(
    push: Service, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver()
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        job = create_with_callback(http, hooks.url, duration_seconds=0.3, error_code="no_speech_detected")
        wait_until(settled(http, job["id"], "delivered"), 5.0, message="the webhook to be delivered")
    [hook] = hooks.hooks
    event = verify(hook.body, hook.headers, SECRET)
    assert event.type == "job.failed"
    assert event.data.id == job["id"]
    assert event.data.result == "error"
    assert event.data.error is not None
    assert event.data.error.code == "no_speech_detected"


def test_a_failing_receiver_gets_the_same_webhook_again(
    push: Service, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver(failures=2)
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        job = create_with_callback(http, hooks.url, duration_seconds=0.3)
        state = wait_until(settled(http, job["id"], "delivered"), 5.0, message="the third attempt")
    got = hooks.hooks
    assert len(got) == 3, got
    assert len({hook.headers["webhook-id"] for hook in got}) == 1
    assert state["id"] == got[0].headers["webhook-id"]
    assert state["attempts"] == 3
    assert state["last_error"] is None
    for hook in got:
        assert verify(hook.body, hook.headers, SECRET).data.id == job["id"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert all(0.15 <= gap < 1.5 for gap in gaps), f"retries 0.2 s apart expected: {gaps}"


def test_a_receiver_that_keeps_failing_is_given_up_on(
    push: Service, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver(failures=1000)
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        job = create_with_callback(http, hooks.url, duration_seconds=0.2)
        state = wait_until(settled(http, job["id"], "failed"), 5.0, message="the delivery to be abandoned")
    assert state["attempts"] == 4  # the first try and 3 retries
    assert state["last_error"] == "HTTP 500"
    assert len(hooks.hooks) == 4


def test_410_gone_stops_the_deliveries(
    push: Service, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver(status=410)
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        job = create_with_callback(http, hooks.url, duration_seconds=0.2)
        state = wait_until(settled(http, job["id"], "gone"), 5.0, message="the delivery to be gone")
    assert state["attempts"] == 1
    assert len(hooks.hooks) == 1


def test_a_cancelled_jobs_webhook_goes_out_at_once(
    push: Service, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver()
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        job = create_with_callback(http, hooks.url, duration_seconds=60)
        cancelled_at = time.time()
        assert http.delete(f"/v1/jobs/{job['id']}").status_code == 200
        [hook] = wait_until(lambda: hooks.hooks, 3.0, message="the webhook of the cancelled job")
    assert hook.at - cancelled_at < 1.0
    event = verify(hook.body, hook.headers, SECRET)
    assert event.type == "job.failed"
    assert event.data.error is not None
    assert event.data.error.code == "cancelled"


def test_the_webhook_secret_is_published(push: Service) -> None:
    with httpx2.Client(base_url=push.url, timeout=10.0) as http:
        response = http.get("/v1/webhook-secret")
    assert response.status_code == 200
    assert response.json() == {"secret": SECRET}


def test_a_delivery_due_while_the_service_was_down_is_sent_after_a_restart(
    service_factory: Callable[..., Service], receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    svc = service_factory(*PUSH_ARGS)
    hooks = receiver()
    with httpx2.Client(base_url=svc.url, timeout=10.0) as http:
        job = create_with_callback(http, hooks.url, duration_seconds=1.5)
    svc.kill()  # kill -9, well before the job ends
    ends_at = timestamp(job["created_at"]) + 1.5
    wait_until(lambda: time.time() > ends_at + 0.3, 5.0, message="the job's end to pass")
    assert hooks.hooks == [], "a dead service sent a webhook"

    svc.start()  # same port, same SQLite file
    [hook] = wait_until(lambda: hooks.hooks, 5.0, message="the delivery after the restart")
    event = verify(hook.body, hook.headers, SECRET)
    assert event.type == "job.completed"
    assert event.data.id == job["id"]
    with httpx2.Client(base_url=svc.url, timeout=10.0) as http:
        state = wait_until(settled(http, job["id"], "delivered"), 5.0, message="the delivery to be recorded")
    assert state["attempts"] == 1


# --- 5. many jobs -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_wait_many_and_as_completed_over_300_jobs(push: Service) -> None:
    count = 300
    plan = [(0.5 + 0.25 * (i % 11), "error" if i % 7 == 3 else "completed") for i in range(count)]
    ids: list[str] = [""] * count
    async with httpx2.AsyncClient(base_url=push.url, timeout=10.0) as http:
        limit = anyio.Semaphore(16)

        async def create(i: int) -> None:
            duration, outcome = plan[i]
            body = {
                "language": "fr",
                "video_seconds": 60,
                "simulate": {"duration_seconds": duration, "outcome": outcome},
            }
            async with limit:
                response = await http.post("/v1/jobs", json=body)
            assert response.status_code == 201, response.text
            ids[i] = response.json()["id"]

        async with anyio.create_task_group() as group:
            for i in range(count):
                group.start_soon(create, i)

    many_rec, each_rec = Recorder(), Recorder()
    many_client = vtrans.Client(push.url, http_client=many_rec.sync_client(push.url))
    each_client = vtrans.AsyncClient(push.url, http_client=each_rec.async_client(push.url))
    results: dict[str, Any] = {}
    arrivals: list[tuple[float, Job]] = []

    async def run_wait_many() -> None:
        results["jobs"] = await anyio.to_thread.run_sync(lambda: many_client.wait_many(ids, timeout=45))
        results["at"] = time.time()

    async def run_as_completed() -> None:
        async for job in each_client.as_completed(ids, timeout=45):
            arrivals.append((time.time(), job))

    started = time.time()  # jobs that ended before (creating 300 takes a while) are due at once
    try:
        with anyio.fail_after(40):
            async with anyio.create_task_group() as group:
                group.start_soon(run_wait_many)
                group.start_soon(run_as_completed)
    finally:
        many_client.close()
        await each_client.aclose()

    jobs: list[Job] = results["jobs"]
    assert [job.id for job in jobs] == ids
    for job, (_, outcome) in zip(jobs, plan, strict=True):
        assert job.result == outcome, job
        assert (job.error is not None) == (outcome == "error"), job
    ends = sorted(finished_at(job) for job in jobs)
    assert results["at"] - ends[-1] < MAX_LAG

    for rec in (many_rec, each_rec):
        # One request for all 300: a stream of each job as it finishes.
        [stream] = rec.requests("POST", "/v1/jobs/wait")
        assert len(rec.sent) == 1, "only the one batch stream"
        assert stream.headers["accept"] == "text/event-stream"
        [answer] = rec.answers
        assert answer.headers["content-type"].startswith("text/event-stream")

    yielded = [job for _, job in arrivals]
    assert sorted(job.id or "" for job in yielded) == sorted(ids), "each job exactly once"
    order = [finished_at(job) for job in yielded]
    late = [(i, prev - cur) for i, (prev, cur) in enumerate(itertools.pairwise(order)) if cur < prev - 0.25]
    assert not late, f"yielded out of completion order: {late[:5]}"
    lags = [at - max(finished_at(job), started) for at, job in arrivals]
    assert statistics.median(lags) < 0.25, statistics.median(lags)
    assert max(lags) < 1.5, max(lags)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_wait_many_refuses_unknown_and_malformed_ids(
    push: Service, api: Callable[..., Api], kind: str
) -> None:
    client = api(kind, push.url)
    job = await client.call("create", "fr", 30, simulate={"duration_seconds": 0.2})
    before = len(client.rec.sent)
    for bad in ("", "a/b", ".."):
        with pytest.raises(ValueError, match="job id"):
            await client.call("wait_many", [job.id, bad], timeout=5)
    assert len(client.rec.sent) == before, "a malformed id is refused before any request"

    with pytest.raises(vtrans.NotFound) as caught:
        await client.call("wait_many", [job.id, "job_" + "0" * 32], timeout=5)
    assert "job_" + "0" * 32 in caught.value.detail
    with pytest.raises(vtrans.InvalidRequest):  # the service checks the shape of ids
        await client.call("wait_many", [job.id, "nope"], timeout=5)


# --- 6. a spec-literal server ignores Prefer --------------------------------------------------


def test_a_server_that_ignores_prefer_costs_no_extra_request(spec_server: Callable[..., Any]) -> None:
    """The same wait (same random phase) with and without ``Prefer`` on a server that ignores it.

    The schedule is pinned (0.5 s x 1.5^(i + phase)), not the default, so that a 1.8 s wait takes
    several polls to compare."""
    counts: dict[str, int] = {}
    errors: list[BaseException] = []
    policy = vtrans.PollPolicy(first=0.5, factor=1.5, max_interval=30.0)

    def run(url: str, transport: str, rec: Recorder) -> None:
        try:
            http = rec.sync_client(url)
            with vtrans.Client(url, poll=policy, rng=random.Random(1), http_client=http) as client:
                assert client.wait(timeout=45, transport=transport).result == "completed"  # type: ignore[arg-type]
            counts[transport] = len(rec.sent)
        except BaseException as exc:
            errors.append(exc)

    recs = {"auto": Recorder(), "poll": Recorder()}
    threads = []
    for transport, rec in recs.items():  # each wait starts right after its own server is ready
        url = spec_server("--delay", "1.8").url
        threads.append(threading.Thread(target=run, args=(url, transport, rec)))
        threads[-1].start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert all(r.path == "/status" for rec in recs.values() for r in rec.sent)
    auto, poll = recs["auto"].sent, recs["poll"].sent
    # The default transport asks; the answer shows the server ignores it (no Preference-Applied).
    assert parse_prefer_wait(auto[0].headers.get("prefer")) == ASKED_WAIT, auto[0].headers
    assert all("prefer" not in r.headers for r in poll)
    assert all("preference-applied" not in a.headers for rec in recs.values() for a in rec.answers)
    assert counts["auto"] >= 3, counts  # a 1.8 s wait is polled, not held
    assert abs(counts["auto"] - counts["poll"]) <= 1, counts
    # Same phase, same schedule: the polls go out at the same offsets from the start of the wait.
    offsets = [[round(r.at - sent[0].at, 2) for r in sent] for sent in (auto, poll)]
    for a, b in zip(*offsets, strict=False):
        assert abs(a - b) < 0.15, offsets


def test_wait_many_long_polls_a_service_that_does_not_stream_batches(push: Service) -> None:
    """As with an older service: the stream is not asked for (an event hook strips it), the
    service answers each batch whole and held, and the client goes on with held polls."""

    def no_streams(request: httpx2.Request) -> None:
        request.headers.pop("accept", None)

    rec = Recorder()
    http = rec.sync_client(push.url)
    http.event_hooks["request"].insert(0, no_streams)
    with vtrans.Client(push.url, http_client=http) as client:
        ids = [
            client.create("fr", 5, simulate={"duration_seconds": 0.3 * n, "outcome": "completed"}).id or ""
            for n in range(1, 4)
        ]
        jobs = client.wait_many(ids, timeout=45)
    assert [job.result for job in jobs] == ["completed"] * 3
    polls = rec.requests("POST", "/v1/jobs/wait")
    assert 2 <= len(polls) <= 4, "one held answer per moment of completion"
    assert all(parse_prefer_wait(p.headers.get("prefer")) == ASKED_WAIT for p in polls)
    assert all(
        a.headers["content-type"] == "application/json" for a in rec.answers if a.path == "/v1/jobs/wait"
    )
