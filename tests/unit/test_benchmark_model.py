"""The polling benchmark measures what the client does: its model of a vtrans wait
(``benchmarks/strategies.py``, ``VtransSession``) sends the same requests at the same times as the
real ``Client`` does against the same service model, on a virtual clock, job after job, with the
client's memory and learning carried from one job to the next.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import httpx2
import pytest

from vtrans.client import Client, PollPolicy
from vtrans.server.simulation import Timeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import polling
from strategies import Vtrans

URL = "http://vtrans.test"


class World:
    """A spec-like service on a virtual clock: each POST creates the next job of ``timelines``
    (answered at once, pending); a GET answers ``completed`` from the job's end on, else
    ``pending`` with no hint, and takes one RTT. ``Prefer: wait`` is ignored."""

    def __init__(self, timelines: list[Timeline]) -> None:
        self.timelines, self.t = timelines, 1000.0
        self.created: dict[str, tuple[float, Timeline]] = {}
        self.polls: dict[str, list[float]] = {}

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.t += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            job_id = f"job_{len(self.created):032x}"
            self.created[job_id] = (self.t, self.timelines[len(self.created)])
            self.polls[job_id] = []
            return httpx2.Response(201, json={"id": job_id, "result": "pending"})
        job_id = request.url.path.rsplit("/", 1)[1]
        start, timeline = self.created[job_id]
        sent = self.t - start
        self.polls[job_id].append(sent)
        self.t += polling.RTT
        result = "completed" if sent >= timeline.ends_at else "pending"
        return httpx2.Response(200, json={"id": job_id, "result": result})


@pytest.mark.parametrize("workload", ["short", "lognormal", "mix"])
@pytest.mark.parametrize(
    "policy",
    [PollPolicy(), PollPolicy(random_phase=False, max_interval=5.0), PollPolicy(learn=False)],
    ids=["default", "fixed-phase-cap-5", "no-learning"],
)
def test_the_benchmark_waits_as_the_client_does(workload: str, policy: PollPolicy) -> None:
    jobs, durations = polling.draw_jobs(7, workload, 60)  # past the 20 jobs of Pace's warm-up
    timelines = polling.draw_timelines(7, workload, durations, jobs)[polling.DEFAULT_SPREAD]
    server = polling.Server("none", "no hints", False, 0.0, polling.DEFAULT_SPREAD)

    model = Vtrans(dataclasses.replace(policy), "model")
    model_rng = random.Random(3)
    expected = [
        polling.wait(model.session(model_rng, job), tl, server)
        for job, tl in zip(jobs, timelines, strict=True)
    ]

    world = World(timelines)
    http = httpx2.Client(base_url=URL, transport=httpx2.MockTransport(world))
    with Client(URL, http_client=http, poll=policy, clock=world, rng=random.Random(3)) as client:
        for job in jobs:
            created = client.create("fr", job.video_seconds)
            assert created.id is not None
            assert client.wait(created.id).result == "completed"

    got = [(len(sent), sent[-1] + polling.RTT) for sent in world.polls.values()]
    assert [n for n, _ in got] == [n for n, *_ in expected]
    assert [t for _, t in got] == pytest.approx([t for _, t, _ in expected], abs=1e-6)
    # The comparison covers both regimes: the first wait polls at once, the later ones do not,
    # and (with learning) the learned first poll is in use by the end.
    assert world.polls["job_" + "0" * 32][0] == 0.0
    assert all(sent[0] > 0 for sent in list(world.polls.values())[1:])
    learned = [model.memory.pace.first(policy, job.video_seconds) for job in jobs]
    assert any(first is not None for first in learned) == policy.learn
