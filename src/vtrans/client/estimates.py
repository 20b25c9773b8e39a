"""How far to believe a server's estimates of the time a job has left. Pure: no I/O, no clock.

A server's estimate is off by a factor of its own for each job (its *bias*), and each answer wobbles
around that (its *wobble*); both are log-normal. :func:`remaining` fits a job's answers under that
model — the countdown of several answers shows the job's bias, the scatter bounds how far the fit is
believed — and returns a plausible range of the time left. :class:`Quality` learns, from a client's
finished jobs, how biased and how wobbly a server's estimates are; until then it assumes a wobbly
server, so a steady one costs a request more for the first few jobs, and a wobbly one is never
trusted more than its answers allow.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import threading
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
        """The hint's most likely true value: a ``Retry-After`` of n is a time in (n - 1, n]."""
        if self.step >= 0.01:
            return max(self.hint - self.step / 2, self.step / 4)
        return max(self.hint, self.step / 2)

    @property
    def rounding(self) -> float:
        """The log-scale spread that the rounding to ``step`` adds (a uniform error's sigma)."""
        return self.step / math.sqrt(12.0) / self.value


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
        self._lock = threading.Lock()

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
    # Twice: over the whole span, then over where the mass is (a steady server's is narrow).
    xs, cdf = _posterior(answers, m, start, duration, lo, hi)
    step = (hi - lo) / (_GRID - 1)
    lo = _quantile(xs, cdf, 1e-5 * cdf[-1]) - step
    hi = _quantile(xs, cdf, (1 - 1e-5) * cdf[-1]) + step
    xs, cdf = _posterior(answers, m, start, duration, lo, hi)
    p = _NORMAL.cdf(-confidence)
    return Remaining(
        math.exp(_quantile(xs, cdf, p * cdf[-1])),
        math.exp(_quantile(xs, cdf, 0.5 * cdf[-1])),
        math.exp(_quantile(xs, cdf, (1 - p) * cdf[-1])),
    )


def _posterior(
    answers: list[Answer], m: Model, start: float, duration: tuple[float, float] | None, lo: float, hi: float
) -> tuple[list[float], list[float]]:
    """The grid of log(time left) from ``lo`` to ``hi`` and the cumulative (unnormalised) likelihood."""
    xs = [lo + (hi - lo) * i / (_GRID - 1) for i in range(_GRID)]
    loglik = [_loglik(*_errors(answers, math.exp(x), start), answers, m) for x in xs]
    if duration is not None:
        mean, sigma = duration
        age = answers[-1].at - start
        loglik = [
            v - 0.5 * ((math.log(age + math.exp(x)) - mean) / sigma) ** 2
            for v, x in zip(loglik, xs, strict=True)
        ]
    top = max(loglik)
    mass = [math.exp(v - top) for v in loglik]
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
