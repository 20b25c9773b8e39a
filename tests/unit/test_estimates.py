"""How far the client believes a server's estimates: the fit of a job's answers, and what a client
learns of a server from its finished jobs. Pure arithmetic on made-up answers: no clock, no server.

Answers are drawn as the sandbox draws them (``vtrans.server.simulation``): the time left times a
per-job bias, a drift that fades with the share of the job left, and a per-answer wobble.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest

from vtrans.client.estimates import MODELS, PRIOR, Answer, Model, Quality, beyond, remaining


def quality(model: Model) -> Quality:
    """A client that has learned ``model`` (as if from many finished jobs)."""
    q = Quality()
    q.model = model
    return q


def answers_for(
    rng: random.Random, duration: float, times: list[float], bias: float, drift: float, wobble: float
) -> list[Answer]:
    """The job's answers at ``times`` (it started at 0 and ends at ``duration``)."""
    out = []
    for t in times:
        left = duration - t
        error = bias + drift * left / duration + wobble * rng.gauss(0.0, 1.0)
        out.append(Answer(t, round(left * math.exp(error), 3), 0.001))
    return out


def test_one_answer_gives_the_model_s_plausible_range() -> None:
    q = quality(Model(bias_spread=0.2, drift_spread=0.0, wobble=0.001))
    left = remaining([Answer(0.0, 100.0, 0.001)], q, 2.0, 0.0)
    assert left.mid == pytest.approx(100.0, rel=0.01)
    assert left.low == pytest.approx(100.0 * math.exp(-0.4), rel=0.02)
    assert left.high == pytest.approx(100.0 * math.exp(0.4), rel=0.02)


def test_a_steady_countdown_shows_the_job_s_bias() -> None:
    """An estimate 50 % too long counts down 1.5 s per second: with a steady server (little wobble)
    two answers give the time left, whatever the bias: to within twice the wobble of their ratio,
    magnified by the countdown's lever (100 s left, then 40: 2.5 / 1.5), about 5 %."""
    q = quality(Model(bias_spread=0.3, drift_spread=0.0, wobble=0.01))
    answers = [Answer(0.0, 150.0, 0.001), Answer(60.0, 60.0, 0.001)]  # 100 s job, 40 s left
    left = remaining(answers, q, 2.0, 0.0)
    assert left.mid == pytest.approx(40.0, rel=0.01)
    assert 37.5 < left.low < left.high < 42.5


def test_wobble_widens_the_range_that_a_countdown_narrows() -> None:
    steady = quality(Model(0.3, 0.0, 0.01))
    wobbly = quality(Model(0.3, 0.0, 0.12))
    answers = [Answer(0.0, 150.0, 0.001), Answer(60.0, 60.0, 0.001)]
    a, b = remaining(answers, steady, 2.0, 0.0), remaining(answers, wobbly, 2.0, 0.0)
    assert b.high / b.low > 2 * (a.high / a.low)


def test_a_retry_after_of_one_says_at_most_a_second() -> None:
    """Give or take the estimate's own error: the log of a uniform draw in (0, 1] is far from
    normal, and its upper end is hard."""
    left = remaining([Answer(0.0, 1.0, 1.0)], Quality(), 2.0, 0.0)
    assert left.high < 3.0
    assert left.low < 0.1  # anything in (0, 1]: a tenth of a second is as plausible as the rest


@pytest.mark.parametrize("hint", [1.0, 2.0, 3.0, 10.0])
def test_a_whole_second_hint_is_read_as_a_uniform_draw_in_its_second(hint: float) -> None:
    """``Retry-After: n`` says the estimate was in (n - 1, n]: its log has the mean and spread of
    the log of a uniform draw there (1 / e and 1 for a hint of 1), as a million draws confirm."""
    rng = random.Random(7)
    logs = [math.log(hint - rng.random()) for _ in range(200_000)]
    answer = Answer(0.0, hint, 1.0)
    assert math.log(answer.value) == pytest.approx(statistics.fmean(logs), abs=0.01)
    assert answer.rounding == pytest.approx(statistics.pstdev(logs), rel=0.02)
    # An estimate to the millisecond is its own value.
    assert Answer(0.0, hint, 0.001).value == hint


# --- a cap: answers that only say "at least" ----------------------------------------------------

#: A job of a size that takes 1,000 s (median), sigma 0.25, on a server like the sandbox's.
SIZE = (math.log(1000.0), 0.25)
SANDBOX = Model(bias_spread=0.15, drift_spread=0.3, wobble=0.12)


def test_at_its_start_a_capped_job_is_expected_when_its_size_says() -> None:
    """At the start, "at least 60 s" says nothing the size does not: the range is the size's own,
    its low end at 2 standard deviations (1,000 x e^-0.5)."""
    left = beyond(Answer(0.0, 60.0, 1.0), quality(SANDBOX), 2.0, 0.0, SIZE)
    assert left.mid == pytest.approx(1000.0, rel=0.03)
    assert left.low == pytest.approx(1000.0 * math.exp(-0.5), rel=0.03)
    assert left.high == pytest.approx(1000.0 * math.exp(0.5), rel=0.03)


@pytest.mark.parametrize("age", [700.0, 1000.0, 1500.0])
def test_later_the_cap_says_the_job_is_not_nearly_done(age: float) -> None:
    """Past the size's low end, "at least 60 s" still rules out an end within the next 60 s, give
    or take the estimate's error (59 x e^-(2 x 0.19) = 40 s), and no sooner is expected: the next
    poll lands no later than that plus the lag allowed, whatever the size said."""
    left = beyond(Answer(age, 60.0, 1.0), quality(SANDBOX), 2.0, 0.0, SIZE)
    error = math.sqrt(0.15**2 + (0.3 * 59 / (59 + age)) ** 2 + 0.12**2)
    assert left.low == pytest.approx(59.0 * math.exp(-2 * error), rel=0.05)
    assert left.low < left.mid < left.high
    assert left.mid > 59.0 * math.exp(-error)


def test_a_cap_is_learned_and_forgotten_when_the_server_says_more() -> None:
    q = Quality()
    for hint in (12.0, 60.0, 45.0):
        q.saw(hint)
    q.repeated(45.0)  # repeated, but the server said more before: not its cap
    assert q.cap is None
    q.repeated(60.0)
    assert q.cap == 60.0
    q.saw(60.0)
    assert q.cap == 60.0
    q.saw(75.0)  # more than the cap: there is none
    assert q.cap is None


@pytest.mark.parametrize(
    ("model", "bias", "drift", "wobble"),
    [
        (Model(0.15, 0.0, 0.12), 0.15, 0.0, 0.12),
        (Model(0.15, 0.3, 0.01), 0.15, 0.25, 0.0),
        (Model(0.15, 0.3, 0.12), 0.15, 0.25, 0.12),
    ],
    ids=["wobble", "drift", "both"],
)
def test_the_range_is_calibrated(model: Model, bias: float, drift: float, wobble: float) -> None:
    """Under the model that generated them, the time left falls outside [low, high] (2 standard
    deviations) about as often as a normal's tails say: 2.3 % each side, give or take."""
    rng = random.Random(7)
    q = quality(model)
    below = above = n = 0
    for _ in range(600):
        times = sorted(rng.uniform(0.0, 90.0) for _ in range(rng.randint(1, 4)))
        answers = answers_for(rng, 100.0, times, rng.gauss(0, bias), rng.gauss(0, drift), wobble)
        truth = 100.0 - answers[-1].at
        left = remaining(answers, q, 2.0, 0.0)
        below += truth < left.low
        above += truth > left.high
        n += 1
    assert below / n < 0.05
    assert above / n < 0.05


@pytest.mark.parametrize(
    ("bias", "drift", "wobble", "expected"),
    [
        (0.15, 0.0, 0.0, Model(0.15, 0.0, 0.01)),
        (0.15, 0.0, 0.12, Model(0.15, 0.0, 0.12)),
        (0.05, 0.3, 0.0, Model(0.05, 0.3, 0.01)),
    ],
    ids=["steady", "wobbly", "drifting"],
)
def test_a_client_learns_which_model_its_server_follows(
    bias: float, drift: float, wobble: float, expected: Model
) -> None:
    rng = random.Random(3)
    q = Quality()
    assert q.model == PRIOR
    for _ in range(150):
        times = sorted(rng.uniform(0.0, 95.0) for _ in range(3))
        answers = answers_for(rng, 100.0, times, rng.gauss(0, bias), rng.gauss(0, drift), wobble)
        q.observe(answers, 0.0, 99.999, 100.001)
    got = q.model
    assert (got.bias_spread, got.drift_spread, got.wobble) == (
        expected.bias_spread,
        expected.drift_spread,
        expected.wobble,
    )
    assert abs(got.bias) < 0.05


def test_a_systematic_bias_is_learned() -> None:
    """A server whose estimates are all 40 % short."""
    rng = random.Random(5)
    q = Quality()
    for _ in range(60):
        answers = answers_for(rng, 100.0, [0.0, 50.0, 80.0], math.log(0.6), 0.0, 0.0)
        q.observe(answers, 0.0, 99.999, 100.001)
    assert q.model.bias == pytest.approx(math.log(0.6), abs=0.02)
    left = remaining([Answer(0.0, 60.0, 0.001)], q, 2.0, 0.0)
    assert left.mid == pytest.approx(100.0, rel=0.03)


def test_a_stall_teaches_nothing() -> None:
    """The estimate ran out long before the job ended: the answers say nothing of the error."""
    q = Quality()
    stalled = [Answer(0.0, 80.0, 0.001), Answer(70.0, 10.0, 0.001), Answer(85.0, 0.001, 0.001)]
    q.observe(stalled, 0.0, 120.0, 120.01)
    assert q.model == PRIOR


def test_durations_by_size_are_learned_after_a_warm_up() -> None:
    q = Quality()
    rng = random.Random(2)
    sizes = []
    for i in range(40):
        video = rng.uniform(10.0, 1000.0)
        duration = 0.3 * video * math.exp(rng.gauss(0.0, 0.2))
        sizes.append(math.log(duration / video))
        if i < 9:
            q.observe_duration(video, duration)
            assert q.duration(video) is None
        else:
            q.observe_duration(video, duration)
    mean, sigma = q.duration(100.0) or (0.0, 0.0)
    assert mean == pytest.approx(math.log(100.0) + statistics.fmean(sizes), abs=1e-9)
    assert sigma == pytest.approx(statistics.stdev(sizes), rel=1e-6)


def test_the_models_include_the_prior() -> None:
    assert PRIOR in MODELS
