"""Instrumentation: hooks that learn what a client does — each request, each retry, each wait.

Subclass :class:`Hook`, override what you need, and give instances to a client::

    client = vtrans.Client(url, hooks=[LoggingHook(), MyHook()])

Hooks belong to a client, as its httpx2 event hooks do: two clients in one process may report to
different places, and a test's hooks never leak into another's. They are called from the
client's flows, in the thread (``Client``) or event loop (``AsyncClient``) that runs the call, so
they must be quick. A hook that raises is logged and skipped: it never breaks a call.

Ready-made: :class:`LoggingHook` here, and ``vtrans.client.prometheus.PrometheusHook`` (with the
``vtrans[prometheus]`` extra).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from vtrans.protocol import Job

log = logging.getLogger("vtrans.client")

WaitResult = Literal["completed", "error", "timeout", "failed"]

_JOB_PATH = re.compile(r"^/v1/jobs/(?P<id>[^/]+)(?P<rest>/events|/webhook)?$")


def route_of(path: str) -> tuple[str, str | None]:
    """The route template of a request path (``/v1/jobs/{id}``) and the job id in it, if any."""
    match = _JOB_PATH.match(path)
    if match is None or match["id"] == "wait":
        return path, None
    return "/v1/jobs/{id}" + (match["rest"] or ""), match["id"]


@dataclass(frozen=True)
class RequestDetails:
    """One request has been answered, or has failed without an answer."""

    method: str
    #: The path sent, and its route template (``/v1/jobs/{id}``): label metrics with the template.
    path: str
    route: str
    #: The job the request is about, when it names one (in its path, or ``/status?job_id=``).
    job_id: str | None
    #: 1 for a first try, 2 for its first retry, and so on.
    attempt: int
    #: The HTTP status, or ``None`` when no answer came.
    status: int | None
    #: When no answer came, what went wrong (``ConnectError``, ``ReadTimeout``, ...).
    error: str | None
    #: Seconds from sending the request to its answer, or to its failure.
    elapsed: float


@dataclass(frozen=True)
class RetryDetails:
    """A request failed in a way worth retrying, and will be retried after ``delay`` seconds."""

    method: str
    path: str
    route: str
    job_id: str | None
    #: The attempt that failed (1 for a first try).
    attempt: int
    delay: float
    #: Seconds since the failures in a row began.
    failing_for: float
    #: The error it would have raised: a ``TransportError``, ``ServiceUnavailable`` or ``ProtocolError``.
    caused_by: Exception


@dataclass(frozen=True)
class WaitDetails:
    """A wait (``wait``, ``watch``, ``events``, ``wait_many``, ``as_completed``) is over."""

    #: The job waited for (``None`` for ``GET /status`` and for a batch: see ``job_ids``).
    job_id: str | None
    #: ``completed`` or ``error`` as the job (or, for a batch, the worst of them) ended; ``timeout``
    #: when its deadline passed; ``failed`` when it raised another error (see ``error``).
    result: WaitResult
    #: Seconds from the start of the wait to its end.
    waited: float
    requests: int
    retries: int
    #: Seconds from the job's ``finished_at`` (as the service reports it) to the moment the client
    #: learned of it; ``None`` when the service gives no ``finished_at``, or for a batch.
    lag: float | None
    #: The last state of the job (``None`` if none was seen, and for a batch).
    job: Job | None = None
    #: The jobs of a batch (``wait_many``, ``as_completed``).
    job_ids: tuple[str, ...] = ()
    transport: str = "auto"
    #: What the wait raised (``WaitTimeout``, ``JobFailed``, ``TransportError``, ...), if it raised.
    error: Exception | None = None


class Hook:
    """Base class of client hooks: each method is called with what just happened; the defaults
    do nothing."""

    def on_request(self, details: RequestDetails) -> None:
        """A request was answered, or failed without an answer (each attempt is one call)."""

    def on_retry(self, details: RetryDetails) -> None:
        """A failed request will be retried after ``details.delay`` seconds."""

    def on_wait(self, details: WaitDetails) -> None:
        """A wait is over: it returned, timed out or raised."""


class Hooks:
    """The hooks of one client: calls each, and logs (and survives) a hook that raises."""

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self.hooks = tuple(hooks)
        for hook in self.hooks:
            if not isinstance(hook, Hook):
                raise TypeError(f"hooks must be vtrans.client.hooks.Hook instances, not {hook!r}")

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def request(self, details: RequestDetails) -> None:
        for hook in self.hooks:
            try:
                hook.on_request(details)
            except Exception:
                log.exception("the on_request hook of %r raised; carrying on", hook)

    def retry(self, details: RetryDetails) -> None:
        for hook in self.hooks:
            try:
                hook.on_retry(details)
            except Exception:
                log.exception("the on_retry hook of %r raised; carrying on", hook)

    def wait(self, details: WaitDetails) -> None:
        for hook in self.hooks:
            try:
                hook.on_wait(details)
            except Exception:
                log.exception("the on_wait hook of %r raised; carrying on", hook)


class LoggingHook(Hook):
    """Logs each request (DEBUG), each retry (WARNING) and each wait (INFO) to ``logger``
    (default ``vtrans.client.hooks``), with the details as the record's ``vtrans`` attribute for
    structured formatters."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("vtrans.client.hooks")

    def on_request(self, details: RequestDetails) -> None:
        outcome = details.status if details.status is not None else details.error
        self.logger.debug(
            "%s %s -> %s in %.3fs (attempt %d)",
            details.method,
            details.path,
            outcome,
            details.elapsed,
            details.attempt,
            extra={"vtrans": details},
        )

    def on_retry(self, details: RetryDetails) -> None:
        self.logger.warning(
            "%s %s failed (attempt %d, failing for %.1fs): %s; retrying in %.2fs",
            details.method,
            details.path,
            details.attempt,
            details.failing_for,
            details.caused_by,
            details.delay,
            extra={"vtrans": details},
        )

    def on_wait(self, details: WaitDetails) -> None:
        name = details.job_id or (f"{len(details.job_ids)} jobs" if details.job_ids else "/status")
        lag = f", lag {details.lag:.3f}s" if details.lag is not None else ""
        self.logger.info(
            "wait for %s: %s after %.1fs, %d requests (%d retries)%s",
            name,
            details.result,
            details.waited,
            details.requests,
            details.retries,
            lag,
            extra={"vtrans": details},
        )
