"""The fewest requests any client can need when ``Retry-After`` is capped: a bound for (6e).

Below the cap C, a server's ``Retry-After`` tells how long is left; above it, only "not within C".
Grant a client more than any has: it knows each job's duration distribution exactly (log-normal
around the median its video length gives, sigma the service's ``duration_spread``), and one answer
below the cap tells it the end exactly (one more request, at the end). Before that, every answer
says only "not yet", so a wait is a fixed sequence of polls: the one that minimises
``requests + lam * late`` is found by dynamic programming over the time of the last "not yet", on a
grid, and ``lam`` is set (by bisection) so that 5 % of the workload's jobs are late (lag > the bound,
max(0.5 s, 5 % of D)): the p95 criterion. A real client knows less, so needs at least as many.

Run alone: ``.venv/bin/python benchmarks/capped.py`` prints the bound for each workload.
"""

from __future__ import annotations

import argparse
import bisect
import math
from dataclasses import dataclass
from statistics import NormalDist, fmean

from wait_stats import BOUND_FLOOR, BOUND_SHARE, bound
from workloads import SANDBOX, WORKLOADS, draw_jobs

#: Points of the grid over the time of a poll, per job size.
GRID = 600
#: Job sizes (medians) solved for: the jobs' medians are grouped on this many log-spaced points.
SIZES = 32
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Plan:
    """The polls of one job size: the first, and after a "not yet" at ``times[i]``, the next."""

    times: list[float]
    first: int
    after: list[int]

    def wait(self, duration: float, cap: float) -> tuple[int, bool]:
        """(requests, late) for a job that takes ``duration``."""
        i, requests = self.first, 1
        while True:
            t = self.times[i]
            if t >= duration:
                return requests, t - duration > bound(duration)
            if t >= duration - cap:
                return requests + 1, False  # the answer tells the end: one poll there
            i, requests = self.after[i], requests + 1


def solve(median: float, sigma: float, cap: float, lam: float) -> Plan:
    """The sequence of polls minimising expected requests + ``lam`` x P(late)."""
    lo, hi = max(0.0, median * math.exp(-5 * sigma) - cap), median * math.exp(5 * sigma)
    times = [lo + (hi - lo) * i / GRID for i in range(GRID + 1)]

    def cdf(x: float) -> float:
        return _NORMAL.cdf((math.log(x) - math.log(median)) / sigma) if x > 0 else 0.0

    done = [cdf(t) for t in times]  # P(D <= t)
    window = [cdf(t + cap) for t in times]  # P(D <= t + cap)
    # A poll at t is late for the jobs that ended more than their bound before it.
    late = [cdf(min(t - BOUND_FLOOR, t / (1 + BOUND_SHARE))) for t in times]
    value, after = [0.0] * (GRID + 1), list(range(1, GRID + 2))
    for i in range(GRID, -1, -1):
        past = window[i]  # "not yet" at times[i]: D > times[i] + cap
        if i == GRID or past >= 1 - 1e-12:
            continue  # no job left this long (to 5 sigma)
        best, pick = math.inf, GRID
        for j in range(i + 1, GRID + 1):
            reached = max(past, done[j])
            cont = 1 - max(past, window[j])
            cost = (1 - past) + (max(past, window[j]) - reached) + lam * max(0.0, late[j] - past)
            cost += cont * value[j]
            if cost < best:
                best, pick = cost, j
            if cont <= 0.0:
                break  # every job has answered by now: a later poll is only later
        value[i], after[i] = best / (1 - past), pick
    first = min(
        range(GRID + 1),
        key=lambda j: 1 + (window[j] - done[j]) + lam * late[j] + (1 - window[j]) * value[j],
    )
    return Plan(times, first, after)


def least_requests(
    medians: list[float], durations: list[float], cap: float, sigma: float, share: float = 0.05
) -> tuple[float, float]:
    """(mean requests, share late) of the best plans with at most ``share`` of the jobs late."""
    lo, hi = math.log(min(medians)), math.log(max(medians))
    sizes = [math.exp(lo + (hi - lo) * k / (SIZES - 1)) for k in range(SIZES)] if hi > lo else [medians[0]]
    logs = [math.log(s) for s in sizes]

    def outcome(lam: float) -> tuple[float, float]:
        plans = [solve(s, sigma, cap, lam) for s in sizes]
        results = []
        for m, d in zip(medians, durations, strict=True):
            k = min(bisect.bisect_left(logs, math.log(m)), len(sizes) - 1)
            if k > 0 and math.log(m) - logs[k - 1] < logs[k] - math.log(m):
                k -= 1
            results.append(plans[k].wait(d * sizes[k] / m, cap))  # the job, scaled to the size solved
        return fmean(r for r, _ in results), fmean(late for _, late in results)

    low, high = 1.0, 1e4  # lam: what a late job costs, in requests
    best = outcome(high)
    for _ in range(12):
        mid = math.sqrt(low * high)
        result = outcome(mid)
        if result[1] <= share:
            high, best = mid, result
        else:
            low = mid
    return best


def for_workload(name: str, jobs: int, seed: int, cap: float) -> tuple[float, float]:
    """The bound on the workload's jobs (as ``polling.py`` draws them)."""
    drawn = draw_jobs(seed, name, jobs)
    medians = [v * SANDBOX.seconds_per_video_second for v in drawn.videos]
    return least_requests(medians, drawn.durations, cap, SANDBOX.duration_spread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cap", type=float, default=60.0)
    args = parser.parse_args()
    print(f"`.venv/bin/python benchmarks/capped.py --jobs {args.jobs} --seed {args.seed} --cap {args.cap:g}`")
    print()
    print("| workload | fewest requests/job | share late |")
    print("|---|--:|--:|")
    for name in WORKLOADS:
        requests, late = for_workload(name, args.jobs, args.seed, args.cap)
        print(f"| {name} | {requests:.2f} | {100 * late:.1f} % |")


if __name__ == "__main__":
    main()
