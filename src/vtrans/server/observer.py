"""What the service tells about itself as it works: an :class:`Observer` that does nothing.

The service and the outbox call these hooks; :class:`vtrans.server.metrics.Metrics` turns them
into Prometheus metrics. With ``--no-metrics`` (and in the in-process fake) this base class stays
in place, so the calls cost one method call each and nothing else.
"""

from __future__ import annotations

from vtrans.server.stores import StoredJob


class Observer:
    """Hooks called by the service; each does nothing here."""

    def job_created(self, job: StoredJob) -> None:
        """``job`` was created by this process (not a replay of an ``Idempotency-Key``)."""

    def job_cancelled(self, job: StoredJob) -> None:
        """This process cancelled ``job`` (as stored after the cancellation)."""

    def webhook_attempt(self, state: str, attempts: int, seconds: float) -> None:
        """A webhook was sent for the ``attempts``-th time and took ``seconds``; the delivery is
        now in ``state``: ``delivered``, ``pending`` (to be retried), ``failed`` or ``gone``."""


#: The observer of a service that keeps no metrics.
NO_OBSERVER = Observer()
