"""The waiting and retry policies on virtual time: no clock, no sleeping, only arithmetic.

``run_schedule`` drives a :class:`Poller` the way a driver on a virtual clock does (the benchmark,
or a client in ``vtrans.testing`` mode): poll at the start, sleep what the poller says, poll again.

The mechanics are checked on a pinned policy (``BASE``, changed per test with :func:`pinned`), not
on the defaults: those are tuned by ``benchmarks/polling.py`` and may change again.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

from vtrans.client.policy import HINT_RATES, Poller, PollPolicy, RetryPolicy

#: Every knob spelled out: a 0.5 s x 1.5^(i + phase) schedule capped at 30 s, hints followed exactly.
BASE = PollPolicy(
    first=0.5,
    factor=1.5,
    max_interval=30.0,
    min_interval=0.05,
    hint_floor=0.1,
    hint_fraction=1.0,
    hint_rate=False,
    random_phase=True,
    use_hints=True,
    max_hint=600.0,
    long_poll=30.0,
)
R = BASE.factor


def pinned(**changes: Any) -> PollPolicy:
    """``BASE`` with ``changes``."""
    return dataclasses.replace(BASE, **changes)


def run_schedule(
    policy: PollPolicy, duration: float, seed: int = 0, latency: float = 1e-6, start: float = 1000.0
) -> tuple[list[float], float]:
    """Poll a job that finishes ``duration`` s after the wait starts, with no hints.

    Returns the poll times (relative to the start, the first one at 0) and the time the
    completion was seen. ``latency`` is how long each request takes (a microsecond, unless a
    test asks for the zero-latency world of a purely virtual clock).
    """
    poller = Poller(policy, start, random.Random(seed))
    now, polls = start, []
    while True:
        polls.append(now - start)
        now += latency
        if polls[-1] >= duration:
            return polls, polls[-1]
        now += poller.next_delay(now, None)
        assert len(polls) < 10_000, "the schedule does not advance"


def schedule_points(policy: PollPolicy, phase: float, until: float) -> list[float]:
    """The ideal geometric schedule ``first * factor**(i + phase)``, uncapped, up to ``until``."""
    points: list[float] = []
    i = 0
    while not points or points[-1] < until:
        points.append(policy.first * policy.factor ** (i + phase))
        i += 1
    return points


# --- the geometric schedule -------------------------------------------------------------------


@pytest.mark.parametrize("random_phase", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_polls_follow_the_geometric_schedule_exactly(random_phase: bool, seed: int) -> None:
    """On virtual time, every poll lands on ``first * factor**(i + phase)``: no extra request.

    A driver on a virtual clock (zero latency) asks the poller at exactly the previous
    schedule point; the poller must then answer the gap to the *next* point, not a tiny
    rounding residue clamped up to ``min_interval`` (which would be a wasted request).
    """
    policy = pinned(random_phase=random_phase, max_interval=1e9)
    phase = Poller(policy, 0.0, random.Random(seed)).phase
    polls, _ = run_schedule(policy, duration=200.0, seed=seed, latency=0.0)
    expected = schedule_points(policy, phase, until=200.0)
    assert polls[0] == 0.0
    assert len(polls) - 1 == len(expected), f"extra polls: {polls[1:]} vs {expected}"
    assert polls[1:] == pytest.approx(expected, rel=1e-9)
    ratios = [b / a for a, b in pairwise(polls[1:])]
    assert ratios == pytest.approx([R] * len(ratios), rel=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_schedule_is_kept_when_requests_take_time(seed: int) -> None:
    """Request latency does not shift the schedule: the next poll still lands on the next point."""
    policy = pinned(max_interval=1e9)
    phase = Poller(policy, 0.0, random.Random(seed)).phase
    polls, _ = run_schedule(policy, duration=100.0, seed=seed, latency=0.01)
    assert polls[1:] == pytest.approx(schedule_points(policy, phase, until=100.0), rel=1e-9)


def test_phase_is_random_only_when_asked() -> None:
    phases = {Poller(pinned(), 0.0, random.Random(seed)).phase for seed in range(50)}
    assert len(phases) == 50
    assert all(0.0 <= p < 1.0 for p in phases)
    assert {Poller(pinned(random_phase=False), 0.0, random.Random(s)).phase for s in range(5)} == {0.0}


def test_first_poll_after_start_is_first_times_factor_to_the_phase() -> None:
    policy = pinned(first=0.4, factor=2.0)
    for seed in range(20):
        poller = Poller(policy, 50.0, random.Random(seed))
        assert poller.next_delay(50.0, None) == pytest.approx(0.4 * 2.0**poller.phase)


def log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


@pytest.mark.parametrize("factor", [1.2, 1.5, 2.0])
def test_worst_case_relative_lag_is_factor_minus_one(factor: float) -> None:
    """Over 2,000 durations (past the first poll, below the cap) lag <= (factor - 1) * duration."""
    policy = pinned(factor=factor, max_interval=1e9)
    rng = random.Random(42)
    worst = 0.0
    for n in range(2000):
        duration = log_uniform(rng, policy.first * factor, 300.0)
        polls, seen = run_schedule(policy, duration, seed=n)
        lag = seen - duration
        assert 0.0 <= lag <= (factor - 1) * duration + 1e-9, (duration, polls)
        worst = max(worst, lag / duration)
    # The bound is tight: some durations fall just after a poll.
    assert worst > 0.9 * (factor - 1)


@pytest.mark.parametrize("seed", range(5))
def test_requests_grow_logarithmically(seed: int) -> None:
    """About ``log_factor(duration / first)`` requests: at most that + 2 (the poll at 0 and the last)."""
    policy = pinned(max_interval=1e9)
    rng = random.Random(seed)
    for _ in range(200):
        duration = log_uniform(rng, 1.0, 1000.0)
        polls, _ = run_schedule(policy, duration, seed=rng.randrange(10**9))
        assert len(polls) <= math.ceil(math.log(duration / policy.first, R)) + 2, polls


def mean_lag_and_requests(policy: PollPolicy, durations: list[float], seed: int) -> tuple[float, float]:
    lags, requests = [], []
    for n, duration in enumerate(durations):
        polls, seen = run_schedule(policy, duration, seed=seed + n)
        lags.append((seen - duration) / duration)
        requests.append(len(polls))
    return statistics.fmean(lags), statistics.fmean(requests)


def test_random_phase_lowers_the_mean_lag_against_unlucky_durations() -> None:
    """Durations just after the fixed schedule's polls are any fixed schedule's worst case:
    there the fixed phase lags by ~(r - 1) = 50 % of the duration, the random phase by
    (r - 1) / ln r - 1 = 23 % on average, for no more requests (2,000 seeded durations)."""
    rng = random.Random(7)
    fixed_policy = pinned(random_phase=False, max_interval=1e9)
    durations = [fixed_policy.first * R ** rng.randint(1, 10) * 1.0001 for _ in range(2000)]
    fixed_lag, fixed_requests = mean_lag_and_requests(fixed_policy, durations, seed=0)
    random_lag, random_requests = mean_lag_and_requests(pinned(max_interval=1e9), durations, seed=0)
    assert fixed_lag == pytest.approx(R - 1, abs=0.01)
    assert random_lag == pytest.approx((R - 1) / math.log(R) - 1, abs=0.02)
    assert random_requests <= fixed_requests


def test_random_phase_costs_what_a_fixed_schedule_of_the_same_mean_phase_costs() -> None:
    """Over durations spread evenly in log scale (whole octaves of the factor), the random phase
    makes as many requests as the fixed schedule started at its mean phase, with the same mean lag."""
    rng = random.Random(11)
    durations = [BASE.first * R ** rng.uniform(2, 12) for _ in range(2000)]
    fixed = pinned(first=BASE.first * R**0.5, random_phase=False, max_interval=1e9)
    fixed_lag, fixed_requests = mean_lag_and_requests(fixed, durations, seed=0)
    random_lag, random_requests = mean_lag_and_requests(pinned(max_interval=1e9), durations, seed=0)
    assert random_requests == pytest.approx(fixed_requests, abs=0.1)
    assert random_lag == pytest.approx(fixed_lag, abs=0.02)
    assert random_lag == pytest.approx((R - 1) / math.log(R) - 1, abs=0.02)


@pytest.mark.parametrize("duration", [1.3, 4.2, 17.0, 55.5])
def test_random_phase_mean_lag_is_the_same_for_every_duration(duration: float) -> None:
    """Whatever the duration, the lag averaged over the phase is (r - 1) / ln r - 1 of it; a fixed
    schedule's is anywhere in [0, r - 1) depending on where the duration falls."""
    policy = pinned(max_interval=1e9)
    lags = [(run_schedule(policy, duration, seed=n)[1] - duration) / duration for n in range(2000)]
    assert statistics.fmean(lags) == pytest.approx((R - 1) / math.log(R) - 1, abs=0.015)
    assert max(lags) <= R - 1 + 1e-9


# --- cap and floor ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_max_interval_caps_the_gap_and_the_lag(seed: int) -> None:
    policy = pinned(max_interval=5.0)
    rng = random.Random(seed)
    for _ in range(50):
        duration = rng.uniform(20.0, 500.0)
        polls, seen = run_schedule(policy, duration, seed=rng.randrange(10**9))
        gaps = [b - a for a, b in pairwise(polls)]
        assert max(gaps) <= 5.0 + 1e-5  # the sleep, plus the request's microsecond
        assert seen - duration <= 5.0 + 1e-5
        # Polling at the cap costs about duration / cap requests, plus the geometric ramp (and,
        # as it stands, one short gap per schedule point passed while capped: log-many).
        assert len(polls) <= duration / 5.0 + math.log(duration / policy.first, R) + 2


def test_max_interval_bounds_the_gap_even_long_after_the_start() -> None:
    poller = Poller(pinned(max_interval=30.0), 0.0, random.Random(1))
    for elapsed in (100.0, 1e3, 1e5, 1e7):
        assert 0.0 < poller.next_delay(elapsed, None) <= 30.0


def test_min_interval_is_the_shortest_gap() -> None:
    policy = pinned(first=0.5, random_phase=False, min_interval=0.2)
    poller = Poller(policy, 0.0, random.Random(0))
    # Just before a schedule point (0.75), the gap would be 1 ms: it is raised to min_interval.
    assert poller.next_delay(0.749, None) == pytest.approx(0.2)
    # A min_interval longer than the schedule's early gaps slows the start.
    slow = pinned(first=0.1, min_interval=1.0, max_interval=10.0)
    polls, _ = run_schedule(slow, duration=30.0)
    assert min(b - a for a, b in pairwise(polls)) >= 1.0 - 1e-9


#: (first, max_interval): below the cap, up to it, at it, and past it.
FIRST_AND_CAP = [(0.5, 30.0), (3.0, 20.0), (15.0, 20.0), (20.0, 20.0), (60.0, 20.0), (100.0, 5.0)]


@pytest.mark.parametrize("factor", [1.2, 1.8, 3.0])
@pytest.mark.parametrize(("first", "max_interval"), FIRST_AND_CAP)
def test_the_first_re_poll_honours_first_even_past_max_interval(
    first: float, max_interval: float, factor: float
) -> None:
    """The first re-poll comes ``min(first * factor**phase, max(first, max_interval))`` after the
    start: a ``first`` longer than ``max_interval`` is kept (polls before it would be wasted), and a
    phase that would push it past both is cut back."""
    policy = pinned(first=first, factor=factor, max_interval=max_interval)
    for seed in range(50):
        poller = Poller(policy, 1000.0, random.Random(seed))
        expected = min(first * factor**poller.phase, max(first, max_interval))
        if first >= max_interval:
            assert expected == first
        assert poller.next_delay(1000.0, None) == pytest.approx(expected, rel=1e-12)
        # Answered a quarter of a second later (the request took time): it still lands there.
        poller = Poller(policy, 1000.0, random.Random(seed))
        assert 1000.25 + poller.next_delay(1000.25, None) == pytest.approx(1000.0 + expected, rel=1e-12)


@pytest.mark.parametrize("factor", [1.2, 1.8, 3.0])
@pytest.mark.parametrize(("first", "max_interval"), FIRST_AND_CAP)
def test_after_the_first_re_poll_no_gap_exceeds_max_interval(
    first: float, max_interval: float, factor: float
) -> None:
    """Whatever ``first``, from the first re-poll on the gaps (and so the lag) are at most
    ``max_interval``."""
    policy = pinned(first=first, factor=factor, max_interval=max_interval)
    rng = random.Random(f"{first}/{max_interval}/{factor}")
    for _ in range(100):
        seed = rng.randrange(10**9)
        phase = Poller(policy, 0.0, random.Random(seed)).phase
        first_poll = min(first * factor**phase, max(first, max_interval))
        duration = rng.uniform(first_poll, first_poll + 40 * max_interval)
        polls, seen = run_schedule(policy, duration, seed=seed)
        assert polls[1] == pytest.approx(first_poll, abs=1e-5)
        assert max(b - a for a, b in pairwise(polls[1:])) <= max_interval + 1e-5, polls
        assert seen - duration <= max_interval + 1e-5


# --- hints ------------------------------------------------------------------------------------


def test_first_hint_is_followed_exactly() -> None:
    poller = Poller(pinned(), 0.0, random.Random(0))
    assert poller.next_delay(0.0, 7.3) == 7.3
    # Longer than max_interval too: the server knows best (up to max_hint).
    poller = Poller(pinned(max_interval=5.0), 0.0, random.Random(0))
    assert poller.next_delay(0.0, 42.0) == 42.0


def test_short_hints_re_ramp_from_hint_floor_by_factor() -> None:
    """Once a hint proved short (still pending), sleeps are at least ``hint_floor * factor**k``."""
    policy = pinned(hint_floor=0.1, factor=2.0, max_interval=3.0)
    poller = Poller(policy, 0.0, random.Random(0))
    t = 0.0
    first = poller.next_delay(t, 2.0)
    assert first == 2.0
    sleeps = []
    for _ in range(8):
        t += 1.0
        sleeps.append(poller.next_delay(t, 0.0))  # "any moment now", again and again
    # 0.1 * 2**k, then capped at max_interval.
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0])


def test_a_hint_longer_than_the_floor_wins() -> None:
    poller = Poller(pinned(hint_floor=0.1), 0.0, random.Random(0))
    assert poller.next_delay(0.0, 5.0) == 5.0
    assert poller.next_delay(5.0, 0.0) == pytest.approx(0.1)
    assert poller.next_delay(5.1, 2.5) == 2.5  # a new, longer estimate is followed
    assert poller.next_delay(7.6, 0.01) == pytest.approx(0.1 * 1.5**2)


def test_a_tiny_hint_is_raised_to_min_interval() -> None:
    poller = Poller(pinned(min_interval=0.05), 0.0, random.Random(0))
    assert poller.next_delay(0.0, 0.0) == pytest.approx(0.05)
    assert Poller(pinned(), 0.0, random.Random(0)).next_delay(0.0, -3.0) == pytest.approx(0.05)


def test_max_hint_caps_a_long_estimate() -> None:
    poller = Poller(pinned(max_hint=60.0), 0.0, random.Random(0))
    assert poller.next_delay(0.0, 1e6) == 60.0


@pytest.mark.parametrize("hint", [math.inf, math.nan])
def test_a_non_finite_hint_falls_back_to_the_schedule(hint: float) -> None:
    policy = pinned(random_phase=False)
    with_hint = Poller(policy, 0.0, random.Random(0))
    without = Poller(policy, 0.0, random.Random(0))
    for now in (0.0, 0.7, 3.3, 10.0):
        assert with_hint.next_delay(now, hint) == without.next_delay(now, None)


def test_use_hints_false_ignores_hints() -> None:
    policy = pinned(use_hints=False, random_phase=False)
    hinted = Poller(policy, 0.0, random.Random(0))
    plain = Poller(policy, 0.0, random.Random(0))
    for now, hint in [(0.0, 100.0), (0.5, 0.0), (0.75, 3.0), (1.2, 50.0)]:
        assert hinted.next_delay(now, hint) == plain.next_delay(now, None)
    assert hinted.hinted_polls == 0


def test_polls_without_hint_between_hinted_ones_follow_the_schedule() -> None:
    policy = pinned(random_phase=False)
    poller = Poller(policy, 0.0, random.Random(0))
    assert poller.next_delay(0.0, 1.0) == 1.0
    # No hint this time: back to the geometric schedule from the start of the wait (next point 1.125).
    assert poller.next_delay(1.0, None) == pytest.approx(0.125)


# --- hint_fraction and hint_rate -------------------------------------------------------------


def run_hinted(policy: PollPolicy, done_at: float, estimate: Callable[[float], float]) -> list[float]:
    """Poll, on a zero-latency virtual clock, a job that ends ``done_at`` s after the start and,
    while pending, answers the hint ``estimate(t)``; return the poll times (the last sees the end)."""
    poller = Poller(policy, 0.0, random.Random(0))
    polls = [0.0]
    while polls[-1] < done_at - 1e-9:
        polls.append(polls[-1] + poller.next_delay(polls[-1], estimate(polls[-1])))
        assert len(polls) < 1000, "the hints do not advance"
    return polls


@pytest.mark.parametrize("hint_rate", [False, True])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.8, 1.0])
def test_the_first_hint_sleeps_hint_fraction_of_it(fraction: float, hint_rate: bool) -> None:
    policy = pinned(hint_fraction=fraction, hint_rate=hint_rate)
    for hint in (2.0, 7.3, 42.0, 500.0):
        assert Poller(policy, 0.0, random.Random(0)).next_delay(0.0, hint) == pytest.approx(fraction * hint)


def test_an_estimate_20_percent_too_long_is_corrected_by_its_countdown_rate() -> None:
    """The job ends at t = 50 and the server says 1.2 x the time left: 60 s at t = 0, 24 s at t = 30.
    The estimate shrank by 36 s in 30 s, 1.2 s per second: 24 / 1.2 = 20 s is really left."""
    poller = Poller(pinned(hint_fraction=0.5, hint_rate=True), 0.0, random.Random(0))
    assert poller.next_delay(0.0, 60.0) == 30.0  # half of the first hint
    assert poller.next_delay(30.0, 24.0) == pytest.approx(20.0)  # 30 + 20: the true end


@pytest.mark.parametrize("duration", [4.0, 50.0, 600.0])
@pytest.mark.parametrize("bias", [0.6, 0.8, 1.0, 1.2, 1.5, 1.9])
def test_the_countdown_rate_lands_the_third_poll_on_the_end(bias: float, duration: float) -> None:
    """An estimate ``bias`` times the time left counts down at ``bias`` s per second: the second
    hint divided by that rate is the time really left, so three requests see the job end with no
    lag."""
    polls = run_hinted(pinned(hint_fraction=0.5, hint_rate=True), duration, lambda t: bias * (duration - t))
    assert polls == pytest.approx([0.0, 0.5 * bias * duration, duration], rel=1e-9)


@pytest.mark.parametrize(
    ("second", "rate"),
    [(60.0, 0.0), (75.0, -1.0), (54.0, 0.4), (15.0, 3.0), (6.0, 3.6)],
    ids=["stalled", "grew", "too-slow", "too-fast", "much-too-fast"],
)
def test_a_countdown_rate_outside_hint_rates_is_ignored(second: float, rate: float) -> None:
    """An estimate that stalls, grows, or shrinks at a rate outside HINT_RATES jumped (a new stage,
    a revised plan) rather than being biased: the sleep is ``hint_fraction`` of the hint again."""
    assert not HINT_RATES[0] <= rate <= HINT_RATES[1]
    poller = Poller(pinned(hint_fraction=0.25, hint_rate=True), 0.0, random.Random(0))
    assert poller.next_delay(0.0, 60.0) == 15.0
    assert (60.0 - second) / 15.0 == pytest.approx(rate)
    assert poller.next_delay(15.0, second) == pytest.approx(0.25 * second)


@pytest.mark.parametrize("rate", [0.55, 0.8, 1.0, 1.25, 1.95])
def test_a_countdown_rate_within_hint_rates_is_believed(rate: float) -> None:
    assert HINT_RATES[0] < rate < HINT_RATES[1]
    poller = Poller(pinned(hint_fraction=0.25, hint_rate=True), 0.0, random.Random(0))
    assert poller.next_delay(0.0, 60.0) == 15.0
    second = 60.0 - rate * 15.0
    assert poller.next_delay(15.0, second) == pytest.approx(second / rate)


def test_without_hint_rate_every_hint_is_slept_at_hint_fraction() -> None:
    """The same estimate 20 % too long as above: 60 -> 30 s, then 24 -> 12 s (not 24 / 1.2 = 20 s),
    9.6 -> 4.8 s ... closing in on the end by halves."""
    policy = pinned(hint_fraction=0.5, hint_rate=False)
    polls = run_hinted(policy, 50.0, lambda t: 1.2 * (50.0 - t))
    sleeps = [b - a for a, b in pairwise(polls)]
    assert sleeps[:4] == pytest.approx([30.0, 12.0, 4.8, 1.92])
    assert len(polls) > 5  # more requests than the rate's three


def test_with_hint_rate_a_job_that_outlives_its_hints_re_ramps_from_hint_floor() -> None:
    """Hints that reach 0 and stay there ("any moment now"): sleeps ``hint_floor * factor**k``, as
    without ``hint_rate``."""
    policy = pinned(hint_floor=0.1, factor=2.0, max_interval=3.0, hint_fraction=0.5, hint_rate=True)
    poller = Poller(policy, 0.0, random.Random(0))
    assert poller.next_delay(0.0, 2.0) == 1.0
    t, sleeps = 1.0, []
    for _ in range(8):
        sleeps.append(poller.next_delay(t, 0.0))
        t += sleeps[-1]
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0])


def test_hint_fraction_1_without_hint_rate_is_the_old_behaviour_exactly() -> None:
    """``hint_fraction=1, hint_rate=False`` sleeps what vtrans 0.1.0 slept on a hint: the hint, at
    least the re-ramp floor and ``min_interval``, at most ``max_hint``."""
    policy = pinned(hint_fraction=1.0, hint_rate=False)
    rng = random.Random(3)
    for _ in range(200):
        poller = Poller(policy, 0.0, random.Random(0))
        now = 0.0
        for k in range(12):
            hint = rng.choice([0.0, -1.0, rng.uniform(0.0, 5.0), rng.uniform(0.0, 2000.0)])
            floor = 0.0 if k == 0 else policy.hint_floor * policy.factor ** (k - 1)
            old = max(policy.min_interval, min(policy.max_interval, floor), min(hint, policy.max_hint))
            assert poller.next_delay(now, hint) == old
            now += rng.uniform(0.0, 100.0)


# --- long-poll and the deadline --------------------------------------------------------------


def test_hold_asks_for_the_policys_long_poll_in_whole_seconds() -> None:
    assert Poller(pinned(), 0.0, random.Random(0)).hold(0.0) == 30
    assert Poller(pinned(long_poll=12.7), 0.0, random.Random(0)).hold(0.0) == 12
    assert Poller(pinned(long_poll=0), 0.0, random.Random(0)).hold(0.0) == 0
    assert Poller(pinned(), 0.0, random.Random(0), long_poll=False).hold(0.0) == 0


def test_hold_ends_before_the_deadline() -> None:
    poller = Poller(pinned(), 0.0, random.Random(0), deadline=10.0)
    assert poller.hold(0.0) == 9  # half a second early, whole seconds
    assert poller.hold(8.0) == 1
    assert poller.hold(8.6) == 0  # less than a second left to hold: a plain poll
    assert poller.hold(12.0) == 0


def test_a_full_hold_means_ask_again_at_once() -> None:
    poller = Poller(pinned(), 0.0, random.Random(0))
    assert poller.hold(0.0) == 30
    assert poller.next_delay(30.0, None, held=30.0) == 0.0
    assert poller.hold(30.0) == 30
    assert poller.next_delay(45.0, 5.0, held=15.0) == 0.0  # held for at least half of it
    # Held only briefly (the server capped it): pace as usual.
    assert poller.hold(45.0) == 30
    assert poller.next_delay(47.0, 5.0, held=2.0) == 5.0


def test_a_server_that_ignores_long_poll_is_no_longer_asked() -> None:
    """Pending, answered at once, no ``Preference-Applied``: the server does not long-poll. Asking
    again would only keep each request's timeout at the hold's length (see test_client_flows)."""
    poller = Poller(pinned(), 0.0, random.Random(0))
    assert poller.hold(0.0) == 30
    poller.next_delay(0.01, None, held=None)
    assert poller.hold(0.5) == 0


@pytest.mark.parametrize("hint", [None, 3.0, 1e6])
def test_no_sleep_goes_past_the_deadline(hint: float | None) -> None:
    poller = Poller(pinned(), 0.0, random.Random(0), deadline=2.0)
    for now in (0.0, 0.5, 1.9, 1.999, 2.0, 5.0):
        delay = poller.next_delay(now, hint)
        assert 0.0 <= delay <= max(0.0, 2.0 - now) + 1e-12


# --- retries ----------------------------------------------------------------------------------


def test_retry_delay_is_exponential_jittered_and_bounded() -> None:
    policy = RetryPolicy(attempts=20, backoff=0.2, max_backoff=10.0)
    rng = random.Random(3)
    for failures in range(1, 20):
        base = min(10.0, 0.2 * 2 ** (failures - 1))
        draws = [policy.delay(failures, None, rng) for _ in range(300)]
        assert all(0.5 * base <= d <= base for d in draws), failures
        # Jittered: the draws span the range instead of sitting on one value.
        assert min(draws) < 0.55 * base
        assert max(draws) > 0.95 * base
        assert max(draws) <= policy.max_backoff


def test_retry_delay_honours_retry_after() -> None:
    policy = RetryPolicy(backoff=0.2, max_backoff=10.0, max_retry_after=120.0)
    rng = random.Random(0)
    assert policy.delay(1, 3.0, rng) == 3.0
    assert policy.delay(1, 0.0, rng) <= 0.2  # a Retry-After shorter than the backoff: the backoff
    assert policy.delay(8, 1.0, rng) >= 5.0
    # A Retry-After longer than max_retry_after is cut to it.
    assert policy.delay(1, 3600.0, rng) == 120.0
    assert RetryPolicy(max_retry_after=5.0).delay(2, 30.0, rng) == 5.0


def test_retry_delay_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy()
    a = [policy.delay(n, None, random.Random(9)) for n in range(1, 9)]
    b = [policy.delay(n, None, random.Random(9)) for n in range(1, 9)]
    assert a == b


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first": 0.0},
        {"first": -1.0},
        {"first": math.nan},
        {"factor": 1.0},
        {"factor": 0.5},
        {"factor": math.nan},
        {"min_interval": 0.0},
        {"min_interval": -0.1},
        {"max_interval": 0.01, "min_interval": 0.05},
        {"max_interval": math.nan},
        {"hint_fraction": 0.0},
        {"hint_fraction": -0.5},
        {"hint_fraction": 1.01},
        {"hint_fraction": 2.0},
        {"hint_fraction": math.nan},
        {"hint_fraction": math.inf},
    ],
)
def test_invalid_poll_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="PollPolicy"):
        PollPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("fraction", [1e-3, 0.5, 1.0])
def test_hint_fraction_in_0_exclusive_to_1_inclusive_is_accepted(fraction: float) -> None:
    assert PollPolicy(hint_fraction=fraction).hint_fraction == fraction


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -3},
        {"backoff": -0.1},
        {"backoff": 5.0, "max_backoff": 1.0},
        {"backoff": math.nan},
        {"max_backoff": math.nan},
    ],
)
def test_invalid_retry_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_default_policies_are_valid_and_documented_values() -> None:
    """The defaults the benchmark chose (BENCHMARKS.md, README): 3 s x 1.8^(i + phase) capped at 60 s,
    or, once learned, from the 5 % point of past jobs by x1.2; half of the first hint, then the hint
    corrected by its countdown rate."""
    poll, retry = PollPolicy(), RetryPolicy()
    assert (poll.first, poll.factor, poll.max_interval, poll.min_interval) == (3.0, 1.8, 60.0, 0.05)
    assert (poll.learn, poll.learn_quantile, poll.learned_factor) == (True, 0.05, 1.2)
    assert (poll.hint_fraction, poll.hint_rate, poll.hint_floor, poll.max_hint) == (0.5, True, 0.1, 600.0)
    assert (poll.random_phase, poll.use_hints, poll.long_poll) == (True, True, 30.0)
    assert retry.attempts >= 2
    assert retry.backoff <= retry.max_backoff


def test_retry_after_is_followed_as_it_is_not_read_as_an_estimate() -> None:
    """Whole-second Retry-After hints are the server's pacing: no fraction, no countdown rate.

    (Read as estimates, "5" then "3" 2.5 s later would look like a rate of 0.8 and make the
    client sleep 1.25 s past the end of a 5 s job.)
    """
    poller = Poller(PollPolicy(), start=0.0, rng=random.Random(0))
    assert poller.next_delay(0.0, 5.0, estimate=False) == 5.0
    assert poller.next_delay(5.0, 1.0, estimate=False) == 1.0
    estimating = Poller(PollPolicy(), start=0.0, rng=random.Random(0))
    assert estimating.next_delay(0.0, 5.0) == pytest.approx(2.5)  # an estimate: half of it first
