"""The pure simulation and the store, on a fake clock: no server, no sleeps.

A job's timeline is drawn once (:func:`draw_timeline`) and its state at any instant is computed
(:func:`state_at`), so "time" here is just the number passed in.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import statistics

import msgspec
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
    progress_reached,
    shifted,
    state_at,
)

T0 = 1_700_000_000.0  # an arbitrary "now"
#: The estimate's wobble, drift and stalls off: what is left is one error factor per job.
STEADY = SimulationConfig(estimate_noise=0.0, estimate_drift=0.0, stall_rate=0.0)
EXACT = dataclasses.replace(STEADY, duration_spread=0.0, estimate_spread=0.0, error_rate=0.0)


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
    timeline = draw(seed, 90, dataclasses.replace(STEADY, error_rate=0.0, estimate_spread=0.3))
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


# --- estimates that behave like real ones -----------------------------------------------------


def log_errors(timeline: Timeline, steps: int = 400) -> list[tuple[float, float]]:
    """(share of the planned work left, log of estimate / the plan's time left) while pending."""
    work = timeline.planned_end - timeline.created_at - timeline.stall_seconds
    out = []
    for t in grid(timeline, steps, past=1.0)[1:-1]:
        left = timeline.created_at + work - t
        estimate = state_at(timeline, t).estimated_remaining
        if left > 1e-6 * work and estimate is not None:
            out.append((left / work, math.log(estimate / left)))
    return out


def test_the_default_sandbox_wobbles_drifts_and_stalls() -> None:
    config = SimulationConfig()
    assert config.estimate_noise > 0
    assert config.estimate_drift > 0
    assert config.stall_rate > 0
    assert config.hints == "estimate"


def test_each_answer_wobbles_around_the_job_s_factor() -> None:
    """One answer per re-estimation period (1 % of the job): the wobble is log-normal, of the
    configured sigma, around the job's own factor, and drawn anew each period."""
    config = dataclasses.replace(STEADY, error_rate=0.0, estimate_noise=0.12)
    timeline = draw(3, 600, config)
    work = timeline.planned_end - timeline.created_at
    wobble = []
    for k in range(95):
        t = timeline.created_at + (k + 0.5) * 0.01 * work
        left = timeline.planned_end - t
        estimate = state_at(timeline, t).estimated_remaining
        assert estimate is not None
        wobble.append(math.log(estimate / left) - math.log(timeline.estimate_factor))
    assert statistics.fmean(wobble) == pytest.approx(0.0, abs=0.04)
    assert statistics.stdev(wobble) == pytest.approx(0.12, rel=0.2)
    pairs = list(itertools.pairwise(wobble))
    assert abs(statistics.correlation([a for a, _ in pairs], [b for _, b in pairs])) < 0.25


def test_answers_within_a_period_wobble_alike() -> None:
    """A service re-estimates now and then, not on every request: two answers a moment apart
    (here, 1 ms) carry the same error; so do two services that answer a create a moment apart."""
    config = dataclasses.replace(STEADY, error_rate=0.0, estimate_noise=0.12)
    timeline = draw(3, 600, config)
    for t in (T0, T0 + 40.0, T0 + 77.7):
        a, b = state_at(timeline, t), state_at(timeline, t + 0.001)
        assert a.estimated_remaining is not None
        assert b.estimated_remaining is not None
        left_a, left_b = timeline.planned_end - t, timeline.planned_end - t - 0.001
        assert a.estimated_remaining / left_a == pytest.approx(b.estimated_remaining / left_b, rel=1e-9)


def test_the_wobble_is_a_pure_function_of_the_timeline_and_the_time() -> None:
    timeline = draw(5, 300, dataclasses.replace(SimulationConfig(), error_rate=0.0))
    again = msgspec.json.decode(msgspec.json.encode(timeline), type=Timeline)
    later = shifted(timeline, 1234.5)
    for t in grid(timeline, 50, past=1.0):
        assert state_at(timeline, t) == state_at(again, t), "every process answers alike"
        moved = state_at(later, t + 1234.5)
        assert moved.estimated_remaining == pytest.approx(state_at(timeline, t).estimated_remaining)
        assert moved.progress == state_at(timeline, t).progress


@pytest.mark.parametrize("seed", range(6))
def test_drift_is_wrong_early_and_right_late(seed: int) -> None:
    config = dataclasses.replace(STEADY, error_rate=0.0, estimate_spread=0.0, estimate_drift=0.3)
    timeline = draw(seed, 300, config)
    errors = log_errors(timeline)
    # The log error fades linearly with the share of work left: drift * share.
    for share, error in errors:
        assert error == pytest.approx(timeline.estimate_drift * share, abs=1e-9)
    assert abs(errors[-1][1]) < abs(errors[0][1]) or timeline.estimate_drift == 0


def test_drift_goes_both_ways() -> None:
    config = dataclasses.replace(STEADY, error_rate=0.0, estimate_drift=0.3)
    drifts = [draw(seed, 60, config).estimate_drift for seed in range(400)]
    assert statistics.stdev(drifts) == pytest.approx(0.3, rel=0.1)
    assert min(drifts) < -0.2, "some jobs are estimated optimistically early"
    assert max(drifts) > 0.2, "and some pessimistically"


def test_a_stall_holds_progress_and_outlives_the_estimate() -> None:
    config = dataclasses.replace(STEADY, error_rate=0.0, estimate_spread=0.0, stall_rate=1.0, stall_max=0.5)
    timeline = draw(2, 400, config)
    assert timeline.stall_seconds > 0
    work = timeline.planned_end - timeline.created_at - timeline.stall_seconds
    stall_start = timeline.created_at + timeline.stall_from * work
    stall_end = stall_start + timeline.stall_seconds
    assert timeline.ends_at == timeline.planned_end
    during = [stall_start + timeline.stall_seconds * i / 10 for i in range(11)]
    progress = {state_at(timeline, t).progress for t in during}
    assert len(progress) == 1, "progress is stuck during the stall"
    assert 0.5 < progress.pop() < 0.99
    assert state_at(timeline, stall_end + 0.01 * work).progress > state_at(timeline, stall_end).progress
    # The estimate plans the end without the stall: it runs out that long before the job ends.
    said = timeline.created_at + work
    assert state_at(timeline, said - 1).estimated_remaining == pytest.approx(1.0)
    for t in (said, said + timeline.stall_seconds / 2, timeline.ends_at - 1e-3):
        state = state_at(timeline, t)
        assert state.result == "pending"
        assert state.estimated_remaining == 0.0
    assert state_at(timeline, timeline.ends_at).result == "completed"


def test_the_stall_rate_is_the_share_of_jobs_that_stall() -> None:
    config = dataclasses.replace(SimulationConfig(), stall_rate=0.25, stall_max=0.4)
    rng = random.Random(4)
    timelines = [draw_timeline(config, rng, T0, 100) for _ in range(2000)]
    stalled = [t for t in timelines if t.stall_seconds > 0]
    assert len(stalled) / len(timelines) == pytest.approx(0.25, abs=0.03)
    shares = [t.stall_seconds / (t.planned_end - t.created_at) for t in stalled]
    assert 0 < min(shares) < 0.05
    assert 0.35 < max(shares) <= 0.4


def test_a_given_duration_is_kept_and_the_estimate_model_applies() -> None:
    config = dataclasses.replace(SimulationConfig(), stall_rate=1.0)
    timeline = draw_timeline(config, random.Random(1), T0, 100, duration=80.0)
    assert timeline.planned_end == timeline.ends_at == T0 + 80.0
    assert timeline.stall_seconds > 0
    assert timeline.estimate_noise == config.estimate_noise


def test_a_duration_pinned_by_simulate_gives_an_exact_estimate() -> None:
    config = dataclasses.replace(SimulationConfig(), error_rate=0.0, stall_rate=1.0, estimate_drift=0.5)
    timeline = draw(6, 100, config, duration_seconds=50.0)
    assert (timeline.estimate_noise, timeline.estimate_drift, timeline.stall_seconds) == (0.0, 0.0, 0.0)
    for t in grid(timeline, past=1.0)[:-1]:
        remaining = state_at(timeline, t).estimated_remaining
        assert remaining == pytest.approx((timeline.ends_at - t) * timeline.estimate_factor)


@pytest.mark.parametrize("hints", ["estimate", "retry-after", "none"])
def test_what_a_pending_answer_hints(hints: str) -> None:
    config = dataclasses.replace(SimulationConfig(), error_rate=0.0, hints=hints)
    timeline = draw(8, 100, config)
    pending = state_at(timeline, T0 + 1)
    done = state_at(timeline, timeline.ends_at)
    assert done.estimated_remaining is None
    assert done.retry_after is None
    if hints == "none":
        assert pending.estimated_remaining is None
        assert pending.retry_after is None
        return
    assert pending.retry_after is not None
    assert pending.retry_after > 0
    expected = pending.retry_after if hints == "estimate" else None
    assert pending.estimated_remaining == expected


def test_a_timeline_stored_before_the_estimate_model_still_decodes() -> None:
    """Stores keep timelines msgspec-encoded: one from before these fields reads as a steady one."""
    old = {
        "created_at": T0,
        "planned_end": T0 + 10,
        "ends_at": T0 + 10,
        "outcome": "completed",
        "error": None,
        "progress_exponent": 1.0,
        "estimate_factor": 1.5,
    }
    timeline = msgspec.json.decode(msgspec.json.encode(old), type=Timeline)
    state = state_at(timeline, T0 + 4)
    assert state.estimated_remaining == pytest.approx(6 * 1.5)
    assert state.retry_after == state.estimated_remaining
    assert state.progress == pytest.approx(0.4)


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
        {"estimate_noise": -0.1},
        {"estimate_drift": math.inf},
        {"stall_rate": 1.5},
        {"stall_max": 1.0},
        {"hints": "sometimes"},
    ],
    ids=lambda bad: ",".join(f"{k}={v}" for k, v in bad.items()),
)
def test_simulation_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SimulationConfig(**bad)


def test_simulation_config_accepts_the_edges() -> None:
    SimulationConfig(
        base_seconds=0, seconds_per_video_second=0, duration_spread=0, estimate_spread=0, error_rate=0
    )
    SimulationConfig(error_rate=1.0, stall_rate=1.0, stall_max=0.99)
    SimulationConfig(estimate_noise=0, estimate_drift=0, stall_rate=0, stall_max=0, hints="none")


# --- pinned timelines and progress steps -------------------------------------------------------


def test_a_pinned_duration_completes_whatever_the_error_rate() -> None:
    always_failing = SimulationConfig(error_rate=1.0)
    for seed in range(50):
        timeline = draw(seed, 60, always_failing, duration_seconds=2.0)
        assert (timeline.outcome, timeline.ends_at - T0) == ("completed", 2.0)
        assert state_at(timeline, T0 + 2.0).progress == 1.0


def test_a_pinned_failure_ends_on_time_part_of_the_way_through() -> None:
    reached = []
    for seed in range(50):
        timeline = draw(seed, 60, duration_seconds=2.0, error_code="no_speech_detected")
        assert timeline.ends_at - T0 == pytest.approx(2.0)
        state = state_at(timeline, T0 + 2.0)
        assert state.result == "error"
        assert state.error is not None
        assert state.error.code == "no_speech_detected"
        reached.append(state.progress)
        assert state_at(timeline, T0 + 1.0).estimated_remaining is not None
    assert max(reached) < 0.95, "a failure stops the work before it is done"
    assert min(reached) < 0.5 < max(reached), reached


def test_progress_reached_is_the_first_instant_of_each_step() -> None:
    config = SimulationConfig(stall_rate=0.5)
    for seed in range(200):
        timeline = draw(seed, 120, config)
        for step in (0.05, 0.25, 0.5, 0.9, 0.97, 0.99):
            at = progress_reached(timeline, step)
            if at is None:  # only a job that fails first never reaches a step
                assert timeline.outcome == "error"
                assert state_at(timeline, timeline.ends_at - 1e-6).progress < step
                continue
            assert state_at(timeline, at + 1e-6).progress >= step - 1e-4
            assert state_at(timeline, at - 1e-3).progress <= step, (seed, step)
    assert progress_reached(draw(1, 60), 1.0) is None, "a pending job never reports 100 %"
