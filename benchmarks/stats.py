"""Summaries the benchmarks print: nearest-rank percentiles, medians that skip missing runs, and
"median (each run)" cells."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float, digits: int = 1) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1e3:.{digits}f}"


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def spread(values: Sequence[float], digits: int = 1, scale: float = 1e3) -> str:
    """The median, and every run's value when there were several."""
    text = "-" if math.isnan(median(values)) else f"{median(values) * scale:.{digits}f}"
    if len(values) > 1:
        text += " (" + ", ".join(f"{v * scale:.{digits}f}" for v in values) + ")"
    return text
