"""Who waits on which job in this process, and waking them — no periodic re-checks.

A request that waits (a long-poll, an event stream, a batch wait) opens a :class:`Watch` on its
jobs, *then* reads them, and sleeps on the watch until its own timer (the jobs' known next change,
from their timelines, or the end of its hold), until one of its jobs changes other than by its
timeline (:meth:`Wakeups.notify`: a cancellation here or in another process), or until the client
goes away. A change that arrives between the read and the sleep is kept on the watch, so it
is never missed. Each sleep costs one future and one timer handle on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from types import TracebackType
from typing import Any


class Watch:
    """A waiter's interest in some jobs; collects the ids that changed since it last looked."""

    __slots__ = ("_future", "_owner", "changed", "everything", "ids", "indexed")

    def __init__(self, owner: Wakeups, ids: Collection[str], batch: bool = False) -> None:
        self._owner, self.ids = owner, ids
        #: The ids it is indexed under, fixed when it starts (``None``: a batch watch, looked at
        #: whenever a job changes; its ``ids`` may change as it goes, e.g. shrink as jobs finish).
        self.indexed = tuple(ids) if len(ids) <= INDEXED and not batch else None
        #: Jobs that changed since :meth:`take` was last called.
        self.changed: set[str] = set()
        #: Changes may have been missed: re-check every job.
        self.everything = False
        self._future: asyncio.Future[None] | None = None

    def __enter__(self) -> Watch:
        self._owner._add(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._owner._remove(self)

    def _wake(self, job_id: str | None) -> None:
        if job_id is None:
            self.everything = True
        else:
            self.changed.add(job_id)
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def take(self) -> tuple[set[str], bool]:
        """The ids that changed, and whether everything must be re-checked; then forget them."""
        changed, everything = self.changed, self.everything
        self.changed, self.everything = set(), False
        return changed, everything

    async def sleep(self, seconds: float, cancel: asyncio.Future[Any] | None = None) -> None:
        """Return after ``seconds``, when a watched job changes (at once if one changed since
        :meth:`take`), or as soon as ``cancel`` is done (e.g. the client went away)."""
        if self.changed or self.everything or (cancel is not None and cancel.done()):
            return
        loop = asyncio.get_running_loop()
        future = self._future = loop.create_future()
        timer = loop.call_later(max(0.0, seconds), _resolve, future)

        def wake(_: object) -> None:
            _resolve(future)

        if cancel is not None:
            cancel.add_done_callback(wake)
        try:
            await future
        finally:
            self._future = None
            timer.cancel()
            if cancel is not None:
                cancel.remove_done_callback(wake)


#: A watch on more jobs than this is not indexed by job (registering thousands of ids would cost
#: more than looking at the few such watches when a job changes, which is rare).
INDEXED = 16


class Wakeups:
    """The watches of one service process: by job id for the few-job ones (long-polls, streams),
    in a list for the batch ones (their ``ids`` support fast membership: a dict or a set)."""

    def __init__(self) -> None:
        self._watches: dict[str, set[Watch]] = {}
        self._batches: set[Watch] = set()
        self._all: set[Watch] = set()

    @property
    def held(self) -> int:
        """The watches open now: the requests held (a long-poll, a batch wait, a stream: one each)."""
        return len(self._all)

    def watch(self, ids: Collection[str], *, batch: bool = False) -> Watch:
        """A watch on ``ids``; use it as a context manager (it stops watching on exit). ``batch``:
        not indexed by id, so that ``ids`` (a set, say) may change while it is open."""
        return Watch(self, ids, batch)

    def notify(self, job_id: str) -> None:
        """Wake everyone watching ``job_id`` (its state changed other than by its timeline)."""
        for watch in tuple(self._watches.get(job_id, ())):
            watch._wake(job_id)
        for watch in tuple(self._batches):
            if job_id in watch.ids:
                watch._wake(job_id)

    def notify_all(self) -> None:
        """Changes may have been missed: wake every watch to re-check all it watches."""
        for watch in tuple(self._all):
            watch._wake(None)

    def _add(self, watch: Watch) -> None:
        self._all.add(watch)
        if watch.indexed is None:
            self._batches.add(watch)
            return
        for job_id in watch.indexed:
            self._watches.setdefault(job_id, set()).add(watch)

    def _remove(self, watch: Watch) -> None:
        self._all.discard(watch)
        if watch.indexed is None:
            self._batches.discard(watch)
            return
        for job_id in watch.indexed:
            watches = self._watches.get(job_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[job_id]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
