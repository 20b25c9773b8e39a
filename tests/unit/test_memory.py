"""What a client remembers across waits: :class:`Memory` and the learned :class:`Pace`. Pure.

The flows that use them (a wait that starts from the create's answer, the learned first poll) are
checked end to end on a virtual clock in ``test_client_flows.py``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import threading

import pytest

from vtrans.client.memory import Created, Memory
from vtrans.client.policy import Pace, Poller, PollPolicy
from vtrans.protocol import Job

#: A policy whose first poll is 2 s after the start (no random phase): the Pace's floor.
POLICY = PollPolicy(first=2.0, factor=1.5, max_interval=30.0, random_phase=False)


def pending(n: int) -> Job:
    return Job(result="pending", id=f"job_{n:032x}", video_seconds=10.0)


# --- Memory: the jobs created and not yet waited for -----------------------------------------


def test_a_created_job_is_remembered_with_its_time_and_answer() -> None:
    memory = Memory()
    job = pending(1)
    memory.created(12.5, 30.0, job)
    assert memory.take(job.id or "") == Created(12.5, 30.0, job)


def test_take_forgets() -> None:
    memory = Memory()
    memory.created(0.0, 10.0, pending(1))
    assert memory.take(pending(1).id or "") is not None
    assert memory.take(pending(1).id or "") is None  # a second wait polls at once


def test_take_of_an_unknown_job_is_none_and_forgets_nothing_else() -> None:
    memory = Memory()
    memory.created(0.0, 10.0, pending(1))
    assert memory.take(pending(2).id or "") is None
    assert memory.take(pending(1).id or "") is not None


def test_capacity_evicts_the_oldest_first() -> None:
    memory = Memory(capacity=3)
    for n in range(5):
        memory.created(float(n), 10.0, pending(n))
    # 0 and 1 were created first: forgotten; 2, 3 and 4 are kept, whatever order they are taken in.
    assert memory.take(pending(0).id or "") is None
    assert memory.take(pending(1).id or "") is None
    for n in (4, 2, 3):
        created = memory.take(pending(n).id or "")
        assert created is not None
        assert created.at == float(n)


def test_a_job_created_again_is_remembered_once_from_its_first_creation() -> None:
    """An idempotent replay of a create answers the job created first: one record (the capacity
    counts jobs), with the first creation's time, which is when the job started."""
    memory = Memory(capacity=2)
    memory.created(0.0, 10.0, pending(1))
    memory.created(1.0, 10.0, pending(2))
    memory.created(2.0, 10.0, pending(1))
    created = memory.take(pending(1).id or "")
    assert created is not None
    assert created.at == 0.0
    assert memory.take(pending(2).id or "") is not None


@pytest.mark.parametrize("result", ["completed", "error"])
def test_a_job_done_at_its_creation_is_not_remembered(result: str) -> None:
    memory = Memory()
    done = Job(result=result, id=pending(1).id)  # type: ignore[arg-type]
    memory.created(0.0, 10.0, done)
    assert memory.take(pending(1).id or "") is None


def test_a_job_without_id_is_not_remembered() -> None:
    memory = Memory(capacity=1)
    memory.created(0.0, 10.0, pending(1))
    memory.created(1.0, 10.0, Job(result="pending"))  # a spec-literal {"result": "pending"}
    assert memory.take(pending(1).id or "") is not None  # and it evicted nothing


def test_memory_starts_knowing_nothing() -> None:
    memory = Memory()
    assert memory.holds is None
    assert memory.pace.first(PollPolicy(), 100.0) is None
    assert Memory().pace is not memory.pace  # each client learns on its own


def test_memory_is_safe_to_share_between_threads() -> None:
    """Creates and takes from many threads: each job is taken exactly once, none is lost."""
    memory = Memory()
    per_thread, threads = 500, 8
    taken: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for k in range(per_thread):
            n = t * per_thread + k
            memory.created(float(n), 1.0, pending(n))
        for n in range(threads * per_thread):  # every thread tries to take every job
            if memory.take(pending(n).id or "") is not None:
                with lock:
                    taken.append(n)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # A job taken before its creator had created it is simply not taken then; the creator takes it
    # later (it runs through every id after its creates). No job is taken twice.
    assert sorted(taken) == list(range(threads * per_thread))


# --- Pace: where the schedule of a created job starts ---------------------------------------


def warmed(log_rate: float, warmup: int = 20) -> Pace:
    """A pace whose warm-up is over, set to ``log_rate``."""
    pace = Pace(warmup=warmup)
    pace.log_rate = log_rate
    return pace


@pytest.mark.parametrize("video", [0.5, 10.0, 3600.0])
def test_nothing_learned_means_the_policys_own_schedule(video: float) -> None:
    assert Pace().first(POLICY, video) is None


def test_learn_false_means_the_policys_own_schedule() -> None:
    pace = warmed(math.log(0.5))
    assert pace.first(POLICY, 60.0) == pytest.approx(30.0)
    off = dataclasses.replace(POLICY, learn=False)
    assert pace.first(off, 60.0) is None
    assert pace.first(off, 3600.0) is None


def test_the_first_poll_is_the_video_times_the_learned_rate() -> None:
    pace = warmed(math.log(0.25))
    assert pace.first(POLICY, 100.0) == pytest.approx(25.0)
    assert pace.first(POLICY, 400.0) == pytest.approx(100.0)


def test_a_learned_first_poll_not_later_than_the_policys_is_not_used() -> None:
    pace = warmed(math.log(0.25))
    assert pace.first(POLICY, 8.0) is None  # 2 s: the policy's own first poll, with its phase
    assert pace.first(POLICY, 4.0) is None


def logs_quantile(bounds: list[float], q: float) -> float:
    """The q-quantile of a normal fitted to the logs of ``bounds``."""
    return statistics.NormalDist.from_samples([math.log(b) for b in bounds]).inv_cdf(q)


def test_the_warm_up_fits_the_quantile_of_the_last_pending_times() -> None:
    """The first ``warmup`` jobs, each last seen pending some time after its creation (a lower
    bound of its duration), set the rate to the ``learn_quantile`` of a log-normal fitted to the
    bounds per video-second. Until then, nothing is learned."""
    rng = random.Random(4)
    pace = Pace(warmup=10)
    bounds = []
    for n in range(10):
        assert pace.first(POLICY, 100.0) is None, n
        video = rng.uniform(30.0, 300.0)
        bound = 0.5 * math.exp(rng.gauss(0.0, 0.2))
        pace.observe(POLICY, video, bound * video, None)
        bounds.append(bound)
    assert pace.log_rate is not None
    assert pace.log_rate == pytest.approx(logs_quantile(bounds, POLICY.learn_quantile))
    assert pace.log_rate < math.log(statistics.median(bounds))  # a low quantile: it errs early


def test_warm_up_jobs_done_at_their_first_poll_are_not_bounds() -> None:
    """Only the create saw it pending (0): no lower bound of its rate; it does not count."""
    pace = Pace(warmup=3)
    pace.observe(POLICY, 60.0, 30.0, None)
    pace.observe(POLICY, 60.0, 0.0, None)
    pace.observe(POLICY, 60.0, 24.0, None)
    assert pace.log_rate is None
    pace.observe(POLICY, 60.0, 36.0, None)
    assert pace.log_rate == pytest.approx(logs_quantile([0.5, 0.4, 0.6], POLICY.learn_quantile))


def test_a_warm_up_of_identical_jobs_learns_their_rate() -> None:
    """On a virtual clock (``Client(clock=...)``), or a service that takes the same time for the
    same video, the bounds can all be equal: their spread is 0, and the learned rate is theirs."""
    pace = Pace(warmup=20)
    for _ in range(20):
        pace.observe(POLICY, 60.0, 30.0, None)
    assert pace.log_rate is not None
    assert math.exp(pace.log_rate) == pytest.approx(0.5)


@pytest.mark.parametrize("q", [0.05, 0.3, 0.5])
def test_pending_at_the_learned_first_poll_moves_up_by_step_q_done_down_by_step_1_minus_q(q: float) -> None:
    policy = dataclasses.replace(POLICY, learn_quantile=q)
    pace = warmed(math.log(0.5))  # 60 s of video: first poll at 30 s
    pace.observe(policy, 60.0, 36.0, 30.0)
    assert pace.log_rate == pytest.approx(math.log(0.5) + pace.step * q)
    pace.observe(policy, 60.0, 0.0, 30.0)
    assert pace.log_rate == pytest.approx(math.log(0.5) + pace.step * q - pace.step * (1 - q))


def test_a_job_first_polled_at_the_policys_first_does_not_move_the_rate() -> None:
    """Its first poll was the policy's own (the learned one was not later): it says nothing of
    the learned time, done or not."""
    pace = warmed(math.log(0.25))
    pace.observe(POLICY, 4.0, 0.0, None)
    pace.observe(POLICY, 4.0, 3.0, None)
    assert pace.log_rate == pytest.approx(math.log(0.25))


@pytest.mark.parametrize(
    ("video", "pending_until"),
    [(0.0, 5.0), (-1.0, 5.0), (math.nan, 5.0), (60.0, math.inf), (60.0, math.nan)],
)
def test_meaningless_observations_are_ignored(video: float, pending_until: float) -> None:
    fresh = Pace(warmup=1)
    fresh.observe(POLICY, video, pending_until, None)
    assert fresh.log_rate is None
    pace = warmed(math.log(0.5))
    pace.observe(POLICY, video, pending_until, 30.0)
    assert pace.log_rate == pytest.approx(math.log(0.5))


# --- Pace on a stream of jobs -----------------------------------------------------------------


def stream(
    pace: Pace, policy: PollPolicy, rng: random.Random, jobs: int, rate: float, sigma: float
) -> tuple[list[bool], list[int], list[float]]:
    """Feed ``pace`` a stream of jobs as a client waiting for each job it created would: videos
    log-uniform in [30 s, 600 s], durations ``video * rate * lognormal(0, sigma)``, the first poll
    at the learned first poll (or the policy's), the schedule from there on. Return, per job,
    whether it was already done at its first poll, the number of polls, and ``log_rate`` after it
    (NaN while warming up)."""
    early, polls, rates = [], [], []
    for _ in range(jobs):
        video = math.exp(rng.uniform(math.log(30.0), math.log(600.0)))
        duration = video * rate * math.exp(rng.gauss(0.0, sigma))
        first = pace.first(policy, video)
        poller = Poller(policy, 0.0, rng, learned_first=first)
        t, n, pending_until = poller.next_delay(0.0, None), 1, 0.0
        if first is not None:
            assert t == pytest.approx(first)  # the schedule starts at the learned first poll
        while t < duration:
            pending_until, n = t, n + 1
            t += poller.next_delay(t, None)
        pace.observe(policy, video, pending_until, first)
        early.append(n == 1)
        polls.append(n)
        rates.append(math.nan if pace.log_rate is None else pace.log_rate)
    return early, polls, rates


@pytest.mark.parametrize("q", [0.02, 0.05, 0.2])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_share_done_at_the_learned_first_poll_converges_to_learn_quantile(q: float, seed: int) -> None:
    """3,000 jobs of 0.5 s per video-second +-30 % (log-normal). Over the last 2,000, the share of
    jobs already done at their first poll is ``learn_quantile``, and the learned rate is the jobs'
    q-quantile. (Each update moves ``log_rate`` by ``step * (q - done)``: over N jobs the share
    done is q - (change of log_rate) / (step * N), within 0.0015 of q over 100 seeds; the mean
    learned log-rate was within 0.1 of the true quantile's. The tolerances are several times
    both.)

    And learning is worth it: the schedule from the learned first poll skips the ramp that the
    same jobs polled from the policy's 2 s pay in full (half the polls, or fewer)."""
    policy = dataclasses.replace(POLICY, learn_quantile=q)
    early, polls, rates = stream(Pace(), policy, random.Random(seed), 3000, rate=0.5, sigma=0.3)
    assert sum(early[-2000:]) / 2000 == pytest.approx(q, abs=0.01)
    quantile = math.log(0.5) + 0.3 * statistics.NormalDist().inv_cdf(q)
    assert statistics.fmean(rates[-2000:]) == pytest.approx(quantile, abs=0.25)
    off = dataclasses.replace(policy, learn=False)
    _, unlearned, _ = stream(Pace(), off, random.Random(seed), 3000, rate=0.5, sigma=0.3)
    assert statistics.fmean(polls[-2000:]) < 0.6 * statistics.fmean(unlearned[-2000:])


@pytest.mark.parametrize("start", [-2.0, 2.0])
def test_the_pace_recovers_from_a_rate_far_off(start: float) -> None:
    """Started e^2 = 7 times too early or too late (as after the service changed speed), the pace
    settles on the quantile again. (Too early, it climbs by ``step * q`` a job: 400 jobs.)"""
    policy = dataclasses.replace(POLICY, learn_quantile=0.05)
    quantile = math.log(0.5) + 0.3 * statistics.NormalDist().inv_cdf(0.05)
    early, _, rates = stream(warmed(quantile + start), policy, random.Random(7), 3000, rate=0.5, sigma=0.3)
    assert sum(early[-1000:]) / 1000 == pytest.approx(0.05, abs=0.015)
    assert statistics.fmean(rates[-1000:]) == pytest.approx(quantile, abs=0.25)


# --- the policy's new knobs ------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_learn_quantile_outside_0_1_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="learn_quantile"):
        PollPolicy(learn_quantile=q)


def test_learning_is_on_by_default() -> None:
    policy = PollPolicy()
    assert policy.learn is True
    assert 0 < policy.learn_quantile <= 0.1


def test_a_learned_first_poll_starts_the_schedule_there_with_no_random_phase() -> None:
    policy = dataclasses.replace(POLICY, random_phase=True)
    for seed in range(20):
        poller = Poller(policy, 100.0, random.Random(seed), learned_first=7.0)
        assert poller.next_delay(100.0, None) == pytest.approx(7.0)
        # The schedule grows by learned_factor from there (finer than the policy's factor).
        assert poller.next_delay(107.0, None) == pytest.approx(7.0 * policy.learned_factor - 7.0)
    assert policy.first == 2.0  # the policy itself is untouched
    phased = [Poller(policy, 0.0, random.Random(s)).next_delay(0.0, None) for s in range(20)]
    assert len(set(phased)) == 20  # without a learned first poll the phase is still random
