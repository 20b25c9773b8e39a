"""The pure simulation and the store, on a fake clock: no server, no sleeps.

A job's timeline is drawn once (:func:`draw_timeline`) and its state at any instant is computed
(:func:`state_at`), so "time" here is just the number passed in.
"""

from __future__ import annotations

import math
import random

import pytest

from vtrans.protocol import JobError, Simulate
from vtrans.server.simulation import (
    CANCELLED,
    FAILURES,
    SimulationConfig,
    Timeline,
    cancel,
    draw_fixed_delay,
    draw_timeline,
    state_at,
)

T0 = 1_700_000_000.0  # an arbitrary "now"
EXACT = SimulationConfig(duration_spread=0.0, estimate_spread=0.0, error_rate=0.0)


def grid(timeline: Timeline, steps: int = 200, past: float = 1.5) -> list[float]:
    """Instants from creation to well past the end."""
    span = (timeline.ends_at - timeline.created_at) * past
    return [timeline.created_at + span * i / steps for i in range(steps + 1)]


def draw(
    seed: int, video_seconds: float = 60.0, config: SimulationConfig | None = None, **sim: object
) -> Timeline:
    simulate = Simulate(**sim) if sim else None  # type: ignore[arg-type]
    return draw_timeline(config or SimulationConfig(), random.Random(seed), T0, video_seconds, simulate)


# --- durations and outcomes -------------------------------------------------------------------


def test_without_spread_the_duration_is_base_plus_rate_times_length() -> None:
    for video in (1.0, 60.0, 3600.0):
        timeline = draw(1, video, EXACT)
        assert timeline.created_at == T0
        assert timeline.planned_end - T0 == pytest.approx(3.0 + 0.25 * video)
        assert timeline.ends_at == timeline.planned_end
        assert timeline.outcome == "completed"
        assert timeline.error is None


def test_the_duration_grows_with_the_video_length() -> None:
    config = SimulationConfig(error_rate=0.0)
    for seed in range(20):
        durations = [draw(seed, video, config).planned_end - T0 for video in (10, 60, 600, 3600)]
        assert durations == sorted(durations)
        assert len(set(durations)) == 4


def test_durations_spread_around_the_nominal() -> None:
    config = SimulationConfig(error_rate=0.0, duration_spread=0.25)
    rng = random.Random(3)
    nominal = 3.0 + 0.25 * 120
    ratios = [(draw_timeline(config, rng, T0, 120).planned_end - T0) / nominal for _ in range(2000)]
    geometric_mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    assert geometric_mean == pytest.approx(1.0, abs=0.03)
    assert min(ratios) < 0.8 < 1.25 < max(ratios)


def test_a_seeded_generator_reproduces_the_timeline() -> None:
    config = SimulationConfig(error_rate=0.5)
    first = [draw_timeline(config, random.Random(f"42:{n}"), T0, 30) for n in range(50)]
    again = [draw_timeline(config, random.Random(f"42:{n}"), T0, 30) for n in range(50)]
    other = [draw_timeline(config, random.Random(f"43:{n}"), T0, 30) for n in range(50)]
    assert first == again
    assert first != other
    assert {t.outcome for t in first} == {"completed", "error"}


@pytest.mark.parametrize("seed", range(5))
def test_error_rate_zero_never_fails_and_one_always_does(seed: int) -> None:
    rng = random.Random(seed)
    never = [draw_timeline(SimulationConfig(error_rate=0.0), rng, T0, 60) for _ in range(200)]
    always = [draw_timeline(SimulationConfig(error_rate=1.0), rng, T0, 60) for _ in range(200)]
    assert all(t.outcome == "completed" and t.error is None for t in never)
    for t in always:
        assert t.outcome == "error"
        assert t.error is not None
        assert t.error.code in FAILURES
        assert t.error.message == FAILURES[t.error.code][0]
        # A failure comes part way through the planned duration, not at its end.
        fraction = (t.ends_at - t.created_at) / (t.planned_end - t.created_at)
        assert 0.1 <= fraction <= 0.9


def test_the_error_rate_is_the_failure_frequency() -> None:
    rng = random.Random(11)
    outcomes = [draw_timeline(SimulationConfig(error_rate=0.3), rng, T0, 60).outcome for _ in range(4000)]
    assert outcomes.count("error") / len(outcomes) == pytest.approx(0.3, abs=0.03)


# --- per-job overrides ------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [0.0, 0.5, 2.0, 7200.0])
def test_simulate_pins_the_exact_duration(duration: float) -> None:
    timeline = draw(5, 600, SimulationConfig(error_rate=0.0), duration_seconds=duration)
    assert timeline.planned_end == T0 + duration
    assert timeline.ends_at == T0 + duration
    assert timeline.outcome == "completed"


def test_simulate_pins_the_outcome_both_ways() -> None:
    failing = draw(5, config=SimulationConfig(error_rate=0.0), duration_seconds=2.0, outcome="error")
    assert failing.outcome == "error"
    assert failing.error is not None
    assert failing.error.code in FAILURES
    assert failing.ends_at == T0 + 2.0, "an exact duration means the outcome arrives exactly then"

    succeeding = draw(5, config=SimulationConfig(error_rate=1.0), outcome="completed")
    assert succeeding.outcome == "completed"
    assert succeeding.error is None
    assert succeeding.ends_at == succeeding.planned_end


def test_simulate_error_code_makes_the_job_fail_with_that_code() -> None:
    timeline = draw(
        5, config=SimulationConfig(error_rate=0.0), duration_seconds=1.0, error_code="quota_exceeded"
    )
    assert timeline.outcome == "error"
    assert timeline.error is not None
    assert timeline.error.code == "quota_exceeded"
    assert "quota_exceeded" in timeline.error.message

    known = draw(5, config=SimulationConfig(error_rate=0.0), error_code="unsupported_media")
    assert known.error == JobError("unsupported_media", FAILURES["unsupported_media"][0])


# --- state over time --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_progress_is_monotone_in_range_and_one_at_completion(seed: int) -> None:
    timeline = draw(seed, 90, SimulationConfig(error_rate=0.0))
    states = [state_at(timeline, t) for t in grid(timeline)]
    progress = [s.progress for s in states]
    assert progress == sorted(progress)
    for t, state in zip(grid(timeline), states, strict=True):
        if t < timeline.ends_at:
            assert state.result == "pending"
            assert 0.0 <= state.progress <= 0.99
            assert state.finished_at is None
            assert state.error is None
        else:
            assert state.result == "completed"
            assert state.progress == 1.0
            assert state.finished_at == timeline.ends_at
            assert state.estimated_remaining is None
    assert state_at(timeline, T0).progress == 0.0


@pytest.mark.parametrize("seed", range(10))
def test_progress_freezes_when_a_job_fails(seed: int) -> None:
    timeline = draw(seed, 90, SimulationConfig(error_rate=1.0))
    at_failure = state_at(timeline, timeline.ends_at)
    assert at_failure.result == "error"
    assert at_failure.error == timeline.error
    assert at_failure.finished_at == timeline.ends_at
    just_before = state_at(timeline, timeline.ends_at - 1e-6)
    assert just_before.result == "pending"
    assert at_failure.progress >= just_before.progress
    assert at_failure.progress == pytest.approx(just_before.progress, abs=1e-3)
    for later in (1.0, 60.0, 86400.0):
        assert state_at(timeline, timeline.ends_at + later) == at_failure


@pytest.mark.parametrize(
    "sim",
    [{"outcome": "error"}, {"duration_seconds": 2.0, "outcome": "error"}, {"error_code": "quota_exceeded"}],
    ids=["random-duration", "exact-duration", "error-code"],
)
def test_a_failed_job_never_reports_full_progress(sim: dict[str, object]) -> None:
    """1.0 means completed: pending progress is capped at 0.99, and a failure must not show 1.0."""
    timeline = draw(2, 90, SimulationConfig(error_rate=0.0), **sim)
    assert timeline.outcome == "error"
    assert state_at(timeline, timeline.ends_at + 1).progress < 1.0


@pytest.mark.parametrize("seed", range(10))
def test_the_estimate_is_positive_while_pending_and_converges(seed: int) -> None:
    timeline = draw(seed, 90, SimulationConfig(error_rate=0.0, estimate_spread=0.3))
    errors = []
    for t in grid(timeline, past=1.0)[:-1]:
        state = state_at(timeline, t)
        assert state.estimated_remaining is not None
        assert state.estimated_remaining > 0
        truth = timeline.ends_at - t
        errors.append(abs(state.estimated_remaining - truth))
    assert errors == sorted(errors, reverse=True), "the estimate's error must shrink"
    assert errors[-1] < 0.02 * errors[0] + 1e-9
    near_end = state_at(timeline, timeline.ends_at - 0.01).estimated_remaining
    assert near_end is not None
    assert 0 < near_end == pytest.approx(0.01 * timeline.estimate_factor)


def test_without_estimate_spread_the_estimate_is_exact() -> None:
    timeline = draw(4, 90, EXACT)
    for t in grid(timeline, past=1.0)[:-1]:
        remaining = state_at(timeline, t).estimated_remaining
        assert remaining == pytest.approx(timeline.ends_at - t)


def test_state_is_a_pure_function_of_the_time() -> None:
    timeline = draw(9, 45)
    for t in grid(timeline, steps=20):
        assert state_at(timeline, t) == state_at(timeline, t)


def test_a_zero_duration_job_is_done_at_once() -> None:
    timeline = draw(1, duration_seconds=0.0)
    state = state_at(timeline, T0)
    assert state.result == "completed"
    assert state.progress == 1.0
    assert state.finished_at == T0


# --- cancellation -----------------------------------------------------------------------------


def test_cancel_ends_a_pending_job_at_that_instant() -> None:
    timeline = draw(3, 120, SimulationConfig(error_rate=0.0))
    t = T0 + (timeline.ends_at - T0) / 3
    before = state_at(timeline, t - 1e-6)
    cancelled = cancel(timeline, t)
    assert cancelled.ends_at == t
    assert cancelled.outcome == "error"
    assert cancelled.error == CANCELLED
    assert cancelled.error.code == "cancelled"
    assert cancelled.created_at == timeline.created_at
    assert cancelled.planned_end == timeline.planned_end
    state = state_at(cancelled, t)
    assert state.result == "error"
    assert state.error == CANCELLED
    assert state.finished_at == t
    assert state.progress == pytest.approx(before.progress, abs=1e-3)
    assert state_at(cancelled, t + 3600) == state
    assert cancel(cancelled, t + 10) == cancelled, "cancelling twice changes nothing"


@pytest.mark.parametrize("outcome", ["completed", "error"])
def test_cancel_leaves_a_finished_job_unchanged(outcome: str) -> None:
    timeline = draw(3, 120, SimulationConfig(error_rate=1.0 if outcome == "error" else 0.0))
    for t in (timeline.ends_at, timeline.ends_at + 5):
        assert cancel(timeline, t) == timeline


# --- the spec's /status timeline --------------------------------------------------------------


def test_the_status_delay_is_drawn_within_its_bounds() -> None:
    rng = random.Random(8)
    delays = [draw_fixed_delay(rng, T0, 5.0, 15.0, 0.0).ends_at - T0 for _ in range(500)]
    assert all(5.0 <= d <= 15.0 for d in delays)
    assert max(delays) - min(delays) > 8, "the delay should be spread over its range"
    fixed = draw_fixed_delay(rng, T0, 2.0, 2.0, 0.0)
    assert fixed.ends_at == fixed.planned_end == T0 + 2.0
    assert state_at(fixed, T0 + 1.999).result == "pending"
    assert state_at(fixed, T0 + 2.0).result == "completed"


def test_the_status_error_rate_is_honoured() -> None:
    rng = random.Random(8)
    assert {draw_fixed_delay(rng, T0, 1, 1, 0.0).outcome for _ in range(100)} == {"completed"}
    failing = [draw_fixed_delay(rng, T0, 1, 1, 1.0) for _ in range(100)]
    assert {t.outcome for t in failing} == {"error"}
    assert all(t.error is not None and t.error.code in FAILURES for t in failing)


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"base_seconds": -1.0},
        {"base_seconds": math.nan},
        {"base_seconds": math.inf},
        {"seconds_per_video_second": -0.1},
        {"duration_spread": -0.5},
        {"estimate_spread": math.nan},
        {"error_rate": -0.01},
        {"error_rate": 1.01},
        {"error_rate": math.nan},
    ],
    ids=lambda bad: ",".join(f"{k}={v}" for k, v in bad.items()),
)
def test_simulation_config_rejects_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SimulationConfig(**bad)


def test_simulation_config_accepts_the_edges() -> None:
    SimulationConfig(
        base_seconds=0, seconds_per_video_second=0, duration_spread=0, estimate_spread=0, error_rate=0
    )
    SimulationConfig(error_rate=1.0)
