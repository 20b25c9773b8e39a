"""How long the client keeps retrying a failing service: :class:`RetryPolicy`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vtrans.client import policy


@dataclass(frozen=True)
class RetryPolicy(policy.RetryPolicy):
    """How transient failures — refused or reset connections, timeouts, 408/425/429/5xx, answers
    that are not the protocol — are retried: jittered exponential backoff that honours
    ``Retry-After`` (``backoff``, ``max_backoff``, ``max_retry_after``), on two budgets:

    - a call — ``create``, ``get``, ``status``, ``cancel``, a page of ``jobs``, and a wait that
      has not had an answer yet — gives up once its failures in a row have lasted ``budget``
      seconds (the last attempt is made at the end) or numbered ``attempts``, whichever is first;
    - a wait that has had an answer rides out an outage (a restart, a network blip): it keeps
      retrying until its deadline, for at most ``outage`` seconds in a row.

    A dead or unreachable service therefore fails a call after ``budget`` seconds (5 by default),
    and a wait on a wrong URL too; :attr:`FAIL_FAST` gives up at the first failure, waits included.
    """

    #: Seconds a call keeps retrying, from the start of its first failed attempt in a row.
    budget: float = 5.0
    #: Seconds a wait that has had an answer keeps retrying in a row (its deadline permitting;
    #: ``math.inf``: as long as it takes).
    outage: float = 600.0

    #: Give up at the first failure: one attempt per request, in calls and waits alike.
    FAIL_FAST: ClassVar[RetryPolicy]

    def __post_init__(self) -> None:
        super().__post_init__()
        # Written so that NaN fails too (every comparison with NaN is false).
        if not (self.budget >= 0 and self.outage >= 0):
            raise ValueError("RetryPolicy needs budget >= 0 and outage >= 0 (seconds)")


RetryPolicy.FAIL_FAST = RetryPolicy(attempts=1, budget=0.0, outage=0.0)


def upgrade(retry: policy.RetryPolicy | None) -> RetryPolicy:
    """``retry`` as a :class:`RetryPolicy` (a plain ``policy.RetryPolicy`` gets the default budgets)."""
    if retry is None:
        return RetryPolicy()
    if isinstance(retry, RetryPolicy):
        return retry
    return RetryPolicy(retry.attempts, retry.backoff, retry.max_backoff, retry.max_retry_after)
