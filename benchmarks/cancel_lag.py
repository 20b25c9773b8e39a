"""Cross-process cancel-to-wake lag: long-polls held on service process A, their jobs cancelled
one after another on process B (same PostgreSQL database), and the time until each waiter on A
has its answer. The path measured: B's ``DELETE`` commits with a ``NOTIFY``, PostgreSQL tells A,
A evicts its cached row, wakes the waiter, reads the job again and answers it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from processes import ServerProcess
from rawhttp import RawConnection, Reply, connect, create_jobs, long_poll, request, wait_held
from stats import pct, spread

#: How long each waiter asks to be held (the services run with at least this ``--max-wait``).
HOLD = 300


@dataclass
class CancelRun:
    waiters: int
    held: int = 0
    #: Per cancel: ``DELETE`` sent to B -> the waiter's answer from A (arrival of its last byte).
    after_send: list[float] = field(default_factory=list)
    #: Per cancel: the ``DELETE``'s own answer from B -> the waiter's answer from A.
    after_reply: list[float] = field(default_factory=list)
    #: Per cancel: ``DELETE`` sent -> its answer (B's round trip, commit included).
    delete: list[float] = field(default_factory=list)
    #: Waiters answered before their cancel, or with something else than ``error``/``cancelled``.
    early: int = 0
    wrong: int = 0
    errors: list[str] = field(default_factory=list)


async def measure(a: ServerProcess, b: ServerProcess, waiters: int, burst: int = 500) -> CancelRun:
    """Create ``waiters`` jobs of an hour on B, long-poll each on A, then cancel them on B in turn."""
    run = CancelRun(waiters)
    ids = await create_jobs(b.port, [lambda: 3600.0] * waiters)
    conns: list[RawConnection] = []
    answers: list[asyncio.Future[Reply]] = []
    control: RawConnection | None = None
    try:
        for start in range(0, waiters, burst):
            chunk = ids[start : start + burst]
            opened = await asyncio.gather(*(connect(a.port) for _ in chunk))
            answers += [c.send(long_poll(job_id, HOLD)) for c, job_id in zip(opened, chunk, strict=True)]
            conns += opened
        run.held = await wait_held(a, {c.local_port for c in conns}, timeout=60)
        if run.held < waiters:
            run.errors.append(f"only {run.held}/{waiters} long-polls were read by A in 60 s")
        control = await connect(b.port)
        for job_id, conn, answer in zip(ids, conns, answers, strict=True):
            if answer.done():
                run.early += 1
                continue
            sent = time.time()
            reply = await asyncio.wait_for(control.send(request("DELETE", f"/v1/jobs/{job_id}")), 30)
            woken = await asyncio.wait_for(answer, 30)
            conn.abort()
            body = woken.json()
            if reply.status != 200 or (body.get("error") or {}).get("code") != "cancelled":
                run.wrong += 1
                run.errors.append(f"DELETE {reply.status}; waiter answered {woken.status} {body}"[:300])
                continue
            run.after_send.append(woken.arrived - sent)
            run.after_reply.append(woken.arrived - reply.arrived)
            run.delete.append(reply.arrived - sent)
    finally:
        for conn in conns:
            conn.abort()
        if control is not None:
            control.abort()
    return run


def table(runs: list[CancelRun]) -> list[str]:
    def row(label: str, values: list[list[float]]) -> str:
        cells = [spread([pct(v, q) for v in values], 2) for q in (50, 99)]
        worst = spread([max(v, default=float("nan")) for v in values], 2)
        return f"| {label} | {cells[0]} | {cells[1]} | {worst} |"

    return [
        "| per cancel, ms | p50 | p99 | max |",
        "|---|---:|---:|---:|",
        row("**`DELETE`'s answer from B → the waiter's answer from A**", [r.after_reply for r in runs]),
        row("**`DELETE` sent to B → the waiter's answer from A**", [r.after_send for r in runs]),
        row("`DELETE` sent → its answer (B)", [r.delete for r in runs]),
        "",
        f"Waiters held / asked: {' / '.join(f'{r.held}/{r.waiters}' for r in runs)}; cancels timed: "
        f"{' / '.join(str(len(r.after_send)) for r in runs)}; answered before their cancel: "
        f"{' / '.join(str(r.early) for r in runs)}; answered wrongly: "
        f"{' / '.join(str(r.wrong) for r in runs)} (`/` separates runs).",
    ]


def goal(runs: list[CancelRun], limit: float = 0.010) -> tuple[bool, str]:
    """Whether the waiters' answers came within ``limit`` (p99, every run) of the ``DELETE``'s
    answer, every waiter woken rightly; and the figures, with the p99 from the ``DELETE``'s
    sending (B's own commit included) beside them."""
    replied = [pct(r.after_reply, 99) for r in runs]
    sent = [pct(r.after_send, 99) for r in runs]
    complete = all(len(r.after_send) == r.waiters and not r.early and not r.wrong for r in runs)
    ok = complete and max(replied) <= limit
    within = "within" if max(sent) <= limit else "over"
    return ok, (
        f"p99 {spread(replied, 2)} ms after the `DELETE`'s answer (median, then each run); from its "
        f"sending, B's commit included: {spread(sent, 2)} ms ({within} {limit * 1e3:g} ms); every "
        f"waiter woken rightly: {'yes' if complete else 'no'}"
    )
