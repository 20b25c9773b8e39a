"""The translation simulation: a job's whole timeline is drawn once, its state at *t* is computed.

Pure functions of the configuration, a random generator and the time: no I/O, no background loop.
Any process that can read a stored :class:`Timeline` can answer for it, and a restart changes nothing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal, NamedTuple

import msgspec

from vtrans.protocol import JobError, Result, Simulate

Outcome = Literal["completed", "error"]

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
    #: Spread of estimates: the sigma of the log-normal error of the remaining time reported.
    estimate_spread: float = 0.15

    def __post_init__(self) -> None:
        for name in ("base_seconds", "seconds_per_video_second", "duration_spread", "estimate_spread"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")


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


class State(NamedTuple):
    """A job's observable state at one instant (a tuple: it is built on every request)."""

    result: Result
    progress: float
    estimated_remaining: float | None
    finished_at: float | None
    error: JobError | None


def draw_timeline(
    config: SimulationConfig,
    rng: random.Random,
    now: float,
    video_seconds: float,
    simulate: Simulate | None = None,
) -> Timeline:
    """Draw a job's timeline; ``simulate`` pins any of duration, outcome and error code."""
    nominal = config.base_seconds + video_seconds * config.seconds_per_video_second
    duration = nominal * math.exp(rng.gauss(0.0, config.duration_spread))
    failed = rng.random() < config.error_rate
    code = rng.choices(list(FAILURES), weights=[w for _, w in FAILURES.values()])[0]
    fail_fraction = rng.uniform(0.1, 0.9)
    exponent = rng.uniform(0.8, 1.25)
    estimate_factor = math.exp(rng.gauss(0.0, config.estimate_spread))

    if simulate is not None:
        if simulate.duration_seconds is not None:
            duration = simulate.duration_seconds
            fail_fraction = 1.0  # an exact duration means the outcome arrives exactly then
        if simulate.error_code is not None:
            failed, code = True, simulate.error_code
        if simulate.outcome is not None:
            failed = simulate.outcome == "error"

    error = _error(code) if failed else None
    ends_at = now + duration * (fail_fraction if failed else 1.0)
    return Timeline(
        created_at=now,
        planned_end=now + duration,
        ends_at=ends_at,
        outcome="error" if failed else "completed",
        error=error,
        progress_exponent=exponent,
        estimate_factor=estimate_factor,
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
    return State(
        result="pending",
        progress=min(0.99, _progress(timeline, t)),
        estimated_remaining=max(0.0, timeline.planned_end - t) * timeline.estimate_factor,
        finished_at=None,
        error=None,
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


def _progress(timeline: Timeline, t: float) -> float:
    span = timeline.planned_end - timeline.created_at
    if span <= 0:
        return 1.0
    fraction = min(1.0, max(0.0, (t - timeline.created_at) / span))
    return round(float(fraction**timeline.progress_exponent), 4)


def _error(code: str) -> JobError:
    message = FAILURES.get(code, (f"The translation failed ({code}).", 0.0))[0]
    return JobError(code=code, message=message)
