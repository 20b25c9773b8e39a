"""Zero-lag waiting, end to end: the real service and the real client over loopback.

Two parts, each run on fresh ``vtrans serve`` processes (uvicorn, httptools, uvloop, SQLite store on a
temp file, ``--error-rate 0``) pinned to CPU 0, with this script pinned to CPU 1 (the method of
``shared/research/server-anchors.md``):

1. **Transports.** N jobs (``--jobs``, default 200) with durations drawn uniformly in
   [``--min-duration``, ``--max-duration``] (2-20 s, seeded) are waited for concurrently by one
   ``vtrans.AsyncClient``, once per transport, each on a fresh service:

   - ``poll, no hints``: ``PollPolicy(use_hints=False, long_poll=0)``, like a spec-literal client;
   - ``poll + hints``: ``transport="poll"`` (sleeps until the server's estimate);
   - ``long-poll``: ``transport="auto"`` (``Prefer: wait=30``);
   - ``SSE``: ``transport="sse"``;
   - ``long-poll x --lp-jobs`` (default 1,000): by the same client; by 10 clients of 100 jobs each
     (httpcore2's pool scans all its connections on every request: ~1.5 ms at 1,000); and by a
     raw-socket asyncio client (one keep-alive connection per job, no HTTP library) that isolates
     the service's part.

   Jobs are created first (raw sockets) so that they all end at ``T0 + D``, with ``T0`` after every
   wait has started. A request hook of the ``httpx2.AsyncClient`` given to ``vtrans.AsyncClient``
   counts requests per job. Its pool allows N + 16 connections (httpx2's default of 100 would queue
   the waits: a job that ends while its long-poll is queued is seen seconds late) and keeps
   httpx2's default of 20 idle ones alive (keeping them all makes httpcore2 probe every idle socket
   on every request: see ``--extras``). Detection lag is the client's ``time.time()`` when
   ``wait()`` returns minus the job's ``finished_at`` (one machine, one clock); the table also shows
   it at the client's response hook (headers in). Server CPU is user + system time of the
   service's process (``/proc/<pid>/stat``) across the waits, per job.

   ``--extras`` adds: the httpx2 client ``vtrans.AsyncClient`` makes itself (httpx2's default pool
   of 100 connections) at N; a pool that keeps all idle connections at ``--lp-jobs``;
   ``as_completed`` (one batch long-poll, ``POST /v1/jobs/wait``) at both sizes.

2. **Fan-out.** One service holds ``--waiters`` (10,000) long-polls: as many jobs of an hour are
   created, then a raw-socket client opens one keep-alive connection per job in bursts (500 every
   50 ms), each sending ``GET /v1/jobs/{id}`` with ``Prefer: wait=120``. "All held" is read from
   ``/proc/net/tcp`` (every one of those connections established on the service's side with an
   empty receive queue, i.e. its request read) and a quiet server CPU. Then: the service's RSS
   idle and with all held; the lag of single jobs of ~2 s completing among them (a long-poll on
   one more connection: arrival minus ``finished_at``), against the same on the idle service;
   and the time from ``DELETE`` of one held job to its waiter's answer.

Before timing anything it waits (bounded by ``--wait-quiet``) until no other benchmark runs
(``wrk``, ``throughput.py``, ``polling.py``, ``pytest``) and says in the report what ran alongside.

Run from the repository root (about 6.5 minutes, 4 more with ``--extras``; ``--quick`` is a ~30 s
smoke run)::

    .venv/bin/python benchmarks/e2e.py [--repeat 2] [--jobs 200] [--lp-jobs 1000] [--waiters 10000]

The report (Markdown) goes to stdout, progress to stderr; ``--json FILE`` also saves every number.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import json
import math
import os
import platform
import random
import re
import resource
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx2

import vtrans
from machine import (
    ROOT,
    Load,
    kind,
    machine_line,
    more_open_files,
    own_cpu,
    raise_nofile,
    source_state,
    version,
    wait_until_quiet,
)
from processes import ServerProcess, free_port
from rawhttp import (
    RawConnection,
    Reply,
    connect,
    create_jobs,
    finished_at,
    long_poll,
    request,
    single_completion,
    wait_held,
)
from stats import median, ms, pct, spread
from vtrans.client.waiting import Transport

try:
    import uvloop
except ImportError:  # pragma: no cover - the service itself needs it (uvicorn[standard])
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")
PACKAGES = ("vtrans", "httpx2", "httpcore2", "uvicorn", "uvloop", "httptools", "starlette", "msgspec")
JOB_ID = re.compile(r"job_[0-9a-f]{32}")
#: The hold the client asks for (``PollPolicy.long_poll``) and the cap the part-1 services apply.
CLIENT_HOLD = 30


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the machine ---------------------------------------------------------------------------------


def facts(source: str) -> list[str]:
    packages = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    loop = f"uvloop {version('uvloop')}" if uvloop is not None else "asyncio"
    return [
        machine_line(),
        f"- Python {platform.python_version()}; {packages}; vtrans at {source}"
        + ("" if Path(vtrans.__file__).is_relative_to(ROOT) else f", **imported from {vtrans.__file__}**"),
        f"- open-files limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]} (client and service); "
        f"somaxconn {Path('/proc/sys/net/core/somaxconn').read_text().strip()}; the service listens "
        f"with backlog 4096 (vtrans.server.run)",
        f"- client loops: the vtrans.AsyncClient runs on the default asyncio loop (what an "
        f"application gets); the raw-socket clients on {loop}",
    ]


# --- the service ---------------------------------------------------------------------------------


class Service(ServerProcess):
    """``vtrans serve`` on a free port and a fresh SQLite file, started and stopped in bounded time."""

    def __init__(self, workdir: Path, name: str, max_wait: float, cpu: int | None) -> None:
        port = free_port()
        python = ROOT / ".venv" / "bin" / "python"
        argv = [
            str(python if python.exists() else sys.executable), "-m", "vtrans", "serve",
            "--port", str(port), "--db", str(workdir / f"{name}.db"),
            "--error-rate", "0", "--max-wait", f"{max_wait:g}",
        ]  # fmt: skip
        super().__init__(name, argv, port, workdir, cpu, preexec_fn=more_open_files)


@contextmanager
def running(workdir: Path, name: str, max_wait: float, cpu: int | None) -> Iterator[Service]:
    service = Service(workdir, name, max_wait, cpu)
    service.start()
    try:
        yield service
    finally:
        service.stop()


# --- part 1: transports --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    #: ``library``: vtrans.AsyncClient.wait; ``raw``: one raw long-poll connection per job;
    #: ``batch``: AsyncClient.as_completed (POST /v1/jobs/wait).
    kind: Literal["library", "raw", "batch"]
    transport: Transport = "auto"
    policy: vtrans.PollPolicy | None = None
    #: ``raised``: an httpx2 pool of N + 16 connections (per client); ``library``: the httpx2
    #: client ``vtrans.AsyncClient`` makes itself (what an application gets by default).
    pool: Literal["raised", "library"] = "raised"
    #: Idle connections a pool keeps alive (httpx2's default is 20; ``None``: all of them).
    keepalive: int | None = 20
    #: Run with ``--lp-jobs`` jobs rather than ``--jobs``.
    big: bool = False
    #: Compare the requests per job with ceil(D / W) + 1.
    bounded: bool = False
    #: Spread the waits over this many clients (job i on client i mod shards), each its own pool.
    shards: int = 1


ROWS = (
    Row("plain", "poll, no hints (spec-literal-like)", "library", "poll",
        vtrans.PollPolicy(use_hints=False, long_poll=0)),
    Row("hints", "poll + hints", "library", "poll"),
    Row("long-poll", "long-poll (`auto`)", "library", "auto", bounded=True),
    Row("sse", "SSE", "library", "sse"),
    Row("long-poll-big", "long-poll (`auto`)", "library", "auto", big=True, bounded=True),
    Row("sharded-big", "long-poll (`auto`), 10 clients", "library", "auto", big=True, bounded=True,
        shards=10),
    Row("raw-big", "long-poll, raw-socket client", "raw", big=True, bounded=True),
)  # fmt: skip
EXTRA_ROWS = (
    Row("default-pool", "long-poll (`auto`), the AsyncClient's own httpx2 client", "library", "auto",
        pool="library", bounded=True),
    Row("batch", "`as_completed` (POST /v1/jobs/wait)", "batch"),
    Row("keepalive-big", "long-poll (`auto`), pool keeps all idle connections", "library", "auto",
        big=True, bounded=True, keepalive=None),
    Row("batch-big", "`as_completed` (POST /v1/jobs/wait)", "batch", big=True),
)  # fmt: skip


@dataclass
class WaitRun:
    row: str
    label: str
    n: int
    requests: list[int] = field(default_factory=list)
    #: ceil(D / W) + 1 per job, D measured from the wait's first request to finished_at.
    bounds: list[int] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    wall: float = 0.0
    #: Jobs whose first request left after they had finished (their lag would mean nothing).
    late: int = 0
    failures: int = 0
    #: Every request the waits sent (for the batch row, which has no job id in its path).
    total_requests: int = 0
    #: Per job, ``time.time()`` when the response hook saw its last answer's headers - finished_at.
    hook_lags: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Cores kept busy by other processes during the run, and the other benchmarks seen.
    other_load: float = 0.0
    others: list[str] = field(default_factory=list)

    @property
    def within_bound(self) -> int:
        return sum(r <= b for r, b in zip(self.requests, self.bounds, strict=True))


@dataclass
class Plan:
    """When each job ends: ``T0 + offsets[i]``, ``T0`` after every wait has started."""

    offsets: list[float]
    margin: float

    def durations(self) -> list[Callable[[], float]]:
        """Per job, its duration if created now: so that it ends at ``T0 + offset``."""
        t0 = time.time() + self.margin

        def until(offset: float) -> Callable[[], float]:
            return lambda: max(0.05, t0 + offset - time.time())

        return [until(d) for d in self.offsets]


def plan(n: int, lo: float, hi: float, seed: int) -> Plan:
    rng = random.Random(seed)
    # Creating the jobs and sending the first request of each wait take ~3 ms per job here.
    return Plan([rng.uniform(lo, hi) for _ in range(n)], margin=0.5 + 0.004 * n)


async def library_run(service: Service, row: Row, p: Plan, timeout: float) -> WaitRun:
    n = len(p.offsets)
    run = WaitRun(row.key, row.label, n)
    ids = await create_jobs(service.port, p.durations())
    counts: collections.Counter[str] = collections.Counter()
    first: dict[str, float] = {}
    answered: dict[str, float] = {}

    async def on_request(req: httpx2.Request) -> None:
        match = JOB_ID.search(req.url.path)
        if match is not None:
            counts[match[0]] += 1
            first.setdefault(match[0], time.time())
        else:
            counts["*"] += 1

    async def on_response(response: httpx2.Response) -> None:
        match = JOB_ID.search(response.request.url.path)
        if match is not None:
            answered[match[0]] = time.time()

    size = math.ceil(n / row.shards) + 16
    limits = httpx2.Limits(max_connections=size, max_keepalive_connections=row.keepalive or size)
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [on_request], "response": [on_response]}
    clients = [
        vtrans.AsyncClient(
            service.url,
            poll=row.policy,
            http_client=httpx2.AsyncClient(
                base_url=service.url, timeout=10.0, limits=limits, event_hooks=hooks, trust_env=False
            )
            if row.pool == "raised"
            else None,
        )
        for _ in range(row.shards)
    ]
    if row.pool == "library":
        for c in clients:  # the library's own httpx2 client, untouched but for the counting hooks
            c._http.event_hooks = hooks
    done: dict[str, float] = {}
    jobs: dict[str, vtrans.Job] = {}
    try:
        client = clients[0]

        async def one(i: int, job_id: str) -> None:
            try:
                job = await clients[i % len(clients)].wait(
                    job_id, timeout=timeout, raise_on_error=False, transport=row.transport
                )
            except vtrans.VtransError as exc:
                run.failures += 1
                run.errors.append(f"{job_id}: {exc!r}"[:200])
                return
            done[job_id] = time.time()
            jobs[job_id] = job

        async def batch() -> None:
            try:
                async for job in client.as_completed(ids, timeout=timeout):
                    assert job.id is not None
                    done[job.id] = time.time()
                    jobs[job.id] = job
            except vtrans.VtransError as exc:
                run.failures += n - len(done)
                run.errors.append(repr(exc)[:200])

        load, cpu, mine, wall = Load(), service.cpu_seconds(), own_cpu(), time.monotonic()
        if row.kind == "batch":
            await batch()
        else:
            await asyncio.gather(*(one(i, job_id) for i, job_id in enumerate(ids)))
        run.wall = time.monotonic() - wall
        run.client_cpu = own_cpu() - mine
        await asyncio.sleep(0.2)  # let the service close what the last answers left open
        run.server_cpu = service.cpu_seconds() - cpu
        run.other_load, run.others = load.cores(run.server_cpu), sorted(load.seen)
    finally:
        for c in clients:
            await c.aclose()
    for job_id in ids:
        job = jobs.get(job_id)
        if job is None or job.finished_at is None:
            continue
        end = job.finished_at.timestamp()
        run.lags.append(done[job_id] - end)
        if job_id in answered and row.transport != "sse":  # an SSE answer starts the stream
            run.hook_lags.append(answered[job_id] - end)
        if row.kind == "batch":
            continue
        start = first.get(job_id, end)
        run.late += start >= end
        run.requests.append(counts[job_id])
        run.bounds.append(math.ceil((end - start) / CLIENT_HOLD) + 1)
    run.total_requests = sum(counts.values())
    return run


async def raw_run(service: Service, row: Row, p: Plan, timeout: float) -> WaitRun:
    """Each job long-polled on its own raw keep-alive connection, re-asked until it is done."""
    n = len(p.offsets)
    run = WaitRun(row.key, row.label, n)
    ids = await create_jobs(service.port, p.durations())
    load, cpu, mine, wall = Load(), service.cpu_seconds(), own_cpu(), time.monotonic()
    conns: list[RawConnection] = []
    for start in range(0, n, 500):
        conns += await asyncio.gather(*(connect(service.port) for _ in ids[start : start + 500]))

    async def one(conn: RawConnection, job_id: str) -> None:
        sent, asked = time.time(), 0
        while True:
            asked += 1
            reply = await conn.send(long_poll(job_id, CLIENT_HOLD))
            body = reply.json()
            if reply.status != 200:
                raise RuntimeError(f"GET {job_id} answered {reply.status}: {body}")
            if body["result"] != "pending":
                end = finished_at(body)
                run.lags.append(reply.arrived - end)
                run.requests.append(asked)
                run.bounds.append(math.ceil((end - sent) / CLIENT_HOLD) + 1)
                run.late += sent >= end
                run.total_requests += asked
                return

    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(one(c, j) for c, j in zip(conns, ids, strict=True)), return_exceptions=True),
            timeout,
        )
    finally:
        for conn in conns:
            conn.abort()
    for result in results:
        if isinstance(result, BaseException):
            run.failures += 1
            run.errors.append(repr(result)[:200])
    run.wall = time.monotonic() - wall
    run.client_cpu = own_cpu() - mine
    await asyncio.sleep(0.2)
    run.server_cpu = service.cpu_seconds() - cpu
    run.other_load, run.others = load.cores(run.server_cpu), sorted(load.seen)
    return run


def run_async(make: Callable[[], Coroutine[Any, Any, T]], fast_loop: bool) -> T:
    """Run a coroutine on a new loop: uvloop for the raw-socket clients, else asyncio's own."""
    if fast_loop and uvloop is not None:
        loop = uvloop.new_event_loop()
        try:
            return loop.run_until_complete(make())
        finally:
            loop.close()
    return asyncio.run(make())


def transports(args: argparse.Namespace, workdir: Path, rows: Sequence[Row]) -> list[WaitRun]:
    small = plan(args.jobs, args.min_duration, args.max_duration, args.seed)
    big = plan(args.lp_jobs, args.min_duration, args.max_duration, args.seed + 1)
    timeout = args.max_duration + big.margin + 60
    runs = []
    for rep in range(args.repeat):
        for row in rows:
            p = big if row.big else small
            with running(workdir, f"{row.key}-{rep}", CLIENT_HOLD, args.server_cpu) as service:
                log(f"part 1, run {rep + 1}/{args.repeat}: {row.label}, {len(p.offsets)} jobs")
                if row.kind == "raw":
                    run = run_async(functools.partial(raw_run, service, row, p, timeout), True)
                else:
                    run = run_async(functools.partial(library_run, service, row, p, timeout), False)
            log(
                f"  lag p50 {ms(pct(run.lags, 50))} p99 {ms(pct(run.lags, 99))} "
                f"max {ms(max(run.lags, default=math.nan))} ms; "
                f"{statistics.fmean(run.requests) if run.requests else math.nan:.2f} req/job; "
                f"server CPU {run.server_cpu / run.n * 1e3:.2f} ms/job; failures {run.failures}; "
                f"other load {run.other_load:.2f} cores"
            )
            runs.append(run)
    return runs


def transports_table(runs: Sequence[WaitRun], rows: Sequence[Row]) -> list[str]:
    lines = [
        "| transport | jobs | req/job mean | req/job max | ⌈D/W⌉+1 (max) | ≤ bound | lag p50 ms | lag p99 ms "
        "| lag max ms | lag p99 at the response hook, ms | service CPU ms/job | client CPU ms/job "
        "| failures | other load (cores) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        mine = [r for r in runs if r.row == row.key]
        if not mine:
            continue
        n = mine[0].n
        means = [statistics.fmean(r.requests) if r.requests else math.nan for r in mine]
        maxes = [max(r.requests, default=0) for r in mine]
        hook = spread([pct(r.hook_lags, 99) for r in mine]) if any(r.hook_lags for r in mine) else "-"
        if row.kind == "batch":
            mean = " / ".join(f"{r.total_requests / r.n:.2f}" for r in mine)
            bound, within, most = "-", "-", "-"
        else:
            mean = " / ".join(f"{m:.2f}" for m in means)
            most = " / ".join(str(m) for m in maxes)
            bound = str(max((max(r.bounds, default=0) for r in mine), default=0))
            within = (
                " / ".join(f"{r.within_bound}/{len(r.requests)}" for r in mine) if row.bounded else "(n/a)"
            )
        lines.append(
            f"| {row.label} | {n} | {mean} | {most} | {bound} | {within} "
            f"| {spread([pct(r.lags, 50) for r in mine])} | {spread([pct(r.lags, 99) for r in mine])} "
            f"| {spread([max(r.lags, default=math.nan) for r in mine])} "
            f"| {hook} "
            f"| {spread([r.server_cpu / r.n for r in mine], 2)} "
            f"| {spread([r.client_cpu / r.n for r in mine], 2)} "
            f"| {' / '.join(str(r.failures + r.late) for r in mine)} "
            f"| {' / '.join(f'{r.other_load:.2f}' for r in mine)} |"
        )
    return lines


# --- part 2: fan-out -----------------------------------------------------------------------------


@dataclass
class Fanout:
    waiters: int
    rss_fresh: int = 0
    rss_jobs: int = 0
    rss_held: int = 0
    create_seconds: float = 0.0
    open_seconds: float = 0.0
    #: From the first connection to every request read and the service's CPU quiet.
    held_seconds: float = 0.0
    held: int = 0
    open_cpu: float = 0.0
    #: One job of ~2 s completing on an idle service, then among the held waiters: arrival - finished_at.
    idle_lags: list[float] = field(default_factory=list)
    held_lags: list[float] = field(default_factory=list)
    #: DELETE of a held job: sent -> its waiter's answer; finished_at -> the answer; sent -> DELETE's answer.
    cancel_lags: list[float] = field(default_factory=list)
    cancel_server: list[float] = field(default_factory=list)
    cancel_replies: list[float] = field(default_factory=list)
    probe_healthz: float = 0.0
    #: ``waiting`` of ``GET /healthz`` while all are held, if the service reports it.
    gauge: int | None = None
    #: Waiters answered before their time (none should be).
    early: int = 0
    errors: list[str] = field(default_factory=list)
    other_load: float = 0.0
    others: list[str] = field(default_factory=list)


async def fanout_run(service: Service, args: argparse.Namespace) -> Fanout:
    n = args.waiters
    result = Fanout(n)
    load, service_cpu = Load(), service.cpu_seconds()
    result.rss_fresh = service.rss()
    started = time.monotonic()
    ids = await create_jobs(service.port, [lambda: 3600.0] * n)
    result.create_seconds = time.monotonic() - started
    result.rss_jobs = service.rss()
    for _ in range(args.probes):
        result.idle_lags.append(await single_completion(service.port, args.probe_duration))

    # Open n connections in bursts, each asking to hold its job for 120 s.
    conns: list[RawConnection] = []
    answers: list[asyncio.Future[Reply]] = []
    cpu, started = service.cpu_seconds(), time.monotonic()
    try:
        for start in range(0, n, args.burst):
            chunk = ids[start : start + args.burst]
            opened = await asyncio.gather(*(connect(service.port) for _ in chunk))
            answers += [c.send(long_poll(job_id, 120)) for c, job_id in zip(opened, chunk, strict=True)]
            conns += opened
            if start + args.burst < n:
                await asyncio.sleep(args.burst_every)
        result.open_seconds = time.monotonic() - started
        result.held = await wait_held(service, {c.local_port for c in conns}, timeout=60)
        result.held_seconds = time.monotonic() - started
        result.open_cpu = service.cpu_seconds() - cpu
        if result.held < n:
            result.errors.append(f"only {result.held}/{n} requests were read by the service in 60 s")
        # RSS once it stops moving.
        samples = [service.rss()]
        for _ in range(40):
            await asyncio.sleep(0.1)
            samples.append(service.rss())
            if len(samples) >= 4 and max(samples[-4:]) - min(samples[-4:]) < 256 * 1024:
                break
        result.rss_held = samples[-1]
        probe = await connect(service.port)
        sent = time.time()
        health = await probe.send(request("GET", "/healthz"))
        result.probe_healthz = health.arrived - sent
        result.gauge = health.json().get("waiting")
        probe.abort()

        for _ in range(args.probes):
            result.held_lags.append(await single_completion(service.port, args.probe_duration))

        rng = random.Random(args.seed)
        for i in rng.sample(range(n), min(args.cancels, n)):
            control = await connect(service.port)
            sent = time.time()
            deleted = control.send(request("DELETE", f"/v1/jobs/{ids[i]}"))
            answer = await asyncio.wait_for(answers[i], 30)
            reply = await asyncio.wait_for(deleted, 30)
            control.abort()
            body = answer.json()
            if body.get("result") != "error" or (body.get("error") or {}).get("code") != "cancelled":
                result.errors.append(f"cancelled waiter answered {body}")
            result.cancel_lags.append(answer.arrived - sent)
            result.cancel_server.append(answer.arrived - finished_at(body))
            result.cancel_replies.append(reply.arrived - sent)
            answers[i] = asyncio.get_running_loop().create_future()  # not counted as early below
        result.early = sum(1 for a in answers if a.done())
    finally:
        for conn in conns:
            conn.abort()
    result.other_load = load.cores(service.cpu_seconds() - service_cpu)
    result.others = sorted(load.seen)
    return result


def fanouts(args: argparse.Namespace, workdir: Path) -> list[Fanout]:
    results = []
    for rep in range(args.repeat):
        with running(workdir, f"fanout-{rep}", 120, args.server_cpu) as service:
            log(f"part 2, run {rep + 1}/{args.repeat}: {args.waiters} long-poll waiters")
            result = run_async(functools.partial(fanout_run, service, args), True)
        log(
            f"  RSS {result.rss_held / 2**20:.0f} MB held ({result.held}/{result.waiters}); "
            f"single completion among them {', '.join(ms(x, 2) for x in result.held_lags)} ms; cancel "
            f"{', '.join(ms(x, 2) for x in result.cancel_lags)} ms; other load {result.other_load:.2f} cores"
        )
        results.append(result)
    return results


def fanout_table(results: Sequence[Fanout]) -> list[str]:
    def mb(values: Sequence[int]) -> str:
        return spread([float(v) for v in values], 0, 1 / 2**20)

    rows = [
        ("waiters held / asked", " / ".join(f"{r.held}/{r.waiters}" for r in results)),
        ("create the jobs (s)", spread([r.create_seconds for r in results], 1, 1)),
        ("open all connections (s)", spread([r.open_seconds for r in results], 2, 1)),
        ("until all requests read, CPU quiet (s)", spread([r.held_seconds for r in results], 2, 1)),
        ("service CPU to take them (µs/waiter)", spread([r.open_cpu / r.waiters for r in results], 0, 1e6)),
        ("RSS fresh (MB)", mb([r.rss_fresh for r in results])),
        ("RSS with the jobs created, idle (MB)", mb([r.rss_jobs for r in results])),
        ("**RSS with all waiters held (MB)**", mb([r.rss_held for r in results])),
        (
            "per waiter (kB)",
            spread([(r.rss_held - r.rss_jobs) / r.waiters for r in results], 1, 1 / 1024),
        ),
        ("GET /healthz while held (ms)", spread([r.probe_healthz for r in results], 2)),
        (
            "its `waiting` gauge (if the service has one)",
            " / ".join("-" if r.gauge is None else str(r.gauge) for r in results),
        ),
        (
            "single completion, idle service: lag each (ms)",
            " / ".join(", ".join(ms(x, 2) for x in r.idle_lags) for r in results),
        ),
        (
            "**single completion among the waiters: lag each (ms)**",
            " / ".join(", ".join(ms(x, 2) for x in r.held_lags) for r in results),
        ),
        (
            "**DELETE sent → its waiter's answer (ms)**",
            " / ".join(", ".join(ms(x, 2) for x in r.cancel_lags) for r in results),
        ),
        (
            "cancel's finished_at → waiter's answer (ms)",
            " / ".join(", ".join(ms(x, 2) for x in r.cancel_server) for r in results),
        ),
        (
            "DELETE sent → DELETE's own answer (ms)",
            " / ".join(", ".join(ms(x, 2) for x in r.cancel_replies) for r in results),
        ),
        ("waiters answered early (should be 0)", " / ".join(str(r.early) for r in results)),
        ("other load during the run (cores)", " / ".join(f"{r.other_load:.2f}" for r in results)),
    ]
    return ["| measure | value (median, then each run) |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]


# --- the report ----------------------------------------------------------------------------------


def reproduce(argv: Sequence[str]) -> str:
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    return shlex.join([str(python), str(Path(__file__).resolve().relative_to(ROOT)), *argv])


def goals(runs: Sequence[WaitRun], fans: Sequence[Fanout], args: argparse.Namespace) -> list[str]:
    lines = []
    for key, who in (
        ("long-poll-big", "one vtrans.AsyncClient"),
        ("sharded-big", f"10 vtrans.AsyncClients of {math.ceil(args.lp_jobs / 10)} waits each"),
        ("raw-big", "a raw-socket client: the service's part, without an HTTP library's cost"),
    ):
        mine = [r for r in runs if r.row == key]
        if not mine:
            continue
        p99s = [pct(r.lags, 99) for r in mine]
        within = all(r.within_bound == len(r.requests) == r.n for r in mine)
        ok = median(p99s) <= 0.005 and within
        lines.append(
            f"- Long-poll lag p99 ≤ 5 ms at {args.lp_jobs} concurrent waits with ≤ ⌈D/W⌉+1 requests per job, "
            f"from {who}: **{'met' if ok else 'not met'}**: p99 {spread(p99s, 2)} ms (median, then each "
            f"run); requests within the bound for every job: {'yes' if within else 'no'}."
        )
    if fans:
        rss = [r.rss_held for r in fans]
        lags = [max(r.held_lags, default=math.nan) for r in fans]
        ok = max(rss) <= 250 * 2**20 and max(lags) <= 0.005 and all(r.held == r.waiters for r in fans)
        lines.append(
            f"- {args.waiters} waiters in ≤ 250 MB with one completion among them seen in ≤ 5 ms: "
            f"**{'met' if ok else 'not met'}**: RSS {spread([float(v) for v in rss], 0, 1 / 2**20)} MB, "
            f"worst single-completion lag per run {spread(lags, 2)} ms."
        )
    return lines


def report(
    machine: list[str],
    args: argparse.Namespace,
    argv: Sequence[str],
    rows: Sequence[Row],
    runs: Sequence[WaitRun],
    fans: Sequence[Fanout],
    quiet: list[str],
    elapsed: float,
) -> str:
    out = [f"## vtrans end to end ({'quick smoke run' if args.quick else 'full run'}, {elapsed:.0f} s)", ""]
    out += [*goals(runs, fans, args), ""]
    pin = (
        f"service pinned to CPU {args.server_cpu}, this client to CPU {args.client_cpu}"
        if args.server_cpu is not None
        else "no CPU pinning"
    )
    if runs:
        out += [
            f"### 1. Transports: {args.jobs} concurrent waits (and {args.lp_jobs} for the long-poll rows "
            f"marked so), durations uniform {args.min_duration:g}-{args.max_duration:g} s (seed {args.seed})",
            "",
            f"Each run on a fresh service (`--max-wait {CLIENT_HOLD} --error-rate 0`, SQLite), {pin}; one "
            f"`vtrans.AsyncClient` over an `httpx2.AsyncClient` with `httpx2.Limits(max_connections=N + 16, "
            f"max_keepalive_connections=20)` unless the row says otherwise (httpx2's default of 100 "
            f"connections would queue the waits). "
            f"W = {CLIENT_HOLD} s (the client's hold). Lag = `time.time()` when `wait()` returns "
            f"(raw: when the answer's last byte arrives) - the job's `finished_at`. CPU = user + system. "
            f"Cells: the median over {args.repeat} run(s), then each run's value; `/` separates runs.",
            "",
            *transports_table(runs, rows),
            "",
            "`failures` counts waits that raised plus jobs whose first request left after they ended (0 "
            "means every lag above is a true detection lag).",
            "",
        ]
    if fans:
        out += [
            f"### 2. Fan-out: {args.waiters} long-poll waiters on one service process",
            "",
            f"{args.waiters} jobs of 3600 s (one per waiter), created over 32 raw keep-alive connections; "
            f"then one raw keep-alive connection per job, opened {args.burst} every "
            f"{args.burst_every * 1e3:.0f} ms, each sending `GET /v1/jobs/{{id}}` with `Prefer: wait=120` "
            f"(service `--max-wait 120`). Single completion: a job of {args.probe_duration:g} s created, "
            f"then long-polled on one more connection ({args.probes} in a row). Cancel: `DELETE` of "
            f"{args.cancels} held job(s) on a new connection. {pin}. {args.repeat} run(s), each on a "
            f"fresh service.",
            "",
            *fanout_table(fans),
            "",
        ]
    seen = collections.Counter(
        kind(o) for o in {o for r in runs for o in r.others} | {o for f in fans for o in f.others}
    )
    loads = [r.other_load for r in runs] + [f.other_load for f in fans]
    out += [
        "### Conditions",
        "",
        *machine,
        "- before the runs: "
        + ("no other benchmark, background load under 0.25 core" if not quiet else f"still busy: {quiet}"),
        "- other benchmark processes seen during the runs: "
        + (", ".join(f"{k} x{v}" for k, v in sorted(seen.items())) if seen else "none")
        + (f"; other load per run {min(loads):.2f}-{max(loads):.2f} cores (see the tables)" if loads else ""),
        "",
        "Reproduce (from the repository root):",
        "",
        f"    {reproduce(argv)}",
    ]
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (~30 s)")
    parser.add_argument("--part", choices=("all", "transports", "fanout"), default="all")
    parser.add_argument("--repeat", type=int, default=None, help="runs of each part (default 2; quick 1)")
    parser.add_argument("--jobs", type=int, default=None, help="concurrent waits per transport (200)")
    parser.add_argument("--lp-jobs", type=int, default=None, help="concurrent long-polls, big rows (1000)")
    parser.add_argument("--min-duration", type=float, default=None, help="shortest job, s (2)")
    parser.add_argument("--max-duration", type=float, default=None, help="longest job, s (20)")
    parser.add_argument("--waiters", type=int, default=None, help="part 2: held long-polls (10000)")
    parser.add_argument("--probes", type=int, default=None, help="part 2: single completions timed (3)")
    parser.add_argument("--probe-duration", type=float, default=2.0, help="part 2: their duration, s")
    parser.add_argument("--cancels", type=int, default=None, help="part 2: held jobs cancelled (3)")
    parser.add_argument("--burst", type=int, default=500, help="part 2: connections per burst")
    parser.add_argument("--burst-every", type=float, default=0.05, help="part 2: seconds between bursts")
    parser.add_argument("--extras", action="store_true", help="part 1: add the rows that explain the pool")
    parser.add_argument(
        "--rows",
        help="part 1: only these rows, comma-separated: " + ", ".join(r.key for r in (*ROWS, *EXTRA_ROWS)),
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU for the service (-1: no pinning)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU for this script")
    parser.add_argument("--wait-quiet", type=float, default=900, help="max s to wait for other benchmarks")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "repeat": 1 if quick else 2,
        "jobs": 20 if quick else 200,
        "lp_jobs": 100 if quick else 1000,
        "min_duration": 0.5 if quick else 2.0,
        "max_duration": 1.5 if quick else 20.0,
        "waiters": 1000 if quick else 10000,
        "probes": 2 if quick else 3,
        "cancels": 1 if quick else 3,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if quick:
        args.probe_duration = min(args.probe_duration, 1.0)
    if args.repeat < 1 or args.jobs < 1 or args.lp_jobs < 1 or args.waiters < 1:
        parser.error("--repeat, --jobs, --lp-jobs and --waiters must be >= 1")
    if not 0 < args.min_duration <= args.max_duration:
        parser.error("need 0 < --min-duration <= --max-duration")
    cpus = os.sched_getaffinity(0)
    if args.server_cpu < 0 or len(cpus) < 2 or not {args.server_cpu, args.client_cpu} <= cpus:
        args.server_cpu = None
    elif args.server_cpu == args.client_cpu:
        parser.error("--server-cpu and --client-cpu must differ")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    limit = raise_nofile()
    if args.waiters + 200 > limit:
        sys.exit(f"the open-files hard limit is {limit}: too low for {args.waiters} waiters")
    if args.server_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    rows = [*ROWS, *EXTRA_ROWS] if args.extras else list(ROWS)
    if args.rows:
        wanted = set(args.rows.split(","))
        rows = [r for r in (*ROWS, *EXTRA_ROWS) if r.key in wanted]
        if len(rows) != len(wanted):
            sys.exit(f"unknown rows in --rows {args.rows}")
    quiet = wait_until_quiet(args.wait_quiet, say=log)
    source, fingerprint = source_state()
    machine = facts(source)
    started = time.monotonic()
    runs: list[WaitRun] = []
    fans: list[Fanout] = []
    with tempfile.TemporaryDirectory(prefix="vtrans-e2e-") as tmp:
        if args.part in ("all", "transports"):
            runs = transports(args, Path(tmp), rows)
        if args.part in ("all", "fanout"):
            fans = fanouts(args, Path(tmp))
    if source_state()[1] != fingerprint:
        machine.append(f"- **the code changed during the run** (at the end: {source_state()[0]})")
    print(report(machine, args, argv, rows, runs, fans, quiet, time.monotonic() - started))
    if args.json is not None:
        data = {"args": {k: str(v) for k, v in vars(args).items()}, "transports": [asdict(r) for r in runs]}
        data["fanout"] = [asdict(f) for f in fans]
        args.json.write_text(json.dumps(data, indent=1))
    for run in runs:
        for error in run.errors[:3]:
            log(f"{run.row}: {error}")
    for fan in fans:
        for error in fan.errors:
            log(f"fanout: {error}")


if __name__ == "__main__":
    main()
