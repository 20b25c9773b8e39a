"""Requests per second of the service against a bare Starlette hello world, side by side in one run.

Targets (``--targets``, default ``hello,status,job``), each served by uvicorn (httptools, uvloop,
no access log):

- ``hello``: ``benchmarks/hello_app.py``, a bare Starlette ``JSONResponse({"result": "pending"})``;
- ``status``: the service's spec endpoint ``GET /status`` (kept pending for the whole run);
- ``job``: the service's ``GET /v1/jobs/{id}`` for a pending job, on the SQLite store (a temp file);
- ``job-no-metrics``: the same on a second service process started with ``--no-metrics``: the cost
  of the Prometheus metrics is the difference between the two;
- ``job-pg``: the same on the PostgreSQL store (a scratch database, dropped at the end);
- ``job-pg-workers``: the same with ``vtrans serve --workers 2``, which is not pinned (it needs
  both cores, and shares the load generator's).

The load generator is wrk pinned to CPU 1 (``taskset -c 1 wrk -t1 -cN -dDs --latency URL``), the
method of ``shared/research/server-anchors.md`` section 1; single-process servers are pinned to
CPU 0. After a warm-up of every target, rounds interleave the targets (hello, status, job, hello,
status, job, ...) so that the noise of the machine hits all of them alike. The table reports, per
target, the median req/s over the rounds, its min-max, the median p50 and p99 latencies, the ratio
of the median req/s to hello's, and the server's CPU time per request (all its processes; for
PostgreSQL also the database backends'), which other load on the machine barely moves.

Run from the repository root::

    .venv/bin/python benchmarks/throughput.py [--rounds 3] [--duration 10] [--connections 64]

Nothing is written to the repository unless ``--save`` is given (then ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import functools
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pgdb
from machine import cpu_model, more_open_files, version
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
    #: A counter of the CPU seconds the database spent for the server (PostgreSQL's backends).
    db_cpu: Callable[[], float] | None = None
    rounds: list[WrkResult] = field(default_factory=list)
    #: CPU seconds (user + system) the server spent per request in each round, all its processes:
    #: unlike req/s, this barely moves when other processes compete for the server's core.
    cpu_per_request: list[float] = field(default_factory=list)
    db_cpu_per_request: list[float] = field(default_factory=list)
    #: Rounds whose answer was no longer pending when they ended (their numbers are still kept).
    ended: int = 0

    def median_rps(self) -> float:
        return statistics.median(r.requests_per_second for r in self.rounds)


@dataclass(frozen=True)
class Plan:
    """How the targets are loaded: interleaved rounds of wrk, after a warm-up of each."""

    rounds: int = 3
    duration: int = 10
    connections: int = 64
    warmup: int = 3
    #: The CPU single-process servers are pinned to, and wrk's.
    server_cpu: int = 0
    wrk_cpu: int = 1

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        return cls(args.rounds, args.duration, args.connections, args.warmup, args.server_cpu, args.wrk_cpu)

    def describe(self) -> str:
        return (
            f"`taskset -c {self.wrk_cpu} wrk -t1 -c{self.connections} -d{self.duration}s --latency`; "
            f"{self.rounds} interleaved rounds after a {self.warmup}s warm-up per target"
        )


def round_ratios(a: Target, b: Target) -> list[float]:
    """``a``'s req/s over ``b``'s, round by round (rounds interleave, so each pair shared its noise)."""
    return [x.requests_per_second / y.requests_per_second for x, y in zip(a.rounds, b.rounds, strict=True)]


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
    db = any(t.db_cpu_per_request for t in targets)
    lines = [
        f"| target | req/s (median) | min-max | p50 | p99 | vs {targets[0].name} | per round "
        f"| server CPU/req |{' PostgreSQL CPU/req |' if db else ''} errors |",
        f"|---|---:|---:|---:|---:|---:|---|---:|{'---:|' if db else ''}---:|",
    ]
    for t in targets:
        rps = [r.requests_per_second for r in t.rounds]
        median = t.median_rps()
        db_cell = ""
        if db:
            db_cell = (
                f" {statistics.median(t.db_cpu_per_request) * 1e6:.1f} µs |"
                if t.db_cpu_per_request
                else " - |"
            )
        lines.append(
            f"| {t.label} | **{median:,.0f}** | {_k(min(rps))}-{_k(max(rps))} "
            f"| {_ms(statistics.median(r.p50 for r in t.rounds))} "
            f"| {_ms(statistics.median(r.p99 for r in t.rounds))} "
            f"| {median / hello:.0%} | {', '.join(_k(x) for x in rps)} "
            f"| {statistics.median(t.cpu_per_request) * 1e6:.1f} µs |{db_cell}"
            f" {sum(r.errors for r in t.rounds)}{f' ({t.ended} ended)' if t.ended else ''} |"
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
    targets = [] if args.targets == ",".join(DEFAULT_TARGETS) else ["--targets", args.targets]
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
            *targets,
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
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma-separated, in table order, out of {', '.join(TARGETS)} (default %(default)s)",
    )
    parser.add_argument("--save", action="store_true", help="also write the report to benchmarks/results/")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration < 1 or args.connections < 1 or args.warmup < 0:
        parser.error("--rounds, --duration and --connections must be >= 1, --warmup >= 0")
    unknown = set(args.targets.split(",")) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def preflight(plan: Plan, names: Sequence[str] = ()) -> None:
    if shutil.which("wrk") is None:
        sys.exit(f"wrk is not installed; on Debian: {INSTALL_WRK}")
    if shutil.which("taskset") is None:
        sys.exit("taskset is not installed (Debian package util-linux)")
    cpus = os.sched_getaffinity(0)
    if plan.server_cpu == plan.wrk_cpu or not {plan.server_cpu, plan.wrk_cpu} <= cpus:
        sys.exit(f"need two distinct CPUs out of {sorted(cpus)} for --server-cpu and --wrk-cpu")
    for module in ("httptools", "uvloop"):
        if version(module) == "not installed":
            sys.exit(f"{module} is missing: install uvicorn[standard] (the service runs on it)")
    if any(name.startswith("job-pg") for name in names) and (why := pgdb.available()) is not None:
        sys.exit(why)


def hello_argv(port: int) -> list[str]:
    """uvicorn serving the hello world with the flags ``vtrans serve`` uses."""
    return [
        sys.executable, "-m", "uvicorn", "hello_app:app", "--app-dir", str(HERE),
        "--host", HOST, "--port", str(port), "--http", "httptools", "--loop", "uvloop",
        "--no-access-log", "--workers", "1", "--backlog", "4096", "--log-level", "warning",
    ]  # fmt: skip


def vtrans_argv(port: int, *store: str) -> list[str]:
    """``vtrans serve`` on ``port`` with ``store`` flags (``--store sqlite --db FILE``, ...)."""
    return [sys.executable, "-m", "vtrans", "serve", "--port", str(port), *store, *VTRANS_FLAGS]


TARGETS = ("hello", "status", "job", "job-no-metrics", "job-pg", "job-pg-workers")
DEFAULT_TARGETS = ("hello", "status", "job", "job-no-metrics")
LABELS = {
    "hello": "bare Starlette `JSONResponse` (hello_app)",
    "status": "vtrans `GET /status`",
    "job": "vtrans `GET /v1/jobs/{id}`, SQLite",
    "job-no-metrics": "vtrans `GET /v1/jobs/{id}`, SQLite, `--no-metrics`",
    "job-pg": "vtrans `GET /v1/jobs/{id}`, PostgreSQL",
    "job-pg-workers": "vtrans `GET /v1/jobs/{id}`, PostgreSQL, `--workers 2` (not pinned)",
}


@contextmanager
def serving(
    names: Sequence[str], plan: Plan, workdir: Path, db_prefix: str = "vtrans_throughput"
) -> Iterator[list[Target]]:
    """Start what the targets ``names`` need (each server once), yield the targets in that order,
    and stop everything (and drop the scratch database, ``db_prefix`` and 8 hex digits) on the
    way out."""
    with ExitStack() as stack:
        servers: dict[str, ServerProcess] = {}
        database: list[str] = []

        def server(key: str) -> ServerProcess:
            if key in servers:
                return servers[key]
            port, cpu = free_port(), plan.server_cpu
            if key == "hello":
                process = ServerProcess("hello", hello_argv(port), port, workdir, cpu)
            elif key in ("sqlite", "sqlite-no-metrics"):
                bare = ["--no-metrics"] if key == "sqlite-no-metrics" else []
                argv = vtrans_argv(port, "--store", "sqlite", "--db", str(workdir / f"{key}.db"), *bare)
                process = ServerProcess(f"vtrans-{key}", argv, port, workdir, cpu)
            else:
                if not database:
                    database.append(stack.enter_context(pgdb.scratch_database(db_prefix)))
                workers = ["--workers", "2"] if key == "pg-workers" else []
                argv = vtrans_argv(port, "--store", database[0], *workers)
                pinned = cpu if key == "pg" else None
                process = ServerProcess(
                    f"vtrans-{key}", argv, port, workdir, pinned, preexec_fn=more_open_files
                )
            stack.callback(process.stop)
            process.start("/status" if key == "hello" else "/healthz")
            servers[key] = process
            return process

        targets = []
        for name in names:
            if name == "hello":
                hello = server("hello")
                targets.append(Target(name, LABELS[name], hello.url + "/status", hello))
            elif name == "status":
                vtrans = server("sqlite")
                targets.append(Target(name, LABELS[name], vtrans.url + "/status", vtrans))
            else:
                key = {
                    "job": "sqlite",
                    "job-no-metrics": "sqlite-no-metrics",
                    "job-pg": "pg",
                    "job-pg-workers": "pg-workers",
                }[name]
                vtrans = server(key)
                db_cpu = None
                if key.startswith("pg"):
                    db_cpu = pgdb.backend_cpu(pgdb.database_of(database[0]))
                fresh = functools.partial(create_job, vtrans.url)
                targets.append(Target(name, LABELS[name], fresh(), vtrans, fresh, db_cpu))
        yield targets


def measure(targets: Sequence[Target], plan: Plan) -> None:
    """Warm every target up, then run the interleaved rounds."""
    total = len(targets) * (plan.warmup + plan.rounds * plan.duration)
    print(
        f"{len(targets)} targets x {plan.rounds} rounds x {plan.duration}s: about {total}s", file=sys.stderr
    )
    for t in targets:
        if not is_pending(t.url):
            raise RuntimeError(f"GET {t.url} is not pending: the benchmark measures pending answers")
        if plan.warmup:
            run_wrk(t.url, plan.wrk_cpu, plan.connections, plan.warmup)
    for n in range(plan.rounds):
        for t in targets:
            url = t.url if t.fresh is None else t.fresh()
            cpu = t.server.cpu_seconds()
            db_cpu = t.db_cpu() if t.db_cpu is not None else 0.0
            result = run_wrk(url, plan.wrk_cpu, plan.connections, plan.duration)
            t.cpu_per_request.append((t.server.cpu_seconds() - cpu) / max(result.requests, 1))
            if t.db_cpu is not None:
                t.db_cpu_per_request.append((t.db_cpu() - db_cpu) / max(result.requests, 1))
            t.rounds.append(result)
            if not is_pending(url):
                t.ended += 1
                print(f"warning: {url} ended during the round", file=sys.stderr)
            rps = result.requests_per_second
            print(f"round {n + 1}/{plan.rounds} {t.name}: {rps:,.0f} req/s", file=sys.stderr)


def how(targets: Sequence[Target], plan: Plan) -> str:
    """How the targets were served and loaded, in a paragraph."""
    stores = []
    if any(t.name in ("status", "job") for t in targets):
        stores.append("`--store sqlite` on a temp file")
    if any(t.name.startswith("job-pg") for t in targets):
        stores.append("`--store postgresql://…` on a scratch database (PostgreSQL itself not pinned)")
    workers = any(t.name == "job-pg-workers" for t in targets)
    return (
        f"Throughput: uvicorn (httptools, uvloop, no access log), single processes pinned to CPU "
        f"{plan.server_cpu}{', `--workers 2` not pinned' if workers else ''}; {plan.describe()}. "
        f"vtrans: {' and '.join(stores)}, `{' '.join(VTRANS_FLAGS)}`; a new job "
        f"(`POST /v1/jobs {json.dumps(JOB_REQUEST)}`) for each round of `GET /v1/jobs/{{id}}`."
    )


def metrics_cost(targets: Sequence[Target]) -> list[str]:
    """The cost of the metrics, when both ``job`` and ``job-no-metrics`` were measured."""
    by_name = {t.name: t for t in targets}
    if "job" not in by_name or "job-no-metrics" not in by_name:
        return []
    on, off = by_name["job"], by_name["job-no-metrics"]
    cost = 1 - on.median_rps() / off.median_rps()
    # The two run one after the other in each round: their ratio round by round cancels the drift
    # of a machine whose load changes between rounds.
    paired = statistics.median(
        1 - a.requests_per_second / b.requests_per_second for a, b in zip(on.rounds, off.rounds, strict=True)
    )
    cpu = statistics.median(on.cpu_per_request) - statistics.median(off.cpu_per_request)
    return [
        f"Metrics cost on `GET /v1/jobs/{{id}}`: {cost:.1%} of req/s (medians), {paired:.1%} (median of "
        f"the rounds' ratios), {cpu * 1e6:+.1f} µs CPU per request.",
        "",
    ]


def report(targets: Sequence[Target], args: argparse.Namespace) -> str:
    return "\n".join(
        [
            how(targets, Plan.from_args(args)),
            "",
            table(targets),
            "",
            *metrics_cost(targets),
            "req/s, p50 and p99 are medians over the rounds; server CPU/req is the median user + system "
            "CPU time of the server per request (from /proc, summed over its processes): other load on "
            "the machine barely moves it.",
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
    plan = Plan.from_args(args)
    names = args.targets.split(",")
    preflight(plan, names)
    with tempfile.TemporaryDirectory(prefix="vtrans-throughput-") as tmp:
        with serving(names, plan, Path(tmp)) as targets:
            measure(targets, plan)
        text = report(targets, args)
    print(text)
    if args.save:
        out = HERE / "results" / time.strftime("throughput-%Y%m%d-%H%M%S.md")
        out.parent.mkdir(exist_ok=True)
        out.write_text(text + "\n")
        print(f"\nsaved to {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
