"""How far to believe a server's estimates of the time a job has left. Pure: no I/O, no clock.

A server's estimate is off by a factor of its own for each job (its *bias*), and each answer wobbles
around that (its *wobble*); both are log-normal. :func:`remaining` fits a job's answers under that
model — the countdown of several answers shows the job's bias, the scatter bounds how far the fit is
believed — and returns a plausible range of the time left; :func:`beyond` does so after an answer
that only said "at least" (a capped ``Retry-After``), from what the job's size says. :class:`Quality`
learns, from a client's finished jobs, how biased and how wobbly a server's estimates are (and its
cap); until then it assumes a wobbly server, so a steady one costs a request more for the first few
jobs, and a wobbly one is never trusted more than its answers allow.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass

#: Points of the grid over log(time left) on which the fit is computed.
_GRID = 61
_NORMAL = statistics.NormalDist()


@dataclass(frozen=True)
class Answer:
    """One pending answer's hint: at ``at``, ``hint`` seconds left, given to a resolution of
    ``step`` seconds (0.001 for an estimate in milliseconds, 1 for a ``Retry-After``)."""

    at: float
    hint: float
    step: float

    @property
    def value(self) -> float:
        """The hint's central value in log: a ``Retry-After`` of n is a time in (n - 1, n], and
        its logarithm's mean is that of a uniform draw there (1 / e for a ``Retry-After`` of 1)."""
        if self.step < 0.01:
            return max(self.hint, self.step / 2)
        return math.exp(_log_uniform(*self._second)[0])

    @property
    def rounding(self) -> float:
        """The log-scale spread that the rounding to ``step`` adds (that of a uniform draw)."""
        if self.step < 0.01:
            return self.step / math.sqrt(12.0) / self.value
        return _log_uniform(*self._second)[1]

    @property
    def _second(self) -> tuple[float, float]:
        """Where the rounded hint's true value lies: (n - step, n], or (0, step / 4] for a 0."""
        high = max(self.hint, self.step / 4)
        return max(high - self.step, 0.0), high


def _log_uniform(a: float, b: float) -> tuple[float, float]:
    """The mean and standard deviation of log(u), u uniform in (a, b]."""
    if b - a < 0.1 * b:  # narrow: log is near linear there (and the exact sums would cancel)
        mid = (a + b) / 2
        return math.log(mid), (b - a) / math.sqrt(12.0) / mid

    def first(u: float) -> float:
        return u * math.log(u) - u if u > 0 else 0.0

    def second(u: float) -> float:
        return u * (math.log(u) ** 2 - 2 * math.log(u) + 2) if u > 0 else 0.0

    mean = (first(b) - first(a)) / (b - a)
    return mean, math.sqrt(max((second(b) - second(a)) / (b - a) - mean * mean, 0.0))


@dataclass(frozen=True)
class Remaining:
    """The time left after the last answer, in seconds: a plausible range and its median."""

    low: float
    mid: float
    high: float


@dataclass(frozen=True)
class Model:
    """How a server's estimates err, in log: each job's by a bias (mean ``bias``, spread
    ``bias_spread``) plus a drift that fades with the share g of the job's time left
    (``drift_spread * g``: wrong early, right late), and each answer by a wobble of its own."""

    bias_spread: float
    drift_spread: float
    wobble: float
    bias: float = 0.0


#: The models a client chooses from; until its finished jobs say otherwise, it assumes the last,
#: a server as unreliable as the sandbox's default.
MODELS = [
    Model(b, d, w) for b in (0.05, 0.15, 0.3) for d in (0.0, 0.15, 0.3) for w in (0.01, 0.04, 0.12, 0.25)
]
PRIOR = Model(0.3, 0.3, 0.12)
#: How many nats of evidence the prior model starts ahead with.
PRIOR_WEIGHT = 4.0
#: Finished jobs before their durations inform the fit.
PACE_WARMUP = 10


class Quality:
    """What a client knows of a server's estimates: of :data:`MODELS`, the one that best explains the
    answers of its finished jobs (greatest marginal likelihood, the prior ahead at first), and the
    mean bias they showed. Safe to share between threads."""

    def __init__(self) -> None:
        self._evidence = [PRIOR_WEIGHT if m == PRIOR else 0.0 for m in MODELS]
        self._bias_sum, self._bias_count = 0.0, 0
        self.model = PRIOR
        #: log(duration / video seconds) of the finished jobs: count, mean, sum of squares.
        self._pace = (0, 0.0, 0.0)
        #: The longest hint the server gave, and its cap: the longest, if a wait saw it repeated
        #: for as long as it says (a minimum, not an estimate); ``None`` until then.
        self.longest = 0.0
        self.cap: float | None = None
        self._lock = threading.Lock()

    def saw(self, hint: float) -> None:
        """A pending answer said ``hint``: longer than the cap, it shows there is none."""
        if hint > self.longest:
            with self._lock:
                self.longest = max(self.longest, hint)
                if self.cap is not None and hint > self.cap:
                    self.cap = None

    def repeated(self, hint: float) -> None:
        """A wait saw ``hint`` again and again for as long as it says: the cap, if the longest."""
        with self._lock:
            if hint >= self.longest:
                self.cap = hint

    def duration(self, video_seconds: float) -> tuple[float, float] | None:
        """The log-normal (mean, sigma of the log) of how long a job of ``video_seconds`` takes,
        once :data:`PACE_WARMUP` jobs taught it; ``None`` until then."""
        n, mean, m2 = self._pace
        if n < PACE_WARMUP or video_seconds <= 0:
            return None
        return math.log(video_seconds) + mean, max(math.sqrt(m2 / (n - 1)), 0.01)

    def observe_duration(self, video_seconds: float, duration: float) -> None:
        """A job of ``video_seconds`` took ``duration`` seconds (its own timestamps say so)."""
        if video_seconds > 0 and duration > 0:
            with self._lock:
                n, mean, m2 = self._pace
                x = math.log(duration / video_seconds)
                delta = x - mean
                mean += delta / (n + 1)
                self._pace = (n + 1, mean, m2 + delta * (x - mean))

    def observe(self, answers: list[Answer], start: float, end_low: float, end_high: float) -> None:
        """A job that started at ``start`` ended between ``end_low`` and ``end_high``; these were its
        hints. Answers too close to the end to say how wrong they were (within 10 times that window)
        are left out, and so is a job whose estimate ran out well before it ended (a stall says
        nothing of the error)."""
        end = (end_low + end_high) / 2
        if end <= start or any(a.value < 0.1 * (end_low - a.at) for a in answers):
            return
        kept = [a for a in answers if end - a.at > 10 * (end_high - end_low)]
        if not kept:
            return
        errors, shares = _errors(kept, end - kept[-1].at, start)
        # The job's mean error, each answer weighed by how precise its rounding lets it be.
        weights = [1 / (self.model.wobble**2 + a.rounding**2) for a in kept]
        mean = sum(w * e for w, e in zip(weights, errors, strict=True)) / sum(weights)
        with self._lock:
            self._bias_sum += mean
            self._bias_count += 1
            bias = self._bias_sum / (self._bias_count + 1)  # shrunk towards 0 by one job
            for i, m in enumerate(MODELS):
                self._evidence[i] += _loglik(errors, shares, kept, dataclasses.replace(m, bias=bias))
            best = max(range(len(MODELS)), key=self._evidence.__getitem__)
            self.model = dataclasses.replace(MODELS[best], bias=bias)


def _errors(answers: list[Answer], left: float, start: float) -> tuple[list[float], list[float]]:
    """Each answer's log error and the share of the job's time left at it, if ``left`` seconds
    are left after the last answer."""
    last = answers[-1].at
    errors, shares = [], []
    for a in answers:
        at_left = left + last - a.at
        errors.append(math.log(a.value / at_left))
        shares.append(at_left / (at_left + max(0.0, a.at - start)))
    return errors, shares


def _loglik(errors: list[float], shares: list[float], answers: list[Answer], m: Model) -> float:
    """The log density of the answers' errors under ``m``: Gaussian, with covariance
    ``diag(wobble^2 + rounding^2) + bias_spread^2 * 1 1' + drift_spread^2 * g g'`` (Woodbury)."""
    tau2, drift2 = max(m.bias_spread**2, 1e-8), max(m.drift_spread**2, 1e-8)
    w2 = m.wobble**2
    # b = U' D^-1 e and M = P^-1 + U' D^-1 U, with U = [1, g] and P = diag(tau2, drift2).
    b0 = b1 = m00 = m01 = m11 = quad = logdet = 0.0
    for e, g, a in zip(errors, shares, answers, strict=True):
        d = w2 + a.rounding**2 + 1e-12
        r = e - m.bias
        quad += r * r / d
        b0 += r / d
        b1 += g * r / d
        m00 += 1 / d
        m01 += g / d
        m11 += g * g / d
        logdet += math.log(d)
    m00 += 1 / tau2
    m11 += 1 / drift2
    det = m00 * m11 - m01 * m01
    quad -= (m11 * b0 * b0 - 2 * m01 * b0 * b1 + m00 * b1 * b1) / det
    logdet += math.log(tau2 * drift2 * det)
    return -0.5 * (quad + logdet + len(errors) * math.log(2 * math.pi))


def remaining(
    answers: list[Answer],
    quality: Quality,
    confidence: float,
    start: float,
    duration: tuple[float, float] | None = None,
) -> Remaining:
    """The time left after the last of ``answers`` (of a job started at ``start``), from all of
    them, under the quality's model: the likelihood of the time left, the job's bias and drift
    integrated out, is computed on a grid; ``low`` and ``high`` are its quantiles at ``confidence``
    standard deviations either side. ``duration``, the log-normal (mean, sigma) of the job's whole
    duration from ``start``, adds what the job's size says."""
    m = quality.model
    last = answers[-1]
    spread = math.sqrt(m.bias_spread**2 + m.drift_spread**2 + m.wobble**2) + last.rounding
    # Each answer alone points at a time left; the grid spans them all, and some.
    centres = [math.log(last.value) - m.bias]
    centres += [math.log(v) for a in answers if (v := a.value * math.exp(-m.bias) - (last.at - a.at)) > 0]
    lo, hi = min(centres) - 4 * spread, max(centres) + 4 * spread
    left = _range(_posterior(answers, m, start, duration), lo, hi, confidence)
    if last.step < 0.01:
        return left
    # A hint in whole seconds is the server's estimate rounded up: the time left is no longer
    # than the hint, give or take the estimate's own error.
    share = left.mid / (left.mid + max(0.0, last.at - start))
    latest = last.hint * math.exp(-m.bias + confidence * _spread(m, share))
    return dataclasses.replace(left, high=max(left.mid, min(left.high, latest)))


def _spread(m: Model, share: float) -> float:
    """The sigma of an answer's log error under ``m`` when ``share`` of the job's time is left."""
    return math.sqrt(m.bias_spread**2 + (m.drift_spread * share) ** 2 + m.wobble**2) or 1e-6


def beyond(
    floor: Answer, quality: Quality, confidence: float, start: float, duration: tuple[float, float]
) -> Remaining:
    """The time left after an answer that only said "at least ``floor.hint``" (a capped
    ``Retry-After``): what the job's size says of its ``duration`` (log-normal, from ``start``),
    cut where the server's estimate, with the quality's errors, would have said less. The low end
    is no later than the earliest end that the floor or the size alone allows: answer after
    answer, a job whose size misled is still caught within the lag allowed."""
    m, (mean, sigma) = quality.model, duration
    age = floor.at - start
    least = max(floor.hint - floor.step, floor.step / 2)  # the server's estimate was above this

    def loglik(x: float) -> float:
        share = math.exp(x) / (math.exp(x) + age)
        said_more = _NORMAL.cdf((x + m.bias - math.log(least)) / _spread(m, share))
        size = -0.5 * ((math.log(age + math.exp(x)) - mean) / sigma) ** 2 + math.log(share)
        return size + math.log(max(said_more, 1e-300))

    lo = math.log(least) - 4 * _spread(m, 1.0)
    hi = max(math.log(least) + 4 * _spread(m, 1.0), math.log(max(math.exp(mean + 5 * sigma) - age, 1e-3)))
    left = _range(loglik, lo, hi, confidence)
    earliest = least * math.exp(-m.bias - confidence * _spread(m, least / (least + age)))
    earliest = max(earliest, math.exp(mean - confidence * sigma) - age)  # by its size alone
    return dataclasses.replace(left, low=min(left.low, earliest))


def _range(loglik: Callable[[float], float], lo: float, hi: float, confidence: float) -> Remaining:
    """The quantiles at ``confidence`` standard deviations either side, and the median, of a
    likelihood over log(time left) on a grid: over the whole span, then over where the mass is."""
    xs, cdf = _cumulative(loglik, lo, hi)
    step = (hi - lo) / (_GRID - 1)
    lo = _quantile(xs, cdf, 1e-5 * cdf[-1]) - step
    hi = _quantile(xs, cdf, (1 - 1e-5) * cdf[-1]) + step
    xs, cdf = _cumulative(loglik, lo, hi)
    p = _NORMAL.cdf(-confidence)
    return Remaining(
        math.exp(_quantile(xs, cdf, p * cdf[-1])),
        math.exp(_quantile(xs, cdf, 0.5 * cdf[-1])),
        math.exp(_quantile(xs, cdf, (1 - p) * cdf[-1])),
    )


def _posterior(
    answers: list[Answer], m: Model, start: float, duration: tuple[float, float] | None
) -> Callable[[float], float]:
    """The log likelihood of log(time left) after the last of ``answers``."""
    age = answers[-1].at - start

    def loglik(x: float) -> float:
        v = _loglik(*_errors(answers, math.exp(x), start), answers, m)
        if duration is not None:
            mean, sigma = duration
            v -= 0.5 * ((math.log(age + math.exp(x)) - mean) / sigma) ** 2
        return v

    return loglik


def _cumulative(loglik: Callable[[float], float], lo: float, hi: float) -> tuple[list[float], list[float]]:
    """The grid of log(time left) from ``lo`` to ``hi`` and the cumulative (unnormalised) likelihood."""
    xs = [lo + (hi - lo) * i / (_GRID - 1) for i in range(_GRID)]
    values = [loglik(x) for x in xs]
    top = max(values)
    mass = [math.exp(v - top) for v in values]
    cdf, acc = [0.0], 0.0
    for a, b in itertools.pairwise(mass):
        acc += (a + b) / 2  # the trapezoid rule: cdf[i] is the mass up to xs[i]
        cdf.append(acc)
    return xs, cdf


def _quantile(xs: list[float], cdf: list[float], target: float) -> float:
    """The x at which the cumulative mass reaches ``target`` (linear between grid points)."""
    for i, c in enumerate(cdf):
        if c >= target:
            if i == 0:
                return xs[0]
            before = cdf[i - 1]
            return xs[i - 1] + (xs[i] - xs[i - 1]) * (target - before) / max(c - before, 1e-300)
    return xs[-1]
