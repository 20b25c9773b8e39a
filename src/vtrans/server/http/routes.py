"""The routes: parse the request, call the service, render its answer. Nothing else."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar, cast, overload

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from vtrans.protocol import (
    MAX_BATCH_BYTES,
    RESULTS,
    JobCreate,
    JobPage,
    JobsWait,
    JobsWaitResult,
    Result,
    Status,
    parse_prefer_progress,
    parse_prefer_wait,
)
from vtrans.protocol import format_retry_after as retry_after
from vtrans.server.http.disconnect import disconnected
from vtrans.server.http.events import EventStream, frames
from vtrans.server.http.problems import ProblemError
from vtrans.server.service import Service, View
from vtrans.wording import readable

T = TypeVar("T")
JSON = "application/json"
_encode = msgspec.json.encode
_NO_STORE = (b"cache-control", b"no-store")


class JSONBytes(Response):
    """An encoded JSON body with headers given as they go on the wire: the hot paths skip
    Starlette's header normalisation."""

    media_type = JSON

    def __init__(
        self, body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.body, self.status_code, self.background = body, status, None
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
            _NO_STORE,
            *(headers or ()),
        ]


def _job(view: View, status: int = 200, extra: list[tuple[bytes, bytes]] | None = None) -> Response:
    """A job's answer: its wire form, ``Retry-After`` while pending, and how a hold went."""
    return JSONBytes(_encode(view.wire()), status, [*_hints(view), *(extra or ())])


def _hints(view: View) -> list[tuple[bytes, bytes]]:
    headers = []
    if view.hint is not None:
        headers.append((b"retry-after", retry_after(view.hint).encode()))
    if view.held is not None:
        headers += _applied(view.held, view.stepped)
    return headers


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


# --- routes -----------------------------------------------------------------------------------


async def get_status(request: Request) -> Response:
    """The spec's endpoint: ``{"result": ...}`` of the service's own job (open to anyone: it tells
    nothing of any tenant), or of the caller's job ``?job_id=``."""
    service = _service(request)
    job_id = _param(request, "job_id") or None  # "?job_id=" is no id
    tenant = "" if job_id is None else _tenant(request)
    with _held(request) as (wait, gone):
        view = await service.status(job_id, tenant=tenant, wait=wait, gone=gone)
    return JSONBytes(_encode(Status(result=view.state.result)), 200, _hints(view))


async def create_job(request: Request) -> Response:
    service, tenant = _service(request), _tenant(request)
    spec = _decode(await _read_body(request, service.config.max_body_bytes), JobCreate, request)
    key = _header(request, b"idempotency-key")
    view, created = await service.create(spec, tenant=tenant, idempotency_key=key)
    headers = [(b"location", f"/v1/jobs/{view.job.id}".encode())]
    if not created:
        headers.append((b"idempotent-replayed", b"true"))
    return _job(view, 201 if created else 200, headers)


async def get_job(request: Request) -> Response:
    service, tenant = _service(request), _tenant(request)
    step = parse_prefer_progress(_header(request, b"prefer"))
    with _held(request) as (wait, gone):
        view = await service.get(
            request.path_params["job_id"], tenant=tenant, wait=wait, gone=gone, progress=step
        )
    return _job(view)


async def cancel_job(request: Request) -> Response:
    tenant = _tenant(request)
    return _job(await _service(request).cancel(request.path_params["job_id"], tenant=tenant))


async def wait_jobs(request: Request) -> Response:
    """Many jobs at once: the finished ones among ``ids``; with ``Prefer: wait``, held until one is.
    With ``Accept: text/event-stream``, one stream of a ``done`` event per job as each finishes."""
    service, tenant = _service(request), _tenant(request)
    limit = max(service.config.max_body_bytes, MAX_BATCH_BYTES)  # up to MAX_BATCH ids
    spec = _decode(await _read_body(request, limit), JobsWait, request)
    if b"text/event-stream" in (_raw_header(request, b"accept") or b""):
        events = await service.watch_many(spec.ids, tenant=tenant)
        return EventStream(frames(events, service.config.stream.retry_ms), service.config.stream.send_timeout)
    with _held(request) as (wait, gone):
        done, pending, held = await service.wait_many(spec.ids, tenant=tenant, wait=wait, gone=gone)
    body = JobsWaitResult(items=[view.wire() for view in done], pending=pending)
    headers = [] if held is None else _applied(held)
    return JSONBytes(_encode(body), 200, headers)


async def get_job_events(request: Request) -> Response:
    """Server-Sent Events: progress while pending, then the terminal job."""
    service, tenant = _service(request), _tenant(request)
    job_id, last = request.path_params["job_id"], _header(request, b"last-event-id")
    events = await service.events(job_id, last, tenant=tenant)
    stream = service.config.stream
    return EventStream(frames(events, stream.retry_ms), stream.send_timeout)


async def list_jobs(request: Request) -> Response:
    service, tenant = _service(request), _tenant(request)
    limit, result, cursor = listing(request)
    page = await service.list_jobs(result, limit, cursor, tenant=tenant)
    return JSONBytes(
        _encode(JobPage(items=[view.wire() for view in page.items], next_cursor=page.next_cursor))
    )


async def get_webhook(request: Request) -> Response:
    """The state of a job's webhook delivery."""
    tenant = _tenant(request)
    return JSONBytes(_encode(await _service(request).delivery(request.path_params["job_id"], tenant=tenant)))


async def get_webhook_secret(request: Request) -> Response:
    """The caller's webhook signing secrets (``whsec_…``), for its receiver."""
    secrets = await _service(request).tenants.secrets(_tenant(request))
    return JSONBytes(_encode(secrets))


async def rotate_webhook_secret(request: Request) -> Response:
    """A new signing secret for the caller; the previous one signs along until ``previous_until``."""
    return JSONBytes(_encode(await _service(request).rotate_secret(tenant=_tenant(request))))


async def healthz(request: Request) -> Response:
    """Liveness; which process answered, and how many long-polls and event streams it holds now."""
    waiting = _service(request).wakeups.held
    return JSONBytes(b'{"ok":true,"waiting":%d,"pid":%d}' % (waiting, os.getpid()))


# --- request parsing --------------------------------------------------------------------------


def _raw_header(request: Request, name: bytes) -> bytes | None:
    """A request header's bytes by its lower-case name, without building Starlette's ``Headers``."""
    for key, value in request.scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _header(request: Request, name: bytes) -> str | None:
    raw = _raw_header(request, name)
    return None if raw is None else raw.decode("latin-1")


def _applied(held: float, stepped: bool = False) -> list[tuple[bytes, bytes]]:
    """``Preference-Applied`` for a hold (and its progress steps, when they were asked for)."""
    applied = f"wait={held:g}" + (", progress" if stepped else "")
    return [(b"preference-applied", applied.encode()), (b"vary", b"Prefer")]


@contextmanager
def _held(request: Request) -> Iterator[tuple[float | None, asyncio.Future[None] | None]]:
    """The hold a request asks for (``Prefer: wait=N``, RFC 7240), and a future done when its
    client goes away, so that a hold nobody will read ends at once."""
    wait = parse_prefer_wait(_header(request, b"prefer"))
    if wait is None:
        yield None, None
        return
    gone = asyncio.ensure_future(disconnected(request.receive))
    try:
        yield wait, gone
    finally:
        gone.cancel()


def _tenant(request: Request) -> str:
    """The tenant whose API key the request carries (``""`` when the service has no keys)."""
    tenants = _service(request).tenants
    if tenants.open:
        return ""
    tenant = tenants.from_authorization(_raw_header(request, b"authorization"))
    if tenant is None:
        detail = "Missing or wrong API key: send 'Authorization: Bearer <key>'."
        raise ProblemError(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"})
    return tenant


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ProblemError(413, "body-too-large", f"The request body exceeds {limit} bytes.")
    declared = _header(request, b"content-length") or ""
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
    except ClientDisconnect:  # cut off by the connection's bounds (408), a shutdown (503) or its client
        raise ProblemError(408, "request-timeout", "The request's body did not arrive.") from None
    return bytes(body)


def _decode(body: bytes, kind: type[T], request: Request) -> T:
    """The JSON body as ``kind``, or the problem that says what is wrong with it."""
    if not body.strip():
        raise ProblemError(400, "empty-body", "The request body is empty: send a JSON object.")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ProblemError(422, "invalid-body", f"Invalid request: {readable(str(exc))}.") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        sent_as = _header(request, b"content-type") or "no Content-Type"
        detail = f"The body is not valid JSON ({exc}; sent as {sent_as})."
        raise ProblemError(400, "malformed-json", detail) from None


def listing(request: Request) -> tuple[int, Result | None, str | None]:
    """A listing's ``limit``, ``result`` and ``cursor`` (``GET /v1/jobs`` and its event stream)."""
    limit = _int_param(_param(request, "limit", "20"), "limit", 1, 100)
    result = _param(request, "result")
    if result is not None and result not in RESULTS:
        raise ProblemError(
            400, "bad-query", f"result must be one of pending, completed, error; not {result!r}."
        )
    return limit, cast("Result | None", result), _param(request, "cursor")


@overload
def _param(request: Request, name: str) -> str | None: ...
@overload
def _param(request: Request, name: str, default: str) -> str: ...
def _param(request: Request, name: str, default: str | None = None) -> str | None:
    """The query parameter ``name``, given once (twice is ambiguous: a problem, not a guess)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ProblemError(400, "bad-query", f"{name} is given {len(values)} times; give it once.")
    return values[0] if values else default


def _int_param(raw: str, name: str, lo: int, hi: int) -> int:
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise ProblemError(400, "bad-query", f"{name} must be an integer from {lo} to {hi}.")
    return int(raw)
