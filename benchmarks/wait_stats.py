"""Summaries of a strategy's waits: requests, lag and its percentiles, the Pareto frontier."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine import Outcome
from simserver import RTT
from workloads import HOLD


@dataclass(frozen=True)
class Stats:
    requests: float
    lag: float
    p50: float
    p95: float
    p99: float
    rel_lag: float
    #: Share of jobs detected within max(0.5 s, 5 % of D).
    within: float
    #: p95 of lag / max(0.5 s, 5 % of D).
    p95_norm: float
    gave_up: float
    #: Jobs over ceil(D / W) + 1 requests, and the largest |lag - RTT| (the long-poll criterion).
    over_bound: int
    lag_off_rtt: float
    #: Jobs that ended during a handover between two holds, and their largest lag.
    handovers: int
    handover_lag: float
    max_requests: int


#: The lag a job may be detected with: at least this many seconds, or this share of its duration.
BOUND_FLOOR, BOUND_SHARE = 0.5, 0.05


def bound(duration: float) -> float:
    """The lag a job of ``duration`` may be detected with: max(0.5 s, 5 % of D)."""
    return max(BOUND_FLOOR, BOUND_SHARE * duration)


def percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (``numpy.percentile``'s default)."""
    pos = (len(ordered) - 1) * p
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(out: Outcome, durations: list[float]) -> Stats:
    n = len(out.lags)
    durations = durations[:n]
    ordered = sorted(out.lags)
    norm = sorted(lag / bound(d) for lag, d in zip(out.lags, durations, strict=True))
    over = sum(r > math.ceil(d / HOLD) + 1 for r, d in zip(out.requests, durations, strict=True))
    paired = list(zip(out.lags, out.handovers, strict=True))
    return Stats(
        requests=sum(out.requests) / n,
        lag=sum(out.lags) / n,
        p50=percentile(ordered, 0.5),
        p95=percentile(ordered, 0.95),
        p99=percentile(ordered, 0.99),
        rel_lag=sum(lag / d for lag, d in zip(out.lags, durations, strict=True)) / n,
        within=sum(x <= 1.0 for x in norm) / n,
        p95_norm=percentile(norm, 0.95),
        gave_up=out.gave_up / n,
        over_bound=over,
        lag_off_rtt=max((abs(lag - RTT) for lag, h in paired if not h), default=0.0),
        handovers=sum(out.handovers),
        handover_lag=max((lag for lag, h in paired if h), default=0.0),
        max_requests=max(out.requests),
    )


def dominates(a: Stats, b: Stats) -> bool:
    """Fewer or as many requests and no more lag, and strictly better in one."""
    return a.requests <= b.requests and a.lag <= b.lag and (a.requests < b.requests or a.lag < b.lag)


def frontier(cell: dict[str, Stats]) -> set[str]:
    return {n for n, s in cell.items() if not any(dominates(o, s) for m, o in cell.items() if m != n)}
