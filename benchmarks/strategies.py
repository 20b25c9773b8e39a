"""The waiting strategies the polling benchmark compares: published pollers as tiny policies, and vtrans.

Every strategy is pure (no clock, no I/O): a :class:`Session` is asked how long the server should hold
the next poll and how long to sleep after a pending answer, given the virtual time and the answer.
The vtrans strategies drive the real :class:`vtrans.client.policy.Poller`, exactly as
``vtrans.client.waiting._poll`` does; nothing of it is copied here.

The baselines follow ``shared/research/client-anchors.md`` (section "Baseline strategies to simulate").
Their stop conditions (Google's 900 s, stamina's 10 attempts or 45 s) are not applied: every strategy
waits until the job is done, and :meth:`Strategy.gives_up` reports when the default stop would have
abandoned the wait instead.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vtrans.client.policy import Poller, PollPolicy


@dataclass(frozen=True)
class Job:
    """What the client knows of a job when it starts waiting: the length of the video it submitted."""

    video_seconds: float


@dataclass(frozen=True)
class Reply:
    """One pending answer, as the client sees it.

    ``estimate`` is the body's ``estimated_seconds_remaining``, ``retry_after`` the ``Retry-After``
    header (whole seconds), ``held`` how long the request took if the server honoured ``Prefer: wait``.
    """

    estimate: float | None = None
    retry_after: float | None = None
    held: float | None = None


class Session(Protocol):
    """The pacing of one wait."""

    def hold(self, now: float) -> int:
        """Whole seconds to ask the server to hold the next poll (``Prefer: wait``); 0: don't ask."""
        ...

    def next_delay(self, now: float, reply: Reply) -> float:
        """Seconds to sleep after the pending ``reply`` received at ``now``."""
        ...


class Strategy:
    """A named way of waiting; :meth:`session` starts one wait (seeded by ``rng``)."""

    name: str = ""
    #: ``baseline``, ``vtrans`` (a PollPolicy, the default or a sweep point) or ``learned``.
    family: str = "baseline"
    #: Reads hints from the server (estimates, Retry-After); otherwise its results do not depend on them.
    uses_hints: bool = False
    #: Asks the server to hold polls; otherwise its results do not depend on long-poll support.
    asks_hold: bool = False
    #: A fixed interval after each answer, with no randomness: results have a closed form.
    fixed_interval: float | None = None
    #: Learns across jobs (the jobs must run in order, one client).
    learns: bool = False

    def session(self, rng: random.Random, job: Job) -> Session:
        raise NotImplementedError

    def observe(self, job: Job, last_pending: float, detected: float) -> None:
        """A wait is over: the last poll that saw the job pending was sent at ``last_pending``, the
        one that saw it done answered at ``detected`` (the duration is between the two)."""

    def gives_up(self, requests: int, detected: float) -> bool:
        """Whether the strategy's default stop condition would have abandoned this wait."""
        return False


class _NoHold:
    def hold(self, now: float) -> int:
        return 0


# --- baselines ------------------------------------------------------------------------------------


class Fixed(Strategy):
    """Poll at once, then every ``interval`` seconds after each answer (no jitter)."""

    def __init__(self, interval: float, name: str) -> None:
        self.interval = self.fixed_interval = interval
        self.name = name

    def session(self, rng: random.Random, job: Job) -> Session:
        return _FixedSession(self.interval)


class _FixedSession(_NoHold):
    def __init__(self, interval: float) -> None:
        self.interval = interval

    def next_delay(self, now: float, reply: Reply) -> float:
        return self.interval


class Sleeps(Strategy):
    """Poll at once, then sleep ``sleeps(n, rng)`` after the n-th pending answer (n = 0, 1, ...)."""

    def __init__(
        self,
        name: str,
        sleeps: Callable[[int, random.Random], float],
        gives_up: Callable[[int, float], bool] | None = None,
    ) -> None:
        self.name, self.sleeps, self._gives_up = name, sleeps, gives_up

    def session(self, rng: random.Random, job: Job) -> Session:
        return _SleepsSession(self.sleeps, rng)

    def gives_up(self, requests: int, detected: float) -> bool:
        return self._gives_up is not None and self._gives_up(requests, detected)


class _SleepsSession(_NoHold):
    def __init__(self, sleeps: Callable[[int, random.Random], float], rng: random.Random) -> None:
        self.sleeps, self.rng, self.n = sleeps, rng, 0

    def next_delay(self, now: float, reply: Reply) -> float:
        delay = self.sleeps(self.n, self.rng)
        self.n += 1
        return delay


def google_sleep(n: int, rng: random.Random) -> float:
    """google-api-core ``DEFAULT_POLLING``: U(0, min(20, 1 * 1.5**n)) (full jitter)."""
    return rng.uniform(0.0, min(20.0, 1.0 * 1.5 ** min(n, 64)))


def smithy_sleep(n: int, rng: random.Random) -> float:
    """Smithy waiter defaults: random(minDelay, min(maxDelay, minDelay * 2**(k - 1))), k = n + 1."""
    lo, hi, k = 2.0, 120.0, n + 1
    ceiling = math.log(hi / lo) / math.log(2) + 1
    delay = hi if k > ceiling else min(hi, lo * 2.0 ** (k - 1))
    return rng.uniform(lo, delay)


def doubling_sleep(n: int, rng: random.Random) -> float:
    """Sleep 1, 2, 4, 8 ... seconds, uncapped: tenacity ``wait_exponential()`` and plain doubling."""
    return 2.0 ** min(n, 1000)


def stamina_sleep(n: int, rng: random.Random) -> float:
    """stamina defaults: min(5, 0.1 * 2**(a - 1) + U(0, 1)), a = n + 1."""
    return min(5.0, 0.1 * 2.0 ** min(n, 64) + rng.uniform(0.0, 1.0))


class HintFollower(Strategy):
    """Sleep what the server says; ``fallback`` seconds when it says nothing.

    ``source``: ``estimate`` (the body's estimate, at least ``floor`` s), ``retry-after`` (the header:
    whole seconds, as azure-core reads it; a value of 0 falls back) or ``first`` (OpenAI: the first
    hint seen becomes the interval for the rest of the wait).
    """

    uses_hints = True

    def __init__(self, name: str, source: str, fallback: float, floor: float = 0.0) -> None:
        self.name, self.source, self.fallback, self.floor = name, source, fallback, floor

    def session(self, rng: random.Random, job: Job) -> Session:
        return _HintSession(self)


class _HintSession(_NoHold):
    def __init__(self, strategy: HintFollower) -> None:
        self.s = strategy
        self.interval: float | None = None

    def next_delay(self, now: float, reply: Reply) -> float:
        s = self.s
        if s.source == "first":
            if self.interval is None:
                hint = reply.estimate if reply.estimate is not None else reply.retry_after
                self.interval = s.fallback if hint is None else hint
            return self.interval
        hint = reply.estimate if s.source == "estimate" else reply.retry_after
        if not hint:  # None, or azure-core's falsy Retry-After: 0
            return s.fallback
        return max(s.floor, hint)


class HoldOnce(Strategy):
    """Replicate ``run()``: the first request asks the server to hold (``Prefer: wait``), then poll
    every ``interval`` seconds."""

    asks_hold = True

    def __init__(self, name: str, hold: int, interval: float) -> None:
        self.name, self._hold, self.interval = name, hold, interval

    def session(self, rng: random.Random, job: Job) -> Session:
        return _HoldOnceSession(self._hold, self.interval)


class _HoldOnceSession:
    def __init__(self, hold: int, interval: float) -> None:
        self._hold, self.interval = hold, interval

    def hold(self, now: float) -> int:
        hold, self._hold = self._hold, 0
        return hold

    def next_delay(self, now: float, reply: Reply) -> float:
        return self.interval


def baselines() -> list[Strategy]:
    """The published pollers of the research table, with their published parameters."""
    return [
        Fixed(0.5, "fixed 0.5 s (Replicate)"),
        Fixed(1.0, "fixed 1 s (OpenAI, Azure .NET)"),
        Fixed(3.0, "fixed 3 s (AssemblyAI)"),
        Fixed(10.0, "fixed 10 s (botocore Transcribe)"),
        Fixed(30.0, "fixed 30 s (azure-core)"),
        Sleeps("Google PollingFuture", google_sleep, gives_up=lambda n, t: t > 900.0),
        Sleeps("Smithy/AWS waiter", smithy_sleep),
        Sleeps("tenacity wait_exponential()", doubling_sleep),
        Sleeps("stamina", stamina_sleep, gives_up=lambda n, t: n > 10 or t > 45.0),
        Sleeps("doubling from 1 s", doubling_sleep),
    ]


def hint_baselines() -> list[Strategy]:
    """The pollers that read a hint, for servers that send one."""
    return [
        HintFollower("OpenAI (1 s or first hint)", "first", fallback=1.0),
        HintFollower("azure-core (Retry-After, else 30 s)", "retry-after", fallback=30.0),
        HintFollower("sleep the estimate (min 0.1 s)", "estimate", fallback=1.0, floor=0.1),
    ]


# --- vtrans ---------------------------------------------------------------------------------------


class Vtrans(Strategy):
    """A :class:`PollPolicy` driven through the real :class:`Poller`, as ``waiting._poll`` does."""

    uses_hints = True
    asks_hold = True

    def __init__(self, policy: PollPolicy, name: str, family: str = "vtrans") -> None:
        self.policy, self.name, self.family = policy, name, family

    def session(self, rng: random.Random, job: Job) -> Session:
        return VtransSession(Poller(self.policy, 0.0, rng))


class VtransSession:
    """``waiting._poll``'s use of the Poller: ``hold(sent)`` before each poll, then
    ``next_delay(now, hint, held)`` with the body's estimate, else ``Retry-After``."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller

    def hold(self, now: float) -> int:
        return self.poller.hold(now)

    def next_delay(self, now: float, reply: Reply) -> float:
        hint = reply.estimate if reply.estimate is not None else reply.retry_after
        return self.poller.next_delay(now, hint, reply.held, estimate=reply.estimate is not None)


class Learned(Strategy):
    """vtrans that learns from finished jobs how long a video takes (no server hint needed).

    The client keeps one number: ``rate``, seconds of waiting per second of video. A new job's
    schedule starts at ``first = video_seconds * rate`` (never earlier than the policy's ``first``):
    the early polls, which would only find a job of that size pending, are skipped. ``rate`` tracks
    the ``quantile`` of the jobs' duration per video-second, so that about that share of jobs is
    already done at the first re-poll: after each wait, ``log(rate)`` moves up by ``step * quantile``
    if the first re-poll found the job pending, down by ``step * (1 - quantile)`` if it found it done
    at a learned first point (a stochastic-approximation quantile estimate; it needs no duration,
    which a spec-literal server does not report). It starts from the first job's lower bound (its
    last pending poll). The real Poller runs the schedule, with ``first`` set per job.
    """

    learns = True

    def __init__(self, policy: PollPolicy, name: str, quantile: float = 0.05, step: float = 0.1) -> None:
        self.policy, self.name, self.family = policy, name, "learned"
        self.quantile, self.step = quantile, step
        self.log_rate: float | None = None

    def reset(self) -> None:
        self.log_rate = None

    def first_for(self, job: Job) -> float:
        if self.log_rate is None:
            return self.policy.first
        return max(self.policy.first, job.video_seconds * math.exp(self.log_rate))

    def session(self, rng: random.Random, job: Job) -> Session:
        policy = dataclasses.replace(self.policy, first=self.first_for(job))
        return VtransSession(Poller(policy, 0.0, rng))

    def observe(self, job: Job, last_pending: float, detected: float) -> None:
        if self.log_rate is None:
            if last_pending > 0:
                self.log_rate = math.log(last_pending / job.video_seconds)
            return
        # Done at the first re-poll: the only pending answer was the one at t = 0. When the policy's
        # own `first` was later than the learned one, that says nothing about the learned rate.
        early = last_pending == 0.0
        if early and job.video_seconds * math.exp(self.log_rate) < self.policy.first:
            return
        self.log_rate += self.step * (self.quantile - early)


def vtrans_default() -> Vtrans:
    return Vtrans(PollPolicy(), "vtrans default")


def sweep_policies(default: PollPolicy) -> list[tuple[str, PollPolicy]]:
    """The vtrans settings swept: ``first`` x ``factor`` x ``random_phase`` x ``max_interval``, and
    a finer ``max_interval`` sweep at the default ``first``/``factor``/``random_phase``."""
    out: list[tuple[str, PollPolicy]] = []
    seen: set[PollPolicy] = {default}
    caps = (10.0, 30.0, math.inf)

    def add(policy: PollPolicy) -> None:
        if policy not in seen:
            seen.add(policy)
            out.append((policy_label(policy), policy))

    for first in (0.25, 0.5, 1.0, 3.0):
        for factor in (1.2, 1.3, 1.5, 1.8, 2.0):
            for random_phase in (True, False):
                for cap in caps:
                    add(
                        dataclasses.replace(
                            default, first=first, factor=factor, random_phase=random_phase, max_interval=cap
                        )
                    )
    for cap in (1.0, 2.0, 5.0, 20.0, 60.0, 120.0):
        add(dataclasses.replace(default, max_interval=cap))
    return out


def policy_label(p: PollPolicy) -> str:
    cap = "inf" if math.isinf(p.max_interval) else f"{p.max_interval:g}"
    phase = "" if p.random_phase else " fixed-phase"
    return f"vtrans {p.first:g}x{p.factor:g}^n cap {cap}{phase}"


def describe(p: PollPolicy) -> str:
    """The settings of a policy that the benchmark varies, for tables."""
    cap = "∞" if math.isinf(p.max_interval) else f"{p.max_interval:g}"
    fields = [f"first={p.first:g}", f"factor={p.factor:g}", f"max_interval={cap}"]
    fields.append(f"random_phase={p.random_phase}")
    for name in ("hint_fraction", "hint_rate"):
        if hasattr(p, name):
            fields.append(f"{name}={getattr(p, name)}")
    return ", ".join(fields)
