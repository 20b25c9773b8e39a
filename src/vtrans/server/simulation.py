"""The translation simulation: a job's whole timeline is drawn once, its state at *t* is computed.

Pure functions of the configuration, a random generator and the time: no I/O, no background loop.
Any process that can read a stored :class:`Timeline` can answer for it, and a restart changes nothing.

The estimate of the time left behaves like a real service's: off by a factor of its own for each
job, wobbling from one answer to the next, drifting (wrong early, right late), and blind to the
stalls that hold some jobs near their end. The wobble is hashed from the job's seed and the period
of the answer (the service re-estimates every 1 % of the job), so every process gives the same
answer at the same instant.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass
from typing import Literal, NamedTuple

import msgspec

from vtrans.protocol import JobError, Result, Simulate

Outcome = Literal["completed", "error"]
#: What a pending answer tells of the time left: the estimate in the body and ``Retry-After``
#: (``estimate``), only ``Retry-After`` (``retry-after``), or nothing (``none``).
Hints = Literal["estimate", "retry-after", "none"]
HINTS: tuple[Hints, ...] = ("estimate", "retry-after", "none")
#: The service re-estimates a job's time left every NOISE_SHARE of its duration, at most every
#: NOISE_PERIOD seconds: the wobble is drawn anew for each such period.
NOISE_SHARE, NOISE_PERIOD = 0.01, 0.1

#: Realistic failures of a video-translation backend, with how often each occurs.
FAILURES: dict[str, tuple[str, float]] = {
    "no_speech_detected": ("The source video has no detectable speech to translate.", 0.35),
    "source_unreachable": ("The source video could not be downloaded.", 0.25),
    "unsupported_media": ("The source video's codec or container is not supported.", 0.2),
    "transcoding_failed": ("Rendering the translated video failed.", 0.15),
    "internal_error": ("The translation backend failed unexpectedly.", 0.05),
}
CANCELLED = JobError(code="cancelled", message="The job was cancelled before it finished.")


@dataclass(frozen=True)
class SimulationConfig:
    """How long jobs take, how often they fail, and how good the service's estimates are."""

    #: Fixed overhead of every job (upload, queueing), in seconds.
    base_seconds: float = 3.0
    #: Processing time per second of video.
    seconds_per_video_second: float = 0.25
    #: Spread of durations: the sigma of a log-normal factor around the nominal duration.
    duration_spread: float = 0.25
    #: Probability that a job ends in ``error``.
    error_rate: float = 0.1
    #: Spread of estimates: the sigma of a job's log-normal error factor, the same for all its answers.
    estimate_spread: float = 0.15
    #: Wobble: the sigma of a log-normal error drawn anew for every answer, or rather every time the
    #: service re-estimates (each 1 % of the job's duration, at least 0.1 s) (0: off).
    estimate_noise: float = 0.12
    #: Drift: the sigma of a job's log error at its start, which fades linearly to 0 at its planned
    #: end: a job with a negative draw is estimated optimistically early and right late, one with a
    #: positive draw pessimistically (0: off).
    estimate_drift: float = 0.25
    #: Share of jobs that stall near their end (0: none). Progress stops, the estimate runs out,
    #: and the job ends later than it said.
    stall_rate: float = 0.1
    #: Longest stall, as a share of the job's duration: stalls last a uniform share up to this.
    stall_max: float = 0.5
    #: What pending answers carry: the estimate and ``Retry-After``, only ``Retry-After``, or none.
    hints: Hints = "estimate"

    def __post_init__(self) -> None:
        for name in (
            "base_seconds",
            "seconds_per_video_second",
            "duration_spread",
            "estimate_spread",
            "estimate_noise",
            "estimate_drift",
            "stall_max",
        ):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if not 0.0 <= self.stall_rate <= 1.0:
            raise ValueError("stall_rate must be between 0 and 1")
        if self.stall_max >= 1.0:
            raise ValueError("stall_max must be below 1 (a share of the job's duration)")
        if self.hints not in HINTS:
            raise ValueError(f"hints must be one of {', '.join(HINTS)}, not {self.hints!r}")


class Timeline(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that will happen to a job, fixed at creation. Times are Unix seconds.

    Stores keep it whole (msgspec-encoded): a field added later needs a default, so that
    timelines stored before it still decode.
    """

    created_at: float
    #: When the job would complete if nothing went wrong.
    planned_end: float
    #: When the job reaches its terminal result (before ``planned_end`` for failures).
    ends_at: float
    outcome: Outcome
    error: JobError | None
    #: Shape of the progress curve: progress = fraction_of_time ** exponent.
    progress_exponent: float
    #: Multiplicative error of the service's estimate of the remaining time.
    estimate_factor: float
    #: Sigma of the log-normal wobble of each answer's estimate, and the seed it is hashed from.
    estimate_noise: float = 0.0
    noise_seed: int = 0
    #: Log error of the estimate at the start, fading linearly to 0 at the end the estimate plans.
    estimate_drift: float = 0.0
    #: A stall: progress stops for this many seconds (included in ``planned_end``), from when this
    #: share of the work is done. The estimate does not foresee it.
    stall_seconds: float = 0.0
    stall_from: float = 1.0
    #: What pending answers carry (see :data:`Hints`).
    hints: Hints = "estimate"


class State(NamedTuple):
    """A job's observable state at one instant (a tuple: it is built on every request)."""

    result: Result
    progress: float
    #: The estimate of the time left that the body reports (``None``: none in the body).
    estimated_remaining: float | None
    finished_at: float | None
    error: JobError | None
    #: The time left that ``Retry-After`` reports, in seconds (``None``: no header).
    retry_after: float | None = None


def draw_timeline(
    config: SimulationConfig,
    rng: random.Random,
    now: float,
    video_seconds: float,
    simulate: Simulate | None = None,
    *,
    duration: float | None = None,
) -> Timeline:
    """Draw a job's timeline; ``simulate`` pins any of duration, outcome and error code.

    A duration pinned by ``simulate`` pins an exact timeline, for tests: the outcome arrives
    exactly then — completed, unless the outcome or an error code is pinned too (the error rate
    applies to jobs whose timeline is not pinned) — and the estimate is the time left times the
    job's ``estimate_factor``, with no wobble, drift or stall. ``duration`` is a duration drawn
    elsewhere (a benchmark's workload): the job takes exactly that long, and the rest is drawn as
    usual.
    """
    nominal = config.base_seconds + video_seconds * config.seconds_per_video_second
    drawn = nominal * math.exp(rng.gauss(0.0, config.duration_spread))
    duration = drawn if duration is None else duration
    failed = rng.random() < config.error_rate
    code = rng.choices(list(FAILURES), weights=[w for _, w in FAILURES.values()])[0]
    fail_fraction = rng.uniform(0.1, 0.9)
    exponent = rng.uniform(0.8, 1.25)
    estimate_factor = math.exp(rng.gauss(0.0, config.estimate_spread))
    # Drawn whatever the knobs, so that turning one on or off leaves the other draws alone.
    noise_seed = rng.getrandbits(63)
    drift = rng.gauss(0.0, 1.0) * config.estimate_drift
    stalls = rng.random() < config.stall_rate
    stall_share = rng.uniform(0.0, config.stall_max)
    stall_from = rng.uniform(0.85, 0.98)
    noise = config.estimate_noise

    planned = duration
    if simulate is not None:
        if simulate.duration_seconds is not None:
            # An exact timeline: the outcome arrives exactly then, and it is the one asked for
            # (completed unless an outcome or an error code says otherwise). A failure comes
            # part of the way through the work, as failures do: the plan was longer.
            duration = simulate.duration_seconds
            failed = simulate.outcome == "error" or simulate.error_code is not None
            planned = duration / fail_fraction if failed else duration
            fail_fraction = 1.0
            noise, drift, stalls = 0.0, 0.0, False
        if simulate.error_code is not None:
            failed, code = True, simulate.error_code
        if simulate.outcome is not None:
            failed = simulate.outcome == "error"

    error = _error(code) if failed else None
    ends_at = now + duration * (fail_fraction if failed else 1.0)
    return Timeline(
        created_at=now,
        planned_end=now + planned,
        ends_at=ends_at,
        outcome="error" if failed else "completed",
        error=error,
        progress_exponent=exponent,
        estimate_factor=estimate_factor,
        estimate_noise=noise,
        noise_seed=noise_seed if noise else 0,
        estimate_drift=drift,
        stall_seconds=duration * stall_share if stalls else 0.0,
        stall_from=stall_from if stalls else 1.0,
        hints=config.hints,
    )


def draw_fixed_delay(
    rng: random.Random, now: float, delay_min: float, delay_max: float, error_rate: float
) -> Timeline:
    """The timeline of the spec's ``GET /status``: pending for a delay in [min, max], then done."""
    delay = rng.uniform(delay_min, delay_max)
    failed = rng.random() < error_rate
    code = rng.choices(list(FAILURES), weights=[w for _, w in FAILURES.values()])[0]
    return Timeline(
        created_at=now,
        planned_end=now + delay,
        ends_at=now + delay,
        outcome="error" if failed else "completed",
        error=_error(code) if failed else None,
        progress_exponent=1.0,
        estimate_factor=1.0,
    )


def state_at(timeline: Timeline, t: float) -> State:
    """The job's state at time ``t``: a pure function of its timeline."""
    if t >= timeline.ends_at:
        return State(
            result=timeline.outcome,
            progress=1.0
            if timeline.outcome == "completed"
            else min(0.99, _progress(timeline, timeline.ends_at)),
            estimated_remaining=None,
            finished_at=timeline.ends_at,
            error=timeline.error,
        )
    estimate = None if timeline.hints == "none" else _estimate(timeline, t)
    return State(
        result="pending",
        progress=min(0.99, _progress(timeline, t)),
        estimated_remaining=estimate if timeline.hints == "estimate" else None,
        finished_at=None,
        error=None,
        retry_after=estimate,
    )


def shifted(timeline: Timeline, seconds: float) -> Timeline:
    """The same timeline, ``seconds`` later: every instant moves, every answer stays the same."""
    return msgspec.structs.replace(
        timeline,
        created_at=timeline.created_at + seconds,
        planned_end=timeline.planned_end + seconds,
        ends_at=timeline.ends_at + seconds,
    )


class Window(NamedTuple):
    """The stored timelines whose result is one value at one instant, as bounds on the columns a
    store indexes (``ends_at``, ``outcome``): what a store filters on without knowing the rules."""

    #: ``ends_at > ends_after``.
    ends_after: float | None = None
    #: ``ends_at <= ends_by``.
    ends_by: float | None = None
    outcome: Outcome | None = None

    def holds(self, timeline: Timeline) -> bool:
        """Whether ``timeline`` is in the window (what a store without SQL checks)."""
        return (
            (self.ends_after is None or timeline.ends_at > self.ends_after)
            and (self.ends_by is None or timeline.ends_at <= self.ends_by)
            and (self.outcome is None or timeline.outcome == self.outcome)
        )


def window(result: Result, t: float) -> Window:
    """The timelines whose :func:`state_at` ``t`` has ``result``."""
    if result == "pending":
        return Window(ends_after=t)
    return Window(ends_by=t, outcome=result)


def cancel(timeline: Timeline, t: float) -> Timeline:
    """The timeline of a job cancelled at ``t``; a job already finished is left unchanged."""
    if t >= timeline.ends_at:
        return timeline
    return msgspec.structs.replace(timeline, ends_at=t, outcome="error", error=CANCELLED)


def progress_reached(timeline: Timeline, progress: float) -> float | None:
    """The first instant at which the job reports at least ``progress`` while pending, or
    ``None`` if it never does (progress above what a pending job reports, or after its end)."""
    if progress > 0.99:
        return None
    work = timeline.planned_end - timeline.created_at - timeline.stall_seconds
    if work <= 0:
        return timeline.created_at
    done = work * max(0.0, progress) ** (1.0 / timeline.progress_exponent)
    elapsed = done if done <= timeline.stall_from * work else done + timeline.stall_seconds
    at = timeline.created_at + elapsed
    return at if at < timeline.ends_at else None


def _work(timeline: Timeline, t: float) -> tuple[float, float]:
    """(seconds of work done at ``t``, seconds of work in all): the clock stops during the stall."""
    work = timeline.planned_end - timeline.created_at - timeline.stall_seconds
    elapsed = t - timeline.created_at
    stall_start = timeline.stall_from * work
    return elapsed - min(max(0.0, elapsed - stall_start), timeline.stall_seconds), work


def _estimate(timeline: Timeline, t: float) -> float:
    """The service's estimate of the time left at ``t``: it counts down to the end its plan
    (which knows of no stall) gives, times the job's factor, its drift and the answer's wobble."""
    work = timeline.planned_end - timeline.created_at - timeline.stall_seconds
    left = max(0.0, timeline.created_at + work - t)
    log_error = 0.0
    if timeline.estimate_drift and work > 0:
        log_error += timeline.estimate_drift * left / work
    if timeline.estimate_noise:
        # Re-estimated every period: every answer in the same period wobbles alike.
        period = max(NOISE_PERIOD, NOISE_SHARE * work)
        draw = _gauss(timeline.noise_seed, float(math.floor((t - timeline.created_at) / period)))
        log_error += timeline.estimate_noise * draw
    return left * timeline.estimate_factor * math.exp(log_error)


def _progress(timeline: Timeline, t: float) -> float:
    done, work = _work(timeline, t)
    if work <= 0:
        return 1.0
    fraction = min(1.0, max(0.0, done / work))
    return round(float(fraction**timeline.progress_exponent), 4)


_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64's finaliser: 64 well-mixed bits from 64."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _gauss(seed: int, t: float) -> float:
    """A standard normal draw that is a pure function of ``seed`` and the instant ``t``."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", t))
    a = _mix(seed ^ bits)
    b = _mix(a)
    u1 = ((a >> 11) + 1) * 2.0**-53  # in (0, 1]: log(u1) is finite
    u2 = (b >> 11) * 2.0**-53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _error(code: str) -> JobError:
    message = FAILURES.get(code, (f"The translation failed ({code}).", 0.0))[0]
    return JobError(code=code, message=message)
