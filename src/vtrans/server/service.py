"""The service's operations — create, get, cancel, list, wait on one or many jobs, follow one —
with no HTTP in them. Routes parse a request, call one of these, and render what it returns.

A job's state at a time is the simulation's (:func:`~vtrans.server.simulation.state_at`); its
wire form is :func:`~vtrans.server.wire.to_wire`'s; where it lives is the store's. This layer
keeps the rules of the API: ids, idempotency, who may cancel what, how long a wait is held, and
waking waiters when a job changes here or in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import operator
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import httpx2

from vtrans.protocol import CURSOR_RE, IDEMPOTENCY_KEY_RE, JOB_ID_RE, LANGUAGES, Job, JobCreate, Result
from vtrans.server import simulation
from vtrans.server.cache import JobCache
from vtrans.server.callbacks import Guard, Refused, loopback_host, syntax_problem
from vtrans.server.config import ServerConfig
from vtrans.server.errors import Conflict, Forbidden, Invalid, Malformed, NotFound, Unavailable
from vtrans.server.observer import NO_OBSERVER, Observer
from vtrans.server.outbox import Outbox
from vtrans.server.simulation import State, state_at
from vtrans.server.stores import Delivery, NewJob, Store, StoredJob
from vtrans.server.tenants import Secrets, Tenants
from vtrans.server.wakeups import Wakeups, Watch
from vtrans.server.wire import to_wire

log = logging.getLogger(__name__)

STATUS_JOB_KEY = "status_job_id"
#: Ids a batch wait reads at a time before letting other requests run.
BATCH_SLICE = 100
#: Batch waits reading their ids at the same time (the others queue).
BULK_READERS = 2
_ENDS_AT, _TENANT = operator.attrgetter("timeline.ends_at"), operator.attrgetter("tenant")
#: Target languages by their lower-case code: ``ES`` and ``pt-br`` name ``es`` and ``pt-BR``.
_LANGUAGES = {code.lower(): code for code in LANGUAGES}


class View(NamedTuple):
    """A job as seen at ``now``: what every operation answers."""

    job: StoredJob
    state: State
    now: float
    #: Seconds until the job is expected to finish, capped (``Retry-After``); ``None`` once done,
    #: or when the sandbox is set to send no hint.
    hint: float | None
    #: The hold applied to a long-poll (``Prefer: wait``), if one was asked for.
    held: float | None = None
    #: Whether the hold would end at a progress step (``Prefer: progress``).
    stepped: bool = False

    def wire(self) -> Job:
        return to_wire(self.job, self.state, self.now)


class Page(NamedTuple):
    items: list[View]
    next_cursor: str | None


class Event(NamedTuple):
    """One event of a job's stream: ``progress`` or ``done`` (with the job); ``keepalive`` when
    idle; ``reconnect`` last, when the stream ends before its job (at its lifetime, or because
    the process is shutting down)."""

    kind: str
    id: str
    view: View | None


class Watched:
    """The jobs a request waits on, by when each ends: what is finished at a time costs in
    proportion to it, not to the jobs (a heap of ends, built when first asked, from which moved
    ones are dropped lazily)."""

    def __init__(self, read_at: int, jobs: dict[str, StoredJob] | None = None) -> None:
        self.jobs: dict[str, StoredJob] = dict(jobs or {})
        #: The cache's epoch before the jobs were read: unchanged, nothing changed them since.
        self.read_at = read_at
        self._ends: list[tuple[float, str]] | None = None

    def add(self, jobs: dict[str, StoredJob]) -> None:
        """Watch these jobs too."""
        self.jobs.update(jobs)
        self._ends = None

    def _heap(self) -> list[tuple[float, str]]:
        if self._ends is None:
            self._ends = list(zip(map(_ENDS_AT, self.jobs.values()), self.jobs, strict=True))
            heapq.heapify(self._ends)
        return self._ends

    def update(self, fresh: dict[str, StoredJob]) -> None:
        """Take the jobs read again (a cancellation moves an end earlier)."""
        for job_id, job in fresh.items():
            old = self.jobs.get(job_id)
            if old is None:
                continue
            if job.timeline.ends_at != old.timeline.ends_at and self._ends is not None:
                heapq.heappush(self._ends, (job.timeline.ends_at, job_id))
            self.jobs[job_id] = job

    def next_end(self) -> float:
        """When the next watched job ends (``inf`` if none is left)."""
        ends = self._heap()
        while ends:
            end, job_id = ends[0]
            job = self.jobs.get(job_id)
            if job is not None and job.timeline.ends_at == end:
                return end
            heapq.heappop(ends)  # finished already, or its end moved
        return math.inf

    def finished(self, now: float) -> list[StoredJob]:
        """Take out the jobs finished at ``now``, in the order they ended."""
        done = []
        while self.next_end() <= now:
            _, job_id = heapq.heappop(self._heap())
            done.append(self.jobs.pop(job_id))
        return done


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


class Service:
    """The domain operations over a store, for one process; :meth:`start` before use."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        clock: Callable[[], float] = time.time,
        webhook_transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.jobs = JobCache(store)
        self.wakeups = Wakeups()
        self.tenants = Tenants(config.api_keys, store, config.webhooks.secret, config.webhooks.secret_grace)
        listen, local = config.listen, config.callbacks.local
        self.guard = Guard(
            loopback=local if local is not None else listen is None or loopback_host(listen[0]),
            allow=config.callbacks.allow,
            own=listen,
        )
        # Webhooks that go somewhere else than the network (a fake's capture) need no guard.
        guard = self.guard if webhook_transport is None else None
        self.outbox = Outbox(
            store, config.webhooks, self.describe, self.signing_secrets, clock, webhook_transport, guard
        )
        #: Told what happens (jobs created and cancelled): the metrics, when they are kept.
        self.observer: Observer = NO_OBSERVER
        self.status_job_id = ""
        #: Shutting down: holds answer at once, streams end, new requests are turned away.
        self.draining = False
        self._rng = random.Random()
        #: Batch reads of many ids in progress at once: those beyond wait their turn, so a plain
        #: request waits behind a few slices of them, not behind hundreds.
        self._bulk = asyncio.Semaphore(BULK_READERS)
        self._outbox_task: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, listen for other processes' changes, and start sending webhooks."""
        await self.store.open()
        try:
            await self.store.listen(self.changed)
            self.status_job_id = await self._status_job()
        except BaseException:
            await self.store.close()
            raise
        self._outbox_task = asyncio.create_task(self.outbox.run(), name="vtrans-outbox")

    async def stop(self) -> None:
        if self._outbox_task is not None:
            self._outbox_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outbox_task
        await self.store.close()

    def drain(self) -> None:
        """Begin a shutdown: answer every held wait with the state now, end every stream."""
        if not self.draining:
            log.info("shutting down: answering %d held waits now", self.wakeups.held)
            self.draining = True
            self.wakeups.notify_all()

    def changed(self, job_id: str | None) -> None:
        """A job changed other than by its timeline (``None``: any may have): forget the cached
        copy, then wake whoever waits on it."""
        self.jobs.evict(job_id)
        if job_id is None:
            self.wakeups.notify_all()
        else:
            self.wakeups.notify(job_id)

    async def _status_job(self) -> str:
        """The job behind ``GET /status``: kept across restarts unless asked to start anew, and
        the same for every process of a shared store."""
        if self.config.reset_status:
            job_id = new_job_id()
            await self.store.set_meta(STATUS_JOB_KEY, job_id)
        else:
            job_id = await self.store.meta_setdefault(STATUS_JOB_KEY, new_job_id())
        job = await self.store.get(job_id)
        if job is None:
            cfg = self.config
            timeline = simulation.draw_fixed_delay(
                self._seeded("status") or self._rng,
                self.clock(),
                cfg.status_delay_min,
                cfg.status_delay_max,
                cfg.simulation.error_rate,
            )
            new = NewJob(id=job_id, language="en", video_seconds=1.0, timeline=timeline)
            job, _ = await self.store.add(new)  # another process may have added it first: same job
            log.info(
                "GET /status follows job %s (terminal at +%.1fs)",
                job.id,
                job.timeline.ends_at - job.timeline.created_at,
            )
        return job.id

    def _seeded(self, stream: str) -> random.Random | None:
        seed = self.config.seed
        return random.Random(f"{seed}:{stream}") if seed is not None else None

    # --- reading ------------------------------------------------------------------------------

    def view(self, job: StoredJob, held: float | None = None, *, stepped: bool = False) -> View:
        now = self.clock()
        state = state_at(job.timeline, now)
        after = state.retry_after
        hint = None if after is None else min(after, self.config.retry_after_max)
        return View(job, state, now, hint, held, stepped)

    async def describe(self, job_id: str) -> tuple[Job, str] | None:
        """The job's wire form now, and its tenant (for webhooks)."""
        job = await self.jobs.get(job_id)
        return None if job is None else (self.view(job).wire(), job.tenant)

    async def signing_secrets(self, tenant: str) -> list[str]:
        """The secrets that sign the tenant's webhooks now."""
        return (await self.tenants.secrets(tenant)).signing(self.clock())

    async def rotate_secret(self, *, tenant: str) -> Secrets:
        """A new webhook signing secret for the tenant; the old one signs along for a grace period."""
        if self.config.webhooks.secret is not None:
            raise Conflict(
                "secret-fixed", "The webhook secret is fixed by --webhook-secret: it cannot be rotated."
            )
        return await self.tenants.rotate(tenant, self.clock())

    async def find(self, job_id: str, *, tenant: str) -> StoredJob:
        """The job, if it exists and is the tenant's (another tenant's job does not exist for it)."""
        check_id(job_id)
        job = await self.jobs.get(job_id)
        if job is None or job.tenant != tenant:
            raise NotFound("job-not-found", f"There is no job with id {job_id!r}.")
        return job

    async def get(
        self,
        job_id: str,
        *,
        tenant: str,
        wait: float | None = None,
        gone: asyncio.Future[Any] | None = None,
        progress: float | None = None,
    ) -> View:
        """The job; with ``wait``, once it leaves ``pending`` or after ``wait`` seconds (capped) —
        or, with ``progress``, once its progress has grown by that much."""
        epoch = self.jobs.epoch
        job = await self.find(job_id, tenant=tenant)
        if wait is None:
            return self.view(job)
        watched = Watched(epoch, {job.id: job})
        step_at = None
        if progress is not None:
            step_at = simulation.progress_reached(job.timeline, self.view(job).state.progress + progress)
        held = await self._hold(watched, wait, gone, step_at)
        return self.view(watched.jobs[job.id], held, stepped=progress is not None)

    async def status(
        self,
        job_id: str | None,
        *,
        tenant: str,
        wait: float | None = None,
        gone: asyncio.Future[Any] | None = None,
    ) -> View:
        """The spec's ``GET /status``: the service's own job (anyone's to see: it tells nothing of
        any tenant), or the tenant's job ``job_id``."""
        if job_id is None:
            return await self.get(self.status_job_id, tenant="", wait=wait, gone=gone)
        return await self.get(job_id, tenant=tenant, wait=wait, gone=gone)

    async def wait_many(
        self,
        job_ids: list[str],
        *,
        tenant: str,
        wait: float | None = None,
        gone: asyncio.Future[Any] | None = None,
    ) -> tuple[list[View], int, float | None]:
        """The finished jobs among ``job_ids`` and how many are pending; with ``wait``, once one
        is finished or after ``wait`` seconds (capped). Also returns the hold applied."""
        watched = await self._watched(job_ids, tenant)
        finished, held = watched.finished(self.clock()), None
        if not finished and wait is not None:
            held = await self._hold(watched, wait, gone)
            finished = watched.finished(self.clock())
        return [self.view(job) for job in finished], len(watched.jobs), held

    async def watch_many(self, job_ids: list[str], *, tenant: str) -> AsyncIterator[Event]:
        """Check the jobs, then the events of one stream over all of them: ``done`` for each as
        it finishes (id: the job's), ``keepalive`` when idle, and the end once all are done (or
        ``reconnect`` at the stream's lifetime: ask again for those still pending). Its work is in
        proportion to the jobs, once: each finishing job costs one event."""
        watched = await self._watched(job_ids, tenant)
        self._room_to_wait()
        return self._watch_many(watched)

    async def _watch_many(self, watched: Watched) -> AsyncIterator[Event]:
        cfg = self.config.stream
        started = last_write = self.clock()
        with self.wakeups.watch(watched.jobs.keys()) as watch:
            watch.everything = self._may_have_changed(watched)
            while True:
                await self._refresh(watched, watch)
                now = self.clock()
                for job in watched.finished(now):
                    yield Event("done", job.id, self.view(job))
                    last_write = now
                if not watched.jobs:
                    return
                if now - started >= cfg.max_lifetime or self.draining:
                    yield Event("reconnect", "", None)
                    return
                if now - last_write >= cfg.keepalive:
                    yield Event("keepalive", "", None)
                    last_write = now
                until = min(watched.next_end(), last_write + cfg.keepalive, started + cfg.max_lifetime)
                await watch.sleep(until - now)

    async def _watched(self, job_ids: list[str], tenant: str) -> Watched:
        """The jobs to watch, once each id is the tenant's and well-formed (else the problem).

        Thousands of ids are read a slice at a time, and other requests are served in between:
        a few hundred batch waits arriving at once do not hold up a plain ``GET`` for long."""
        ids = list(dict.fromkeys(job_ids))
        watched = Watched(self.jobs.epoch)
        if len(ids) <= BATCH_SLICE:
            watched.add(await self.jobs.get_many(ids))
        else:
            async with self._bulk:
                for start in range(0, len(ids), BATCH_SLICE):
                    if start:
                        await asyncio.sleep(0)
                    watched.add(await self.jobs.get_many(ids[start : start + BATCH_SLICE]))
        if len(watched.jobs) < len(ids) or not set(map(_TENANT, watched.jobs.values())) <= {tenant}:
            missing = [i for i in ids if (job := watched.jobs.get(i)) is None or job.tenant != tenant]
            for job_id in missing:
                check_id(job_id)  # a malformed id is a malformed request, not an unknown job
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise NotFound("job-not-found", f"There is no job with id {shown}.")
        return watched

    def _may_have_changed(self, watched: Watched) -> bool:
        """Whether the watched jobs may have changed since they were read (then read them again)."""
        return self.jobs.epoch != watched.read_at or not self.store.in_sync

    async def _refresh(self, watched: Watched, watch: Watch) -> None:
        """Read again the watched jobs that changed other than by their timelines."""
        changed, everything = watch.take()
        ids = list(watched.jobs) if everything else [job_id for job_id in changed if job_id in watched.jobs]
        if ids:
            watched.update(await self.jobs.get_many(ids))

    async def _hold(
        self, watched: Watched, wait: float, gone: asyncio.Future[Any] | None, until: float | None = None
    ) -> float:
        """Hold until one of the watched jobs is finished, ``wait`` seconds (capped by
        ``max_wait``) pass, or ``gone`` is done; return the hold applied. Work per wake is in
        proportion to what changed, not to the jobs."""
        self._room_to_wait()
        applied = min(wait, self.config.max_wait)
        deadline = self.clock() + applied
        if until is not None:  # a progress step comes first (it moves no end: a cancel ends the hold)
            deadline = min(deadline, until)
        with self.wakeups.watch(watched.jobs.keys()) as watch:
            watch.everything = self._may_have_changed(watched)  # none slips between read and watch
            while True:
                await self._refresh(watched, watch)
                now = self.clock()
                until = min(deadline, watched.next_end())
                if now >= until or self.draining or (gone is not None and gone.done()):
                    return applied
                await watch.sleep(until - now, gone)

    def _room_to_wait(self) -> None:
        if self.wakeups.held >= self.config.max_held:
            detail = f"The service holds {self.config.max_held} waits already; try again shortly."
            raise Unavailable("too-many-waits", detail, retry_after=1)

    async def list_jobs(self, result: Result | None, limit: int, cursor: str | None, *, tenant: str) -> Page:
        """A page of the tenant's jobs, newest first, optionally only those with ``result`` now."""
        before = _decode_cursor(cursor) if cursor is not None else None
        now = self.clock()
        window = simulation.window(result, now) if result is not None else None
        jobs = await self.store.list_jobs(tenant=tenant, before_seq=before, limit=limit + 1, window=window)
        page = jobs[:limit]
        next_cursor = _encode_cursor(page[-1].seq) if len(jobs) > limit else None
        return Page([self.view(job) for job in page], next_cursor)

    async def delivery(self, job_id: str, *, tenant: str) -> Delivery:
        job = await self.find(job_id, tenant=tenant)
        delivery = await self.store.delivery(job.id)
        if delivery is None:
            raise NotFound("no-webhook", f"Job {job.id} was created without a callback_url.")
        return delivery

    async def events(self, job_id: str, last_event_id: str | None, *, tenant: str) -> AsyncIterator[Event]:
        """Find the job, then its stream's events: ``progress`` while pending (at most one per
        ``progress_interval``, and only when the percentage moved; ids ``p<percent>``), then
        ``done`` (id ``done``) and the end; ``keepalive`` when idle. Resumes after
        ``last_event_id``; ends after ``max_lifetime`` (the client reconnects)."""
        job = await self.find(job_id, tenant=tenant)
        self._room_to_wait()
        return self._events(job, last_event_id)

    async def _events(self, job: StoredJob, last_event_id: str | None) -> AsyncIterator[Event]:
        cfg = self.config.stream
        started = last_write = self.clock()
        sent = last_event_id
        with self.wakeups.watch((job.id,)) as watch:
            watch.everything = True  # read again now that changes are watched
            while True:
                changed, everything = watch.take()
                if changed or everything:
                    job = await self.jobs.get(job.id) or job
                view = self.view(job)
                now = view.now
                if view.state.result != "pending":
                    yield Event("done", "done", view)
                    return
                event_id = f"p{int(view.state.progress * 100)}"
                if event_id != sent:
                    yield Event("progress", event_id, view)
                    sent, last_write = event_id, now
                elif now - last_write >= cfg.keepalive:
                    yield Event("keepalive", "", None)
                    last_write = now
                if now - started >= cfg.max_lifetime or self.draining:
                    yield Event("reconnect", "", None)
                    return
                wake = min(
                    cfg.progress_interval,
                    job.timeline.ends_at - now,
                    cfg.keepalive - (now - last_write),
                    cfg.max_lifetime - (now - started),
                )
                await watch.sleep(wake)

    # --- writing ------------------------------------------------------------------------------

    async def create(
        self, spec: JobCreate, *, tenant: str, idempotency_key: str | None = None
    ) -> tuple[View, bool]:
        """Create a job of the tenant's; with an ``idempotency_key`` the tenant already used for the
        same request, return that job instead (``False``: not created now)."""
        language = _LANGUAGES.get(spec.language.lower())
        if language is None:
            raise Invalid(
                "unknown-language",
                f"Unknown language {spec.language!r}; supported: {', '.join(sorted(LANGUAGES))}.",
            )
        if spec.source_url is not None and (problem := syntax_problem(spec.source_url)) is not None:
            raise Invalid("invalid-job", f"Invalid job: source_url {problem}.")
        if spec.callback_url is not None:
            problem = syntax_problem(spec.callback_url)
            if problem is not None:
                raise Invalid("invalid-job", f"Invalid job: callback_url {problem}.")
            try:
                await self.guard.at_creation(spec.callback_url)
            except Refused as refused:
                raise Invalid("callback-refused", f"Invalid job: callback_url refused: {refused}.") from None
        if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
            detail = "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)."
            raise Malformed("bad-idempotency-key", detail)
        rng = self._seeded(str(await self.store.count())) if self.config.seed is not None else self._rng
        assert rng is not None
        timeline = simulation.draw_timeline(
            self.config.simulation, rng, self.clock(), spec.video_seconds, spec.simulate
        )
        new = NewJob(
            id=new_job_id(),
            tenant=tenant,
            language=language,
            video_seconds=spec.video_seconds,
            source_url=spec.source_url,
            callback_url=spec.callback_url,
            timeline=timeline,
            idempotency_key=idempotency_key,
        )
        job, created = await self.store.add(new)
        if created:
            self.jobs.put(job)
            self.observer.job_created(job)
            if job.callback_url is not None:
                self.outbox.wake()
        elif (job.language, job.video_seconds, job.source_url, job.callback_url) != (
            new.language,
            new.video_seconds,
            new.source_url,
            new.callback_url,
        ):
            raise Invalid(
                "idempotency-key-reused",
                f"This Idempotency-Key was used for a different request, which created {job.id}: "
                "use a new key for a new job.",
            )
        return self.view(job), created

    async def cancel(self, job_id: str, *, tenant: str) -> View:
        """End a pending job now as ``error``/``cancelled``. Cancelling a cancelled job answers it
        again (a retried ``DELETE`` is safe); a job that finished otherwise is a :class:`Conflict`."""
        job = await self.find(job_id, tenant=tenant)
        if job.id == self.status_job_id:
            raise Forbidden(
                "status-job", "This job backs GET /status; it ends on its own and cannot be cancelled."
            )
        now = self.clock()
        cancelled = await self.store.cancel(
            job.id, simulation.cancel(job.timeline, now), simulation.window("pending", now)
        )
        assert cancelled is not None  # jobs are never deleted
        self.changed(job.id)
        self.outbox.wake()
        error = cancelled.timeline.error
        if error is None or error.code != simulation.CANCELLED.code:
            raise Conflict(
                "job-finished",
                f"Job {job.id} already ended as {cancelled.timeline.outcome!r} "
                "and can no longer be cancelled.",
            )
        if cancelled.timeline.ends_at == now:  # cancelled now, here (not a retried DELETE)
            self.observer.job_cancelled(cancelled)
        return self.view(cancelled)


def check_id(job_id: str) -> None:
    if not JOB_ID_RE.fullmatch(job_id):
        raise Malformed(
            "malformed-job-id", f"{job_id[:80]!r} is not a job id: ids look like 'job_' and 32 hex digits."
        )


def _encode_cursor(seq: int) -> str:
    return f"c{seq:x}"


def _decode_cursor(cursor: str) -> int:
    if CURSOR_RE.fullmatch(cursor):
        return int(cursor[1:], 16)
    raise Malformed("bad-cursor", "The cursor is not one this service issued: pass next_cursor back as is.")
