"""Scale-out, side by side in one run: the service on PostgreSQL, over one and several processes.

Four parts, each on fresh ``vtrans serve`` processes (real uvicorn: httptools, uvloop) and a
scratch PostgreSQL database of its own (127.0.0.1:5432, dropped at the end):

1. **Throughput** (``throughput.py``'s targets and rounds): ``GET /v1/jobs/{id}`` req/s and CPU per
   request, bare Starlette hello world vs vtrans on SQLite vs vtrans on PostgreSQL (one process
   each, pinned to CPU 0), and ``--workers 2`` on PostgreSQL (not pinned: it needs both cores);
   wrk pinned to CPU 1 throughout, so with two workers it competes with them for a core; CPU per
   request is the figure that competition does not move.
2. **Cross-process cancel** (``cancel_lag.py``): ``--waiters`` long-polls held on process A (raw
   sockets), their jobs cancelled one after another on process B; lag = the waiter's answer
   minus the ``DELETE``'s sending (and minus its answer).
3. **Webhooks** (``webhook_rate.py``): ``--webhooks`` jobs falling due at once, one of them to a
   receiver that never answers; deliveries per second and delay past due at the fast receiver,
   with one process and with ``--workers 2``.
4. **Held long-polls** (``held_polls.py``): ``--held`` long-polls held across ``vtrans serve
   --workers 2`` from ``--holders`` client processes; the RSS of all the service's processes and
   the lag of single jobs of ``--probe-duration`` s completing among them.

Parts 2-4 pin nothing (several processes share two cores with PostgreSQL and this script). Before
timing anything it waits (bounded by ``--wait-quiet``) until no other benchmark or test suite runs,
and it reports the other load seen during each part.

Run from the repository root (about 8 minutes; ``--quick`` is a ~1.5 minute smoke run)::

    .venv/bin/python benchmarks/scale.py [--repeat 3] [--parts throughput,cancel,webhooks,held]

The report (Markdown) goes to stdout, progress to stderr; ``--json FILE`` also saves every number.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import json
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import cancel_lag
import held_polls
import pgdb
import throughput
import webhook_rate
from machine import (
    ROOT,
    Load,
    kind,
    machine_line,
    more_open_files,
    raise_nofile,
    source_state,
    version,
    wait_until_quiet,
)
from processes import ServerProcess, cpu_seconds, descendants, free_port
from stats import median
from vtrans.server.config import WebhookConfig

try:
    import uvloop
except ImportError:  # pragma: no cover - the service itself needs it (uvicorn[standard])
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")
PARTS = ("throughput", "cancel", "webhooks", "held")
TARGETS = ("hello", "job", "job-pg", "job-pg-workers")
PACKAGES = ("vtrans", "uvicorn", "uvloop", "httptools", "starlette", "msgspec", "asyncpg", "httpx2")
#: Every scratch database of this benchmark starts with this: its backends' CPU is ours.
DB_PREFIX = "vtrans_scale"
#: The longest hold the services allow: every waiter here asks for this.
MAX_WAIT = 300
#: The services' webhook settings (their defaults): slots per process, deadline per delivery.
WEBHOOKS = WebhookConfig()


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a new uvloop loop (asyncio's own without uvloop)."""
    if uvloop is not None:
        return uvloop.run(make())
    return asyncio.run(make())


# --- services and load ---------------------------------------------------------------------------


def service(workdir: Path, name: str, store: str, workers: int = 1, *flags: str) -> ServerProcess:
    """``vtrans serve`` on a free port (not pinned), the way ``throughput.py`` runs it."""
    port = free_port()
    argv = throughput.vtrans_argv(
        port, "--store", store, "--workers", str(workers), "--max-wait", str(MAX_WAIT), *flags
    )
    return ServerProcess(name, argv, port, workdir, None, preexec_fn=more_open_files)


@contextmanager
def running(*services: ServerProcess) -> Iterator[None]:
    with ExitStack() as stack:
        for s in services:
            stack.callback(s.stop)
            s.start()
        yield


@dataclass
class Part:
    """What ran alongside one run of a part: other processes' load, other benchmarks seen."""

    name: str
    seconds: float = 0.0
    other_load: float = 0.0
    others: list[str] = field(default_factory=list)


def children_cpu() -> float:
    """CPU seconds of this script's children that ended and were waited for (and of theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def watched(name: str, parts: list[Part]) -> Iterator[None]:
    """Time a run and measure the load other than ours while it runs: ours is this script, its
    children (running, or ended and waited for) and PostgreSQL's backends of our scratch
    databases. Enter it after the services start, so that it ends before they stop."""
    backends = pgdb.backend_cpu(DB_PREFIX)

    def ours() -> float:
        return children_cpu() + sum(cpu_seconds(pid) for pid in descendants(os.getpid())) + backends()

    load, base, started = Load(), ours(), time.monotonic()
    yield
    part = Part(name, time.monotonic() - started)
    part.other_load = load.cores(ours() - base)
    part.others = sorted(load.seen)
    parts.append(part)
    log(f"  {name}: {part.seconds:.0f}s, other load {part.other_load:.2f} cores")


# --- the parts -----------------------------------------------------------------------------------


def throughput_part(args: argparse.Namespace, workdir: Path, parts: list[Part]) -> list[throughput.Target]:
    plan = throughput.Plan(args.rounds, args.duration, args.connections, args.warmup)
    log(f"part 1: throughput of {', '.join(TARGETS)}")
    with throughput.serving(TARGETS, plan, workdir, DB_PREFIX) as targets, watched("throughput", parts):
        throughput.measure(targets, plan)
    return targets


def cancel_part(args: argparse.Namespace, workdir: Path, parts: list[Part]) -> list[cancel_lag.CancelRun]:
    runs = []
    for rep in range(args.repeat):
        log(f"part 2, run {rep + 1}/{args.repeat}: {args.waiters} waiters on A, cancels on B")
        with pgdb.scratch_database(DB_PREFIX) as url:
            a, b = service(workdir, f"cancel-a-{rep}", url), service(workdir, f"cancel-b-{rep}", url)
            with running(a, b), watched("cancel", parts):
                run = run_async(functools.partial(cancel_lag.measure, a, b, args.waiters, args.burst))
        log(f"  {cancel_lag.goal([run])[1]}; errors {run.errors[:2]}")
        runs.append(run)
    return runs


def webhooks_part(
    args: argparse.Namespace, workdir: Path, parts: list[Part]
) -> list[webhook_rate.WebhookRun]:
    runs = []
    for rep in range(args.repeat):
        for workers in (1, 2):
            log(f"part 3, run {rep + 1}/{args.repeat}: {args.webhooks} webhooks, {workers} process(es)")
            # No retry within the run: the hanging receiver's delivery is tried once.
            flags = ("--webhook-retry-delays", "3600")
            with pgdb.scratch_database(DB_PREFIX) as url:
                svc = service(workdir, f"webhooks-{workers}-{rep}", url, workers, *flags)
                with running(svc), watched(f"webhooks x{workers}", parts):
                    db_cpu = pgdb.backend_cpu(pgdb.database_of(url))
                    run = run_async(
                        functools.partial(webhook_rate.measure, svc, workers, args.webhooks, db_cpu)
                    )
            log(f"  {run.delivered} in {run.seconds:.2f}s ({run.rate:.0f}/s); errors {run.errors[:2]}")
            runs.append(run)
    return runs


def held_part(args: argparse.Namespace, workdir: Path, parts: list[Part]) -> list[held_polls.HeldRun]:
    runs = []
    for rep in range(args.repeat):
        log(f"part 4, run {rep + 1}/{args.repeat}: {args.held} long-polls across --workers 2")
        with pgdb.scratch_database(DB_PREFIX) as url:
            svc = service(workdir, f"held-{rep}", url, 2)
            with running(svc), watched("held", parts):
                measure = functools.partial(
                    held_polls.measure,
                    svc,
                    args.held,
                    args.holders,
                    args.burst,
                    args.burst_every,
                    args.probes,
                    args.probe_duration,
                )
                run = run_async(measure)
        log(
            f"  RSS {run.rss_held / 2**20:.0f} MB ({run.held}/{run.waiters} held, sockets {run.sockets} "
            f"of {run.roles}); "
            f"single completions {', '.join(f'{x * 1e3:.2f}' for x in run.held_lags)} ms; "
            f"errors {run.errors[:2]}"
        )
        runs.append(run)
    return runs


# --- the report ----------------------------------------------------------------------------------


@dataclass
class Results:
    targets: list[throughput.Target] = field(default_factory=list)
    cancels: list[cancel_lag.CancelRun] = field(default_factory=list)
    webhooks: list[webhook_rate.WebhookRun] = field(default_factory=list)
    held: list[held_polls.HeldRun] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    elapsed: float = 0.0


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def goals(r: Results, args: argparse.Namespace) -> list[str]:
    lines = []
    by_name = {t.name: t for t in r.targets}
    if "job" in by_name and "job-pg" in by_name:
        sqlite, pg = by_name["job"], by_name["job-pg"]
        ratio = pg.median_rps() / sqlite.median_rps()
        rounds = throughput.round_ratios(pg, sqlite)
        lines.append(
            f"- `GET /v1/jobs/{{id}}` on PostgreSQL ≥ 0.9x the SQLite store's req/s, one process: "
            f"{verdict(ratio >= 0.9)}: {ratio:.2f}x ({pg.median_rps():,.0f} vs {sqlite.median_rps():,.0f} "
            f"req/s; round by round {', '.join(f'{x:.2f}' for x in rounds)})."
        )
    if r.cancels:
        ok, text = cancel_lag.goal(r.cancels)
        lines.append(
            f"- Cross-process cancel-to-wake p99 ≤ 10 ms ({args.waiters} waiters on A, cancels on B): "
            f"{verdict(ok)}: {text}."
        )
    if r.held:
        (mem_ok, mem), (lag_ok, lag) = held_polls.goals(r.held)
        lines += [
            f"- {args.held:,} long-polls held across `--workers 2` in ≤ 600 MB in all: "
            f"{verdict(mem_ok)}: {mem}.",
            f"- A single completion among them answered in ≤ 5 ms: {verdict(lag_ok)}: {lag}.",
        ]
    return lines


def throughput_section(r: Results) -> list[str]:
    by_name = {t.name: t for t in r.targets}
    lines = [throughput.table(r.targets), ""]
    if "job-pg" in by_name and "job-pg-workers" in by_name:
        one, two = by_name["job-pg"], by_name["job-pg-workers"]
        cpu = median(two.cpu_per_request) / median(one.cpu_per_request)
        lines += [
            f"`--workers 2` vs one process on PostgreSQL: {two.median_rps() / one.median_rps():.2f}x "
            "the req/s "
            f"(round by round {', '.join(f'{x:.2f}' for x in throughput.round_ratios(two, one))}) at "
            f"{cpu:.2f}x the CPU per request.",
            "",
        ]
    return lines


def reproduce(argv: Sequence[str]) -> str:
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    return shlex.join([str(python), str(Path(__file__).resolve().relative_to(ROOT)), *argv])


def summary(still: list[str]) -> str:
    """What :func:`wait_until_quiet` left running, in a line: kinds of process and the load."""
    if not still:
        return "quiet (no other benchmark, under 0.25 core busy)"
    kinds = collections.Counter(kind(line.split(": ", 1)[-1]) for line in still if ": " in line)
    load = [line for line in still if line.startswith("background load")]
    return "still busy: " + ", ".join([*(f"{k} x{n}" for k, n in sorted(kinds.items())), *load])


def conditions(r: Results, quiet: list[str], source: str) -> list[str]:
    packages = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    seen = collections.Counter(kind(o) for o in {o for p in r.parts for o in p.others})
    loads: dict[str, list[float]] = collections.defaultdict(list)
    for p in r.parts:
        loads[p.name].append(p.other_load)
    return [
        machine_line(),
        f"- Python {platform.python_version()}; {packages}; PostgreSQL {pgdb.server_version()} "
        f"(127.0.0.1, default settings); {throughput.wrk_version()}; vtrans at {source}",
        f"- open-files limit {raise_nofile()} per process (service, this script, each holder process)",
        "- pinning: part 1 as its paragraph says; parts 2-4 pin nothing",
        f"- before the runs: {summary(quiet)}",
        "- other benchmark processes seen during the runs: "
        + (", ".join(f"{k} x{v}" for k, v in sorted(seen.items())) if seen else "none"),
        "- other load (cores, busy CPU not spent by this run's processes nor its databases' backends), "
        "per run: " + "; ".join(f"{name} {', '.join(f'{x:.2f}' for x in xs)}" for name, xs in loads.items()),
    ]


def report(r: Results, args: argparse.Namespace, argv: Sequence[str], quiet: list[str], source: str) -> str:
    out = [f"## vtrans scale-out ({'quick smoke run' if args.quick else 'full run'}, {r.elapsed:.0f} s)", ""]
    out += [*goals(r, args), ""]
    if r.targets:
        plan = throughput.Plan(args.rounds, args.duration, args.connections, args.warmup)
        out += ["### 1. Throughput", "", throughput.how(r.targets, plan), "", *throughput_section(r)]
    if r.cancels:
        out += [
            "### 2. Cross-process cancel",
            "",
            f"Two single-process services A and B on one PostgreSQL database; {args.waiters} jobs of an "
            f"hour created on B, each long-polled on A on its own raw keep-alive connection "
            f"(`Prefer: wait={MAX_WAIT}`); then, one after another, `DELETE /v1/jobs/{{id}}` sent to B "
            f"on one keep-alive connection, waiting for both answers before the next. {args.repeat} run(s), "
            f"each on fresh services and a fresh database; cells: the median over the runs, then each run.",
            "",
            *cancel_lag.table(r.cancels),
            "",
        ]
    if r.webhooks:
        out += [
            "### 3. Webhooks",
            "",
            f"{args.webhooks} jobs with a `callback_url`, all due at one moment T0 (created over 32 "
            f"connections before it): {args.webhooks - 1} to a fast receiver (asyncio in this script, "
            f"204 at once), and one, due 50 ms earlier, to a receiver that never answers (it holds one "
            f"of a process's {WEBHOOKS.concurrency} delivery slots for the {WEBHOOKS.timeout:g} s "
            f"deadline). `--webhook-retry-delays 3600`. Deliveries/s = fast deliveries / (last arrival - "
            f"T0); delay past due = arrival at the receiver - the job's `finished_at` (its delivery's "
            f"due time). {args.repeat} run(s) of each, fresh service and database each time.",
            "",
            *webhook_rate.table(r.webhooks),
            "",
        ]
    if r.held:
        out += [
            f"### 4. {args.held:,} long-polls held across `vtrans serve --workers 2`",
            "",
            f"{args.held:,} jobs of an hour, then one raw keep-alive connection per job from "
            f"{args.holders} client processes (the open-files limit is per process), opened "
            f"{args.burst} every {args.burst_every * 1e3:.0f} ms in all, each sending "
            f"`GET /v1/jobs/{{id}}` with `Prefer: wait={MAX_WAIT}`. RSS and PSS from /proc, summed over "
            f"the parent and its workers. Single completion: a job of {args.probe_duration:g} s created, "
            f"then long-polled on one more connection ({args.probes} in a row); lag = the answer's "
            f"arrival - its `finished_at`. {args.repeat} run(s), fresh service and database each time.",
            "",
            *held_polls.table(r.held),
            "",
        ]
    out += [
        "### Conditions",
        "",
        *conditions(r, quiet, source),
        "",
        "Reproduce (from the repository root):",
        "",
        f"    {reproduce(argv)}",
    ]
    return "\n".join(out)


def jsonable(value: Any) -> Any:
    """Dataclasses (and lists of them) as dicts, for ``--json``."""
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--repeat", type=int, help="runs of parts 2-4 (3; quick 1)")
    parser.add_argument("--rounds", type=int, help="part 1: interleaved wrk rounds (3; quick 1)")
    parser.add_argument("--duration", type=int, help="part 1: seconds per wrk round (10; quick 2)")
    parser.add_argument("--warmup", type=int, help="part 1: warm-up seconds per target (3; quick 1)")
    parser.add_argument("--connections", type=int, default=64, help="part 1: wrk connections")
    parser.add_argument("--waiters", type=int, help="part 2: waiters held on A (1000; quick 100)")
    parser.add_argument("--webhooks", type=int, help="part 3: jobs with callbacks (2000; quick 200)")
    parser.add_argument("--held", type=int, help="part 4: long-polls held (20000; quick 2000)")
    parser.add_argument("--holders", type=int, default=2, help="part 4: client processes holding them")
    parser.add_argument("--probes", type=int, help="part 4: single completions timed (3; quick 2)")
    parser.add_argument("--probe-duration", type=float, default=2.0, help="part 4: their duration, s")
    parser.add_argument("--burst", type=int, default=500, help="connections opened per burst")
    parser.add_argument("--burst-every", type=float, default=0.05, help="seconds between bursts")
    parser.add_argument("--wait-quiet", type=float, default=900, help="max s to wait for other benchmarks")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "repeat": (1, 3),
        "rounds": (1, 3),
        "duration": (2, 10),
        "warmup": (1, 3),
        "waiters": (100, 1000),
        "webhooks": (200, 2000),
        "held": (2000, 20000),
        "probes": (2, 3),
    }
    for name, (small, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.parts = [p for p in args.parts.split(",") if p]
    if set(args.parts) - set(PARTS):
        parser.error(f"unknown parts in --parts: {', '.join(sorted(set(args.parts) - set(PARTS)))}")
    if min(args.repeat, args.rounds, args.duration, args.waiters, args.held, args.holders) < 1:
        parser.error("--repeat, --rounds, --duration, --waiters, --held and --holders must be >= 1")
    if args.webhooks < 2:
        parser.error("--webhooks must be >= 2 (one goes to the hanging receiver)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    limit = raise_nofile()
    per_holder = -(-args.held // args.holders)
    if per_holder + 100 > limit or args.waiters + 100 > limit:
        sys.exit(f"the open-files limit is {limit}: use more --holders, or fewer --held or --waiters")
    if (why := pgdb.available()) is not None:
        sys.exit(why)
    if "throughput" in args.parts:
        throughput.preflight(throughput.Plan(), TARGETS)
    quiet = wait_until_quiet(args.wait_quiet, say=log)
    source, fingerprint = source_state()
    r, started = Results(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vtrans-scale-") as tmp:
        workdir = Path(tmp)
        if "throughput" in args.parts:
            r.targets = throughput_part(args, workdir, r.parts)
        if "cancel" in args.parts:
            r.cancels = cancel_part(args, workdir, r.parts)
        if "webhooks" in args.parts:
            r.webhooks = webhooks_part(args, workdir, r.parts)
        if "held" in args.parts:
            r.held = held_part(args, workdir, r.parts)
    r.elapsed = time.monotonic() - started
    if source_state()[1] != fingerprint:
        source += f" (**the code changed during the run**; at the end: {source_state()[0]})"
    print(report(r, args, argv, quiet, source))
    if args.json is not None:
        data: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
        numbers = ("name", "label", "url", "rounds", "cpu_per_request", "db_cpu_per_request", "ended")
        data["throughput"] = [{k: jsonable(getattr(t, k)) for k in numbers} for t in r.targets]
        for key in ("cancels", "webhooks", "held", "parts"):
            data[key] = [asdict(x) for x in getattr(r, key)]
        args.json.write_text(json.dumps(data, indent=1, default=str))
    errors: list[tuple[str, list[str]]] = [("cancel", c.errors) for c in r.cancels]
    errors += [("webhooks", w.errors) for w in r.webhooks] + [("held", h.errors) for h in r.held]
    for part, messages in errors:
        for error in messages[:3]:
            log(f"{part}: {error}")


if __name__ == "__main__":
    main()
