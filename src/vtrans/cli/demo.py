"""``vtrans demo``: a temporary service, several jobs waited on at once, and what it cost.

The demo starts ``python -m vtrans serve`` on a free port of 127.0.0.1 with a temporary SQLite
file, submits jobs of different lengths (one of them fails on purpose), waits for all of them
*and* for the spec's bare ``GET /status`` concurrently with one :class:`vtrans.AsyncClient`,
and prints a table: each job's outcome, its duration on the service, the requests the client
made for it and the detection lag. The service is always stopped at the end, Ctrl-C included.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vtrans import __version__
from vtrans.cli.display import ICONS, NOTES, JobBars, error
from vtrans.cli.errors import Exit, describe
from vtrans.cli.link import LinkWatch
from vtrans.cli.words import fmt_duration, fmt_length, short_id
from vtrans.client import AsyncClient, Transport, VtransError
from vtrans.protocol import Job, Simulate

if TYPE_CHECKING:
    from vtrans.server.stores import StoredJob

#: Videos of these lengths (seconds), in this order, for ``--jobs`` up to 20.
VIDEO_SECONDS = (10, 30, 60, 120, 300, 20, 45, 90, 180, 240, 15, 40, 75, 150, 270, 25, 50, 105, 210, 360)
LANGUAGES = ("es", "fr", "de", "ja", "pt-BR", "hi", "ko", "it", "zh", "ar")
#: How the client waits for each job, in turn: the event stream, held polls, plain polls.
TRANSPORTS: tuple[Transport, ...] = ("sse", "long-poll", "poll")
#: The error the one failing job ends with.
FAILURE_CODE = "unsupported_media"
#: Key of the ``GET /status`` row (a path, so it can never clash with a job id).
STATUS = "/status"
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
#: After Ctrl-C, the service gets this long to stop before it is killed (its data is throwaway).
INTERRUPTED_GRACE = 1.0
#: No wait of the demo lasts longer than this (the longest job takes about 13 s).
WAIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Plan:
    """One job of the demo: what is submitted, and how the simulation is told to play it."""

    language: str
    video_seconds: float
    duration: float
    fails: bool
    transport: Transport

    @property
    def simulate(self) -> Simulate:
        if self.fails:
            return Simulate(duration_seconds=self.duration, outcome="error", error_code=FAILURE_CODE)
        return Simulate(duration_seconds=self.duration, outcome="completed")

    @property
    def expected(self) -> str:
        return "error" if self.fails else "completed"


def make_plans(count: int) -> list[Plan]:
    """``count`` jobs from 10 s to 6 min of video taking 3 to 13 s; from two jobs on, the middle one fails."""
    fail_at = count // 2 if count > 1 else -1
    plans = []
    for i in range(count):
        video = float(VIDEO_SECONDS[i % len(VIDEO_SECONDS)])
        duration = round(2.0 + 10.0 * (video / 300.0) ** 0.6, 1)
        language, transport = LANGUAGES[i % len(LANGUAGES)], TRANSPORTS[i % len(TRANSPORTS)]
        plans.append(Plan(language, video, duration, fails=i == fail_at, transport=transport))
    return plans


# --- the service --------------------------------------------------------------------------------


class ServiceStartError(Exception):
    """The service did not come up; the message quotes its log."""


class LocalService:
    """``python -m vtrans serve`` on a free port of 127.0.0.1, its SQLite file and log in ``directory``."""

    def __init__(self, directory: Path, status_delay: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = directory / "vtrans.db"
        self.log_path = directory / "service.log"
        self.status_delay = status_delay
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "vtrans",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db_path),
            "--error-rate",
            "0",
            "--delay",
            f"{self.status_delay:g}",
        ]

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Spawn the service; return once ``GET /healthz`` answers, or raise :class:`ServiceStartError`."""
        # The demo's own settings: no VTRANS_* variable of the caller's shell (an API key…) applies.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTRANS_")}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        with httpx2.Client(timeout=1.0) as probe:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise ServiceStartError(
                        f"the service exited ({code}) before it answered:\n{self.log_tail()}"
                    )
                try:
                    if probe.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ServiceStartError(
                        f"the service did not answer /healthz within {timeout:g} s:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def stop(self, grace: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (or at a second Ctrl-C)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            process.kill()
            process.wait()

    def wait(self) -> int:
        """Until the service exits; its exit code."""
        assert self.process is not None
        return self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def status_timeline(self) -> tuple[float, float] | None:
        """When the job behind ``GET /status`` started and ended, read from the service's SQLite file.

        The spec's body is only ``{"result": ...}``; the service keeps the rest in its store.
        """
        from vtrans.server.service import STATUS_JOB_KEY
        from vtrans.server.stores.sqlite import sqlite_store

        async def read() -> StoredJob | None:
            store = sqlite_store(self.db_path, read_only=True)
            await store.open()
            try:
                job_id = await store.get_meta(STATUS_JOB_KEY)
                return await store.get(job_id) if job_id else None
            finally:
                await store.close()

        try:
            job = asyncio.run(read())
        except Exception:  # only a footnote is lost
            return None
        return None if job is None else (job.timeline.created_at, job.timeline.ends_at)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- waiting for everything at once ----------------------------------------------------------------


@dataclass
class Row:
    """One line of the summary."""

    key: str
    plan: Plan | None
    job: Job | None = None
    #: The client error that ended the wait instead of an outcome (a timeout…).
    problem: str | None = None
    #: ``time.time()`` when ``wait()`` returned.
    returned_at: float | None = None
    requests: int = 0
    duration: float | None = None
    lag: float | None = None

    @property
    def expected(self) -> str:
        return self.plan.expected if self.plan else "completed"

    @property
    def transport(self) -> Transport:
        return self.plan.transport if self.plan else "long-poll"

    @property
    def as_planned(self) -> bool:
        if self.job is None:
            return False
        code = self.job.error.code if self.job.error else None
        return self.job.result == self.expected and (code == FAILURE_CODE) == (self.expected == "error")


def request_key(path: str) -> str:
    """Which row a request belongs to: the job id in its path, or ``/status``."""
    if path.startswith("/v1/jobs/"):
        return path.split("/")[3]
    return path


async def wait_all(console: Console, url: str, plans: list[Plan]) -> tuple[list[Row], int]:
    """Submit the jobs, then wait for them and ``GET /status`` concurrently, with live bars.

    Returns the rows and how many requests the client sent in all.
    """
    counts: Counter[str] = Counter()
    bars = JobBars(console, transient=True, requests=True, elapsed=False, bar_width=24)

    async def count(request: httpx2.Request) -> None:
        key = request_key(request.url.path)
        counts[key] += 1
        bars.set_requests(key, counts[key] + (0 if key == STATUS else 1))  # + the POST that created it

    http = httpx2.AsyncClient(
        base_url=url,
        timeout=10.0,
        headers={"User-Agent": f"vtrans-demo/{__version__}"},
        event_hooks={"request": [count]},
    )
    # The rows' status lines tell of connection trouble, as `vtrans wait`'s does.
    watch = LinkWatch(url, bars.set_link)
    async with AsyncClient(url, http_client=http, hooks=[watch]) as client:
        jobs = await asyncio.gather(
            *(client.create(p.language, p.video_seconds, simulate=p.simulate) for p in plans)
        )
        rows = [Row(job.id or "?", plan) for plan, job in zip(plans, jobs, strict=True)]
        rows.append(Row(STATUS, None))

        async def follow(row: Row) -> None:
            try:
                outcome = await client.wait(
                    None if row.key == STATUS else row.key,
                    timeout=WAIT_TIMEOUT,
                    on_progress=bars.updater(row.key),
                    raise_on_error=False,
                    transport=row.transport,
                )
                row.job = outcome if isinstance(outcome, Job) else Job(result=outcome.result)
                row.returned_at = time.time()
            except VtransError as exc:
                row.problem = describe(exc, url)

        with bars:
            for row in rows:
                if row.plan is None:
                    bars.add(row.key, "GET /status", has_progress=False, note="held by the service…")
                else:
                    label = f"{row.plan.language:<5} {fmt_length(row.plan.video_seconds):>10}"
                    bars.add(row.key, label, note=NOTES[row.transport])
                bars.set_requests(row.key, 0 if row.plan is None else 1)
            await asyncio.gather(*(follow(row) for row in rows))
    for row in rows:
        row.requests = counts[row.key] + (0 if row.plan is None else 1)
        job = row.job
        if job is not None and job.created_at is not None and job.finished_at is not None:
            row.duration = (job.finished_at - job.created_at).total_seconds()
            if row.returned_at is not None:
                row.lag = row.returned_at - job.finished_at.timestamp()
    return rows, sum(counts.values())


# --- the summary ------------------------------------------------------------------------------------


def outcome_cell(row: Row) -> Text:
    if row.job is None:
        return Text(f"✗ {row.problem or 'no answer'}", style="red")
    job = row.job
    text = Text(
        f"{ICONS.get(job.result, '·')} {job.result}", style="green" if job.result == "completed" else "red"
    )
    if job.error is not None:
        text.append(f" ({job.error.code})")
    if not row.as_planned:
        text.append(f"  expected {row.expected}", style="bold yellow")
    return text


def fmt_lag(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 0.9995 else f"{seconds:.2f} s"


#: The columns of the summary but the outcome: (name, width), all kept whole.
FIGURES = (("job", 11), ("lang", 5), ("video", 5), ("via", 9), ("duration", 8), ("reqs", 4), ("lag", 8))


def summary_table(rows: list[Row], width: int) -> Table:
    """The summary, ``width`` columns wide at most: on a narrow terminal only the outcome's error
    code gives way, with an ellipsis."""
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", collapse_padding=True
    )
    outcome = max(11, width - sum(w for _, w in FIGURES) - 2 * len(FIGURES))
    for name, size in FIGURES[:4]:
        table.add_column(name, no_wrap=True, width=size, justify="right" if name == "video" else "left")
    table.add_column("outcome", overflow="ellipsis", no_wrap=True, max_width=outcome)
    for name, size in FIGURES[4:]:
        table.add_column(name, justify="right", no_wrap=True, width=size)
    for row in rows:
        plan = row.plan
        table.add_row(
            "/status" if plan is None else short_id(row.key),
            "—" if plan is None else plan.language,
            "—" if plan is None else fmt_length(plan.video_seconds),
            row.transport,
            outcome_cell(row),
            "—" if row.duration is None else fmt_duration(row.duration),
            str(row.requests),
            "—" if row.lag is None else fmt_lag(row.lag),
        )
    return table


FOOTNOTES = (
    (
        "via",
        "how the client waited: sse follows the job's event stream (progress pushed, one request); "
        "long-poll asks the service to hold each GET until the job ends or, as the bars show progress, "
        "has moved on by a tenth (Prefer: wait=30, progress=0.1: about 11 requests); poll sends "
        "plain GETs, sleeping until the service's estimate.",
    ),
    ("duration", "on the service, from the job's created_at to its finished_at."),
    (
        "reqs",
        "requests sent by the client for the job: the POST that created it, then every request whose path "
        "names it (counted by an httpx2 event hook); for /status, every GET /status.",
    ),
    (
        "lag",
        "how late the client knew: when wait() returned minus the service's finished_at, both "
        "read with time.time() on this machine (the service runs here too, so no clock skew).",
    ),
    (
        "/status",
        'the spec\'s body is just {"result": ...}: its start and end times are read from the '
        "service's SQLite file.",
    ),
)


def print_summary(console: Console, rows: list[Row], requests: int, elapsed: float) -> None:
    console.print()
    console.print(summary_table(rows, console.width))
    jobs = sum(1 for row in rows if row.plan is not None)
    lags = [row.lag for row in rows if row.lag is not None]
    totals = (
        f"{jobs} job{'s' if jobs != 1 else ''} and GET /status in {fmt_duration(elapsed)}"
        f" · {requests} requests in all"
    )
    if lags:
        totals += f" · lag: median {fmt_lag(statistics.median(lags))}, max {fmt_lag(max(lags))}"
    console.print()
    console.print(totals)
    console.print()
    notes = Table.grid(padding=(0, 2))
    notes.add_column(style="dim bold", no_wrap=True)
    notes.add_column(style="dim")
    for name, text in FOOTNOTES:
        notes.add_row(name, text)
    console.print(notes)


# --- the command ------------------------------------------------------------------------------------


def run(console: Console, count: int, *, keep: bool = False) -> int:
    """The whole demo; returns the exit status (0: every job ended as planned)."""
    plans = make_plans(count)
    durations = sorted(p.duration for p in plans)
    directory = Path(tempfile.mkdtemp(prefix="vtrans-demo-"))
    service = LocalService(directory, status_delay=durations[len(durations) // 2])
    started = time.monotonic()
    failed: Exit | None = None
    waited = False
    try:
        with console.status("Starting the service…"):
            service.start()
        shortest, longest = (f(p.video_seconds for p in plans) for f in (min, max))
        videos = fmt_length(shortest) + (f" to {fmt_length(longest)}" if longest > shortest else "")
        fails = "; one fails on purpose" if any(p.fails for p in plans) else ""
        console.print(
            f"The service is up on {service.url} (with a temporary SQLite file); watch it at {service.url}/",
            style="dim",
            highlight=False,
        )
        console.print(
            f"Waiting for {len(plans)} job{'s' if len(plans) != 1 else ''} ({videos} of video{fails})"
            " and for GET /status, all at once…",
            style="dim",
        )
        rows, requests = asyncio.run(wait_all(console, service.url, plans))
        timeline = service.status_timeline()
        waited = True
    except ServiceStartError as exc:
        console.print(error(f"could not start the service: {exc}"))
        failed = Exit.SERVICE
    except VtransError as exc:
        console.print(error(describe(exc, service.url)))
        failed = Exit.SERVICE
    except KeyboardInterrupt:
        failed = Exit.INTERRUPTED
    finally:
        if not (keep and waited):
            # Interrupted, requests may still be held open: no need to let them finish gracefully.
            service.stop(grace=INTERRUPTED_GRACE if failed == Exit.INTERRUPTED else STOP_TIMEOUT)
            if not keep:
                shutil.rmtree(directory, ignore_errors=True)
    if failed == Exit.INTERRUPTED:
        console.print("interrupted: the service is stopped")
    if failed is not None:
        return failed
    elapsed = time.monotonic() - started
    status_row = rows[-1]
    if timeline is not None:
        status_row.duration = timeline[1] - timeline[0]
        if status_row.returned_at is not None:
            status_row.lag = status_row.returned_at - timeline[1]
    try:
        print_summary(console, rows, requests, elapsed)
        wrong = [row for row in rows if not row.as_planned]
        if wrong:
            names = ", ".join(short_id(row.key) for row in wrong)
            console.print(error(f"not as planned: {names}"))
        if keep:
            return keep_serving(console, service, directory)
        return Exit.JOB_FAILED if wrong else Exit.COMPLETED
    finally:
        service.stop(grace=INTERRUPTED_GRACE)  # kept up until now with --keep


def keep_serving(console: Console, service: LocalService, directory: Path) -> int:
    """``--keep``: leave the service up, with its dashboard, until Ctrl-C (then exit 130)."""
    console.print(
        f"\nThe service stays up: dashboard at {service.url}/ · API docs at {service.url}/docs"
        " · Ctrl-C to stop.",
        highlight=False,
    )
    try:
        code = service.wait()
    except KeyboardInterrupt:
        service.stop(grace=INTERRUPTED_GRACE)
        console.print(
            f"interrupted: the service is stopped; kept {directory} (vtrans serve --db {service.db_path})",
            highlight=False,
        )
        return Exit.INTERRUPTED
    console.print(error(f"the service stopped on its own ({code}):\n{service.log_tail()}"))
    return Exit.SERVICE
