"""Many long-polls held by a service of several worker processes: the memory of all its processes
with every waiter held, and the lag of single jobs completing among them (arrival of the answer
minus the job's ``finished_at``)."""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from holders import Holders
from processes import ServerProcess, pss, rss
from rawhttp import connect, create_jobs, request, single_completion, wait_held
from stats import spread

HOLD = 300
MB = 2**20


@dataclass
class HeldRun:
    waiters: int
    held: int = 0
    #: Each process of the service: its role (parent, worker, ...), RSS and sockets, all held.
    roles: list[str] = field(default_factory=list)
    sockets: list[int] = field(default_factory=list)
    rss_fresh: int = 0
    rss_jobs: int = 0
    rss_held: int = 0
    pss_held: int = 0
    rss_each: list[int] = field(default_factory=list)
    create_seconds: float = 0.0
    open_seconds: float = 0.0
    held_seconds: float = 0.0
    healthz: float = math.nan
    idle_lags: list[float] = field(default_factory=list)
    held_lags: list[float] = field(default_factory=list)
    early: int = 0
    errors: list[str] = field(default_factory=list)


def role(pid: int, parent: int) -> str:
    """What a process of a ``vtrans serve --workers N`` tree is, in a word or two."""
    if pid == parent:
        return "parent"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    if b"spawn_main" in command:
        return "worker"
    return "resource tracker" if b"resource_tracker" in command else "other"


def sockets(pid: int) -> int:
    """Open sockets of a process."""
    count = 0
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                count += os.readlink(fd.path).startswith("socket:")
            except OSError:
                continue
    except OSError:
        pass
    return count


async def settled_rss(service: ServerProcess) -> int:
    """The service's RSS once it stops moving (within 256 kB over 4 samples, at most 4 s)."""
    samples = [service.rss()]
    for _ in range(40):
        await asyncio.sleep(0.1)
        samples.append(service.rss())
        if len(samples) >= 4 and max(samples[-4:]) - min(samples[-4:]) < 256 * 1024:
            break
    return samples[-1]


async def measure(
    service: ServerProcess, waiters: int, holders: int, burst: int, every: float, probes: int, duration: float
) -> HeldRun:
    run = HeldRun(waiters)
    run.rss_fresh = service.rss()
    started = time.monotonic()
    ids = await create_jobs(service.port, [lambda: 3600.0] * waiters)
    run.create_seconds = time.monotonic() - started
    run.rss_jobs = await settled_rss(service)
    for _ in range(probes):
        run.idle_lags.append(await single_completion(service.port, duration))
    held = Holders(service.port, ids, HOLD, holders, max(1, burst // holders), every)
    try:
        started = time.monotonic()
        ports = await held.open()
        run.open_seconds = time.monotonic() - started
        run.held = await wait_held(service, set(ports), timeout=120)
        run.held_seconds = time.monotonic() - started
        if run.held < waiters:
            run.errors.append(f"only {run.held}/{waiters} long-polls were read in 120 s")
        run.rss_held = await settled_rss(service)
        pids = service.pids()
        run.pss_held = sum(pss(pid) for pid in pids)
        run.rss_each = [rss(pid) for pid in pids]
        run.sockets = [sockets(pid) for pid in pids]
        run.roles = [role(pid, service.pid) for pid in pids]
        probe = await connect(service.port)
        sent = time.time()
        await probe.send(request("GET", "/healthz"))
        run.healthz = time.time() - sent
        probe.abort()
        for _ in range(probes):
            run.held_lags.append(await single_completion(service.port, duration))
        run.early, errors = await held.close()
        run.errors += errors
    finally:
        held.kill()
    return run


def table(runs: list[HeldRun]) -> list[str]:
    def mb(values: list[int]) -> str:
        return spread([float(v) for v in values], 0, 1 / MB)

    rows = [
        ("waiters held / asked", " / ".join(f"{r.held}/{r.waiters}" for r in runs)),
        (
            "sockets per process",
            " / ".join(", ".join(f"{n} {k}" for k, n in zip(r.roles, r.sockets, strict=True)) for r in runs),
        ),
        ("create the jobs (s)", spread([r.create_seconds for r in runs], 1, 1)),
        ("open all connections (s)", spread([r.open_seconds for r in runs], 2, 1)),
        ("until all requests read, CPU quiet (s)", spread([r.held_seconds for r in runs], 2, 1)),
        ("RSS fresh, all processes (MB)", mb([r.rss_fresh for r in runs])),
        ("RSS with the jobs created, idle (MB)", mb([r.rss_jobs for r in runs])),
        ("**RSS with all waiters held, all processes (MB)**", mb([r.rss_held for r in runs])),
        (
            "RSS per process (MB)",
            " / ".join(
                ", ".join(f"{v / MB:.0f} {k}" for k, v in zip(r.roles, r.rss_each, strict=True)) for r in runs
            ),
        ),
        ("PSS with all held, all processes (MB)", mb([r.pss_held for r in runs])),
        ("per waiter (kB)", spread([(r.rss_held - r.rss_jobs) / r.waiters for r in runs], 1, 1 / 1024)),
        ("GET /healthz while held (ms)", spread([r.healthz for r in runs], 2)),
        (
            "single completion, before the waiters: lag each (ms)",
            " / ".join(", ".join(f"{x * 1e3:.2f}" for x in r.idle_lags) for r in runs),
        ),
        (
            "**single completion among the waiters: lag each (ms)**",
            " / ".join(", ".join(f"{x * 1e3:.2f}" for x in r.held_lags) for r in runs),
        ),
        ("waiters answered early (should be 0)", " / ".join(str(r.early) for r in runs)),
    ]
    return ["| measure | value (median, then each run; `/` separates runs) |", "|---|---|"] + [
        f"| {a} | {b} |" for a, b in rows
    ]


def goals(runs: list[HeldRun], memory: int = 600 * MB, lag: float = 0.005) -> list[tuple[bool, str]]:
    """Memory of all processes within ``memory``, and every single completion within ``lag``."""
    complete = all(r.held == r.waiters and not r.early for r in runs)
    worst_rss = max(r.rss_held for r in runs)
    lags = [max(r.held_lags, default=math.nan) for r in runs]
    return [
        (
            complete and worst_rss <= memory,
            f"RSS of all processes {spread([float(r.rss_held) for r in runs], 0, 1 / MB)} MB "
            f"(PSS {spread([float(r.pss_held) for r in runs], 0, 1 / MB)} MB); all held: "
            f"{'yes' if complete else 'no'}",
        ),
        (
            complete and max(lags) <= lag,
            f"worst single-completion lag per run {spread(lags, 2)} ms",
        ),
    ]
