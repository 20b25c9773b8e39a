"""What a client remembers from its own requests, to wait better for its next jobs. Pure.

- Whether the server held the last poll that asked it to (``Prefer: wait``): on a server that
  only answers polls, a wait for a job this client just created starts from the create's answer
  instead of asking again what it was just told.
- The jobs it created and has not waited for yet: when the create was sent, and what it answered.
- :class:`~vtrans.client.policy.Pace`: how long a video-second takes, learned from finished waits.
- :class:`~vtrans.client.estimates.Quality`: how biased and how wobbly the server's estimates are.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from vtrans.client.estimates import Quality
from vtrans.client.policy import Pace
from vtrans.protocol import Job


@dataclass(frozen=True)
class Created:
    """A job this client created: the clock time its create was sent, and the answer (the job,
    and its ``Retry-After``)."""

    at: float
    video_seconds: float
    job: Job
    retry_after: float | None = None


@dataclass
class Memory:
    """Owned by one client (one server); safe to share between threads."""

    #: Jobs remembered at most; the oldest are forgotten first.
    capacity: int = 10_000
    #: Whether the server held the last poll that asked; ``None`` until one has asked.
    holds: bool | None = None
    #: Whether the last pending answer carried a hint (an estimate, or only a ``Retry-After``).
    hints: bool = False
    pace: Pace = field(default_factory=Pace, repr=False)
    estimates: Quality = field(default_factory=Quality, repr=False)
    _created: OrderedDict[str, Created] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def created(self, at: float, video_seconds: float, job: Job, retry_after: float | None = None) -> None:
        if job.id is None or job.done:
            return
        with self._lock:
            # A replayed create (same Idempotency-Key) answers the job created first: keep its time.
            self._created.setdefault(job.id, Created(at, video_seconds, job, retry_after))
            while len(self._created) > self.capacity:
                self._created.popitem(last=False)

    def take(self, job_id: str) -> Created | None:
        """The job's creation, forgotten from now on (a second wait polls at once)."""
        with self._lock:
            return self._created.pop(job_id, None)
