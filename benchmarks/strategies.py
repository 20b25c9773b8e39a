"""The published pollers the benchmark compares vtrans with, as tiny schedules; and the vtrans settings
it sweeps. vtrans itself is not modelled here: the benchmark runs the real client (``engine.py``).

A baseline :class:`Session` is asked how long the server should hold the next poll and how long to
sleep after a pending answer, given the virtual time and the answer. The baselines follow
``shared/research/client-anchors.md`` (section "Baseline strategies to simulate"). Their stop
conditions (Google's 900 s, stamina's 10 attempts or 45 s) are not applied: every strategy waits until
the job is done, and :meth:`Strategy.gives_up` reports when the default stop would have abandoned the
wait instead.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vtrans.client.policy import PollPolicy


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
    """The pacing of one wait, which starts with the create's answer."""

    def start(self) -> float | None:
        """Seconds from the create's answer to the first poll; ``None``: at once."""
        ...

    def hold(self, now: float) -> int:
        """Whole seconds to ask the server to hold the next poll (``Prefer: wait``); 0: don't ask."""
        ...

    def next_delay(self, now: float, reply: Reply) -> float:
        """Seconds to sleep after the pending ``reply`` received at ``now``."""
        ...


class Strategy:
    """A published poller; :meth:`session` starts one wait (seeded by ``rng``)."""

    name: str = ""
    #: Reads hints from the server (estimates, Retry-After); otherwise its results do not depend on them.
    uses_hints: bool = False
    #: Asks the server to hold polls; otherwise its results do not depend on long-poll support.
    asks_hold: bool = False
    #: A fixed interval after each answer, with no randomness: results have a closed form.
    fixed_interval: float | None = None
    #: Sleeps ``fixed_interval`` before its first poll too (else it polls at once).
    sleeps_first: bool = False

    def session(self, rng: random.Random) -> Session:
        raise NotImplementedError

    def gives_up(self, requests: int, detected: float) -> bool:
        """Whether the strategy's default stop condition would have abandoned this wait."""
        return False


class _NoHold:
    """A published poller: it polls at once and never asks for a hold."""

    def start(self) -> float | None:
        return None

    def hold(self, now: float) -> int:
        return 0


# --- baselines ------------------------------------------------------------------------------------


class Fixed(Strategy):
    """Poll at once (or, ``sleeps_first``, after ``interval``), then every ``interval`` seconds
    after each answer (no jitter)."""

    def __init__(self, interval: float, name: str, sleeps_first: bool = False) -> None:
        self.interval = self.fixed_interval = interval
        self.name, self.sleeps_first = name, sleeps_first

    def session(self, rng: random.Random) -> Session:
        return _FixedSession(self.interval, self.sleeps_first)


class _FixedSession(_NoHold):
    def __init__(self, interval: float, sleeps_first: bool) -> None:
        self.interval, self.sleeps_first = interval, sleeps_first

    def start(self) -> float | None:
        return self.interval if self.sleeps_first else None

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

    def session(self, rng: random.Random) -> Session:
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

    def session(self, rng: random.Random) -> Session:
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

    def session(self, rng: random.Random) -> Session:
        return _HoldOnceSession(self._hold, self.interval)


class _HoldOnceSession(_NoHold):
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
        Fixed(0.5, "fixed 0.5 s (Replicate)", sleeps_first=True),
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


# --- the vtrans sweep ------------------------------------------------------------------------------


def sweep_policies(default: PollPolicy) -> list[tuple[str, PollPolicy]]:
    """The vtrans settings swept without hints (each run by the real client): the schedule's
    ``first`` x ``factor`` x ``max_interval``; ``max_interval`` alone; a learned start with caps
    under the baselines' intervals (``learn_quantile`` x ``max_interval``, first 0.25 s,
    ``learned_factor`` 1.5); ``learn_quantile`` x ``learned_factor`` with the default's caps; the
    default without learning."""
    out: list[tuple[str, PollPolicy]] = []
    seen: set[PollPolicy] = {default}

    def add(**changes: object) -> None:
        policy = dataclasses.replace(default, **changes)  # type: ignore[arg-type]
        if policy not in seen:
            seen.add(policy)
            out.append((policy_label(policy), policy))

    for first in (0.5, 3.0):
        for factor in (1.3, 1.5, 2.0):
            for cap in (10.0, math.inf):
                add(first=first, factor=factor, max_interval=cap)
    for cap in (1.0, 2.0, 5.0, 20.0, 40.0, 120.0):
        add(max_interval=cap)
    # The learned start, with caps at 0.7 x the baselines' intervals (0.5 ... 30 s).
    for quantile in (0.0001, 0.001, 0.05, 0.2):
        for cap in (0.35, 0.7, 2.1, 3.5, 7.0, 14.0, 21.0):
            if cap > 0.35 or quantile < 0.1:
                add(first=0.25, learn_quantile=quantile, learned_factor=1.5, max_interval=cap)
    for quantile in (0.01, 0.05, 0.2):
        for learned_factor in (1.1, 1.5, 2.0):
            for cap in (20.0, 60.0):
                add(learn_quantile=quantile, learned_factor=learned_factor, max_interval=cap)
    add(learn=False)
    return out


def policy_label(p: PollPolicy) -> str:
    cap = "inf" if math.isinf(p.max_interval) else f"{p.max_interval:g}"
    phase = "" if p.random_phase else " fixed-phase"
    learn = f" q{p.learn_quantile:g} then x{p.learned_factor:g}" if p.learn else " no learning"
    return f"vtrans {p.first:g}x{p.factor:g}^n cap {cap}{phase}{learn}"


def describe(p: PollPolicy) -> str:
    """The settings of a policy that the benchmark varies, for tables."""
    cap = "∞" if math.isinf(p.max_interval) else f"{p.max_interval:g}"
    fields = [f"first={p.first:g}", f"factor={p.factor:g}", f"max_interval={cap}"]
    fields.append(f"random_phase={p.random_phase}")
    names = (
        "learn",
        "learn_quantile",
        "learned_factor",
        "hint_lag",
        "hint_floor",
        "hint_confidence",
        "max_hint",
    )
    for name in names:
        fields.append(f"{name}={getattr(p, name)}")
    return ", ".join(fields)
