"""The client's logic as sans-I/O flows, shared by the sync and async drivers.

A flow is a generator that yields actions — :class:`Send` a request, :class:`Sleep`, :class:`Emit`
a job state — and receives, for each ``Send``, the ``httpx2.Response`` or the transport exception.
It returns the call's result. The drivers only execute actions; every decision is made here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
import msgspec

from vtrans.client.clock import Clock
from vtrans.client.errors import (
    APIError,
    Conflict,
    InvalidRequest,
    NoRoute,
    NotFound,
    ProtocolError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
)
from vtrans.client.hooks import Hooks, RequestDetails, RetryDetails, route_of
from vtrans.client.memory import Memory
from vtrans.client.policy import PollPolicy, RetryPolicy
from vtrans.protocol import (
    PROBLEM_JSON,
    Job,
    JobCreate,
    JobPage,
    Problem,
    Simulate,
    Status,
    parse_retry_after,
)

log = logging.getLogger("vtrans.client")

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_ERRORS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    422: InvalidRequest,
}


@dataclass(frozen=True)
class Send:
    """Send this request; the flow receives the response or the ``httpx2.TransportError``."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    #: Bound on the whole exchange — connect, headers, body — in seconds (``None``: the client's
    #: ``timeout``; ``math.inf``: none).
    timeout: float | None = None
    #: Longest silence between two reads, for streams (``None``: the whole ``timeout``).
    idle: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    """A new state of the job, for progress callbacks and iterators."""

    job: Job


@dataclass(frozen=True)
class OpenStream:
    """Open a Server-Sent Events stream, closing the one open before; the flow receives the
    response (its body read unless it is an event stream: see :func:`is_event_stream`) or the
    transport exception. The driver closes the stream when the flow ends."""

    send: Send


def is_event_stream(response: httpx2.Response) -> bool:
    """Whether an answer to :class:`OpenStream` is a stream of events to read (else a whole answer)."""
    content_type = response.headers.get("content-type", "")
    return response.status_code == 200 and content_type.startswith("text/event-stream")


@dataclass(frozen=True)
class NextEvent:
    """Read the open stream's next event: an ``httpx2.ServerSentEvent``, ``None`` at its end, or
    the transport exception."""


Action = Send | Sleep | Emit | OpenStream | NextEvent
Flow = Generator[Action, Any, T]


@dataclass
class Settings:
    """What every flow needs; owned by a client."""

    poll: PollPolicy
    retry: RetryPolicy
    clock: Clock
    rng: random.Random
    #: The default bound on one request's whole exchange, in seconds.
    timeout: float = 10.0
    memory: Memory = field(default_factory=Memory)
    hooks: Hooks = field(default_factory=Hooks)


@dataclass
class Counter:
    """Requests made by one call (the retries included), and its run of failures in a row."""

    requests: int = 0
    retries: int = 0
    #: A wait rides out outages once it has had an answer (``RetryPolicy.outage``); a call does not.
    wait: bool = False
    answers: int = 0
    #: When the service last answered (the call's clock).
    heard_at: float = -math.inf
    #: Failures in a row, and when the first of them began.
    failures: int = 0
    failing_since: float = 0.0
    #: Whether a failure showed the service was there (it held a long-poll, then the connection was
    #: cut): a wait then rides out the outage as after an answer.
    reached: bool = False

    def answered(self, now: float) -> None:
        self.answers += 1
        self.heard_at, self.failures = now, 0


# --- one request, with retries ----------------------------------------------------------------


def check(reply: httpx2.Response | httpx2.TransportError, send: Send) -> httpx2.Response:
    """The response if it is a success; the typed error it stands for otherwise."""
    if isinstance(reply, httpx2.TransportError):
        raise TransportError(f"{send.method} {send.path}: {_describe(reply)}") from reply
    log.debug("%s %s -> %d", send.method, send.path, reply.status_code)
    return _check(reply)


TRANSIENT = (TransportError, ProtocolError, ServiceUnavailable)


def call(
    send: Send,
    parse: Callable[[httpx2.Response], T],
    settings: Settings,
    counter: Counter | None = None,
    deadline: float | None = None,
) -> Flow[T]:
    """Send until ``parse`` accepts a response; retry what is transient on the retry budget.

    Raises the typed error for a refusal (4xx), or the last transient error once the budget,
    or the ``deadline``, is spent.
    """
    counter = counter or Counter()
    while True:
        if deadline is not None:
            send = with_deadline(send, settings, deadline)
        counter.requests += 1
        sent = settings.clock.now()
        reply = yield send
        report(settings, counter, send, sent, reply)
        try:
            result = parse(check(reply, send))
        except TRANSIENT as exc:
            yield from backoff(settings, counter, send, sent, reply, exc, deadline)
            counter.retries += 1
            continue
        counter.answered(settings.clock.now())
        return result


def with_deadline(send: Send, settings: Settings, deadline: float) -> Send:
    """The request with its timeout cut to what is left before ``deadline`` (but not below 0.25 s)."""
    timeout = send.timeout if send.timeout is not None else settings.timeout
    timeout = max(0.25, min(timeout, deadline - settings.clock.now()))
    return dataclasses.replace(send, timeout=timeout)


def report(settings: Settings, counter: Counter, send: Send, sent: float, reply: object) -> None:
    """Tell the hooks about the attempt at ``send`` sent at ``sent``, and its ``reply``."""
    if not settings.hooks:
        return
    route, job_id = route_of(send.path)
    answered = isinstance(reply, httpx2.Response)
    details = RequestDetails(
        send.method,
        send.path,
        route,
        job_id or send.params.get("job_id"),
        counter.failures + 1,
        reply.status_code if isinstance(reply, httpx2.Response) else None,
        None if answered else type(reply).__name__,
        settings.clock.now() - sent,
    )
    settings.hooks.request(details)


def backoff(
    settings: Settings,
    counter: Counter,
    send: Send,
    sent: float,
    reply: object,
    exc: Exception,
    deadline: float | None,
) -> Flow[None]:
    """Sleep before retrying ``send``, whose attempt sent at ``sent`` failed transiently with
    ``exc``; re-raise ``exc`` once the retry budget (see :class:`~vtrans.client.policy.RetryPolicy`)
    or the ``deadline`` is spent. The last retry is made at the end of the budget."""
    if isinstance(exc, NoRoute):
        raise exc  # not transient: no route now, none on the next try
    policy, now = settings.retry, settings.clock.now()
    if counter.failures == 0:
        counter.failing_since = max(sent, counter.heard_at)
    counter.failures += 1
    counter.reached = counter.reached or _cut_while_held(send, now - sent, reply)
    riding = counter.wait and (counter.answers > 0 or counter.reached)
    end = counter.failing_since + (policy.outage if riding else policy.budget)
    if deadline is not None:
        end = min(end, deadline)
    if now >= end or (not riding and counter.failures >= policy.attempts):
        raise exc
    retry_after = None
    if isinstance(reply, httpx2.Response):
        retry_after = parse_retry_after(reply.headers.get("retry-after"))
    delay = min(policy.delay(counter.failures, retry_after, settings.rng), end - now)
    log.debug("retry %d in %.2fs: %s", counter.failures, delay, exc)
    if settings.hooks:
        route, job_id = route_of(send.path)
        job_id = job_id or send.params.get("job_id")
        failing_for = now - counter.failing_since
        details = RetryDetails(
            send.method, send.path, route, job_id, counter.failures, delay, failing_for, exc
        )
        settings.hooks.retry(details)
    yield Sleep(delay)


#: A long-poll held this long before its connection was cut was held by the service: it exists.
HELD_BEFORE_CUT = 1.0


def _cut_while_held(send: Send, lasted: float, reply: object) -> bool:
    """Whether a failed attempt shows the service is there: a long-poll it held a while, then cut
    (a restart). A refused connection, an immediate reset or garbage shows nothing of the kind."""
    cut = isinstance(reply, httpx2.ReadError | httpx2.RemoteProtocolError)
    return cut and "Prefer" in send.headers and lasted >= HELD_BEFORE_CUT


def _describe(exc: httpx2.TransportError) -> str:
    kind = type(exc).__name__
    return f"{kind}: {exc}" if str(exc) else kind


def _check(reply: httpx2.Response) -> httpx2.Response:
    """Raise the typed error a non-2xx answer stands for."""
    status = reply.status_code
    if 200 <= status < 300:
        return reply
    problem = _problem(reply)
    if status == 404 and problem is None and not _is_json(reply.content):
        content_type = reply.headers.get("content-type", "").split(";")[0].strip() or "no Content-Type"
        raise NoRoute(
            f"{reply.request.method} {reply.request.url.path} answered 404 with {content_type}, not a "
            f"vtrans problem: the URL may be wrong ({_snippet(reply)!r})"
        )
    detail = problem.detail if problem and problem.detail else _snippet(reply) or reply.reason_phrase
    if status in RETRYABLE_STATUS:
        raise ServiceUnavailable(status, problem, detail)
    raise _ERRORS.get(status, APIError)(status, problem, detail)


def _problem(reply: httpx2.Response) -> Problem | None:
    content_type = reply.headers.get("content-type", "")
    if PROBLEM_JSON not in content_type and "json" not in content_type:
        return None
    try:
        return msgspec.json.decode(reply.content, type=Problem)
    except msgspec.MsgspecError:
        return None


def _is_json(content: bytes) -> bool:
    try:
        msgspec.json.decode(content)
    except msgspec.DecodeError:
        return False
    return True


def _snippet(reply: httpx2.Response) -> str:
    text = " ".join(reply.text.split())
    return text[:200] + ("…" if len(text) > 200 else "")


def decode(kind: type[T]) -> Callable[[httpx2.Response], T]:
    """A parser of a 2xx JSON body into ``kind``; anything else is a :class:`ProtocolError`."""

    def parse(reply: httpx2.Response) -> T:
        try:
            return msgspec.json.decode(reply.content, type=kind)
        except msgspec.MsgspecError as exc:
            raise ProtocolError(
                f"{reply.request.method} {reply.request.url.path} answered {reply.status_code} "
                f"with a body that is not a vtrans {kind.__name__} ({exc}): {_snippet(reply)!r}"
            ) from None

    return parse


# --- the API calls ----------------------------------------------------------------------------


def job_path(job_id: str) -> str:
    if not job_id or "/" in job_id or job_id in (".", ".."):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"/v1/jobs/{job_id}"


def create(
    settings: Settings,
    language: str,
    video_seconds: float,
    *,
    source_url: str | None = None,
    callback_url: str | None = None,
    simulate: Simulate | None = None,
    idempotency_key: str | None = None,
) -> Flow[Job]:
    _finite("video_seconds", video_seconds)
    _finite("simulate.duration_seconds", simulate.duration_seconds if simulate is not None else None)
    body = msgspec.json.encode(JobCreate(language, video_seconds, source_url, callback_url, simulate))
    # The key makes the POST safe to retry: a repeat returns the job the first one created.
    headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    sent = settings.clock.now()
    send = Send("POST", "/v1/jobs", headers=headers, content=body)
    job, retry_after = yield from call(send, _created, settings)
    settings.memory.created(sent, video_seconds, job, retry_after)
    log.debug("created job %s (%s, %.0fs of video)", job.id, language, video_seconds)
    return job


def _created(reply: httpx2.Response) -> tuple[Job, float | None]:
    """The created job, and its ``Retry-After`` (a hint where the body has no estimate)."""
    return decode(Job)(reply), parse_retry_after(reply.headers.get("retry-after"))


def _finite(name: str, seconds: float | None) -> None:
    """Refuse NaN and infinities before any request: JSON has no such numbers (they would be sent as null)."""
    if seconds is not None and not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, not {seconds}")


def get(settings: Settings, job_id: str) -> Flow[Job]:
    return (yield from call(Send("GET", job_path(job_id)), decode(Job), settings))


def status(settings: Settings, job_id: str | None = None) -> Flow[Status]:
    """The spec's ``GET /status`` (of one job, with ``job_id``, on servers that support it)."""
    params = {"job_id": job_id} if job_id else {}
    return (yield from call(Send("GET", "/status", params=params), decode(Status), settings))


def cancel(settings: Settings, job_id: str) -> Flow[Job]:
    job = yield from call(Send("DELETE", job_path(job_id)), decode(Job), settings)
    log.debug("cancelled job %s", job_id)
    return job


def list_jobs(settings: Settings, result: str | None, page_size: int) -> Flow[None]:
    """Emit every job, newest first, following the pages."""
    params = {"limit": str(page_size)}
    if result is not None:
        params["result"] = result
    while True:
        page = yield from call(Send("GET", "/v1/jobs", params=dict(params)), decode(JobPage), settings)
        for job in page.items:
            yield Emit(job)
        if not page.next_cursor:
            return
        params["cursor"] = page.next_cursor
