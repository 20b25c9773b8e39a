"""The service's Prometheus metrics (``GET /metrics``), named after OpenTelemetry's conventions.

One :class:`Metrics` per application, each with a registry of its own, so that several apps in
one process (tests, the in-process fake) never share or clash. Under ``vtrans serve --workers N``
each worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
multi-process mode, set up by the parent), and ``/metrics``, whichever worker answers, sums them.

**When a job counts as finished.** A job's end is a point on its stored timeline: nothing happens
at that moment, in any process. The process that *created* a job counts it, on a timer at its
end, with the outcome stored then (a cancellation moves the end: the process that cancels counts
``error``/``cancelled`` at once, and the creator's timer, finding a changed timeline, does not).
So every job is counted once across workers and replicas, at the time it ends. A process that
owns its store (SQLite, memory) also counts, after a restart, the jobs that were still pending;
on a shared store (PostgreSQL), a job whose creating process stopped before the job ended is not
counted by anyone (``vtrans_jobs_created_total`` minus the finished minus the pending shows them).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from vtrans.server import simulation
from vtrans.server.observer import Observer
from vtrans.server.simulation import FAILURES
from vtrans.server.stores import Store, StoredJob
from vtrans.server.stores.timed import timed

# No ``*_created`` series (a timestamp per labelled child, which Prometheus' text format does not use).
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: OpenTelemetry's advised buckets for ``http.server.request.duration``.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: Long-polls and streams last as long as they are held.
HELD_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
JOB_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Error codes kept as label values; any other (a test's own ``simulate.error_code``) is ``other``.
KNOWN_ERRORS = frozenset((*FAILURES, "cancelled"))
#: How often a worker of several writes its gauges (in flight, held) for the others' ``/metrics``.
GAUGE_SYNC = 1.0
#: Kinds of held request (``vtrans_held_requests{kind}``).
HELD_KINDS = ("long-poll", "batch", "stream")


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multi-process mode, if this process is in it."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics(Observer):
    """The metrics of one application, and the hooks that move them."""

    def __init__(self, store_system: str, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.clock = clock
        self.store_system = store_system
        r = self.registry
        http = ("http_request_method", "http_route", "http_response_status_code")
        self.requests = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests (long-polls and event streams excluded: see "
            "vtrans_held_request_duration_seconds).",
            http,
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.active = Gauge(
            "http_server_active_requests",
            "HTTP server requests in flight.",
            ("http_request_method",),
            multiprocess_mode="livesum",
            registry=r,
        )
        self.held_duration = Histogram(
            "vtrans_held_request_duration_seconds",
            "Duration of held requests (long-polls, batch waits, event streams): how long they were held.",
            ("kind", "http_route", "http_response_status_code"),
            buckets=HELD_BUCKETS,
            registry=r,
        )
        self.held = Gauge(
            "vtrans_held_requests",
            "Requests held open right now, by kind: long-poll, batch (POST /v1/jobs/wait), stream (SSE).",
            ("kind",),
            multiprocess_mode="livesum",
            registry=r,
        )
        self.created = Counter("vtrans_jobs_created", "Jobs created.", registry=r)
        self.finished = Counter(
            "vtrans_jobs_finished",
            "Jobs finished, by result and error code (counted at their end by the process that "
            "created them; a cancellation by the process that cancelled).",
            ("result", "error_code"),
            registry=r,
        )
        self.job_duration = Histogram(
            "vtrans_job_duration_seconds",
            "Duration of finished jobs, from creation to their end.",
            ("result",),
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.webhook_attempts = Counter(
            "vtrans_webhook_attempts",
            "Webhook sends, by outcome: delivered, retry (failed, will be retried), failed "
            "(failed, retries exhausted), gone (the receiver answered 410).",
            ("outcome",),
            registry=r,
        )
        self.webhook_latency = Histogram(
            "vtrans_webhook_attempt_duration_seconds",
            "Duration of webhook sends, by outcome.",
            ("outcome",),
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "vtrans_webhook_deliveries",
            "Webhook deliveries that reached a final state: delivered, failed, gone.",
            ("state",),
            registry=r,
        )
        self.webhook_tries = Histogram(
            "vtrans_webhook_delivery_attempts",
            "Attempts a webhook delivery took to reach its final state.",
            ("state",),
            buckets=(1, 2, 3, 4, 5, 6, 8, 10),
            registry=r,
        )
        self.store_ops = Histogram(
            "db_client_operation_duration_seconds",
            "Duration of store operations.",
            ("db_system_name", "db_operation_name"),
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self._store_children: dict[str, Histogram] = {}
        self._lookup: Callable[[str], Awaitable[StoredJob | None]] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Requests in flight by method, and held by kind, counted by the HTTP layer as plain
        #: numbers (cheaper than a gauge's lock twice a request); :meth:`sync_gauges` sets the
        #: gauges from them.
        self.in_flight: dict[str, int] = {}
        self.held_now: dict[str, int] = dict.fromkeys(HELD_KINDS, 0)
        for kind in HELD_KINDS:
            self.held.labels(kind)  # exported at 0 from the start

    # --- the store ---------------------------------------------------------------------------

    def timed(self, store: Store) -> Store:
        """``store``, with each operation's duration recorded."""
        return timed(store, self._store_op)

    def _store_op(self, name: str, seconds: float) -> None:
        child = self._store_children.get(name)
        if child is None:
            child = self._store_children[name] = self.store_ops.labels(self.store_system, name)
        child.observe(seconds)

    # --- jobs --------------------------------------------------------------------------------

    def start(self, lookup: Callable[[str], Awaitable[StoredJob | None]]) -> None:
        """Begin counting jobs at their end (``lookup`` reads a job as stored now), and, with
        several processes, writing this one's gauges every :data:`GAUGE_SYNC` seconds."""
        self._lookup = lookup
        if multiprocess_dir() is not None:
            task = asyncio.ensure_future(self._sync_every(GAUGE_SYNC))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def sync_gauges(self) -> None:
        """Set the gauges of requests in flight and held from the HTTP layer's counts."""
        for method, count in self.in_flight.items():
            self.active.labels(method).set(count)
        for kind, count in self.held_now.items():
            self.held.labels(kind).set(count)

    async def _sync_every(self, seconds: float) -> None:
        while True:
            self.sync_gauges()
            await asyncio.sleep(seconds)

    async def watch_pending(self, store: Store, now: float, skip: str) -> None:
        """Count at their end the jobs pending at ``now`` (but ``skip``): for a process that owns
        its store, after a restart."""
        before = None
        while True:
            page = await store.list_jobs(
                tenant=None, before_seq=before, limit=1000, window=simulation.window("pending", now)
            )
            for job in page:
                if job.id != skip:
                    self.watch(job)
            if len(page) < 1000:
                return
            before = page[-1].seq

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # its live gauges go with it

    def job_created(self, job: StoredJob) -> None:
        self.created.inc()
        self.watch(job)

    def watch(self, job: StoredJob) -> None:
        """Count ``job`` when it ends, unless its timeline changes before."""
        if self._lookup is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, job.timeline.ends_at - self.clock())
        self._timers[job.id] = loop.call_later(delay, self._ended, job)

    def _ended(self, job: StoredJob) -> None:
        self._timers.pop(job.id, None)
        task = asyncio.ensure_future(self._count_if_unchanged(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count_if_unchanged(self, job: StoredJob) -> None:
        assert self._lookup is not None
        try:
            now = await self._lookup(job.id)
        except Exception:  # the store failed: this one job goes uncounted
            return
        if now is not None and now.timeline.ends_at == job.timeline.ends_at:
            self._finished(now)

    def job_cancelled(self, job: StoredJob) -> None:
        timer = self._timers.pop(job.id, None)
        if timer is not None:
            timer.cancel()
        self._finished(job)

    def _finished(self, job: StoredJob) -> None:
        timeline = job.timeline
        code = "" if timeline.error is None else timeline.error.code
        self.finished.labels(timeline.outcome, code if code in KNOWN_ERRORS or not code else "other").inc()
        self.job_duration.labels(timeline.outcome).observe(max(0.0, timeline.ends_at - timeline.created_at))

    # --- webhooks ----------------------------------------------------------------------------

    def webhook_attempt(self, state: str, attempts: int, seconds: float) -> None:
        outcome = "retry" if state == "pending" else state
        self.webhook_attempts.labels(outcome).inc()
        self.webhook_latency.labels(outcome).observe(seconds)
        if state != "pending":
            self.webhook_deliveries.labels(state).inc()
            self.webhook_tries.labels(state).observe(attempts)

    # --- exposition --------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition: this app's, or, in multi-process mode, the sum of every
        process that wrote to the directory."""
        self.sync_gauges()
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
