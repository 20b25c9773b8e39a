"""A process's copy of the jobs it read, in front of the store.

A stored row changes only when its job is cancelled, and every cancellation reaches every process
(the service's ``changed`` hook evicts the row here). Two things keep the copy honest: a read
that raced with an eviction is not kept (``_epoch``), and nothing is kept while the store says
changes from other processes may be missed (``in_sync`` false).
"""

from __future__ import annotations

from typing import cast

from vtrans.server.stores import Store, StoredJob


class JobCache:
    """Jobs by id, at most ``size`` of them (the oldest read goes first)."""

    def __init__(self, store: Store, size: int = 10_000) -> None:
        self.store, self.size = store, size
        self._jobs: dict[str, StoredJob] = {}
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """Counts evictions: a copy read at one epoch is still good while it has not moved."""
        return self._epoch

    async def get(self, job_id: str) -> StoredJob | None:
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        epoch = self._epoch
        job = await self.store.get(job_id)
        if job is not None:
            self.put(job, epoch)
        return job

    async def get_many(self, job_ids: list[str]) -> dict[str, StoredJob]:
        read: dict[str, StoredJob | None] = dict(zip(job_ids, map(self._jobs.get, job_ids), strict=True))
        if None not in read.values():
            return cast("dict[str, StoredJob]", read)
        found = {job_id: job for job_id, job in read.items() if job is not None}
        missing = [job_id for job_id, job in read.items() if job is None]
        epoch = self._epoch
        stored = await self.store.get_many(missing)
        for job in stored.values():
            self.put(job, epoch)
        found.update(stored)
        return found

    def put(self, job: StoredJob, epoch: int | None = None) -> None:
        """Keep ``job``, read when the cache was at ``epoch`` (now if ``None``)."""
        if (epoch is not None and epoch != self._epoch) or not self.store.in_sync:
            return
        if len(self._jobs) >= self.size:
            del self._jobs[next(iter(self._jobs))]
        self._jobs[job.id] = job

    def evict(self, job_id: str | None) -> None:
        """Forget ``job_id`` (every job when ``None``)."""
        self._epoch += 1
        if job_id is None:
            self._jobs.clear()
        else:
            self._jobs.pop(job_id, None)
