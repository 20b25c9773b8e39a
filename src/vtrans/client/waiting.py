"""Waiting for jobs, as sans-I/O flows: polling, long-poll, Server-Sent Events, many at once.

Pacing decisions are the :class:`~vtrans.client.policy.Poller`'s; these flows only turn them into
requests and keep the deadline.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import httpx2
import msgspec

from vtrans.client.core import (
    TRANSIENT,
    Counter,
    Emit,
    Flow,
    NextEvent,
    OpenStream,
    Send,
    Settings,
    Sleep,
    backoff,
    call,
    cancel,
    check,
    decode,
    is_event_stream,
    job_path,
    report,
    with_deadline,
)
from vtrans.client.errors import (
    APIError,
    JobFailed,
    NoRoute,
    ProtocolError,
    TransportError,
    VtransError,
    WaitTimeout,
)
from vtrans.client.hooks import WaitDetails, WaitResult
from vtrans.client.memory import Created
from vtrans.client.policy import Poller
from vtrans.protocol import (
    MAX_BATCH,
    Job,
    JobsWait,
    JobsWaitResult,
    Status,
    parse_prefer_wait,
    parse_retry_after,
)

log = logging.getLogger("vtrans.client")

Transport = Literal["auto", "poll", "long-poll", "sse"]
#: How many polls a wait told an expected range spreads over it (at growth between the policy's
#: ``learned_factor`` and ``factor``).
EXPECTED_POLLS = 5
TRANSPORTS: tuple[Transport, ...] = ("auto", "poll", "long-poll", "sse")


@dataclass(frozen=True)
class WaitOptions:
    """How one wait behaves (see :meth:`vtrans.Client.wait`)."""

    timeout: float | None = None
    raise_on_error: bool = True
    cancel_on_timeout: bool = False
    #: ``auto`` and ``long-poll`` ask the server to hold polls and fall back to plain polling
    #: when it does not; ``poll`` never asks; ``sse`` follows the job's event stream.
    transport: Transport = "auto"
    #: How long the caller expects the job to take, in seconds: a number or a range ``(low, high)``,
    #: counted from the job's creation if this client created it, else from the start of the wait.
    #: Used when the server gives no hint: the first poll comes at ``low``.
    expected: float | tuple[float, float] | None = None
    #: The caller follows progress: held polls end at each step of it too (``Prefer: progress``).
    progress: bool = False

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}; not {self.transport!r}")
        if self.timeout is not None and not self.timeout >= 0:
            raise ValueError("timeout must be a number of seconds >= 0, or None")
        low, high = self.expected_range or (1.0, 1.0)
        if not (0 < low <= high and math.isfinite(high)):
            raise ValueError("expected must be seconds > 0, or a range (low, high) with 0 < low <= high")

    @property
    def expected_range(self) -> tuple[float, float] | None:
        if self.expected is None:
            return None
        if isinstance(self.expected, tuple):
            low, high = self.expected
            return float(low), float(high)
        return float(self.expected), float(self.expected)


@dataclass
class Tracker:
    """The bookkeeping of one wait: its clock, deadline, requests and the last state seen."""

    settings: Settings
    options: WaitOptions
    name: str
    start: float = 0.0
    deadline: float | None = None
    counter: Counter = field(default_factory=lambda: Counter(wait=True))
    last: Job | None = None
    #: For the hooks: the job (``None`` for ``GET /status``) or the batch waited for, when the
    #: terminal state was seen (``time.time()``), and whether the end was reported.
    job_id: str | None = None
    job_ids: tuple[str, ...] = ()
    learned: float | None = None
    reported: bool = False

    def __post_init__(self) -> None:
        self.start = self.settings.clock.now()
        if self.options.timeout is not None:
            self.deadline = self.start + self.options.timeout

    def poller(
        self,
        start: float | None = None,
        learned_first: float | None = None,
        video_seconds: float | None = None,
    ) -> Poller:
        """The wait's pacing, its schedule from ``start`` (default: the wait's start); the caller's
        expected duration, if given, stands for a learned first poll. ``video_seconds``: the size of
        a job this client created at ``start``."""
        long_poll = self.options.transport != "poll"
        start = self.start if start is None else start
        policy, expected = self.settings.poll, self.options.expected_range
        if expected is not None and (learned_first is None or learned_first < expected[0]):
            # From the range's low end, in about EXPECTED_POLLS steps to its high end (what the
            # client learned of jobs of this size wins when it says they take longer).
            low, high = expected
            spread = min(policy.factor, max(policy.learned_factor, (high / low) ** (1 / EXPECTED_POLLS)))
            learned_first = low
            policy = dataclasses.replace(policy, learned_factor=spread)
        return Poller(
            policy,
            start,
            self.settings.rng,
            self.deadline,
            long_poll,
            learned_first,
            self.settings.memory.estimates,
            video_seconds,
        )

    def expired(self) -> bool:
        return self.deadline is not None and self.settings.clock.now() >= self.deadline

    def seen(self, job: Job) -> Flow[None]:
        """Emit the job if it changed."""
        if job != self.last:
            self.last = job
            if job.done:
                self.learned = time.time()
            yield Emit(job)

    def finish(self, job: Job) -> Job:
        waited = self.settings.clock.now() - self.start
        log.info(
            "%s %s after %.1fs: %d requests (%d retries)",
            self.name,
            job.result,
            waited,
            self.counter.requests,
            self.counter.retries,
        )
        failed = JobFailed(job) if job.result == "error" and self.options.raise_on_error else None
        self.report("error" if job.result == "error" else "completed", failed)
        if failed is not None:
            raise failed
        return job

    def timeout(self, job_ids: list[str] | None = None) -> WaitTimeout:
        waited = self.settings.clock.now() - self.start
        error = WaitTimeout(self.last, waited, self.counter.requests, job_ids)
        log.info("%s", error)
        self.report("timeout", error)
        return error

    def report(self, result: WaitResult, error: Exception | None = None) -> None:
        """Tell the hooks how the wait ended (once)."""
        if self.reported or not self.settings.hooks:
            return
        self.reported = True
        job = None if self.job_ids else self.last
        lag = None
        if job is not None and job.done and job.finished_at is not None and self.learned is not None:
            lag = self.learned - job.finished_at.timestamp()
        waited = self.settings.clock.now() - self.start
        counter = self.counter
        details = WaitDetails(
            self.job_id,
            result,
            waited,
            counter.requests,
            counter.retries,
            lag,
            job,
            self.job_ids,
            self.options.transport,
            error,
        )
        self.settings.hooks.wait(details)


@dataclass(frozen=True)
class Observation:
    """One answer while waiting: the job, the server's hint, whether it honoured a long-poll."""

    job: Job
    hint: float | None
    #: Whether ``hint`` is the body's estimate (else it is a ``Retry-After``).
    estimate: bool
    #: The hold the server applied (``Preference-Applied: wait=N``); ``None`` if it ignored ``Prefer``.
    applied: float | None
    #: Whether the server ends holds at progress steps (``Preference-Applied: …, progress``).
    stepped: bool = False

    @property
    def held(self) -> bool:
        return self.applied is not None

    @classmethod
    def parse(cls, reply: httpx2.Response) -> Observation:
        job = decode(Job)(reply)
        applied, hint = _applied(reply), job.estimated_seconds_remaining
        stepped = "progress" in reply.headers.get("preference-applied", "")
        if hint is not None:
            return cls(job, hint, True, applied, stepped)
        return cls(job, parse_retry_after(reply.headers.get("retry-after")), False, applied, stepped)


def _applied(reply: httpx2.Response) -> float | None:
    return parse_prefer_wait(reply.headers.get("preference-applied"))


def _prefer(hold: int, step: float | None = None) -> dict[str, str]:
    """Ask the server to hold the request ``hold`` seconds (and to end it at each ``step`` of progress)."""
    if not hold:
        return {}
    return {"Prefer": f"wait={hold}" + (f", progress={step:g}" if step else "")}


def wait(settings: Settings, job_id: str | None, options: WaitOptions) -> Flow[Job]:
    """Wait until the job is terminal, emitting each change; keep the deadline.

    Without ``job_id``, wait on the spec's ``GET /status``.
    """
    track = Tracker(settings, options, job_id or "/status", job_id=job_id or None)
    try:
        if options.transport == "sse" and job_id:
            job = yield from _stream(track, job_id)
        else:
            job = yield from _poll(track, job_id)
    except WaitTimeout as timed_out:
        if options.cancel_on_timeout and job_id:
            try:
                timed_out.job = yield from cancel(settings, job_id)
            except VtransError as exc:
                log.warning("could not cancel %s after the timeout: %s", job_id, exc)
        raise
    except VtransError as exc:
        track.report("failed", exc)
        raise
    return track.finish(job)


def wait_status(settings: Settings, options: WaitOptions) -> Flow[Status]:
    """:func:`wait` on the spec's ``GET /status``, returning what the spec says: the result."""
    job = yield from wait(settings, None, options)
    return Status(job.result)


def _poll(track: Tracker, job_id: str | None) -> Flow[Job]:
    """Poll (asking the server to hold each poll) until the job is terminal.

    A job this client created is waited for from its creation: where polls are not held (the
    server ignored the last ``Prefer: wait``, or ``transport="poll"``), the create's answer stands
    for a first poll, and the schedule starts where :class:`~vtrans.client.policy.Pace` says jobs
    of its length may end. Every such job that completes teaches the Pace.
    """
    clock, memory = track.settings.clock, track.settings.memory
    created = memory.take(job_id) if job_id else None
    paced = created is not None and (track.options.transport == "poll" or memory.holds is False)
    if created is not None and paced:
        poller, learned = yield from _from_creation(track, created)
    else:
        poller, learned = track.poller(), None
    path = job_path(job_id) if job_id else "/status"
    # When the job was last seen pending: by any poll, and by a poll the schedule placed (a poll at
    # the start of the wait, just after the create, bounds nothing the Pace can learn from).
    pending_since = paced_since = created.at if created is not None else None
    while True:
        sent = clock.now()
        hold = poller.hold(sent)
        step = track.settings.poll.progress_step if track.options.progress else None
        send = Send(
            "GET", path, headers=_prefer(hold, step), timeout=hold + track.settings.timeout if hold else None
        )
        try:
            seen = yield from call(send, Observation.parse, track.settings, track.counter, track.deadline)
        except TRANSIENT as exc:
            if track.expired():
                raise track.timeout() from exc
            raise
        if hold and (seen.held or not seen.job.done):
            # A final answer may leave out Preference-Applied (RFC 7240 makes it optional): only
            # a pending one shows that the server ignores holds.
            memory.holds = seen.held
        if not seen.job.done:
            memory.hints = seen.hint is not None
        yield from track.seen(seen.job)
        if seen.job.done:
            if seen.job.result == "completed" and pending_since is not None:
                _learn(track, created, poller, learned, seen.job, (pending_since, paced_since, sent))
            return seen.job
        now = clock.now()
        # A held answer saw the job pending at its end; one answered at once, when it was sent.
        pending_since = now if seen.held else sent
        if paced or seen.held:
            paced_since = pending_since
        if track.expired():
            raise track.timeout()
        held = now - sent if seen.held else None
        if seen.held and seen.stepped:
            delay = 0.0  # a hold that ended at a progress step: hold again at once
        else:
            delay = poller.next_delay(now, seen.hint, held, seen.applied, seen.estimate)
        log.debug(
            "%s pending (progress %s, hint %s, held %s): next poll in %.2fs",
            track.name,
            seen.job.progress,
            seen.hint,
            seen.held,
            delay,
        )
        if delay > 0:
            paced = True
            yield Sleep(delay)


def _learn(
    track: Tracker,
    created: Created | None,
    poller: Poller,
    learned: float | None,
    job: Job,
    times: tuple[float, float | None, float],
) -> None:
    """A completed job teaches the client's memory: the Pace (a job it created) when it was last
    seen pending by a scheduled poll, and the estimates' quality what the hints were worth.
    ``times``: when it was last seen pending, by a scheduled poll, and when it was seen done."""
    memory = track.settings.memory
    pending_since, paced_since, done = times
    low, high = pending_since, done
    if created is not None:
        since = (paced_since or created.at) - created.at
        memory.pace.observe(track.settings.poll, created.video_seconds, since, learned)
        if job.created_at and job.finished_at:
            # The job's own duration, on the server's clock, dates its end on ours.
            duration = (job.finished_at - job.created_at).total_seconds()
            low = high = min(high, max(low, created.at + duration))
            memory.estimates.observe_duration(created.video_seconds, duration)
    memory.estimates.observe(poller.answers, poller.start, low, high)


def _from_creation(track: Tracker, created: Created) -> Flow[tuple[Poller, float | None]]:
    """Take the create's answer for a first poll: sleep until the first poll that the schedule
    (from the creation, learned or not) or the create's estimate calls for. Returns the pacing, and
    the learned first poll if that is the one in use (what the wait can teach the Pace about)."""
    clock, policy = track.settings.clock, track.settings.poll
    memory = track.settings.memory
    first = learned = memory.pace.first(policy, created.video_seconds)
    size = memory.estimates.duration(created.video_seconds)
    if memory.hints and size is not None:
        # The server's answers carry hints: a first poll is worth its request as soon as the job
        # may plausibly be done, by how long jobs of its size took.
        first, learned = math.exp(size[0] - policy.hint_confidence * size[1]), None
    expected = track.options.expected_range
    if expected is not None and (first is None or first < expected[0]):
        learned = None  # the caller's expectation, not the learned time: nothing to learn from
    poller = track.poller(created.at, first, created.video_seconds)
    hint, estimate = created.job.estimated_seconds_remaining, True
    if hint is None:
        hint, estimate = created.retry_after, False
    delay = poller.next_delay(created.at, hint, estimate=estimate)
    elapsed = clock.now() - created.at
    if delay > elapsed:
        yield Sleep(delay - elapsed)
    if poller.hinted_polls or delay <= elapsed:
        # The first poll follows the create's estimate, or comes after the learned time (the wait
        # started late): whether it finds the job done says nothing of the learned time.
        learned = None
    return poller, learned


def _stream(track: Tracker, job_id: str) -> Flow[Job]:
    """Follow the job's Server-Sent Events, reconnecting with ``Last-Event-ID``."""
    settings, last_event_id = track.settings, ""
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        # The stream lasts until the job ends (or the deadline): only a silent one is broken off.
        send = Send("GET", f"{job_path(job_id)}/events", headers=headers, timeout=math.inf, idle=60.0)
        if track.deadline is not None:
            send = with_deadline(send, settings, track.deadline)
        track.counter.requests += 1
        sent = settings.clock.now()
        reply = yield OpenStream(send)
        report(settings, track.counter, send, sent, reply)
        try:
            check(reply, send)
            while True:
                event = yield NextEvent()
                if event is None:
                    break  # the stream reached its lifetime: reconnect
                if isinstance(event, httpx2.TransportError):
                    raise TransportError(f"the event stream of {job_id} broke: {event!r}") from event
                if event.event not in ("progress", "done"):
                    continue
                job = _event_job(event)
                last_event_id = event.id or last_event_id
                track.counter.answered(settings.clock.now())
                yield from track.seen(job)
                if job.done:
                    return job
                if track.expired():
                    raise track.timeout()
        except TRANSIENT as exc:
            if track.expired():
                raise track.timeout() from exc
            yield from backoff(settings, track.counter, send, sent, reply, exc, track.deadline)
            track.counter.retries += 1
        if track.expired():
            raise track.timeout()


def _event_job(event: httpx2.ServerSentEvent) -> Job:
    try:
        return msgspec.json.decode(event.data, type=Job)
    except msgspec.MsgspecError as exc:
        raise ProtocolError(
            f"a {event.event!r} event is not a vtrans job ({exc}): {event.data[:200]!r}"
        ) from None


def wait_many(settings: Settings, job_ids: list[str], options: WaitOptions) -> Flow[list[Job]]:
    """Wait for every job through one request at a time (``POST /v1/jobs/wait``), emitting each as
    it finishes; return them all, in the order given."""
    ids = list(dict.fromkeys(job_ids))
    if len(ids) > MAX_BATCH:
        raise ValueError(f"wait_many takes up to {MAX_BATCH} jobs at once, not {len(ids)}: split them")
    for job_id in ids:
        job_path(job_id)  # reject malformed ids before any request
    track = Tracker(settings, options, f"{len(ids)} jobs", job_ids=tuple(ids))
    try:
        jobs = yield from _wait_many(track, ids)
    except WaitTimeout:
        raise
    except VtransError as exc:
        track.report("failed", exc)
        raise
    failed = next((job for job in jobs if job.result == "error"), None)
    error = JobFailed(failed) if failed is not None and options.raise_on_error else None
    track.report("error" if failed is not None else "completed", error)
    if error is not None:
        raise error
    return jobs


def _wait_many(track: Tracker, ids: list[str]) -> Flow[list[Job]]:
    """One request at a time for all the jobs: an event stream of each as it finishes where the
    server has one (its work and bytes in proportion to the jobs, once), else held polls of the
    pending ones; where the server has no batch route at all, each job is polled in turn."""
    settings = track.settings
    clock, poller = settings.clock, track.poller()
    pending, finished = dict.fromkeys(ids), dict[str, Job]()
    streams, batches = True, True
    while pending:
        sent = clock.now()
        hold = poller.hold(sent)
        try:
            if not batches:
                yield from _poll_each(track, pending, finished)
                answered, applied = False, None
            elif streams:
                answer = yield from _batch_stream(track, pending, finished, hold)
                if answer is None:
                    continue  # the stream ended before the jobs: open another for those left
                streams = False  # the server answered the batch whole: it has no stream of them
                answered, applied = yield from _take_batch(answer, pending, finished)
            else:
                send = _batch_send(pending, hold, settings.timeout, stream=False)
                answer = yield from call(send, lambda r: r, settings, track.counter, track.deadline)
                answered, applied = yield from _take_batch(answer, pending, finished)
        except (APIError, NoRoute) as exc:
            if not batches or not _no_batches(exc):
                raise
            batches = False  # no POST /v1/jobs/wait here: poll each job
            continue
        except TRANSIENT as exc:
            if track.expired():
                raise track.timeout(list(pending)) from exc
            raise
        if not pending:
            break
        now = clock.now()
        if track.expired():
            raise track.timeout(list(pending))
        held = now - sent if applied is not None else None
        delay = 0.0 if answered else poller.next_delay(now, None, held, applied)
        if delay > 0:
            yield Sleep(delay)
    log.info(
        "%s finished after %.1fs: %d requests", track.name, clock.now() - track.start, track.counter.requests
    )
    return [finished[job_id] for job_id in ids]


def _no_batches(exc: APIError | NoRoute) -> bool:
    """Whether a refusal of ``POST /v1/jobs/wait`` says the server has no such route (rather than
    no such job: a vtrans service names the jobs it does not know)."""
    if isinstance(exc, NoRoute) or exc.status == 405:
        return True
    problem = exc.problem.type if exc.problem is not None else ""
    return exc.status == 404 and not problem.endswith(":job-not-found")


def _batch_send(pending: dict[str, None], hold: int, timeout: float, *, stream: bool) -> Send:
    headers = {"Content-Type": "application/json", **_prefer(hold)}
    if stream:
        headers["Accept"] = "text/event-stream"
    body = msgspec.json.encode(JobsWait(ids=list(pending)))
    if stream:  # it lasts until the jobs end (or the deadline): only a silent one is broken off
        return Send("POST", "/v1/jobs/wait", headers=headers, content=body, timeout=math.inf, idle=60.0)
    return Send(
        "POST", "/v1/jobs/wait", headers=headers, content=body, timeout=hold + timeout if hold else None
    )


def _batch_stream(
    track: Tracker, pending: dict[str, None], finished: dict[str, Job], hold: int
) -> Flow[httpx2.Response | None]:
    """Follow one stream of the pending jobs, taking each as it finishes. Returns ``None`` when
    the stream ends (every job done, or its lifetime: open another), or the answer of a server
    that sent the batch whole instead (it holds it as a long-poll: ``hold``)."""
    settings = track.settings
    send = _batch_send(pending, hold, settings.timeout, stream=True)
    if track.deadline is not None:
        send = with_deadline(send, settings, track.deadline)
    while True:
        track.counter.requests += 1
        sent = settings.clock.now()
        reply = yield OpenStream(send)
        report(settings, track.counter, send, sent, reply)
        try:
            response = check(reply, send)
            if not is_event_stream(response):
                return response
            while pending:
                event = yield NextEvent()
                if event is None:
                    return None
                if isinstance(event, httpx2.TransportError):
                    raise TransportError(
                        f"the event stream of {len(pending)} jobs broke: {event!r}"
                    ) from event
                if event.event != "done":
                    continue
                job = _event_job(event)
                track.counter.answered(settings.clock.now())
                if job.id in pending:
                    del pending[job.id]
                    finished[job.id] = job
                    yield Emit(job)
                if track.expired():
                    raise track.timeout(list(pending))
            return None
        except TRANSIENT as exc:
            if track.expired():
                raise track.timeout(list(pending)) from exc
            yield from backoff(settings, track.counter, send, sent, reply, exc, track.deadline)
            track.counter.retries += 1


def _take_batch(
    answer: httpx2.Response, pending: dict[str, None], finished: dict[str, Job]
) -> Flow[tuple[bool, float | None]]:
    """Take the finished jobs of a whole batch answer; whether there were any, and the hold the
    server applied."""
    result, applied = _parse_batch(answer)
    for job in sorted(result.items, key=_finished_at):
        if job.id in pending:
            del pending[job.id]
            finished[job.id] = job
            yield Emit(job)
    return bool(result.items), applied


def _poll_each(track: Tracker, pending: dict[str, None], finished: dict[str, Job]) -> Flow[None]:
    """One round of plain polls, one per pending job (a server with no batch route)."""
    for job_id in list(pending):
        send = Send("GET", job_path(job_id))
        job = yield from call(send, decode(Job), track.settings, track.counter, track.deadline)
        if job.done:
            del pending[job_id]
            finished[job_id] = job
            yield Emit(job)


def _finished_at(job: Job) -> float:
    return job.finished_at.timestamp() if job.finished_at else 0.0


def _parse_batch(reply: httpx2.Response) -> tuple[JobsWaitResult, float | None]:
    return decode(JobsWaitResult)(reply), _applied(reply)
