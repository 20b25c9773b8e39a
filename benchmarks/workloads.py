"""What the polling benchmark waits for: workloads (how long jobs take) and kinds of server (what a
pending answer tells, and whether ``Prefer: wait`` is honoured).

A job is its duration D, drawn from the workload, and the length of the video it translates, drawn
from the service's model (``seconds_per_video_second`` per second of video, times the log-normal
``duration_spread``, at most the API's 6 hours), so that a client that learns seconds per
video-second learns what the service does. The service's timeline of the job — its estimates, their
wobble, drift and stalls — is drawn by the real :func:`vtrans.server.simulation.draw_timeline`, with
the duration given. Jobs complete (the error rate is 0): the benchmark measures waiting.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from vtrans.protocol import MAX_VIDEO_SECONDS
from vtrans.server.simulation import SimulationConfig, Timeline, draw_timeline

#: The sandbox's defaults: the realistic estimate model (bias, wobble, drift, stalls).
SANDBOX = dataclasses.replace(SimulationConfig(), error_rate=0.0)
#: The sandbox's estimate model before this one: one error factor per job, nothing else.
STEADY = dataclasses.replace(SANDBOX, estimate_noise=0.0, estimate_drift=0.0, stall_rate=0.0)
#: The longest hold of the long-poll server, in seconds.
HOLD = 30.0

Draw = Callable[[random.Random], float]


def _short(rng: random.Random) -> float:
    return rng.uniform(1.0, 10.0)


def _lognormal(rng: random.Random) -> float:
    return 60.0 * math.exp(rng.gauss(0.0, 0.5))


def _heygen(rng: random.Random) -> float:
    return rng.uniform(300.0, 1800.0)


def _pareto(rng: random.Random) -> float:
    return min(7200.0, 5.0 * rng.paretovariate(1.5))


def _mix(rng: random.Random) -> float:
    return rng.choice((_short, _lognormal, _heygen, _pareto))(rng)


WORKLOADS: dict[str, tuple[Draw, str]] = {
    "short": (_short, "short: D ~ U(1 s, 10 s)"),
    "lognormal": (_lognormal, "log-normal: D = 60 s x e^N(0, 0.5)"),
    "heygen": (_heygen, "HeyGen's stated 5-30 min: D ~ U(300 s, 1800 s)"),
    "pareto": (_pareto, "heavy tail: D = 5 s x Pareto(alpha 1.5), capped at 2 h"),
    "mix": (_mix, "mix: each job from one of the four above, equally likely"),
}
#: What a caller who knows its jobs would pass as ``wait(expected=...)``: the workload's range.
EXPECTED: dict[str, tuple[float, float]] = {
    "short": (1.0, 10.0),
    "lognormal": (15.0, 240.0),
    "heygen": (300.0, 1800.0),
    "pareto": (5.0, 7200.0),
    "mix": (1.0, 7200.0),
}


def band(lo: float, hi: float) -> Draw:
    def draw(rng: random.Random) -> float:
        return rng.uniform(lo, hi)

    return draw


#: The map of the no-hint trade-off: durations uniform in narrow and wide bands, from a second to
#: two hours (20-120 s among them).
BANDS: list[tuple[float, float]] = [
    (lo, lo * ratio) for lo in (1.0, 5.0, 20.0, 60.0, 300.0, 1200.0) for ratio in (1.5, 3.0, 6.0)
]


@dataclass(frozen=True)
class Kind:
    """A kind of server: the estimate model its jobs are drawn with, and its long-poll hold."""

    key: str
    title: str
    config: SimulationConfig
    #: Honours ``Prefer: wait`` up to this many seconds; 0 ignores it.
    max_hold: float = 0.0
    #: ``Retry-After`` is capped at this many seconds (the service's default: 60).
    retry_after_max: float = 60.0

    @property
    def hints(self) -> bool:
        return self.config.hints != "none"


KINDS: dict[str, Kind] = {
    k.key: k
    for k in [
        Kind("none", "no hints (spec-literal)", dataclasses.replace(STEADY, hints="none")),
        Kind("bias", "estimates off by one factor per job (sigma 0.15; the sandbox before)", STEADY),
        Kind(
            "wobble",
            f"+ a wobble re-drawn on every answer (sigma {SANDBOX.estimate_noise:g})",
            dataclasses.replace(STEADY, estimate_noise=SANDBOX.estimate_noise),
        ),
        Kind(
            "drift",
            f"+ drift, wrong early and right late (sigma {SANDBOX.estimate_drift:g})",
            dataclasses.replace(STEADY, estimate_drift=SANDBOX.estimate_drift),
        ),
        Kind(
            "stall",
            f"+ stalls past the estimate ({SANDBOX.stall_rate:.0%} of jobs, up to "
            f"{SANDBOX.stall_max:.0%} of D)",
            dataclasses.replace(STEADY, stall_rate=SANDBOX.stall_rate, stall_max=SANDBOX.stall_max),
        ),
        Kind("sandbox", "the sandbox's defaults: bias, wobble, drift and stalls", SANDBOX),
        Kind(
            "retry-after",
            "the sandbox's defaults, only Retry-After (whole seconds, at most 60)",
            dataclasses.replace(SANDBOX, hints="retry-after"),
        ),
        Kind(
            "retry-after-uncapped",
            "the same, Retry-After not capped",
            dataclasses.replace(SANDBOX, hints="retry-after"),
            retry_after_max=math.inf,
        ),
        Kind(
            "long-poll",
            f"long-poll, hold W = {HOLD:g} s (no hints)",
            dataclasses.replace(STEADY, hints="none"),
            HOLD,
        ),
    ]
}
#: The estimate models, each at its default (and one server that does not cap its Retry-After).
ESTIMATE_KINDS = ["bias", "wobble", "drift", "stall", "sandbox", "retry-after", "retry-after-uncapped"]


@dataclass(frozen=True)
class Jobs:
    """A workload's jobs: the video length the client submits, and the true duration."""

    videos: list[float]
    durations: list[float]


def draw_jobs(seed: int, name: str, n: int, draw: Draw | None = None) -> Jobs:
    draw = draw or WORKLOADS[name][0]
    rng = random.Random(f"{seed}/{name}/jobs")
    videos, durations = [], []
    for _ in range(n):
        duration = draw(rng)
        rate = SANDBOX.seconds_per_video_second * math.exp(rng.gauss(0.0, SANDBOX.duration_spread))
        videos.append(min(MAX_VIDEO_SECONDS, duration / rate))
        durations.append(duration)
    return Jobs(videos, durations)


def draw_timelines(seed: int, name: str, jobs: Jobs, config: SimulationConfig) -> list[Timeline]:
    """The service's timeline of each job (created at 0), drawn with ``config``: the same draws for
    every config, so that the kinds of server differ only in what they turn on."""
    rng = random.Random(f"{seed}/{name}/timelines")
    return [
        draw_timeline(config, rng, 0.0, video, duration=d)
        for video, d in zip(jobs.videos, jobs.durations, strict=True)
    ]
