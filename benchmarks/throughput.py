"""Requests per second of the service against a bare Starlette hello world, side by side in one run.

Three targets, each served by one uvicorn process (httptools, uvloop, no access log) pinned to CPU 0:

- ``hello``: ``benchmarks/hello_app.py``, a bare Starlette ``JSONResponse({"result": "pending"})``;
- ``status``: the service's spec endpoint ``GET /status`` (kept pending for the whole run);
- ``job``: the service's ``GET /v1/jobs/{id}`` for a pending job, on the SQLite store (a temp file).

The load generator is wrk pinned to CPU 1 (``taskset -c 1 wrk -t1 -cN -dDs --latency URL``), the
method of ``shared/research/server-anchors.md`` section 1. After a warm-up of every target, rounds
interleave the targets (hello, status, job, hello, status, job, ...) so that the noise of the
machine hits all of them alike. The table reports, per target, the median req/s over the rounds,
its min-max, the median p50 and p99 latencies, and the ratio of the median req/s to hello's.

Run from the repository root::

    .venv/bin/python benchmarks/throughput.py [--rounds 3] [--duration 10] [--connections 64]

Nothing is written to the repository unless ``--save`` is given (then ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from machine import cpu_model, version
from processes import HOST, ServerProcess, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INSTALL_WRK = "apt-get update && apt-get install -y wrk"
PACKAGES = ("uvicorn", "starlette", "httptools", "uvloop", "msgspec")
#: The service's flags besides port and store: /status stays pending all run, and no job fails
#: while it is measured (the error rate only picks the outcome, not the cost of a pending answer).
VTRANS_FLAGS = ("--delay", "86400", "--error-rate", "0")
JOB_REQUEST = {"language": "es", "video_seconds": 600}


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles (seconds) and failures."""

    requests_per_second: float
    p50: float
    p99: float
    requests: int
    errors: int


@dataclass
class Target:
    """A URL to load, and the results of each round.

    With ``fresh``, each round loads a new URL from it (a new job: a real one ends after a while).
    """

    name: str
    label: str
    url: str
    server: ServerProcess
    fresh: Callable[[], str] | None = None
    rounds: list[WrkResult] = field(default_factory=list)
    #: CPU seconds (user + system) the server spent per request in each round: unlike req/s,
    #: this barely moves when other processes compete for the server's core.
    cpu_per_request: list[float] = field(default_factory=list)
    #: Rounds whose answer was no longer pending when they ended (their numbers are still kept).
    ended: int = 0

    def median_rps(self) -> float:
        return statistics.median(r.requests_per_second for r in self.rounds)


# --- processes ---------------------------------------------------------------------------------


def http_json(method: str, url: str, body: object | None = None) -> tuple[int, dict[str, object]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def is_pending(url: str) -> bool:
    status, body = http_json("GET", url)
    if status != 200:
        raise RuntimeError(f"GET {url} answered {status} {body}")
    return body.get("result") == "pending"


def create_job(base: str) -> str:
    """A new job's URL; a 600 s video takes a minute or more, so it stays pending for a round."""
    status, created = http_json("POST", base + "/v1/jobs", JOB_REQUEST)
    if status != 201:
        raise RuntimeError(f"POST /v1/jobs answered {status} {created}")
    return f"{base}/v1/jobs/{created['id']}"


# --- wrk ----------------------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    """The numbers of ``wrk --latency`` output."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
        return match

    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors is not None:
        errors += sum(int(n) for n in socket_errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx is not None:
        errors += int(non_2xx[1])
    return WrkResult(
        requests_per_second=float(find(r"^Requests/sec:\s+([\d.]+)")[1]),
        p50=_seconds(find(r"^\s+50%\s+(\S+)")[1]),
        p99=_seconds(find(r"^\s+99%\s+(\S+)")[1]),
        requests=int(find(r"^\s+(\d+) requests in")[1]),
        errors=errors,
    )


def run_wrk(url: str, cpu: int, connections: int, duration: int) -> WrkResult:
    argv = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


# --- report -------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _k(rps: float) -> str:
    return f"{rps / 1e3:.1f}k"


def table(targets: Sequence[Target]) -> str:
    hello = targets[0].median_rps()
    lines = [
        "| target | req/s (median) | min-max | p50 | p99 | vs hello | per round | server CPU/req | errors |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for t in targets:
        rps = [r.requests_per_second for r in t.rounds]
        median = t.median_rps()
        lines.append(
            f"| {t.label} | **{median:,.0f}** | {_k(min(rps))}-{_k(max(rps))} "
            f"| {_ms(statistics.median(r.p50 for r in t.rounds))} "
            f"| {_ms(statistics.median(r.p99 for r in t.rounds))} "
            f"| {median / hello:.0%} | {', '.join(_k(x) for x in rps)} "
            f"| {statistics.median(t.cpu_per_request) * 1e6:.1f} µs "
            f"| {sum(r.errors for r in t.rounds)}{f' ({t.ended} ended)' if t.ended else ''} |"
        )
    return "\n".join(lines)


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def facts() -> str:
    packages = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    return "\n".join(
        [
            f"- machine: nproc {os.cpu_count()}, CPU {cpu_model()}, {platform.system()} {platform.release()}",
            f"- Python {platform.python_version()} ({platform.python_implementation()}); {packages}",
            f"- load generator: {wrk_version()}",
        ]
    )


def reproduce(args: argparse.Namespace) -> str:
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    script = Path(__file__).resolve().relative_to(ROOT)
    return shlex.join(
        [
            str(python),
            str(script),
            "--rounds",
            str(args.rounds),
            "--duration",
            str(args.duration),
            "--connections",
            str(args.connections),
            "--warmup",
            str(args.warmup),
        ]
    )


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument(
        "--warmup", type=int, default=3, help="seconds of discarded load per target (default 3)"
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to (default 0)")
    parser.add_argument("--wrk-cpu", type=int, default=1, help="CPU wrk is pinned to (default 1)")
    parser.add_argument("--save", action="store_true", help="also write the report to benchmarks/results/")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration < 1 or args.connections < 1 or args.warmup < 0:
        parser.error("--rounds, --duration and --connections must be >= 1, --warmup >= 0")
    return args


def preflight(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit(f"wrk is not installed; on Debian: {INSTALL_WRK}")
    if shutil.which("taskset") is None:
        sys.exit("taskset is not installed (Debian package util-linux)")
    cpus = os.sched_getaffinity(0)
    if args.server_cpu == args.wrk_cpu or not {args.server_cpu, args.wrk_cpu} <= cpus:
        sys.exit(f"need two distinct CPUs out of {sorted(cpus)} for --server-cpu and --wrk-cpu")
    for module in ("httptools", "uvloop"):
        if version(module) == "not installed":
            sys.exit(f"{module} is missing: install uvicorn[standard] (the service runs on it)")


def hello_argv(port: int) -> list[str]:
    """uvicorn serving the hello world with the flags ``vtrans serve`` uses."""
    return [
        sys.executable, "-m", "uvicorn", "hello_app:app", "--app-dir", str(HERE),
        "--host", HOST, "--port", str(port), "--http", "httptools", "--loop", "uvloop",
        "--no-access-log", "--workers", "1", "--backlog", "4096", "--log-level", "warning",
    ]  # fmt: skip


def vtrans_argv(port: int, db: Path) -> list[str]:
    return [
        sys.executable, "-m", "vtrans", "serve", "--port", str(port),
        "--store", "sqlite", "--db", str(db), *VTRANS_FLAGS,
    ]  # fmt: skip


def measure(targets: Sequence[Target], args: argparse.Namespace) -> None:
    """Warm every target up, then run the interleaved rounds."""
    total = len(targets) * (args.warmup + args.rounds * args.duration)
    print(
        f"{len(targets)} targets x {args.rounds} rounds x {args.duration}s: about {total}s", file=sys.stderr
    )
    for t in targets:
        if not is_pending(t.url):
            raise RuntimeError(f"GET {t.url} is not pending: the benchmark measures pending answers")
        if args.warmup:
            run_wrk(t.url, args.wrk_cpu, args.connections, args.warmup)
    for n in range(args.rounds):
        for t in targets:
            url = t.url if t.fresh is None else t.fresh()
            cpu = t.server.cpu_seconds()
            result = run_wrk(url, args.wrk_cpu, args.connections, args.duration)
            t.cpu_per_request.append((t.server.cpu_seconds() - cpu) / max(result.requests, 1))
            t.rounds.append(result)
            if not is_pending(url):
                t.ended += 1
                print(f"warning: {url} ended during the round", file=sys.stderr)
            rps = result.requests_per_second
            print(f"round {n + 1}/{args.rounds} {t.name}: {rps:,.0f} req/s", file=sys.stderr)


def report(targets: Sequence[Target], args: argparse.Namespace) -> str:
    return "\n".join(
        [
            f"Throughput, one uvicorn process (httptools, uvloop, no access log) on CPU {args.server_cpu}; "
            f"`taskset -c {args.wrk_cpu} wrk -t1 -c{args.connections} -d{args.duration}s --latency`; "
            f"{args.rounds} interleaved rounds after a {args.warmup}s warm-up per target. "
            f"vtrans: `--store sqlite` on a temp file, `{' '.join(VTRANS_FLAGS)}`; "
            f"a new job (`POST /v1/jobs {json.dumps(JOB_REQUEST)}`) for each round of `GET /v1/jobs/{{id}}`.",
            "",
            table(targets),
            "",
            "req/s, p50 and p99 are medians over the rounds; server CPU/req is the median user + system "
            "CPU time of the server per request (from /proc): other load on the machine barely moves it.",
            "",
            "Reproduce (from the repository root):",
            "",
            f"    {reproduce(args)}",
            "",
            facts(),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    preflight(args)
    with tempfile.TemporaryDirectory(prefix="vtrans-throughput-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        hello = ServerProcess("hello", hello_argv(port), port, workdir, args.server_cpu)
        port = free_port()
        vtrans = ServerProcess(
            "vtrans", vtrans_argv(port, workdir / "vtrans.db"), port, workdir, args.server_cpu
        )
        try:
            hello.start("/status")
            vtrans.start("/healthz")
            base = vtrans.url
            targets = [
                Target("hello", "bare Starlette `JSONResponse` (hello_app)", hello.url + "/status", hello),
                Target("status", "vtrans `GET /status`", base + "/status", vtrans),
                Target(
                    "job",
                    "vtrans `GET /v1/jobs/{id}` (pending)",
                    create_job(base),
                    vtrans,
                    lambda: create_job(base),
                ),
            ]
            measure(targets, args)
        finally:
            vtrans.stop()
            hello.stop()
    text = report(targets, args)
    print(text)
    if args.save:
        out = HERE / "results" / time.strftime("throughput-%Y%m%d-%H%M%S.md")
        out.parent.mkdir(exist_ok=True)
        out.write_text(text + "\n")
        print(f"\nsaved to {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
