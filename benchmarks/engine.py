"""Running one strategy over a workload's jobs, on one kind of server, on a virtual clock.

vtrans is the real client: a :class:`vtrans.Client` from :func:`simserver.make_client`, which creates
the jobs one after the other and waits for each, learning as it goes (:func:`run_client`), or a new
client per job waiting on the spec's ``GET /status``, with nothing to learn from (:func:`run_status`).
A published poller is its schedule (``strategies.py``), answered from the same simulation and the
same rendering (:func:`run_schedule`).

Every wait starts when the create's answer arrives: one round trip (RTT) after the job's creation.
A request sent at t is answered from the job's state at t (or, held, when the job ends or the hold
does) and the answer arrives one RTT later; lag = that arrival - the job's end, so every lag
includes one RTT. Requests count the status polls (the create is the same for everyone).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from simserver import RTT, hints_at, make_client
from strategies import Reply, Strategy
from vtrans.client import PollPolicy
from vtrans.server.simulation import Timeline
from vtrans.server.stores import StoredJob
from workloads import Kind

#: A wait that needs more requests than this is a bug, not a result.
MAX_REQUESTS = 1_000_000


@dataclass
class Outcome:
    """Per job: requests, lag, and whether it ended during a handover between two holds."""

    requests: list[int] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    handovers: list[bool] = field(default_factory=list)
    #: Waits that the poller's own default stop would have abandoned (the benchmark keeps waiting).
    gave_up: int = 0


Expected = float | tuple[float, float] | None


def run_client(
    timelines: list[Timeline],
    videos: list[float],
    kind: Kind,
    policy: PollPolicy,
    seed: str,
    expected: Expected = None,
) -> Outcome:
    """One real client creates each job in turn (``video_seconds`` from ``videos``) and waits for it."""
    client, server = make_client(
        timelines, max_hold=kind.max_hold, retry_after_max=kind.retry_after_max, policy=policy, seed=seed
    )
    out = Outcome()
    with client:
        for video in videos:
            job = client.create("fr", video)
            assert job.id is not None
            client.wait(job.id, raise_on_error=False, expected=expected)
            served = server.jobs[job.id]
            out.requests.append(len(served.polls))
            out.lags.append(server.clock.now() - served.end)
            out.handovers.append(served.handover())
    return out


def run_status(
    timelines: list[Timeline], kind: Kind, policy: PollPolicy, seed: str, expected: Expected = None
) -> Outcome:
    """A new client per job waits on the spec's ``GET /status``, which follows that job: it knows
    nothing of the job, has nothing to learn from, and starts when the job is created."""
    out = Outcome()
    for i, timeline in enumerate(timelines):
        client, server = make_client(
            [], max_hold=kind.max_hold, retry_after_max=kind.retry_after_max, policy=policy,
            seed=f"{seed}/{i}", status=timeline,
        )  # fmt: skip
        with client:
            client.wait(raise_on_error=False, expected=expected)
        assert server.status is not None
        out.requests.append(len(server.status.polls))
        out.lags.append(server.clock.now() - server.status.end)
        out.handovers.append(server.status.handover())
    return out


def run_schedule(strategy: Strategy, timelines: list[Timeline], kind: Kind, seed: str) -> Outcome:
    """A published poller's schedule, job by job, from the create's answer (one RTT after creation)."""
    rng = random.Random(seed)
    out = Outcome()
    closed = strategy.fixed_interval if not (kind.hints or kind.max_hold) else None
    for timeline in timelines:
        if closed is not None:
            n, detected = _fixed(closed, timeline.ends_at, closed if strategy.sleeps_first else 0.0)
        else:
            n, detected = _schedule(strategy, timeline, kind, rng)
        out.requests.append(n)
        out.lags.append(detected - timeline.ends_at)
        out.handovers.append(False)
        out.gave_up += strategy.gives_up(n, detected)
    return out


def _fixed(interval: float, end: float, first: float) -> tuple[int, float]:
    """:func:`_schedule` in closed form for a fixed interval whose first poll is sent ``first``
    after the create's answer: the k-th request is sent at RTT + first + (k - 1)(interval + RTT)."""
    step = interval + RTT
    k = 1 + max(0, math.ceil((end - RTT - first) / step))
    return k, RTT + first + (k - 1) * step + RTT


def _schedule(strategy: Strategy, timeline: Timeline, kind: Kind, rng: random.Random) -> tuple[int, float]:
    """One wait by a published poller: (requests, arrival of the answer that says done)."""
    session = strategy.session(rng)
    job = StoredJob(
        id="job",
        seq=1,
        language="fr",
        video_seconds=1.0,
        source_url=None,
        callback_url=None,
        timeline=timeline,
    )
    end = timeline.ends_at
    now = RTT + (session.start() or 0.0)
    requests = 0
    while requests < MAX_REQUESTS:
        sent = now
        hold = session.hold(sent)
        requests += 1
        held = None
        if hold and kind.max_hold:
            at = sent + min(hold, kind.max_hold)
            if end <= at:  # the server answers as soon as the job is done
                return requests, max(sent, end) + RTT
            now = at + RTT
            held = now - sent
        else:
            if sent >= end:
                return requests, sent + RTT
            at, now = sent, sent + RTT
        estimate, retry_after = hints_at(job, at, kind.retry_after_max) if kind.hints else (None, None)
        now += session.next_delay(now, Reply(estimate, retry_after, held))
    raise RuntimeError(f"more than {MAX_REQUESTS} requests for a job of {end:.1f} s")


def check_fixed(strategy: Strategy, timelines: list[Timeline], kind: Kind) -> None:
    """The closed form of a fixed interval agrees with the step-by-step schedule."""
    assert strategy.fixed_interval is not None
    rng = random.Random(0)
    for timeline in timelines:
        first = strategy.fixed_interval if strategy.sleeps_first else 0.0
        n, detected = _fixed(strategy.fixed_interval, timeline.ends_at, first)
        m, again = _schedule(strategy, timeline, kind, rng)
        if (n, round(detected, 6)) != (m, round(again, 6)):
            raise AssertionError(f"{strategy.name}: closed form {n, detected} vs schedule {m, again}")
