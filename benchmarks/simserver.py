"""The sandbox's job API in-process, on a virtual clock: an ``httpx2`` transport over the real simulation.

It answers what the benchmark's clients ask — ``POST /v1/jobs``, ``GET /v1/jobs/{id}`` and the spec's
``GET /status`` — from :func:`vtrans.server.simulation.state_at` at the virtual time, renders jobs
with the service's own :func:`vtrans.server.wire.to_wire`, sends ``Retry-After`` while a job is
pending, and honours ``Prefer: wait`` or ignores it, as the server kind says. No sockets, no threads:
a held request just moves the clock to the end of its hold, or to the job's end if that comes first.

The timelines are drawn beforehand (the same jobs for every strategy): the n-th create gets the n-th
timeline, moved to the time of the create. :func:`make_client` is the whole interface the benchmark
uses, so that it can later run on the project's in-process fake service instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import httpx2
import msgspec

from vtrans.client import Client, PollPolicy
from vtrans.protocol import JobCreate, format_retry_after, parse_prefer_wait, parse_retry_after
from vtrans.server.config import ServerConfig
from vtrans.server.simulation import State, Timeline, shifted, state_at
from vtrans.server.stores import StoredJob
from vtrans.server.wire import to_wire

URL = "http://vtrans.benchmark"
#: The round trip of every request, in seconds: an answer arrives this long after it was sent.
RTT = 0.002
#: Where the virtual clock starts (small, so that float times keep microseconds exact).
EPOCH = 0.0
RETRY_AFTER_MAX = ServerConfig().retry_after_max
_JSON = {"content-type": "application/json"}


class VirtualClock:
    """The time shared by the client and the server: it moves only when someone sleeps or a
    request takes its round trip."""

    def __init__(self, start: float = EPOCH) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@dataclass
class Served:
    """A job as the server keeps it, and its polls: (sent, answered, whether a full hold)."""

    job: StoredJob
    polls: list[tuple[float, float, bool]] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.job.timeline.ends_at

    def handover(self) -> bool:
        """Whether the job ended while the answer to a full hold was on its way back, the next poll
        sent after it ended: no client without overlapping requests sees such an end sooner."""
        if len(self.polls) < 2:
            return False
        (_, answered, full), (sent, _, _) = self.polls[-2], self.polls[-1]
        return full and answered < self.end <= sent


def hint_headers(state: State, retry_after_max: float = RETRY_AFTER_MAX) -> dict[str, str]:
    """``Retry-After`` while the job is pending, as the service sends it: whole seconds, capped."""
    if state.retry_after is None:
        return {}
    return {"retry-after": format_retry_after(min(state.retry_after, retry_after_max))}


def hints_at(
    job: StoredJob, t: float, retry_after_max: float = RETRY_AFTER_MAX
) -> tuple[float | None, float | None]:
    """What a pending answer at ``t`` tells a client: the body's estimate and the ``Retry-After``
    seconds, rendered as the service renders them."""
    state = state_at(job.timeline, t)
    retry_after = hint_headers(state, retry_after_max).get("retry-after")
    return to_wire(job, state, t).estimated_seconds_remaining, parse_retry_after(retry_after)


class SimServer(httpx2.BaseTransport):
    """The job API over ``timelines`` (each drawn with ``created_at`` = 0), on ``clock``.

    ``max_hold`` > 0 honours ``Prefer: wait=N`` up to that many seconds (0: the header is ignored,
    as a spec-literal server does); ``Retry-After`` is capped at ``retry_after_max`` (the service's
    default: 60 s). ``status`` is the timeline behind ``GET /status``.
    """

    def __init__(
        self,
        timelines: Iterable[Timeline],
        clock: VirtualClock,
        *,
        max_hold: float = 0.0,
        retry_after_max: float = RETRY_AFTER_MAX,
        rtt: float = RTT,
        status: Timeline | None = None,
    ) -> None:
        self.timelines: Iterator[Timeline] = iter(timelines)
        self.clock, self.max_hold, self.rtt = clock, max_hold, rtt
        self.retry_after_max = retry_after_max
        self.jobs: dict[str, Served] = {}
        self.status = None if status is None else self._store(status, "status")

    def _store(self, timeline: Timeline, name: str, video_seconds: float = 1.0) -> Served:
        job = StoredJob(
            id=name,
            seq=len(self.jobs) + 1,
            language="fr",
            video_seconds=video_seconds,
            source_url=None,
            callback_url=None,
            timeline=shifted(timeline, self.clock.now()),
        )
        served = self.jobs[name] = Served(job)
        return served

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/jobs":
            spec = msgspec.json.decode(request.read(), type=JobCreate)
            served = self._store(next(self.timelines), f"job_{len(self.jobs):032x}", spec.video_seconds)
            return self._respond(served, 201, {"location": f"/v1/jobs/{served.job.id}"})
        if request.method == "GET" and path.startswith("/v1/jobs/"):
            served_or_none = self.jobs.get(path.removeprefix("/v1/jobs/"))
        elif request.method == "GET" and path == "/status":
            served_or_none = self.status
        else:
            served_or_none = None
        if served_or_none is None:
            return httpx2.Response(404, headers=_JSON, content=b'{"status": 404}')
        served = served_or_none
        sent = self.clock.now()
        headers = self._hold(served, request.headers.get("prefer"))
        answered = self.clock.now()
        full = bool(headers) and answered - sent >= float(headers["preference-applied"][5:])
        served.polls.append((sent, answered, full))
        return self._respond(served, 200, headers)

    def _hold(self, served: Served, prefer: str | None) -> dict[str, str]:
        """Hold the request as the service does: until the job ends or the hold does."""
        wait = parse_prefer_wait(prefer)
        if wait is None or not self.max_hold:
            return {}
        applied = min(wait, self.max_hold)
        now = self.clock.now()
        self.clock.t = max(now, min(now + applied, served.end))
        return {"preference-applied": f"wait={applied:g}"}

    def _respond(self, served: Served, status: int, headers: dict[str, str]) -> httpx2.Response:
        """The job's state now; the answer arrives one round trip after the request was sent."""
        now = self.clock.now()
        state = state_at(served.job.timeline, now)
        if served is self.status:
            body = msgspec.json.encode({"result": state.result})
        else:
            body = msgspec.json.encode(to_wire(served.job, state, now))
        self.clock.t = now + self.rtt
        hints = hint_headers(state, self.retry_after_max)
        return httpx2.Response(status, headers={**_JSON, **headers, **hints}, content=body)


def make_client(
    timelines: Iterable[Timeline],
    *,
    max_hold: float = 0.0,
    retry_after_max: float = RETRY_AFTER_MAX,
    policy: PollPolicy | None = None,
    seed: int | str = 0,
    status: Timeline | None = None,
) -> tuple[Client, SimServer]:
    """A real :class:`vtrans.Client` wired to a :class:`SimServer` of ``timelines``, both on one
    virtual clock (``server.clock``)."""
    clock = VirtualClock()
    server = SimServer(timelines, clock, max_hold=max_hold, retry_after_max=retry_after_max, status=status)
    http = httpx2.Client(base_url=URL, transport=server)
    client = Client(URL, http_client=http, poll=policy, clock=clock, rng=random.Random(seed))
    return client, server
