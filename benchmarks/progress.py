"""What following progress costs: requests and progress updates per job, by transport.

The real ``vtrans.Client`` waits for jobs of the sandbox's default simulation (videos of 10 s to
10 min) on the in-process fake service (``vtrans.testing.FakeService``: the service's own routes
on virtual time), one wait at a time, four ways: the default transport without a callback, the
default transport with ``on_progress`` (held polls that end at each 10 % step), the event stream,
and plain polls with a callback. Virtual time makes the counts exact and the run quick; lag is
the virtual seconds from the job's end to the wait's return.

Run from the repository root::

    .venv/bin/python benchmarks/progress.py [--jobs 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import httpx2

import vtrans
from vtrans.client.waiting import Transport
from vtrans.testing import FakeService


@dataclass(frozen=True)
class Way:
    name: str
    transport: Transport
    follow: bool


WAYS = (
    Way("default, no callback", "auto", False),
    Way("default, on_progress", "auto", True),
    Way("event stream (sse)", "sse", True),
    Way("plain polls, on_progress", "poll", True),
)


def run(way: Way, videos: list[int], seed: int) -> tuple[list[int], list[int], list[float]]:
    """Requests, updates and lag (virtual seconds) per job."""
    requests, updates, lags = [], [], []
    with FakeService(seed=seed) as fake:
        counted: list[int] = [0]

        def count(request: httpx2.Request) -> None:
            counted[0] += 1

        client = fake.client()
        client._http.event_hooks["request"].append(count)
        for video in videos:
            job = client.create("es", video)
            assert job.id is not None
            counted[0] = 0
            seen: list[vtrans.Job] = []
            on_progress: Callable[[vtrans.Job], object] | None = seen.append if way.follow else None
            done = client.wait(job.id, transport=way.transport, on_progress=on_progress, raise_on_error=False)
            returned = fake.now()
            requests.append(counted[0])
            updates.append(len({s.progress for s in seen if s.result == "pending"}))
            assert done.finished_at is not None
            lags.append(returned - done.finished_at.timestamp())
    return requests, updates, lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    videos = [round(rng.uniform(10, 600)) for _ in range(args.jobs)]
    print(
        f"{args.jobs} jobs of 10 s to 10 min of video (sandbox defaults, seed {args.seed}), on virtual time\n"
    )
    print("| how the client waits | requests per job (median, mean) | updates per job (mean) | lag |")
    print("|---|---:|---:|---:|")
    for way in WAYS:
        requests, updates, lags = run(way, videos, args.seed)
        print(
            f"| {way.name} | {statistics.median(requests):.0f}, {statistics.mean(requests):.1f} "
            f"| {statistics.mean(updates):.1f} | {statistics.median(lags) * 1000:.0f} ms |"
        )
    print(f"\nReproduce: .venv/bin/python benchmarks/progress.py --jobs {args.jobs} --seed {args.seed}")


if __name__ == "__main__":
    main()
