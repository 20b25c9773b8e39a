"""When to ask again: the waiting and retry policies. Pure: no I/O, no clock of their own.

:class:`Poller` is the waiting algorithm of DESIGN.md. It is handed what was observed (the time,
the server's hint) and answers how long to sleep before the next poll. The sync and async clients
and the benchmarks all drive this same object.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import threading
from dataclasses import dataclass
from typing import ClassVar

from vtrans.client.estimates import Answer, Quality, beyond, remaining


@dataclass(frozen=True)
class PollPolicy:
    """How :meth:`Client.wait` paces its polls.

    Without a hint from the server, polls follow a geometric schedule from the start of the wait:
    ``first * factor**(i + phase)`` seconds, with a random ``phase`` in [0, 1) and gaps capped at
    ``max_interval``. Detection lag is then at most ``(factor - 1) * duration`` (or the cap), for
    about ``log_factor(duration / first)`` requests. A first poll learned for the job's size, or
    the caller's ``wait(expected=...)``, replaces ``first`` (and ``factor``: see ``learned_factor``).

    With a hint (the body's ``estimated_seconds_remaining``, else ``Retry-After``), the client fits
    the job's answers so far (:func:`~vtrans.client.estimates.remaining`): the countdown of several
    estimates shows how wrong they are for this job, and their scatter how far to believe that. It
    sleeps until the earliest plausible end plus the lag it allows itself (``hint_lag`` of the job's
    duration), but no later than the latest plausible end: far from the end that is a safe step
    towards it, near the end a poll just after it. If the job is still pending when it should have
    ended (a stall), it polls every ``hint_lag`` of the job's age. A ``Retry-After`` is the estimate
    in whole seconds: a time in (n - 1, n]. A hint that does not count down (the same
    ``Retry-After`` again and again) is a minimum, and the longest a server gives, its cap: where
    the client learned how long jobs of this size take, it searches from their earliest plausible
    end in steps the minimum allows; else the schedule applies, no sooner than the server asks.

    The defaults come from ``benchmarks/polling.py`` (see BENCHMARKS.md): no job of a translation
    service ends in less than a few seconds, so polls before ``first`` are wasted.
    """

    #: Seconds from the start of the wait to the first scheduled re-poll (before the phase). The
    #: first re-poll comes at most ``max(first, max_interval)`` after the start.
    first: float = 3.0
    #: Growth of the schedule; the worst-case lag is ``(factor - 1)`` times the job's duration.
    factor: float = 1.8
    #: Longest gap between two polls (unless ``first`` is longer), which bounds the lag on long jobs.
    max_interval: float = 60.0
    #: Shortest gap between two polls.
    min_interval: float = 0.05
    #: With hints, the lag allowed: this share of the job's duration (at least ``hint_floor``).
    hint_lag: float = 0.04
    #: The shortest lag allowed with hints, in seconds: a job that outlives its estimate is polled
    #: every ``max(hint_floor, hint_lag * its age)``.
    hint_floor: float = 0.4
    #: How wide the plausible range of the time left is, in standard deviations each side.
    hint_confidence: float = 2.0
    #: Draw the schedule's phase at random: same requests, lower mean lag.
    random_phase: bool = True
    #: Follow the server's estimates and ``Retry-After``.
    use_hints: bool = True
    #: Never sleep longer than this on a hint, however long the server's estimate.
    max_hint: float = 1800.0
    #: Ask the server to hold each poll up to this many seconds (``Prefer: wait``, RFC 7240);
    #: 0 never asks. Servers that ignore it are simply polled, at no extra request.
    long_poll: float = 30.0
    #: When the caller follows progress (``wait(on_progress=...)``, ``watch()``), ask the server to
    #: end a hold each time the job's progress grows by this share (``Prefer: progress``): about
    #: ``1 / progress_step`` more requests per job, for as many updates. Servers that do not know
    #: the preference hold as usual.
    progress_step: float = 0.1
    #: Learn from finished jobs how long a video-second takes (:class:`Pace`), and first poll a
    #: job this client created when the fastest such jobs end, instead of at ``first``.
    learn: bool = True
    #: The share of jobs at most that the learned first poll may find already done.
    learn_quantile: float = 0.05
    #: Growth of the schedule after a learned first poll: finer, as the spread left is narrow.
    learned_factor: float = 1.2

    def __post_init__(self) -> None:
        if self.long_poll < 0:
            raise ValueError("PollPolicy.long_poll must be >= 0")
        if not (
            self.first > 0
            and self.factor > 1
            and self.learned_factor > 1
            and self.max_interval >= self.min_interval > 0
        ):
            raise ValueError(
                "PollPolicy needs first > 0, factor > 1, learned_factor > 1 and "
                "max_interval >= min_interval > 0"
            )
        if not (self.hint_lag >= 0 and self.hint_floor > 0 and self.hint_confidence >= 0):
            raise ValueError("PollPolicy needs hint_lag >= 0, hint_floor > 0 and hint_confidence >= 0")
        if not 0 < self.learn_quantile < 1:
            raise ValueError("PollPolicy.learn_quantile must be in (0, 1)")
        if not 0 < self.progress_step <= 1:
            raise ValueError("PollPolicy.progress_step must be in (0, 1]")


@dataclass(frozen=True)
class RetryPolicy:
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

    attempts: int = 8
    backoff: float = 0.2
    max_backoff: float = 10.0
    #: A longer ``Retry-After`` is cut to this many seconds.
    max_retry_after: float = 120.0
    #: Seconds a call keeps retrying, from the start of its first failed attempt in a row.
    budget: float = 5.0
    #: Seconds a wait that has had an answer keeps retrying in a row (its deadline permitting;
    #: ``math.inf``: as long as it takes).
    outage: float = 600.0

    #: Give up at the first failure: one attempt per request, in calls and waits alike.
    FAIL_FAST: ClassVar[RetryPolicy]

    def __post_init__(self) -> None:
        # Written so that NaN fails too (every comparison with NaN is false).
        if not (self.attempts >= 1 and 0 <= self.backoff <= self.max_backoff):
            raise ValueError("RetryPolicy needs attempts >= 1 and 0 <= backoff <= max_backoff")
        if not (self.budget >= 0 and self.outage >= 0):
            raise ValueError("RetryPolicy needs budget >= 0 and outage >= 0 (seconds)")

    def delay(self, failures: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1-based)."""
        base = min(self.max_backoff, self.backoff * 2.0 ** (failures - 1))
        delay = base * rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


RetryPolicy.FAIL_FAST = RetryPolicy(attempts=1, budget=0.0, outage=0.0)


class Pace:
    """Seconds of processing per second of video, learned from this client's finished jobs, so
    that polling without hints skips the time a job of that length certainly still needs.

    It is one number, ``log_rate``, meant to be the ``PollPolicy.learn_quantile`` q of the jobs'
    log(duration / video_seconds): a new job is first polled at ``video_seconds * exp(log_rate)``,
    by which only about a share q of jobs is done. No duration is needed (a spec-literal server
    reports none), only what the polls saw:

    - the first ``warmup`` jobs run the policy's own schedule; each gives a lower bound of its
      rate, the last time it was seen pending (a job done at its first poll gives none and is left
      out). ``log_rate`` starts at the q-quantile of a normal fitted to their logs;
    - from then on, each job first polled at the learned time says whether that poll found it
      done (a share q of jobs should): ``log_rate`` moves down by ``step * (1 - q)`` if so and up
      by ``step * q`` if not (stochastic approximation of the quantile, Robbins-Monro).
    """

    def __init__(self, warmup: int = 20, step: float = 0.1) -> None:
        self.warmup, self.step = warmup, step
        self.log_rate: float | None = None
        self._bounds: list[float] = []
        self._lock = threading.Lock()

    def first(self, policy: PollPolicy, video_seconds: float) -> float | None:
        """Seconds after its creation to first poll a job of ``video_seconds``; ``None`` while
        nothing is learned (or learning is off), or when it is not later than ``policy.first``."""
        if self.log_rate is None or not policy.learn:
            return None
        first = video_seconds * math.exp(self.log_rate)
        return first if first > policy.first else None

    def observe(
        self, policy: PollPolicy, video_seconds: float, pending_until: float, learned_first: float | None
    ) -> None:
        """A job of ``video_seconds`` ended; it was last seen pending ``pending_until`` seconds after
        its creation (0: only by its create), and first polled at ``learned_first`` if learned."""
        if not (video_seconds > 0 and math.isfinite(pending_until)):
            return
        with self._lock:
            self._observe(policy, video_seconds, pending_until, learned_first)

    def _observe(
        self, policy: PollPolicy, video_seconds: float, pending_until: float, learned_first: float | None
    ) -> None:
        if learned_first is not None and self.log_rate is not None:
            done_at_first = pending_until <= 0
            self.log_rate += self.step * (policy.learn_quantile - done_at_first)
        elif self.log_rate is None and pending_until > 0:
            self._bounds.append(math.log(pending_until / video_seconds))
            if len(self._bounds) >= self.warmup:
                fit = statistics.NormalDist.from_samples(self._bounds)
                # Bounds with no spread (alike jobs on a virtual clock): inv_cdf needs sigma > 0.
                self.log_rate = fit.inv_cdf(policy.learn_quantile) if fit.stdev > 0 else fit.mean
                self._bounds.clear()


class Poller:
    """The pacing of one wait: how long to ask the server to hold each poll, and how long to
    sleep after a pending answer. Feed it what was observed; it never sleeps past ``deadline``.

    ``learned_first`` is a first poll learned for this job (:class:`Pace`) or told by the caller:
    the schedule then starts exactly there, with no random phase, and grows by ``learned_factor``.
    ``quality`` is what the client knows of the server's estimates (a wobbly server by default),
    and ``video_seconds`` the size of a job this client created (``start`` is then its creation).
    """

    def __init__(
        self,
        policy: PollPolicy,
        start: float,
        rng: random.Random,
        deadline: float | None = None,
        long_poll: bool = True,
        learned_first: float | None = None,
        quality: Quality | None = None,
        video_seconds: float | None = None,
    ) -> None:
        if learned_first is not None:
            policy = dataclasses.replace(
                policy, first=learned_first, factor=policy.learned_factor, random_phase=False
            )
        self.policy, self.start, self.deadline = policy, start, deadline
        self.phase = rng.random() if policy.random_phase else 0.0
        self.long_poll = long_poll and policy.long_poll >= 1
        self.quality = quality or Quality()
        #: How long the job should take from ``start``, by its size (see ``Quality.duration``).
        self.duration = None if video_seconds is None else self.quality.duration(video_seconds)
        self.hinted_polls = 0
        self.asked = 0
        #: The hints of this wait's pending answers that count down (what the fit reads).
        self.answers: list[Answer] = []
        #: Hints that did not count down: minimum waits rather than estimates.
        self.floors: set[float] = set()
        #: Whether the last sleep was meant to end after the job (a pending answer then is a miss).
        self.aimed = False

    def hold(self, now: float) -> int:
        """Whole seconds to ask the server to hold the next poll (``Prefer: wait``); 0: don't ask.

        The hold ends half a second before the deadline, so the answer arrives in time.
        """
        hold = self.policy.long_poll if self.long_poll else 0.0
        if self.deadline is not None:
            hold = min(hold, self.deadline - now - 0.5)
        self.asked = int(hold) if hold >= 1 else 0
        return self.asked

    def next_delay(
        self,
        now: float,
        hint: float | None,
        held: float | None = None,
        applied: float | None = None,
        estimate: bool = True,
    ) -> float:
        """Seconds to sleep after a pending answer seen at ``now`` that carried ``hint``.

        ``estimate`` says the hint is the server's estimate of the time left (to the millisecond);
        otherwise it is a ``Retry-After`` (whole seconds).

        ``held`` is how long the server held the request if it honoured the long-poll, and
        ``applied`` the hold it said it applied (``Preference-Applied: wait=N``, which a server's
        cap may make shorter than asked): a full hold means "still pending", so the next poll
        goes out at once.
        """
        full = self.asked if applied is None else min(self.asked, applied)
        if held is not None and full > 0 and held >= full / 2:
            return 0.0
        if self.asked and held is None:
            # Still pending, answered at once: the server ignores Prefer: wait. Stop asking, so
            # that each request is bounded by the client's timeout again, not by the hold.
            self.long_poll = False
        p = self.policy
        if hint is not None and p.use_hints and math.isfinite(hint) and hint >= 0:
            self.hinted_polls += 1
            delay = min(self._hinted(now, hint, 0.001 if estimate else 1.0), p.max_hint)
        else:
            delay = self._scheduled(now)
        delay = max(p.min_interval, delay)
        if self.deadline is not None:
            delay = min(delay, max(0.0, self.deadline - now))
        return delay

    def _scheduled(self, now: float) -> float:
        """The delay to the next point of the schedule ``first * factor**(i + phase)``."""
        p = self.policy
        elapsed = max(0.0, now - self.start)
        i = max(0, math.floor(math.log(max(elapsed, 1e-9) / p.first, p.factor) - self.phase) + 1)
        next_point = p.first * p.factor ** (i + self.phase)
        # On a point (a virtual clock lands exactly on them), give or take rounding: it is passed.
        if next_point - elapsed <= 1e-9 * next_point:
            i, next_point = i + 1, next_point * p.factor
        if i == 0:
            # Before the first point: no poll until then, but no later than max(first, max_interval).
            first_poll = min(next_point, max(p.first, p.max_interval))
            if first_poll - elapsed > 1e-9 * first_poll:
                return float(first_poll - elapsed)
        if next_point * (1 - 1 / p.factor) >= p.max_interval:
            return p.max_interval  # past the cap the schedule is a fixed interval
        return float(min(p.max_interval, next_point - elapsed))

    def _hinted(self, now: float, hint: float, step: float) -> float:
        """How long to sleep on ``hint``: until the earliest plausible end plus the lag allowed,
        but no later than the latest plausible end; at least the lag allowed after a miss."""
        p = self.policy
        missed, self.aimed = self.aimed, False
        same = [a for a in self.answers if a.hint == hint]
        allowed = max(1.0, p.hint_floor, p.hint_lag * (now - self.start + hint))
        if same and self.answers[-1].hint == hint > allowed and now - same[0].at >= hint:
            # The same long hint for as long as it says: not a countdown but a minimum (a cap, a
            # fixed Retry-After); the server's cap if it never says more (for the next waits too).
            self.floors.add(hint)
            self.quality.repeated(hint)
            self.answers = [a for a in self.answers if a.hint != hint]
        self.quality.saw(hint)
        if hint in self.floors or hint == self.quality.cap:
            if self.duration is None:
                return max(hint, self._scheduled(now))  # the schedule, no sooner than asked
            # The job's size says how long it takes; the floor, that it is not nearly done.
            left = beyond(Answer(now, hint, step), self.quality, p.hint_confidence, self.start, self.duration)
        else:
            self.answers.append(Answer(now, hint, step))
            left = remaining(self.answers, self.quality, p.hint_confidence, self.start, self.duration)
        budget = max(p.hint_floor, p.hint_lag * (now - self.start + left.mid))
        sleep = min(left.high, left.low + budget)
        if missed:
            sleep = max(sleep, budget)
        self.aimed = sleep >= left.high
        return sleep
