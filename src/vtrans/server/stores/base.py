"""The store interface: where jobs, webhook deliveries and a few settings live.

One async interface, three backends of identical behaviour (``memory``, ``sqlite``,
``postgresql``); the service layer knows only this module. A stored job is its creation request
plus its drawn :class:`~vtrans.server.simulation.Timeline`: its state is computed from that, so a
row changes only when a job is created or cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from vtrans.server.simulation import Timeline, Window


class StoreError(RuntimeError):
    """The store cannot be opened or used (unreachable, unwritable, already served)."""


class StoredJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job as persisted: what it was created with, and its timeline."""

    id: str
    #: Order of creation across the store (the cursor of listings).
    seq: int
    #: The tenant that created it ("" when the service has no tenants).
    tenant: str = ""
    language: str
    video_seconds: float
    source_url: str | None
    callback_url: str | None
    timeline: Timeline
    idempotency_key: str | None = None


class NewJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job to insert: a :class:`StoredJob` before it has a ``seq``."""

    id: str
    tenant: str = ""
    language: str
    video_seconds: float
    source_url: str | None = None
    callback_url: str | None = None
    timeline: Timeline
    idempotency_key: str | None = None

    def stored(self, seq: int) -> StoredJob:
        return StoredJob(seq=seq, **msgspec.structs.asdict(self))


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook to send when its job ends; ``id`` is the ``webhook-id``, stable across retries."""

    id: str
    job_id: str
    url: str
    due_at: float
    attempts: int
    #: ``pending``, ``delivered``, ``failed`` (retries exhausted) or ``gone`` (the receiver said 410).
    state: str
    last_error: str | None


#: Called with the id of a job that another process changed (cancelled), or with ``None`` when
#: changes may have been missed (a lost listener connection): then everything must be re-checked.
OnChange = Callable[[str | None], None]


def delivery_id(job_id: str) -> str:
    """The ``webhook-id`` of a job's delivery."""
    return f"msg_{job_id.removeprefix('job_')}"


def job_of_delivery(delivery_id: str) -> str:
    """The job a delivery id belongs to (the inverse of :func:`delivery_id`)."""
    return f"job_{delivery_id.removeprefix('msg_')}"


class Store(Protocol):
    """Jobs, webhook deliveries and settings. Every write is durable once the call returns
    (except in the memory store, which is gone with its process)."""

    #: What the store is, for logs and errors (a path or a URL without its password).
    name: str
    #: Whether several service processes may share it.
    shared: bool

    @property
    def in_sync(self) -> bool:
        """Whether every change made by another process reaches :meth:`listen`'s callback right
        now (false while a listening connection is down: then nothing may be cached)."""
        ...

    async def open(self) -> None:
        """Connect and create the schema; raise :class:`StoreError` naming the cause."""

    async def close(self) -> None: ...

    async def add(self, job: NewJob) -> tuple[StoredJob, bool]:
        """Insert ``job`` (and its webhook delivery, when it has a ``callback_url``), unless a job
        with its id, or with its tenant and ``idempotency_key``, exists: then return that one.
        Returns the stored job and whether it was inserted now."""
        ...

    async def get(self, job_id: str) -> StoredJob | None: ...

    async def get_many(self, job_ids: list[str]) -> dict[str, StoredJob]:
        """The jobs among ``job_ids`` that exist, by id."""
        ...

    async def cancel(self, job_id: str, cancelled: Timeline, pending: Window) -> StoredJob | None:
        """Replace the job's timeline by ``cancelled`` if its stored timeline is in ``pending``,
        and make its webhook delivery due at the new end; tell the other processes. Returns the
        job as stored after the call (unchanged if it was no longer pending), ``None`` if unknown."""
        ...

    async def list_jobs(
        self, *, tenant: str | None, before_seq: int | None, limit: int, window: Window | None
    ) -> list[StoredJob]:
        """Up to ``limit`` jobs, newest first: of ``tenant`` (any when ``None``), created before
        ``before_seq``, whose timeline is in ``window``."""
        ...

    async def count(self) -> int:
        """The highest ``seq`` so far (how many jobs were created)."""
        ...

    async def count_jobs(self, *, tenant: str | None, window: Window | None) -> int:
        """How many jobs of ``tenant`` (any when ``None``) have a timeline in ``window``."""
        ...

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    async def meta_setdefault(self, key: str, value: str) -> str:
        """Set ``key`` to ``value`` unless it is set; return the value it has (atomically)."""
        ...

    async def claim_deliveries(
        self, now: float, limit: int, lease_until: float, owner: str
    ) -> list[Delivery]:
        """Lease up to ``limit`` pending deliveries due at ``now`` whose lease has expired, to
        ``owner`` until ``lease_until``: no other owner can claim them before then."""
        ...

    async def finish_delivery(
        self, delivery_id: str, owner: str, *, state: str, attempts: int, due_at: float, error: str | None
    ) -> bool:
        """Record an attempt and release the lease, if ``owner`` still holds it; return whether it did."""
        ...

    async def release_deliveries(self, owner: str) -> int:
        """Give up the leases ``owner`` holds on pending deliveries (it stops): another process,
        or this one restarted, may claim them at once. Returns how many."""
        ...

    async def next_delivery_at(self) -> float | None:
        """When the next pending delivery can be claimed (its due time, or its lease's end)."""
        ...

    async def delivery(self, job_id: str) -> Delivery | None: ...

    async def recent_deliveries(self, *, tenant: str | None, limit: int) -> list[Delivery]:
        """The webhook deliveries of the ``limit`` newest jobs of ``tenant`` that have one."""
        ...

    async def listen(self, on_change: OnChange) -> None:
        """From now on, call ``on_change`` for changes made by other processes (see
        :data:`OnChange`). A store that one process owns never calls it."""
        ...
