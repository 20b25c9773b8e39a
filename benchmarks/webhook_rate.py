"""Webhook throughput: N jobs whose webhooks all fall due at one moment T0, N - 1 of them to a fast
receiver and one (due just before them) to a receiver that never answers, so it holds one of the
sender's slots until its deadline. Measured at the fast receiver: how soon all arrived (deliveries
per second from T0), and each one's delay past its due time (arrival minus the job's
``finished_at``, which is when its delivery falls due)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import receiver
from processes import ServerProcess
from rawhttp import create_jobs
from stats import pct, spread


@dataclass
class WebhookRun:
    processes: int
    jobs: int
    delivered: int = 0
    #: From T0 to the last fast delivery's arrival.
    seconds: float = math.nan
    #: Per fast delivery: arrival minus due time.
    delays: list[float] = field(default_factory=list)
    #: Deliveries that arrived twice or more (allowed: at least once), and requests hung.
    repeats: int = 0
    hung: int = 0
    service_cpu: float = 0.0
    db_cpu: float = 0.0
    #: How long creating the jobs took, and by how much it overran T0 (it should not).
    create_seconds: float = 0.0
    overran: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else math.nan


def margin(jobs: int) -> float:
    """Seconds from now to T0: creating a job with its delivery takes ~1-2 ms here."""
    return 1.0 + 0.003 * jobs


async def measure(
    service: ServerProcess, processes: int, jobs: int, db_cpu: Callable[[], float], timeout: float = 120
) -> WebhookRun:
    run = WebhookRun(processes, jobs)
    seen, hanging = receiver.Deliveries(), receiver.Deliveries()
    fast_server, fast_url = await receiver.serve(seen)
    hang_server, hang_url = await receiver.serve(hanging, answer=False)
    try:
        t0 = time.time() + margin(jobs)

        def until(offset: float) -> Callable[[], float]:
            return lambda: max(0.05, t0 + offset - time.time())

        durations = [until(-0.05)] + [until(0.0)] * (jobs - 1)
        callbacks: list[str | None] = [hang_url, *[fast_url] * (jobs - 1)]
        started = time.time()
        await create_jobs(service.port, durations, callback_urls=callbacks)
        run.create_seconds = time.time() - started
        run.overran = max(0.0, time.time() - t0)
        if run.overran:
            run.errors.append(f"creating the jobs overran T0 by {run.overran:.2f}s")
        await asyncio.sleep(max(0.0, t0 - 0.5 - time.time()))
        cpu, db = service.cpu_seconds(), db_cpu()
        complete = await receiver.until(seen, jobs - 1, max(0.0, t0 - time.time()) + timeout)
        run.service_cpu, run.db_cpu = service.cpu_seconds() - cpu, db_cpu() - db
        if not complete:
            run.errors.append(f"only {len(seen.arrived)}/{jobs - 1} webhooks arrived within {timeout:.0f}s")
        run.delivered = len(seen.arrived)
        run.seconds = max(seen.arrived.values(), default=t0) - t0
        run.delays = [seen.arrived[key] - seen.due[key] for key in seen.arrived]
        run.repeats, run.hung = seen.repeats, hanging.hung
    finally:
        for server in (fast_server, hang_server):
            server.close()
    return run


def table(runs: list[WebhookRun]) -> list[str]:
    lines = [
        "| service processes | fast deliveries | all in (s after T0) | deliveries/s | delay past due p50 ms "
        "| p99 ms | max ms | service CPU/delivery | PostgreSQL CPU/delivery | hanging receiver: requests "
        "| repeats |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for processes in sorted({r.processes for r in runs}):
        mine = [r for r in runs if r.processes == processes]
        lines.append(
            f"| {processes} | {' / '.join(f'{r.delivered}/{r.jobs - 1}' for r in mine)} "
            f"| {spread([r.seconds for r in mine], 2, 1)} | {spread([r.rate for r in mine], 0, 1)} "
            f"| {spread([pct(r.delays, 50) for r in mine])} | {spread([pct(r.delays, 99) for r in mine])} "
            f"| {spread([max(r.delays, default=math.nan) for r in mine])} "
            f"| {spread([r.service_cpu / max(1, r.delivered) for r in mine], 0, 1e6)} µs "
            f"| {spread([r.db_cpu / max(1, r.delivered) for r in mine], 0, 1e6)} µs "
            f"| {' / '.join(str(r.hung) for r in mine)} | {' / '.join(str(r.repeats) for r in mine)} |"
        )
    return lines
