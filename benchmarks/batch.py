"""Waiting for many jobs at once: what it costs the service, and what it costs everyone else.

Two parts, each on fresh ``vtrans serve --store memory`` processes (uvicorn, httptools, uvloop)
pinned to CPU 0, this script, its clients and the probe on CPU 1:

1. **Scaling** (issue 13). N jobs (``--sizes``, default 1,000 and 10,000) end spread over 10 s;
   one ``vtrans.AsyncClient.as_completed`` waits for all of them — one event stream of a ``done``
   per job (``POST /v1/jobs/wait`` with ``Accept: text/event-stream``). The service's bytes read
   and written (``/proc/<pid>/io``: the sockets, as the memory store writes nothing) and its CPU
   time during the wait, per job, and the lag (arrival minus ``finished_at``). For contrast, the
   same client with the stream stripped from its requests (an older service's protocol: held JSON
   batches, every pending id sent again each round) at the smallest size.
2. **Batch load** (issue 10). 1,000 jobs of an hour; ``--waiters`` (200) raw connections each
   hold ``POST /v1/jobs/wait`` with all 1,000 ids (``Prefer: wait=30``), and ask again as soon as
   they are answered; ``--churn`` (100) of the jobs are cancelled one by one meanwhile, so that
   every batch wait wakes, answers and is sent again, 100 times. Throughout, a probe sends plain
   ``GET /v1/jobs/{id}`` back to back: its latency p50/p99, against the same probe on the idle
   service.

Run from the repository root (about 2 minutes); the report goes to stdout and replaces its section
of BENCHMARKS.md (``--report``)::

    .venv/bin/python benchmarks/batch.py [--sizes 1000,10000] [--waiters 200] [--churn 100]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx2

import sections
import vtrans
from machine import ROOT, machine_line, more_open_files, version
from processes import ServerProcess, free_port
from rawhttp import connect, create_jobs, request
from stats import ms, pct

PACKAGES = ("vtrans", "httpx2", "uvicorn", "uvloop", "httptools", "starlette", "msgspec")


def io_bytes(pid: int) -> int:
    """Bytes the process has read and written (``rchar`` + ``wchar``), sockets included."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


#: The service on one core, everything else (this script, its clients and the probe) on the
#: other: the service's latencies are then its own.
SERVICE_CPU, CLIENT_CPU = 0, 1


@contextmanager
def service(workdir: Path, name: str) -> Iterator[ServerProcess]:
    port = free_port()
    argv = [
        sys.executable, "-m", "vtrans", "serve", "--port", str(port), "--store", "memory",
        "--error-rate", "0", "--delay", "86400", "--max-held", "100000",
    ]  # fmt: skip
    server = ServerProcess(name, argv, port, workdir, SERVICE_CPU, preexec_fn=more_open_files)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _left(end: float) -> float:
    """Seconds from now to ``end``: a job created now ends then."""
    return end - time.time()


def when(job: vtrans.Job) -> float:
    assert job.finished_at is not None
    return job.finished_at.timestamp()


# --- 1. scaling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scaling:
    protocol: str
    jobs: int
    bytes_per_job: float
    cpu_per_job: float
    requests: int
    lags: list[float]


async def scaling_run(server: ServerProcess, n: int, stream: bool) -> Scaling:
    start = time.time() + 2.0 + n / 1000  # after the creates (about 0.5 ms each)
    ends = sorted(start + random.uniform(0, 10) for _ in range(n))
    ids = await create_jobs(server.port, [functools.partial(_left, end) for end in ends])
    sent: list[int] = [0]

    async def on_request(req: httpx2.Request) -> None:
        sent[0] += 1
        if not stream:
            req.headers.pop("accept", None)  # as an older service would be asked

    http = httpx2.AsyncClient(base_url=server.url, timeout=60, event_hooks={"request": [on_request]})
    lags: list[float] = []
    before_io, before_cpu = io_bytes(server.pid), server.cpu_seconds()
    began = time.time()  # a job that ended before the wait began is due at once, not at its end
    async with vtrans.AsyncClient(server.url, http_client=http) as client:
        async for job in client.as_completed(ids, timeout=120):
            lags.append(time.time() - max(when(job), began))
    io, cpu = io_bytes(server.pid) - before_io, server.cpu_seconds() - before_cpu
    name = "one event stream" if stream else "held JSON batches (an older protocol)"
    return Scaling(name, n, io / n, cpu / n, sent[0], lags)


def scaling(workdir: Path, sizes: list[int]) -> list[Scaling]:
    runs = []
    for n in sizes:
        with service(workdir, f"scaling-{n}") as server:
            runs.append(asyncio.run(scaling_run(server, n, stream=True)))
    with service(workdir, "scaling-json") as server:
        runs.append(asyncio.run(scaling_run(server, min(sizes), stream=False)))
    return runs


def scaling_table(runs: list[Scaling]) -> list[str]:
    lines = [
        "| protocol | jobs | requests | service bytes per job | service CPU per job | lag p50 | lag p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.protocol} | {r.jobs:,} | {r.requests:,} | {r.bytes_per_job:,.0f} B | "
            f"{r.cpu_per_job * 1e6:,.0f} µs | {ms(pct(r.lags, 50))} ms | {ms(pct(r.lags, 99))} ms |"
        )
    return lines


# --- 2. batch load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    label: str
    latencies: list[float]
    batch_answers: int
    #: The service's resident memory at the end, bytes.
    rss: int


#: The probe, in a process of its own (its latencies are the service's, not those of a client
#: loop it shares with 200 waiters): back-to-back GETs on one keep-alive connection.
PROBE = """
import http.client, json, sys, time
port, path, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
latencies, stop = [], time.monotonic() + seconds
while time.monotonic() < stop:
    sent = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    latencies.append(time.perf_counter() - sent)
print(json.dumps(latencies))
"""


async def probe(port: int, path: str, seconds: float) -> list[float]:
    """Back-to-back ``GET path`` for ``seconds``, from another process: each one's latency."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, str(port), path, str(seconds), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    latencies: list[float] = json.loads(out)
    return latencies


async def load_run(server: ServerProcess, waiters: int, churn: int, seconds: float) -> list[Load]:
    ids = await create_jobs(server.port, [lambda: 3600.0] * 1000)
    path = f"/v1/jobs/{ids[0]}"
    idle = await probe(server.port, path, seconds / 2)
    idle_rss = server.rss()
    answers = [0]
    done = asyncio.Event()

    async def waiter() -> None:
        """A client of the held-batch protocol: the pending ids, held; again without the finished."""
        pending = dict.fromkeys(ids)
        conn = await connect(server.port)
        try:
            while not done.is_set():
                body = json.dumps({"ids": list(pending)}).encode()
                reply = await conn.send(request("POST", "/v1/jobs/wait", {"Prefer": "wait=30"}, body))
                assert reply.status == 200, reply.body[:200]
                answers[0] += 1
                for job in reply.json()["items"]:
                    pending.pop(job["id"], None)
        finally:
            conn.abort()

    async def cancels() -> None:
        conn = await connect(server.port)
        try:
            for job_id in ids[len(ids) - churn :]:
                await asyncio.sleep(seconds / churn)
                await conn.send(request("DELETE", f"/v1/jobs/{job_id}"))
        finally:
            conn.abort()

    tasks = [asyncio.create_task(waiter()) for _ in range(waiters)]
    await asyncio.sleep(2.0)  # the waits are all held before the probe starts
    churning = asyncio.create_task(cancels())
    loaded = await probe(server.port, path, seconds)
    loaded_rss = server.rss()
    done.set()
    await churning
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [
        Load("idle service", idle, 0, idle_rss),
        Load(f"{waiters} batch waits of 1,000 ids, {churn} cancels", loaded, answers[0], loaded_rss),
    ]


def load_table(loads: list[Load]) -> list[str]:
    lines = [
        "| `GET /v1/jobs/{id}` meanwhile | requests | p50 | p99 | max | batch answers sent | service RSS |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for x in loads:
        lat = x.latencies
        lines.append(
            f"| {x.label} | {len(lat):,} | {ms(pct(lat, 50), 2)} ms | {ms(pct(lat, 99), 2)} ms | "
            f"{ms(max(lat), 1)} ms | {x.batch_answers:,} | {x.rss / 1e6:.0f} MB |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--waiters", type=int, default=200)
    parser.add_argument("--churn", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS.md", help="its section goes there")
    args = parser.parse_args()
    random.seed(args.seed)
    os.sched_setaffinity(0, {CLIENT_CPU})
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="vtrans-batch-") as tmp:
        runs = scaling(Path(tmp), sizes)
        with service(Path(tmp), "load") as server:
            loads = asyncio.run(load_run(server, args.waiters, args.churn, args.seconds))
    versions = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    command = f"Reproduce: .venv/bin/python benchmarks/batch.py {' '.join(sys.argv[1:])}".rstrip()
    text = "\n".join(
        [
            f"## Many jobs at once\n\n{datetime.now():%Y-%m-%d %H:%M}\n{machine_line()}\n- {versions}\n",
            *scaling_table(runs),
            "",
            *load_table(loads),
            "",
            command,
        ]
    )
    print(text)
    sections.replace(args.report, "batch.py", text)


if __name__ == "__main__":
    main()
