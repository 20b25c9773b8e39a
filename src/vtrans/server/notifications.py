"""Wake-ups for requests that wait on a job (long-poll, SSE) — no periodic re-checks.

A waiter sleeps until the job's known next change (from its timeline), until a real event
(a cancellation) is signalled with :meth:`Notifier.notify`, or until its own hold time ends.
Each waiter costs one future and one timer handle on the event loop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection
from typing import Any


class Notifier:
    """Per-job wake-ups inside one service process."""

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Future[str | None]]] = defaultdict(set)
        self._sleeping = 0

    @property
    def waiting(self) -> int:
        """How many requests are waiting right now (a batch wait over many jobs counts once)."""
        return self._sleeping

    async def sleep(
        self,
        job_ids: str | Collection[str],
        seconds: float,
        cancel: asyncio.Future[Any] | None = None,
    ) -> str | None:
        """Return after ``seconds`` (``None``), at once with the id passed to :meth:`notify`, or
        (``None``) as soon as ``cancel`` is done (e.g. the client went away)."""
        ids = (job_ids,) if isinstance(job_ids, str) else job_ids
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        for job_id in ids:
            self._waiters[job_id].add(future)
        timer = loop.call_later(max(0.0, seconds), _resolve, future, None)

        def wake(_: object) -> None:
            _resolve(future, None)

        if cancel is not None:
            cancel.add_done_callback(wake)
        self._sleeping += 1
        try:
            return await future
        finally:
            self._sleeping -= 1
            timer.cancel()
            if cancel is not None:
                cancel.remove_done_callback(wake)
            for job_id in ids:
                waiters = self._waiters.get(job_id)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[job_id]

    def notify(self, job_id: str) -> None:
        """Wake everyone waiting on ``job_id`` (its state changed other than by its timeline)."""
        for future in self._waiters.pop(job_id, ()):
            _resolve(future, job_id)


def _resolve(future: asyncio.Future[str | None], job_id: str | None) -> None:
    if not future.done():
        future.set_result(job_id)
