"""Wake-ups for requests that wait on a job (long-poll, SSE) — no periodic re-checks.

A waiter sleeps until the job's known next change (from its timeline), until a real event
(a cancellation) is signalled with :meth:`Notifier.notify`, or until its own hold time ends.
Each waiter costs one future and one timer handle on the event loop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Notifier:
    """Per-job wake-ups inside one service process."""

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Future[None]]] = defaultdict(set)

    @property
    def waiting(self) -> int:
        """How many requests are waiting right now."""
        return sum(len(futures) for futures in self._waiters.values())

    async def sleep(self, job_id: str, seconds: float) -> None:
        """Return after ``seconds``, or at once when ``notify(job_id)`` is called."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiters = self._waiters[job_id]
        waiters.add(future)
        timer = loop.call_later(max(0.0, seconds), _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            waiters.discard(future)
            if not waiters:
                self._waiters.pop(job_id, None)

    def notify(self, job_id: str) -> None:
        """Wake everyone waiting on ``job_id`` (its state changed other than by its timeline)."""
        for future in self._waiters.pop(job_id, ()):
            _resolve(future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
