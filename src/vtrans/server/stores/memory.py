"""The in-memory store: for tests and throwaway sandboxes; gone when the process ends."""

from __future__ import annotations

import itertools

import msgspec

from vtrans.server.simulation import Timeline, Window
from vtrans.server.stores.base import Delivery, NewJob, OnChange, StoredJob, delivery_id, job_of_delivery


class _Lease(msgspec.Struct):
    owner: str | None = None
    until: float = 0.0


class MemoryStore:
    """Jobs in dictionaries of this process (the reference for the others' behaviour)."""

    name = "memory"
    shared = False
    in_sync = True

    def __init__(self) -> None:
        self._jobs: dict[str, StoredJob] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._meta: dict[str, str] = {}
        self._deliveries: dict[str, Delivery] = {}  # by job id
        self._leases: dict[str, _Lease] = {}  # by delivery id

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def add(self, job: NewJob) -> tuple[StoredJob, bool]:
        existing = self._jobs.get(job.id)
        if existing is None and job.idempotency_key is not None:
            known = self._keys.get((job.tenant, job.idempotency_key))
            existing = self._jobs.get(known) if known is not None else None
        if existing is not None:
            return existing, False
        self._last_seq = next(self._seq)
        stored = job.stored(self._last_seq)
        self._jobs[job.id] = stored
        if job.idempotency_key is not None:
            self._keys[(job.tenant, job.idempotency_key)] = job.id
        if job.callback_url is not None:
            self._deliveries[job.id] = Delivery(
                id=delivery_id(job.id),
                job_id=job.id,
                url=job.callback_url,
                due_at=job.timeline.ends_at,
                attempts=0,
                state="pending",
                last_error=None,
            )
        return stored, True

    async def get(self, job_id: str) -> StoredJob | None:
        return self._jobs.get(job_id)

    async def get_many(self, job_ids: list[str]) -> dict[str, StoredJob]:
        return {job_id: job for job_id in job_ids if (job := self._jobs.get(job_id)) is not None}

    async def cancel(self, job_id: str, cancelled: Timeline, pending: Window) -> StoredJob | None:
        job = self._jobs.get(job_id)
        if job is None or not pending.holds(job.timeline):
            return job
        job = self._jobs[job_id] = msgspec.structs.replace(job, timeline=cancelled)
        delivery = self._deliveries.get(job_id)
        if delivery is not None and delivery.state == "pending":
            self._deliveries[job_id] = msgspec.structs.replace(delivery, due_at=cancelled.ends_at)
        return job

    async def list_jobs(
        self, *, tenant: str | None, before_seq: int | None, limit: int, window: Window | None
    ) -> list[StoredJob]:
        found: list[StoredJob] = []
        for job in reversed(self._jobs.values()):  # insertion order is seq order
            if len(found) >= limit:
                break
            if (
                (before_seq is None or job.seq < before_seq)
                and (tenant is None or job.tenant == tenant)
                and (window is None or window.holds(job.timeline))
            ):
                found.append(job)
        return found

    async def count(self) -> int:
        return self._last_seq

    async def count_jobs(self, *, tenant: str | None, window: Window | None) -> int:
        return sum(
            1
            for job in self._jobs.values()
            if (tenant is None or job.tenant == tenant) and (window is None or window.holds(job.timeline))
        )

    async def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    async def meta_setdefault(self, key: str, value: str) -> str:
        return self._meta.setdefault(key, value)

    async def claim_deliveries(
        self, now: float, limit: int, lease_until: float, owner: str
    ) -> list[Delivery]:
        due = sorted(
            (d for d in self._deliveries.values() if self._claimable(d, now) and d.due_at <= now),
            key=lambda d: d.due_at,
        )[:limit]
        for delivery in due:
            self._leases[delivery.id] = _Lease(owner, lease_until)
        return due

    def _claimable(self, delivery: Delivery, now: float) -> bool:
        lease = self._leases.get(delivery.id)
        return delivery.state == "pending" and (lease is None or lease.until <= now)

    async def finish_delivery(
        self, delivery_id: str, owner: str, *, state: str, attempts: int, due_at: float, error: str | None
    ) -> bool:
        lease = self._leases.get(delivery_id)
        if lease is None or lease.owner != owner:
            return False
        del self._leases[delivery_id]
        job_id = job_of_delivery(delivery_id)
        self._deliveries[job_id] = msgspec.structs.replace(
            self._deliveries[job_id], state=state, attempts=attempts, due_at=due_at, last_error=error
        )
        return True

    async def release_deliveries(self, owner: str) -> int:
        mine = [d for d, lease in self._leases.items() if lease.owner == owner]
        for delivery in mine:
            del self._leases[delivery]
        return len(mine)

    async def next_delivery_at(self) -> float | None:
        times = [
            max(d.due_at, self._leases[d.id].until if d.id in self._leases else 0.0)
            for d in self._deliveries.values()
            if d.state == "pending"
        ]
        return min(times, default=None)

    async def recent_deliveries(self, *, tenant: str | None, limit: int) -> list[Delivery]:
        found: list[Delivery] = []
        for job in reversed(self._jobs.values()):
            delivery = self._deliveries.get(job.id)
            if len(found) >= limit:
                break
            if delivery is not None and (tenant is None or job.tenant == tenant):
                found.append(delivery)
        return found

    async def delivery(self, job_id: str) -> Delivery | None:
        return self._deliveries.get(job_id)

    async def listen(self, on_change: OnChange) -> None:
        pass  # one process owns it: nobody else changes anything
