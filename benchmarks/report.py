"""The polling benchmark's verdicts, tables and plots (BENCHMARKS.md)."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import capped
from simserver import RTT
from strategies import describe
from svgplot import Point, scatter
from wait_stats import Stats, dominates, frontier
from workloads import BANDS, ESTIMATE_KINDS, EXPECTED, HOLD, KINDS, SANDBOX, WORKLOADS

if TYPE_CHECKING:
    from polling import Plan, Results

ROOT = Path(__file__).resolve().parent.parent
WLS = list(WORKLOADS)


@dataclass
class Verdict:
    name: str
    passed: bool
    lines: list[str]
    #: The criterion proper (True) or a variant reported alongside.
    main: bool = True


@dataclass
class Context:
    plan: Plan
    results: Results
    verdicts: list[Verdict]
    jobs: int
    sweep_jobs: int
    map_jobs: int
    seed: int
    meta: str
    #: Per workload, the fewest requests any client can need with a capped ``Retry-After``, and the
    #: share of jobs late then (``capped.py``).
    fewest: dict[str, tuple[float, float]]

    def cell(self, kind: str, wl: str, table: str = "main") -> dict[str, Stats]:
        return self.results[(table, kind, wl)]


def fmt_s(v: float) -> str:
    if v < 0.01:
        return f"{v:.4f}"
    if v < 1:
        return f"{v:.3f}"
    if v < 100:
        return f"{v:.2f}"
    return f"{v:.0f}"


def fmt_req(v: float) -> str:
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _rl(s: Stats) -> str:
    return f"{fmt_req(s.requests)} req, {fmt_s(s.lag)} s"


# --- verdicts -------------------------------------------------------------------------------------


def criteria(plan: Plan, results: Results, fewest: dict[str, tuple[float, float]]) -> list[Verdict]:
    def cell(kind: str, wl: str, table: str = "main") -> dict[str, Stats]:
        return results[(table, kind, wl)]

    d, out = plan.default, []
    lines, ok = [], True
    for wl in WLS:
        c = cell("none", wl)
        by = [b for b in plan.baselines if dominates(c[b], c[d])]
        ok &= not by
        verdict = "not dominated by any baseline" if not by else "dominated by " + ", ".join(by)
        lines.append(f"{wl}: {_rl(c[d])}: {verdict}")
    out.append(
        Verdict(
            "(1) no hints: vtrans default is on the Pareto frontier of the baselines, every workload",
            ok,
            lines,
        )
    )

    lines, ok = [], True
    for wl in WLS:
        c = cell("none", wl, "sweep")
        pool = [d, *plan.sweep]
        for b in plan.baselines:
            wins = [v for v in pool if c[v].requests <= c[b].requests and c[v].lag < c[b].lag]
            if wins:
                best = min(wins, key=lambda v: c[v].lag)
                lines.append(f"{wl}: {b} ({_rl(c[b])}) beaten by {best} ({_rl(c[best])})")
            else:
                ok = False
                lines.append(f"{wl}: {b} ({_rl(c[b])}) NOT beaten")
    out.append(
        Verdict(
            "(2) no hints: every baseline is beaten by a vtrans setting (the sweep): <= requests, < lag",
            ok,
            lines,
        )
    )

    for name in (d, plan.unlearned):
        lines, ok = [], True
        for wl in WLS:
            me, dbl = cell("none", wl)[name], cell("none", wl)[plan.doubling]
            good = me.requests <= dbl.requests and me.lag <= dbl.lag / 2
            ok &= good
            lines.append(
                f"{wl}: {_rl(me)} vs doubling {_rl(dbl)}: requests x{me.requests / dbl.requests:.2f}, "
                f"lag x{me.lag / dbl.lag:.2f} -> {'ok' if good else 'fails'}"
            )
        title = f"(3) no hints: {name} vs plain doubling from 1 s: <= its requests, <= half its lag"
        out.append(Verdict(title, ok, lines, name == d))

    for kind in ESTIMATE_KINDS:
        lines, ok = [], True
        for wl in WLS:
            me = cell(kind, wl)[d]
            good = me.requests <= 4 and me.p95_norm <= 1
            ok &= good
            verdict = "ok" if good else "fails"
            if kind == "retry-after":
                least = fewest[wl][0]
                verdict += f" (no client can do with fewer than {least:.2f} requests/job here{BOUND})"
                if least > 4:
                    verdict += ": infeasible"
            lines.append(
                f"{wl}: {me.requests:.2f} requests/job; p95 of lag / max(0.5 s, 5 % of D) = "
                f"{me.p95_norm:.2f} ({100 * me.within:.1f} % of jobs within); mean lag {fmt_s(me.lag)} s "
                f"-> {verdict}"
            )
        number = "(4)" if kind == "bias" else f"(6{'abcdefgh'[ESTIMATE_KINDS.index(kind) - 1]})"
        title = f"{number} estimates, {KINDS[kind].title}: <= 4 requests/job, p95 lag <= max(0.5 s, 5 % of D)"
        out.append(Verdict(title, ok, lines))
        if kind == "bias":
            out.append(_long_poll(plan, results))
    return out


#: Where the fewest requests possible come from.
BOUND = ", `benchmarks/capped.py`"


def _long_poll(plan: Plan, results: Results) -> Verdict:
    lines, ok = [], True
    for wl in WLS:
        me = results[("main", "long-poll", wl)][plan.default]
        good = me.over_bound == 0 and me.lag_off_rtt < 1e-6 and me.handover_lag < 2 * RTT
        ok &= good
        lines.append(
            f"{wl}: {me.requests:.2f} requests/job (max {me.max_requests}); {me.over_bound} jobs over "
            f"ceil(D/W) + 1; max |lag - RTT| = {me.lag_off_rtt:.1e} s; {me.handovers} job(s) ended during "
            f"a handover -> {'ok' if good else 'fails'}"
        )
    title = f"(5) long-poll (W = {HOLD:g} s): requests <= ceil(D/W) + 1, lag = RTT (< 2 RTT after a handover)"
    return Verdict(title, ok, lines)


# --- tables ---------------------------------------------------------------------------------------

HEADER = (
    "| strategy | req/job | lag mean (s) | p50 | p95 | p99 | p95 lag / bound | within bound "
    "| gave up¹ | frontier |\n"
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|"
)


def table(cell: dict[str, Stats], names: list[str], bold: set[str]) -> str:
    front = frontier({n: cell[n] for n in names})
    rows = [HEADER]
    for name in sorted(dict.fromkeys(names), key=lambda n: (cell[n].requests, cell[n].lag)):
        s = cell[name]
        label = f"**{name}**" if name in bold else name
        gave_up = f"{100 * s.gave_up:.0f} %" if s.gave_up else ""
        rows.append(
            f"| {label} | {fmt_req(s.requests)} | {fmt_s(s.lag)} | {fmt_s(s.p50)} | {fmt_s(s.p95)} | "
            f"{fmt_s(s.p99)} | {s.p95_norm:.2f} | {100 * s.within:.1f} % | {gave_up} | "
            f"{'★' if name in front else ''} |"
        )
    return "\n".join(rows)


def grid(
    ctx: Context, kind: str, names: list[str], table_name: str = "main", bold: set[str] | None = None
) -> list[str]:
    """Requests / p95 lag ratio / mean lag of ``names`` on every workload."""
    out = ["| strategy | " + " | ".join(WLS) + " |", "|---|" + "--:|" * len(WLS)]
    for n in names:
        cells = []
        for wl in WLS:
            s = ctx.cell(kind, wl, table_name)[n]
            cells.append(f"{fmt_req(s.requests)} / {s.p95_norm:.2f} / {fmt_s(s.lag)} s")
        out.append(f"| {'**' + n + '**' if bold and n in bold else n} | " + " | ".join(cells) + " |")
    return out


def render(ctx: Context) -> Report:
    plan, d = ctx.plan, ctx.plan.default
    policy = plan.runners[d].policy  # type: ignore[union-attr]
    head = [
        "# Benchmarks",
        "",
        "## Polling: requests vs detection lag",
        "",
        "Generated by `benchmarks/polling.py`; do not edit by hand. Reproduce with:",
        "",
        f"    {ctx.meta}",
        "",
        *machine(),
        "",
        "Every job is waited for on a **virtual clock** by every strategy, so thousands of jobs take "
        "seconds. **vtrans is the real client**: a `vtrans.Client` whose `http_client` is an in-process "
        "transport over the real simulation (`benchmarks/simserver.py`: `POST /v1/jobs`, `GET "
        "/v1/jobs/{id}`, `GET /status` answered from `simulation.state_at` at the virtual time, jobs "
        "rendered by the service's `wire.to_wire`, `Retry-After` as the service sends it, `Prefer: "
        "wait` honoured or ignored as the server kind says) and whose `clock` is that virtual clock. One "
        "client creates the jobs of a workload one after the other and waits for each, learning as it "
        "goes. The published pollers are their schedules (`benchmarks/strategies.py`, from "
        "`shared/research/client-anchors.md`), answered from the same simulation and rendering. A "
        f"request sent at t is answered from the state at t and arrives at t + {RTT * 1000:g} ms (the "
        "round trip, RTT); a wait starts when the create's answer arrives; lag = arrival of the first "
        "answer that says done - the job's end, so every lag includes one RTT. Requests count the status "
        "polls (the create is the same for everyone). The **bound** is max(0.5 s, 5 % of D).",
        "",
        "- **Workloads** ("
        + f"{ctx.jobs} jobs each, seed {ctx.seed}): "
        + "; ".join(t for _, t in WORKLOADS.values())
        + f". The client knows the video length it submitted: D / ({SANDBOX.seconds_per_video_second:g} x "
        f"e^N(0, {SANDBOX.duration_spread:g})), the service's seconds per video-second and duration spread "
        "(vtrans learns from it; the baselines ignore it). Jobs complete (no errors).",
        "- **Servers**: "
        + "; ".join(f"**{k.key}**: {k.title}" for k in KINDS.values())
        + ". Each estimate model is the sandbox's (`SimulationConfig`) with that feature at its default "
        "and the others off, except *sandbox* and *retry-after* (all on).",
        "- **Baselines**, all polling at once after the create, as published (Replicate's "
        "`Prediction.wait()` sleeps first): fixed 0.5 / 1 / 3 / 10 / 30 s; Google `PollingFuture` U(0, "
        "min(20, 1.5^n)); Smithy/AWS waiter random(2, min(120, 2 x 2^(k-1))); tenacity `wait_exponential()` "
        "1, 2, 4, ... s (= plain doubling from 1 s, listed under both names); stamina min(5, 0.1 x 2^(a-1) + "
        "U(0, 1)). Reading hints: OpenAI (1 s, or the first hint for the whole wait), azure-core "
        "(`Retry-After`, else 30 s), sleeping the body's estimate (at least 0.1 s). With long-poll: "
        "Replicate `run()` (one held request, then 0.5 s). ¹ *gave up*: share of waits that the poller's "
        "own default stop would have abandoned (Google 900 s; stamina 10 attempts or 45 s); the benchmark "
        "keeps waiting.",
        f"- **vtrans default**: `PollPolicy()` = {describe(policy)}. *GET /status*: a new client per job "
        "waiting on the spec's endpoint (it knows nothing of the job: no video length, nothing learned). "
        "*expected range*: `wait(expected=(low, high))` with the workload's range ("
        + ", ".join(f"{wl} {lo:g}-{hi:g} s" for wl, (lo, hi) in EXPECTED.items())
        + ").",
        f"- **Sweeps** run on the first {ctx.sweep_jobs} jobs of each workload, compared with the baselines "
        f"on the same jobs: {len(plan.sweep)} `PollPolicy` settings without hints "
        f"(`strategies.sweep_policies`), and {len(plan.hint_sweep)} settings of `hint_confidence` x "
        "`hint_lag` with estimates.",
        "",
    ]
    crit = ["## Acceptance criteria", "", "| criterion | result |", "|---|---|"]
    for v in ctx.verdicts:
        crit.append(f"| {v.name}{'' if v.main else ' *(variant)*'} | **{'PASS' if v.passed else 'FAIL'}** |")
    crit += ["", "<details><summary>The numbers behind each verdict</summary>", ""]
    for v in ctx.verdicts:
        crit.append(f"- **{'PASS' if v.passed else 'FAIL'}** {v.name}")
        crit += [f"  - {line}" for line in v.lines]
    crit += ["", "</details>", ""]

    t: list[str] = _findings(ctx)
    t += _estimates(ctx)
    t += _no_hints(ctx)
    t += _expected(ctx)
    t += _map(ctx)
    t += _long_poll_table(ctx)
    return Report("\n".join(head), "\n".join(crit), "\n".join(t))


def _estimates(ctx: Context) -> list[str]:
    plan, d = ctx.plan, ctx.plan.default
    t = [
        "## Servers with estimates",
        "",
        "Requests per job / p95 of lag ÷ bound / mean lag, for each estimate model (the goal: <= 4 requests "
        "and a ratio <= 1).",
        "",
    ]
    for kind in ESTIMATE_KINDS:
        t += [f"### {kind}: {KINDS[kind].title}", ""]
        t += grid(ctx, kind, [d, *plan.hint_baselines], bold={d})
        t += [""]
        if kind == "retry-after":
            t += [*_fewest(ctx), ""]
    t += [
        "### How the client reads estimates",
        "",
        "It fits the job's answers so far under a model of how estimates err (`vtrans.client.estimates`): "
        "a bias drawn once per job, a drift that fades as the job nears its end, and a wobble drawn "
        "anew for every answer, all log-normal; the bias and drift integrated out, the likelihood of the "
        "time left is computed on a grid. Of 36 such models (bias spread x drift spread x wobble) the "
        "client keeps the one that best explains the answers of its finished jobs (greatest marginal "
        "likelihood; until then, a server as unreliable as the sandbox's), and, once 10 of its jobs "
        "finished, adds what their durations say of a job of this size. It then sleeps until the "
        "earliest plausible end (`hint_confidence` = 2 standard deviations) plus the lag it allows "
        "itself (`hint_lag` = 4 % of the job's duration), but no later than the latest plausible end; "
        "after a miss (a stall), every 4 % of the job's age. A `Retry-After` of n is a time in "
        "(n - 1, n]: its log has the mean and spread of a uniform draw's there. A hint that does not "
        "count down (the same `Retry-After` for as long as it says) is a minimum, and the longest a "
        "server gives, its cap: once the client knows how long jobs of this size take, it polls a job "
        "past the cap again by the earliest end that its size or the cap allows, whichever is "
        "later, plus the lag allowed (`vtrans.client.estimates.beyond`); until then, the schedule "
        "applies.",
        "",
        f"### The hint settings swept (first {ctx.sweep_jobs} jobs)",
        "",
    ]
    for kind in ("wobble", "sandbox"):
        t += [f"**{kind}**", ""]
        t += grid(ctx, kind, [d, *plan.hint_sweep], "sweep", bold={d})
        t += [""]
    return t


def _no_hints(ctx: Context) -> list[str]:
    plan = ctx.plan
    mine = [plan.default, plan.unlearned, plan.expected, plan.status, plan.status_expected]
    t = ["## No hints (spec-literal server)", ""]
    for wl, (_, title) in WORKLOADS.items():
        t += [f"### {title}", "", f"![requests vs lag]({{plots}}/polling-none-{wl}.svg)", ""]
        t += [table(ctx.cell("none", wl), [*mine, *plan.baselines], set(mine)), ""]
    t += [
        f"### The sweep (first {ctx.sweep_jobs} jobs), its frontier against the baselines",
        "",
        "| workload | strategy | req/job | lag mean (s) |",
        "|---|---|--:|--:|",
    ]
    for wl in WLS:
        c = ctx.cell("none", wl, "sweep")
        names = [plan.default, *plan.sweep, *plan.baselines]
        front = frontier({n: c[n] for n in names})
        for n in sorted(front, key=lambda n: c[n].requests):
            label = f"{n} (baseline)" if n in plan.baselines else n
            t.append(f"| {wl} | {label} | {fmt_req(c[n].requests)} | {fmt_s(c[n].lag)} |")
    t.append("")
    return t


def _expected(ctx: Context) -> list[str]:
    plan = ctx.plan
    t = [
        "## The caller's own knowledge: `wait(expected=...)`, no hints",
        "",
        "Requests per job / mean lag (s) / p95 of lag ÷ bound, with and without the workload's range.",
        "",
        "| workload | range (s) | own jobs, learning | + expected | GET /status (nothing learned) "
        "| + expected |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for wl in WLS:
        c = ctx.cell("none", wl)
        cells = [
            f"{fmt_req(c[n].requests)} / {fmt_s(c[n].lag)} / {c[n].p95_norm:.2f}"
            for n in (plan.default, plan.expected, plan.status, plan.status_expected)
        ]
        lo, hi = EXPECTED[wl]
        t.append(f"| {wl} | {lo:g}-{hi:g} | " + " | ".join(cells) + " |")
    t.append("")
    return t


def _map(ctx: Context) -> list[str]:
    plan = ctx.plan
    mine = [plan.default, plan.status, plan.status_expected]
    t = [
        "## The no-hint trade-off, mapped",
        "",
        f"Durations uniform in a band ({ctx.map_jobs} jobs each, spec-literal server). Requests per job "
        "/ mean lag (s). *Dominated by*: the published defaults with no more requests and no more lag "
        "(one of them strictly less).",
        "",
        "| band (s) | " + " | ".join(mine) + " | " + " | ".join(plan.baselines) + " |",
        "|---|" + "--:|" * (len(mine) + len(plan.baselines)),
    ]
    dominated: dict[str, list[str]] = {n: [] for n in mine}
    for lo, hi in BANDS:
        name = f"{lo:g}-{hi:g} s"
        c = ctx.cell("none", name, "map")
        cells = [f"{fmt_req(c[n].requests)} / {fmt_s(c[n].lag)}" for n in [*mine, *plan.baselines]]
        t.append(f"| {lo:g}-{hi:g} | " + " | ".join(cells) + " |")
        for n in mine:
            by = [b for b in plan.baselines if dominates(c[b], c[n])]
            if by:
                dominated[n].append(
                    f"{lo:g}-{hi:g} s: " + ", ".join(f"{b} ({_rl(c[b])} vs {_rl(c[n])})" for b in by)
                )
    t.append("")
    for n in mine:
        t.append(
            f"**{n}** is dominated on {len(dominated[n])} of {len(BANDS)} bands"
            + (":" if dominated[n] else ".")
        )
        t += [f"- {line}" for line in dominated[n]]
        t.append("")
    status = ctx.cell("none", "1-3 s", "map")[plan.status]
    short, long = ctx.cell("none", "1-1.5 s", "map"), ctx.cell("none", "1200-7200 s", "map")
    t += [
        "**Why a published default can win.** Where it happens, it is a spec-literal wait that knows "
        "nothing (*GET /status*: no video length, nothing learned, the first poll at once) against a "
        "fixed interval that happens to suit the band. (a) Jobs of a second or two: a fixed 3 s "
        "(AssemblyAI), or Smithy's 2 s, polls once after the end, while vtrans's first "
        f"scheduled poll is 3 x 1.8^phase, 3 to 5.4 s ({_rl(status)} on 1-3 s jobs). (b) Jobs of 20 s "
        "to a few minutes: a fixed 10 s or 30 s bounds the lag by the interval, while the geometric "
        "schedule (x1.8 from 3 s, gaps capped at 60 s) spends its early polls before any job can end "
        "and lets the lag grow to 80 % of D (at most 60 s). The same defaults lose everywhere else: "
        f"30 s costs {fmt_s(short[plan.azure].lag)} s of lag on 1-1.5 s jobs and "
        f"{fmt_req(long[plan.azure].requests)} requests on 20 min-2 h ones, 3 s costs "
        f"{fmt_req(long['fixed 3 s (AssemblyAI)'].requests)}. "
        "No published default dominates vtrans's on the five workloads above (criterion 1), and "
        "as soon as the client has something to go on — its own "
        "jobs to learn from (*vtrans default*), or the caller's range (*expected range*) — the "
        "dominated bands shrink or vanish. A caller who knows its jobs take 20-120 s and polls a "
        "spec-literal server should say so (`expected=(20, 120)`), or simply poll every 10 s.",
        "",
    ]
    return t


def _findings(ctx: Context) -> list[str]:
    """What the numbers say, with the spans behind each claim."""
    plan, d = ctx.plan, ctx.plan.default

    def span(kind: str, attr: str, name: str = d) -> str:
        values = [getattr(ctx.cell(kind, wl)[name], attr) for wl in WLS]
        return f"{min(values):.2f}-{max(values):.2f}"

    readers = [
        f"{100 * min(ctx.cell('sandbox', wl)[n].within for wl in WLS):.0f}-"
        f"{100 * max(ctx.cell('sandbox', wl)[n].within for wl in WLS):.0f} %"
        for n in plan.hint_baselines
    ]
    return [
        "### What the numbers say",
        "",
        "- **Estimates that wobble, drift and stall** (the sandbox's defaults): "
        f"{span('sandbox', 'requests')} requests per job, p95 of lag ÷ bound "
        f"{span('sandbox', 'p95_norm')}; each model alone costs less (wobble "
        f"{span('wobble', 'requests')}, drift {span('drift', 'requests')}, stalls "
        f"{span('stall', 'requests')} requests). The published pollers that read hints (OpenAI, "
        f"azure-core, sleeping the estimate) detect {', '.join(readers)} of these jobs within the bound.",
        f"- **Steady estimates** (one bias per job): {span('bias', 'requests')} requests, ratio "
        f"{span('bias', 'p95_norm')}: fewer requests than the previous default, which read the countdown "
        "rate of two answers (2.00-2.43 in BENCHMARKS.md at commit 94d0cd6), for "
        "a lag of about 1 % of D where it had almost none (it hit the end exactly when the estimate "
        "counted down exactly; this client keeps a margin for a wobble it has not ruled out).",
        f"- **Retry-After only**: {span('retry-after-uncapped', 'requests')} requests, ratio "
        f"{span('retry-after-uncapped', 'p95_norm')} when it is not capped: a hint of n whole seconds "
        "is read as a time in (n - 1, n], the create's answer included. Capped at 60 s (the "
        'sandbox\'s `retry_after_max`), a 30-minute job says nothing but "60" until its last minute: '
        "the client learns the cap (the longest hint, said for as long as it says), then searches "
        "from the earliest end the job's size allows, in steps the cap allows: "
        f"{ctx.cell('retry-after', 'heygen')[d].requests:.2f} requests on HeyGen's 5-30 min, where "
        f"no client can need fewer than {ctx.fewest['heygen'][0]:.2f} (below), so 4 is out of reach "
        "there, and in the mix, a quarter of whose jobs are such.",
        f"- **Long-poll**: lag = one round trip, {span('long-poll', 'requests')} requests per job.",
        "- **No hints**: the client's schedule has not changed: the same figures as BENCHMARKS.md at "
        "commit 94d0cd6, where a model of the client ran. Running the real client found one bug the "
        "model hid: the poll a wait sends at once after a create taught the learning a bound of one "
        "round trip (2 ms).",
        "",
        "Limits of the model: one client waits for its jobs one after the other, with a constant RTT "
        "and no failures; a client that creates many jobs at once learns only as they end. Estimates "
        "err as the sandbox's do (log-normal bias, wobble and drift; stalls that the estimate does "
        "not foresee); a server whose estimates err otherwise is learned only as well as the "
        "client's 36 models can describe it.",
        "",
    ]


def _fewest(ctx: Context) -> list[str]:
    """The bound on requests with a capped ``Retry-After``, and what it assumes."""
    cells = ", ".join(f"{wl} {ctx.fewest[wl][0]:.2f}" for wl in WLS)
    return [
        f"**Fewest requests possible** (`benchmarks/capped.py`): {cells} per job. That is what a "
        "client needs that knows more than any can: each job's duration distribution exactly "
        f"(log-normal around the median its video length gives, sigma {SANDBOX.duration_spread:g}), "
        "and the exact end as soon as an answer is below the cap; before that, every answer says "
        'only "not yet", so the best wait is a fixed sequence of polls, found by dynamic programming, '
        "with 5 % of the jobs late (the p95 criterion; jobs grouped into "
        f"{capped.SIZES} sizes). A real client knows less, and needs more.",
    ]


def _long_poll_table(ctx: Context) -> list[str]:
    plan = ctx.plan
    t = [
        f"## Long-poll (W = {HOLD:g} s)",
        "",
        "| workload | strategy | req/job | max req | jobs over ceil(D/W)+1 | lag mean (s) "
        "| max abs(lag - RTT)² | handovers² |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for wl in WLS:
        for n in (plan.default, plan.replicate, plan.azure):
            x = ctx.cell("long-poll", wl)[n]
            t.append(
                f"| {wl} | {n} | {fmt_req(x.requests)} | {x.max_requests} | {x.over_bound} | "
                f"{fmt_s(x.lag)} | {x.lag_off_rtt:.1e} | {x.handovers} |"
            )
    t += [
        "",
        "² A *handover*: the job ended while the answer to a full hold was on its way back, and the client "
        "asked again at once; max abs(lag - RTT) is over the other jobs.",
        "",
    ]
    return t


# --- plots and the report -------------------------------------------------------------------------


def write_plots(ctx: Context, where: Path) -> None:
    plan = ctx.plan
    kinds = {plan.default: "vtrans", plan.unlearned: "unlearned", plan.status: "before"}
    for wl, (_, title) in WORKLOADS.items():
        for key, names, label in (
            ("none", [*kinds, *plan.baselines], "No hints"),
            ("sandbox", [plan.default, *plan.hint_baselines], "Estimates (the sandbox's defaults)"),
        ):
            cell = ctx.cell(key, wl)
            front = frontier({n: cell[n] for n in names})
            points = []
            for n in names:
                kind = kinds.get(n) or ("hint" if n in plan.hint_baselines else "baseline")
                s = cell[n]
                points.append(Point(s.requests, max(s.lag, 1e-4), n, kind, n in front))
            name = "none" if key == "none" else "hints"
            text = scatter(points, f"{label} - {title}", "mean requests per job", "mean detection lag (s)")
            (where / f"polling-{name}-{wl}.svg").write_text(text)


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = ["git", "-C", str(ROOT)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        )
        version = commit.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        version = "unknown"
    return [
        f"- machine: {cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; vtrans at commit {version}",
    ]


@dataclass
class Report:
    head: str
    criteria: str
    tables: str

    def full(self, report: Path, plots: Path) -> str:
        base = report.resolve().parent
        text = "\n".join((self.head, self.criteria, self.tables))
        return text.replace("{plots}", os.path.relpath(plots.resolve(), base))
