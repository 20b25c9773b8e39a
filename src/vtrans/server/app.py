"""The HTTP routes of the service: the spec's ``GET /status`` and the ``/v1/jobs`` API."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from vtrans.protocol import (
    JOB_ID_RE,
    LANGUAGES,
    RESULTS,
    Job,
    JobCreate,
    JobPage,
    JobsWait,
    JobsWaitResult,
    StatusBody,
    format_retry_after,
    parse_prefer_wait,
)
from vtrans.server import openapi
from vtrans.server.config import ServerConfig
from vtrans.server.events import EventStream, job_events
from vtrans.server.notifications import Notifier
from vtrans.server.problems import ProblemError, on_http_exception, on_problem, on_unexpected
from vtrans.server.simulation import State, draw_fixed_delay, draw_timeline, state_at
from vtrans.server.store import Store, StoredJob
from vtrans.server.webhooks import SECRET_KEY, WebhookSender, new_secret
from vtrans.server.wire import to_wire

log = logging.getLogger(__name__)

T = TypeVar("T")
JSON = "application/json"
STATUS_JOB_KEY = "status_job_id"
_encode = msgspec.json.encode
_NO_STORE = (b"cache-control", b"no-store")


class Service:
    """The state the routes share: configuration, store and clock."""

    def __init__(self, config: ServerConfig, store: Store, clock: Callable[[], float]) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.notifier = Notifier()
        self.status_job_id = self._status_job()
        self.webhooks = WebhookSender(store, config.webhooks, self._secret(), self.describe, clock)

    def _secret(self) -> str:
        """The webhook signing secret: configured, or generated once and kept in the store."""
        secret = self.config.webhooks.secret or self.store.get_meta(SECRET_KEY)
        if secret is None:
            secret = new_secret()
            self.store.set_meta(SECRET_KEY, secret)
        return secret

    def describe(self, job_id: str, now: float) -> Job | None:
        job = self.store.get(job_id)
        return None if job is None else to_wire(job, state_at(job.timeline, now), now)

    def _status_job(self) -> str:
        """The job behind ``GET /status``: kept across restarts unless asked to start anew."""
        job_id = None if self.config.reset_status else self.store.get_meta(STATUS_JOB_KEY)
        if job_id is not None and self.store.get(job_id) is not None:
            return job_id
        cfg = self.config
        timeline = draw_fixed_delay(
            self._rng("status"),
            self.clock(),
            cfg.status_delay_min,
            cfg.status_delay_max,
            cfg.simulation.error_rate,
        )
        job, _ = self.store.add(
            id=new_job_id(),
            language="en",
            video_seconds=1.0,
            source_url=None,
            callback_url=None,
            timeline=timeline,
        )
        self.store.set_meta(STATUS_JOB_KEY, job.id)
        log.info(
            "GET /status follows job %s (terminal at +%.1fs)", job.id, timeline.ends_at - timeline.created_at
        )
        return job.id

    def _rng(self, stream: str) -> random.Random:
        seed = self.config.seed
        return random.Random(f"{seed}:{stream}") if seed is not None else random.Random()

    def create(self, spec: JobCreate, idempotency_key: str | None) -> tuple[StoredJob, bool]:
        rng = self._rng(str(self.store.count()))
        timeline = draw_timeline(self.config.simulation, rng, self.clock(), spec.video_seconds, spec.simulate)
        job, created = self.store.add(
            id=new_job_id(),
            language=spec.language,
            video_seconds=spec.video_seconds,
            source_url=spec.source_url,
            callback_url=spec.callback_url,
            timeline=timeline,
            idempotency_key=idempotency_key,
        )
        if created and spec.callback_url is not None:
            self.webhooks.wake()
        stored = (job.language, job.video_seconds, job.source_url, job.callback_url)
        if not created and stored != (spec.language, spec.video_seconds, spec.source_url, spec.callback_url):
            raise ProblemError(
                422,
                "idempotency-key-reused",
                f"This Idempotency-Key was used for a different request, which created {job.id}: "
                "use a new key for a new job.",
            )
        return job, created

    def find(self, job_id: str) -> StoredJob:
        self.check_id(job_id)
        job = self.store.get(job_id)
        if job is None:
            raise ProblemError(404, "job-not-found", f"There is no job with id {job_id!r}.")
        return job

    @staticmethod
    def check_id(job_id: str) -> None:
        if not JOB_ID_RE.match(job_id):
            raise ProblemError(
                400,
                "malformed-job-id",
                f"{job_id[:80]!r} is not a job id: ids look like 'job_' and 32 hex digits.",
            )

    async def hold(self, jobs: list[StoredJob], request: Request) -> tuple[list[StoredJob], dict[str, str]]:
        """Honour ``Prefer: wait=N`` (RFC 7240): answer when one of the jobs leaves ``pending`` or
        after N seconds (capped by ``max_wait``), whichever comes first."""
        wait = parse_prefer_wait(_header(request, b"prefer"))
        if wait is None:
            return jobs, {}
        applied = min(wait, self.config.max_wait)
        deadline = self.clock() + applied
        by_id = {job.id: job for job in jobs}
        # A client that goes away ends its hold at once; else its request, task and timer stay
        # until the hold ends (up to max_wait), whatever the client did.
        gone = asyncio.ensure_future(_disconnected(request.receive))
        try:
            while (now := self.clock()) < (until := min(deadline, *(j.timeline.ends_at for j in jobs))):
                woken = await self.notifier.sleep(by_id.keys(), until - now, gone)
                if gone.done():
                    break  # nobody to answer: uvicorn drops what is sent after a disconnect
                if woken is not None:
                    by_id[woken] = self.store.get(woken) or by_id[woken]
                    jobs = list(by_id.values())
        finally:
            gone.cancel()
        return jobs, {"Preference-Applied": f"wait={applied:g}", "Vary": "Prefer"}

    def respond(self, job: StoredJob, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """The job's state now, with a ``Retry-After`` hint while it is pending."""
        now = self.clock()
        state = state_at(job.timeline, now)
        return JSONBytes(_encode(to_wire(job, state, now)), status, headers, self.raw_hint_headers(state))

    def raw_hint_headers(self, state: State) -> list[tuple[bytes, bytes]]:
        """``Cache-Control: no-store``, and ``Retry-After`` while pending, as ASGI raw headers."""
        if state.estimated_remaining is None:
            return [_NO_STORE]
        hint = min(state.estimated_remaining, self.config.retry_after_max)
        return [_NO_STORE, (b"retry-after", format_retry_after(hint).encode())]


class JSONBytes(Response):
    """An encoded JSON body with headers given as they go on the wire: the hot paths skip
    Starlette's header normalisation."""

    media_type = JSON

    def __init__(
        self, body: bytes, status: int, headers: dict[str, str] | None, raw: list[tuple[bytes, bytes]]
    ) -> None:
        self.body, self.status_code, self.background = body, status, None
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()),
            *raw,
        ]


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


def _header(request: Request, name: bytes) -> str | None:
    """A request header by its lower-case name, without building Starlette's ``Headers``."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone away (the ASGI ``http.disconnect`` message)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


# --- routes -----------------------------------------------------------------------------------


async def get_status(request: Request) -> Response:
    """The spec's endpoint: ``{"result": ...}`` of the service's own job, or of ``?job_id=``."""
    service = _service(request)
    job = service.find(request.query_params.get("job_id") or service.status_job_id)
    [job], headers = await service.hold([job], request)
    state = state_at(job.timeline, service.clock())
    return JSONBytes(_encode(StatusBody(result=state.result)), 200, headers, service.raw_hint_headers(state))


async def create_job(request: Request) -> Response:
    service = _authorized(request)
    spec = _parse_create(await _read_body(request, service.config.max_body_bytes), request)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ProblemError(400, "bad-idempotency-key", "Idempotency-Key must be 1 to 255 characters.")
    job, created = service.create(spec, key)
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return service.respond(job, 201 if created else 200, headers)


async def get_job(request: Request) -> Response:
    service = _authorized(request)
    [job], headers = await service.hold([service.find(request.path_params["job_id"])], request)
    return service.respond(job, headers=headers)


async def wait_jobs(request: Request) -> Response:
    """Many jobs at once: the finished ones among ``ids``; with ``Prefer: wait``, held until one is."""
    service = _authorized(request)
    spec = _decode(await _read_body(request, service.config.max_body_bytes), JobsWait, request)
    ids = list(dict.fromkeys(spec.ids))
    for job_id in ids:
        service.check_id(job_id)
    found = service.store.get_many(ids)
    if len(found) < len(ids):
        missing = [job_id for job_id in ids if job_id not in found]
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ProblemError(404, "job-not-found", f"There is no job with id {shown}.")
    jobs, headers = await service.hold(list(found.values()), request)
    now = service.clock()
    states = [(job, state_at(job.timeline, now)) for job in jobs]
    done = [to_wire(job, state, now) for job, state in states if state.result != "pending"]
    body = JobsWaitResult(items=done, pending=len(states) - len(done))
    headers["Cache-Control"] = "no-store"
    return Response(_encode(body), 200, headers, media_type=JSON)


async def get_job_events(request: Request) -> Response:
    """Server-Sent Events: progress while pending, then the terminal job."""
    service = _authorized(request)
    job = service.find(request.path_params["job_id"])
    frames = job_events(
        job,
        request.headers.get("last-event-id"),
        service.store,
        service.notifier,
        service.clock,
        lambda job, state, now: _encode(to_wire(job, state, now)),
        service.config.stream,
    )
    return EventStream(frames, service.config.stream.send_timeout)


async def cancel_job(request: Request) -> Response:
    service = _authorized(request)
    job = service.find(request.path_params["job_id"])
    if job.id == service.status_job_id:
        raise ProblemError(
            403, "status-job", "This job backs GET /status; it ends on its own and cannot be cancelled."
        )
    cancelled = service.store.cancel(job.id, service.clock())
    assert cancelled is not None  # jobs are never deleted
    service.notifier.notify(job.id)
    service.webhooks.wake()
    error = cancelled.timeline.error
    if error is None or error.code != "cancelled":
        result = cancelled.timeline.outcome
        raise ProblemError(
            409,
            "job-finished",
            f"Job {job.id} already ended as {result!r} and can no longer be cancelled.",
        )
    return service.respond(cancelled)


async def list_jobs(request: Request) -> Response:
    service = _authorized(request)
    query = request.query_params
    limit = _int_param(query.get("limit", "20"), "limit", 1, 100)
    result = query.get("result")
    if result is not None and result not in RESULTS:
        raise ProblemError(
            400, "bad-query", f"result must be one of pending, completed, error; not {result!r}."
        )
    before = _decode_cursor(query["cursor"]) if "cursor" in query else None
    now = service.clock()
    jobs = service.store.list_jobs(before_seq=before, limit=limit + 1, result=result, now=now)  # type: ignore[arg-type]
    page = jobs[:limit]
    cursor = _encode_cursor(page[-1].seq) if len(jobs) > limit else None
    body = JobPage(items=[to_wire(j, state_at(j.timeline, now), now) for j in page], next_cursor=cursor)
    return Response(_encode(body), 200, {"Cache-Control": "no-store"}, media_type=JSON)


async def get_webhook(request: Request) -> Response:
    """The state of a job's webhook delivery."""
    service = _authorized(request)
    job = service.find(request.path_params["job_id"])
    delivery = service.store.delivery(job.id)
    if delivery is None:
        raise ProblemError(404, "no-webhook", f"Job {job.id} was created without a callback_url.")
    return Response(_encode(delivery), 200, {"Cache-Control": "no-store"}, media_type=JSON)


async def get_webhook_secret(request: Request) -> Response:
    """The secret that signs this service's webhooks (``whsec_…``), for your receiver."""
    service = _authorized(request)
    return Response(_encode({"secret": service.webhooks.secret}), media_type=JSON)


async def healthz(request: Request) -> Response:
    """Liveness, and how many long-polls and event streams this process holds right now."""
    waiting = _service(request).notifier.waiting
    return Response(b'{"ok":true,"waiting":%d}' % waiting, media_type=JSON)


# --- request parsing --------------------------------------------------------------------------


def _authorized(request: Request) -> Service:
    """The service, once the request carries the API key (when one is configured)."""
    service = _service(request)
    key = service.config.api_key
    if key is None:
        return service
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), key):
        detail = "Missing or wrong API key: send 'Authorization: Bearer <key>'."
        raise ProblemError(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"})
    return service


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ProblemError(413, "body-too-large", f"The request body exceeds {limit} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _decode(body: bytes, kind: type[T], request: Request) -> T:
    """The JSON body as ``kind``, or the problem that says what is wrong with it."""
    if not body.strip():
        raise ProblemError(400, "empty-body", "The request body is empty: send a JSON object.")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ProblemError(422, "invalid-body", f"Invalid request: {exc}.") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        sent_as = request.headers.get("content-type", "no Content-Type")
        detail = f"The body is not valid JSON ({exc}; sent as {sent_as})."
        raise ProblemError(400, "malformed-json", detail) from None


def _parse_create(body: bytes, request: Request) -> JobCreate:
    spec = _decode(body, JobCreate, request)
    if spec.language not in LANGUAGES:
        raise ProblemError(
            422,
            "unknown-language",
            f"Unknown language {spec.language!r}; supported: {', '.join(sorted(LANGUAGES))}.",
        )
    for name in ("source_url", "callback_url"):
        url = getattr(spec, name)
        if url is not None and not _is_http_url(url):
            raise ProblemError(422, "invalid-job", f"Invalid job: {name} must be an absolute http(s) URL.")
    return spec


def _is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a host and, if any, a valid port."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:  # e.g. "http://[::1" (unbalanced IPv6 bracket)
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _int_param(raw: str, name: str, lo: int, hi: int) -> int:
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise ProblemError(400, "bad-query", f"{name} must be an integer from {lo} to {hi}.")
    return int(raw)


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, seq = raw.partition(":")
        if prefix == "seq" and seq.isascii() and seq.isdigit() and int(seq) < 2**63:
            return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ProblemError(
        400, "bad-cursor", "The cursor is not one this service issued: pass next_cursor back as is."
    )


# --- the application --------------------------------------------------------------------------


def _by_method(
    **endpoints: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint per path that dispatches on the method (HEAD as GET), so Starlette's 405
    carries the path's full ``Allow`` list rather than the first route's. On a route that takes
    every method, it answers the 405 itself."""
    allow = {"Allow": ", ".join(endpoints)}

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        if method not in endpoints:
            raise HTTPException(405, headers=allow)
        return await endpoints[method](request)

    return endpoint


class _EveryMethod:
    """An endpoint that Starlette routes every method to (a plain function's route is GET only):
    an ASGI app, which is what Starlette takes a class instance for."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(
    config: ServerConfig | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The ASGI application. Without a ``store`` it opens the one the config names."""
    config = config or ServerConfig()
    if store is None:
        store = Store(config.db_path if config.store == "sqlite" else ":memory:")
    spec = _encode(openapi.document())
    service = Service(config, store, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sender = asyncio.create_task(service.webhooks.run(), name="vtrans-webhooks")
        try:
            yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    app = Starlette(
        lifespan=lifespan,
        routes=[
            # Every method matches this route in full, so that GET /v1/jobs/wait is a 405 here
            # rather than a request for a job called "wait" below.
            Route("/v1/jobs/wait", _EveryMethod(_by_method(POST=wait_jobs))),
            # Then the hot paths: Starlette tries routes in order.
            Route("/v1/jobs/{job_id}", _by_method(GET=get_job, DELETE=cancel_job), methods=["GET", "DELETE"]),
            Route("/status", get_status, methods=["GET"]),
            Route("/v1/jobs", _by_method(GET=list_jobs, POST=create_job), methods=["GET", "POST"]),
            Route("/v1/jobs/{job_id}/events", get_job_events, methods=["GET"]),
            Route("/v1/jobs/{job_id}/webhook", get_webhook, methods=["GET"]),
            Route("/v1/webhook-secret", get_webhook_secret, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", lambda _: Response(spec, media_type=JSON), methods=["GET"]),
            Route("/docs", lambda _: HTMLResponse(openapi.DOCS_PAGE), methods=["GET"]),
        ],
        exception_handlers={
            ProblemError: on_problem,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
    )
    app.state.service = service
    return app
