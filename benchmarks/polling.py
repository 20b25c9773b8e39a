"""The science of waiting: requests vs detection lag of pollers, on a virtual clock.

Thousands of jobs per workload are waited for by every strategy, in minutes of real time: time is a
number, nobody sleeps. The service is the real simulation behind an in-process transport
(``simserver.py``); vtrans is the real :class:`vtrans.Client` (``engine.py``); the baselines are the
published pollers' schedules (``strategies.py``). Workloads and kinds of server are in
``workloads.py``; verdicts, tables and plots in ``report.py``.

Run from the repository root (a few minutes on 2 cores with the defaults)::

    .venv/bin/python benchmarks/polling.py [--jobs 2000] [--seed 1]

It prints the acceptance criteria, writes the tables (Markdown and JSON) under ``--out``, one SVG
plot per workload and server under ``--plots``, and the report ``--report`` (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import capped
import engine
import report
import sections
from strategies import HoldOnce, Strategy, baselines, hint_baselines, sweep_policies
from vtrans.client.policy import PollPolicy
from vtrans.server.simulation import Timeline
from wait_stats import Stats, summarize
from workloads import (
    BANDS,
    ESTIMATE_KINDS,
    EXPECTED,
    HOLD,
    KINDS,
    WORKLOADS,
    Jobs,
    band,
    draw_jobs,
    draw_timelines,
)

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Vtrans:
    """The real client with ``policy``: one client creating and waiting for every job in turn, or
    (``status``) a new client per job waiting on ``GET /status``; ``expected`` passes the
    workload's range to ``wait(expected=...)``."""

    name: str
    policy: PollPolicy
    status: bool = False
    expected: bool = False


Runner = Vtrans | Strategy


@dataclass(frozen=True)
class Task:
    #: ``main``: every job; ``sweep``: the first ``--sweep-jobs``; ``map``: a band of the map.
    table: str
    kind: str
    workload: str
    name: str


@dataclass
class Plan:
    """Who runs where, and their roles in the report."""

    runners: dict[str, Runner]
    tasks: list[Task]
    default: str = "vtrans default"
    unlearned: str = "vtrans default, no learning"
    expected: str = "vtrans default, expected range"
    status: str = "vtrans default, GET /status"
    status_expected: str = "vtrans default, GET /status, expected range"
    doubling: str = "doubling from 1 s"
    replicate: str = "Replicate run() (hold once, then 0.5 s)"
    azure: str = "fixed 30 s (azure-core)"
    baselines: list[str] = dataclasses.field(default_factory=list)
    hint_baselines: list[str] = dataclasses.field(default_factory=list)
    sweep: list[str] = dataclasses.field(default_factory=list)
    hint_sweep: list[str] = dataclasses.field(default_factory=list)


# Filled by main() before the worker processes fork, so that tasks are only names.
JOBS: dict[str, Jobs] = {}
TIMELINES: dict[tuple[str, str], list[Timeline]] = {}
RANGES: dict[str, tuple[float, float]] = {}
PLAN: Plan | None = None
SEED = 1


def build_plan(sweep_kinds: list[str]) -> Plan:
    runners: dict[str, Runner] = {}

    def add(r: Runner) -> str:
        assert r.name not in runners, r.name
        runners[r.name] = r
        return r.name

    policy = PollPolicy()
    plan = Plan(runners, [])
    add(Vtrans(plan.default, policy))
    add(Vtrans(plan.unlearned, dataclasses.replace(policy, learn=False)))
    add(Vtrans(plan.expected, policy, expected=True))
    add(Vtrans(plan.status, policy, status=True))
    add(Vtrans(plan.status_expected, policy, status=True, expected=True))
    plan.baselines = [add(s) for s in baselines()]
    plan.hint_baselines = [add(s) for s in hint_baselines()]
    add(HoldOnce(plan.replicate, int(HOLD), 0.5))
    plan.sweep = [add(Vtrans(label, p)) for label, p in sweep_policies(policy) if p.learn]
    for confidence in (1.5, 2.0, 2.5):
        for lag in (0.03, 0.04, 0.05):
            p = dataclasses.replace(policy, hint_confidence=confidence, hint_lag=lag)
            if p != policy:
                plan.hint_sweep.append(
                    add(Vtrans(f"vtrans hint_confidence {confidence:g}, hint_lag {lag:g}", p))
                )

    mine = [plan.default, plan.unlearned, plan.expected, plan.status, plan.status_expected]
    tasks = plan.tasks
    for wl in WORKLOADS:
        tasks += [Task("main", "none", wl, n) for n in [*mine, *plan.baselines]]
        tasks += [Task("sweep", "none", wl, n) for n in [plan.default, *plan.baselines, *plan.sweep]]
        for kind in ESTIMATE_KINDS:
            tasks += [Task("main", kind, wl, n) for n in [plan.default, *plan.hint_baselines]]
        for kind in sweep_kinds:
            tasks += [Task("sweep", kind, wl, n) for n in [plan.default, *plan.hint_sweep]]
        tasks += [Task("main", "long-poll", wl, n) for n in [plan.default, plan.replicate, plan.azure]]
    for name in RANGES:
        tasks += [Task("map", "none", name, n) for n in [plan.default, plan.status, plan.status_expected]]
        tasks += [Task("map", "none", name, n) for n in plan.baselines]
    return plan


def run(task: Task, sweep_jobs: int) -> tuple[Task, Stats, float]:
    started = time.perf_counter()
    assert PLAN is not None
    runner, kind = PLAN.runners[task.name], KINDS[task.kind]
    jobs, timelines = JOBS[task.workload], TIMELINES[(task.workload, kind.key)]
    n = sweep_jobs if task.table == "sweep" else len(timelines)
    timelines, videos = timelines[:n], jobs.videos[:n]
    seed = f"{SEED}/{task.workload}/{task.name}"
    if isinstance(runner, Vtrans):
        expected = RANGES[task.workload] if runner.expected else None
        if runner.status:
            out = engine.run_status(timelines, kind, runner.policy, seed, expected)
        else:
            out = engine.run_client(timelines, videos, kind, runner.policy, seed, expected)
    else:
        out = engine.run_schedule(runner, timelines, kind, seed)
    return task, summarize(out, jobs.durations[:n]), time.perf_counter() - started


Results = dict[tuple[str, str, str], dict[str, Stats]]
A = TypeVar("A")
R = TypeVar("R")


def execute(plan: Plan, workers: int, sweep_jobs: int) -> tuple[Results, dict[Task, float]]:
    """Every task's stats, and the seconds each took."""
    results: Results = {}
    took: dict[Task, float] = {}

    def cost(task: Task) -> float:
        """Roughly the requests: the longest tasks first, so that the workers end together."""
        runner = plan.runners[task.name]
        policy = runner.policy if isinstance(runner, Vtrans) else None
        cap = policy.max_interval if policy is not None and task.kind == "none" else 30.0
        jobs = sweep_jobs if task.table == "sweep" else len(JOBS[task.workload].videos)
        mean = sum(JOBS[task.workload].durations) / len(JOBS[task.workload].durations)
        return jobs * mean / max(cap, 0.25) * (3 if isinstance(runner, Vtrans) else 0.05)

    tasks = sorted(plan.tasks, key=cost, reverse=True)
    for task, stats, seconds in parallel(_run, [(t, sweep_jobs) for t in tasks], workers):
        results.setdefault((task.table, task.kind, task.workload), {})[task.name] = stats
        took[task] = seconds
    return results, took


def parallel(fn: Callable[[A], R], items: list[A], workers: int) -> Iterator[R]:
    """``fn`` of each item, in the order they finish: on ``workers`` forked processes, or here."""
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap_unordered(fn, items, chunksize=1)
    else:
        yield from map(fn, items)


def _run(args: tuple[Task, int]) -> tuple[Task, Stats, float]:
    return run(*args)


def least_requests(jobs: int, seed: int, workers: int) -> dict[str, tuple[float, float]]:
    """The fewest requests any client can need on each workload with a capped ``Retry-After``."""
    cap = KINDS["retry-after"].retry_after_max
    return dict(parallel(_fewest, [(wl, jobs, seed, cap) for wl in WORKLOADS], workers))


def _fewest(args: tuple[str, int, int, float]) -> tuple[str, tuple[float, float]]:
    return args[0], capped.for_workload(*args)


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Requests vs detection lag of pollers, on a virtual clock.")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per workload (default 2000)")
    parser.add_argument("--sweep-jobs", type=int, default=200, help="jobs per workload for the sweeps")
    parser.add_argument("--map-jobs", type=int, default=500, help="jobs per band of the no-hint map")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="tables and JSON")
    parser.add_argument("--plots", type=Path, default=ROOT / "benchmarks" / "plots", help="SVG plots")
    parser.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS.md", help="the full report")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    global SEED, PLAN
    SEED = args.seed
    RANGES.clear()
    RANGES.update(EXPECTED)
    for wl, (draw, _) in WORKLOADS.items():
        JOBS[wl] = draw_jobs(args.seed, wl, args.jobs, draw)
    for lo, hi in BANDS:
        name = f"{lo:g}-{hi:g} s"
        RANGES[name] = (lo, hi)
        JOBS[name] = draw_jobs(args.seed, name, args.map_jobs, band(lo, hi))
    for name, jobs in JOBS.items():
        for key, kind in KINDS.items():
            if name in WORKLOADS or key == "none":
                TIMELINES[(name, key)] = draw_timelines(args.seed, name, jobs, kind.config)
    sweep_kinds = ["wobble", "sandbox"]
    plan = PLAN = build_plan(sweep_kinds)
    for s in plan.baselines:
        strategy = plan.runners[s]
        if isinstance(strategy, Strategy) and strategy.fixed_interval is not None:
            engine.check_fixed(strategy, TIMELINES[("short", "none")][:20], KINDS["none"])
    results, took = execute(plan, args.workers, args.sweep_jobs)
    fewest = least_requests(args.jobs, args.seed, args.workers)
    verdicts = report.criteria(plan, results, fewest)
    elapsed = time.perf_counter() - started

    flags = ["--jobs", str(args.jobs), "--seed", str(args.seed)]
    numbers = (
        ("--sweep-jobs", args.sweep_jobs, 200),
        ("--map-jobs", args.map_jobs, 500),
        ("--workers", args.workers, min(2, os.cpu_count() or 1)),
    )
    for flag, value, default in numbers:
        if value != default:
            flags += [flag, str(value)]
    for flag, path, where in (
        ("--out", args.out, ROOT / "benchmarks" / "results"),
        ("--plots", args.plots, ROOT / "benchmarks" / "plots"),
        ("--report", args.report, ROOT / "BENCHMARKS.md"),
    ):
        if path != where:
            flags += [flag, _rel(path)]
    command = ".venv/bin/python benchmarks/polling.py " + shlex.join(flags)
    meta = (
        f"{command}  # {len(plan.tasks)} runs in {elapsed:.0f} s on {args.workers} process(es), "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    context = report.Context(
        plan, results, verdicts, args.jobs, args.sweep_jobs, args.map_jobs, args.seed, meta, fewest
    )
    text = report.render(context)
    for where in (args.out, args.plots, args.report.parent):
        where.mkdir(parents=True, exist_ok=True)
    report.write_plots(context, args.plots)
    (args.out / "polling.md").write_text(text.criteria + "\n" + text.tables)
    data = {
        "command": command,
        "results": {
            "/".join(k): {n: dataclasses.asdict(s) for n, s in cell.items()} for k, cell in results.items()
        },
        "criteria": [dataclasses.asdict(v) for v in verdicts],
    }
    (args.out / "polling.json").write_text(json.dumps(data, indent=1) + "\n")
    args.report.write_text(text.full(args.report, args.plots) + sections.kept(args.report))
    print(text.criteria)
    print(f"wrote {_rel(args.report)}, {_rel(args.out)}/polling.md, polling.json,", end=" ")
    print(f"{_rel(args.plots)}/polling-*.svg")
    by_table: dict[str, float] = {}
    for task, seconds in took.items():
        key = f"{task.table}/{'vtrans' if isinstance(plan.runners[task.name], Vtrans) else 'baselines'}"
        by_table[key] = by_table.get(key, 0.0) + seconds
    print("CPU seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_table.items())))
    print(f"{elapsed:.0f} s; reproduce with:\n  {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
