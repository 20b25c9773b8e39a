"""How the command line looks: consoles, logging, job summaries, tables of jobs and live progress bars.

Results go to stdout, everything else (progress, errors, logs) to stderr, so
``ID=$(vtrans submit ...)`` and ``vtrans wait --json ... | jq`` work. Rich drops the colours and
the animation when a stream is not a terminal: a CI log gets the final lines only.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TimeElapsedColumn
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from vtrans.cli.link import Link, describe_link
from vtrans.cli.words import (
    clock_time,
    fmt_countdown,
    fmt_duration,
    fmt_length,
    seconds_left,
    server_duration,
)
from vtrans.protocol import Job

#: Width used when the output is not a terminal (a CI log or a file): wide enough for the tables.
LOG_WIDTH = 100
#: Width for a table whose rows should never wrap when the output is not a terminal.
WIDE = 240
STYLES = {"pending": "cyan", "completed": "green", "error": "red"}
ICONS = {"completed": "✓", "error": "✗"}


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout or stderr that leaves long lines to the terminal to wrap (tables fit its
    width; not a terminal and no ``$COLUMNS``: :data:`LOG_WIDTH` wide)."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = LOG_WIDTH
    return console


def setup_logging(verbosity: int, console: Console) -> None:
    """Show the library's logs on ``console``: warnings; ``-v`` info; ``-vv`` debug and each request.

    On a terminal through rich (above any live bars); elsewhere as plain lines, one per record.
    """
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, show_time=verbosity >= 2, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(console.file)
        timed = "%(asctime)s " if verbosity >= 2 else ""
        handler.setFormatter(logging.Formatter(f"{timed}%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    level = logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING
    logging.getLogger("vtrans").setLevel(level)
    logging.getLogger("httpx2").setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)


def error(message: str) -> Text:
    """``error: <message>``, the one line every failure prints on stderr."""
    return Text.assemble(("error: ", "bold red"), message)


# --- one job in one line -----------------------------------------------------------------------


def summary(job: Job, now: datetime | None = None, *, waited: float | None = None) -> Text:
    """The job in one line: who it is, its result, and what matters for that result.

    ``job_… pending · 42% · about 8 s left (14:03:41) · es · 1 min 30 s of video``; ``waited`` is
    how long the client waited, shown when the service gave no timestamps (``GET /status``).
    """
    line = Text()
    line.append(job.id or "GET /status", style="bold")
    line.append("  ")
    line.append(job.result, style=STYLES[job.result])
    details: list[str] = []
    if job.result == "pending":
        if job.progress is not None:
            details.append(f"{job.progress:.0%}")
        left = seconds_left(job, now)
        if left is not None:
            when = f" ({clock_time(job.estimated_completion_at)})" if job.estimated_completion_at else ""
            details.append(f"about {fmt_countdown(left)} left{when}" if left > 0 else "any moment now")
    else:
        if job.error is not None:
            details.append(f"{job.error.code}: {job.error.message}")
        took = server_duration(job)
        if took is not None:
            details.append(f"took {fmt_duration(took)}")
        if job.finished_at is not None:
            details.append(f"finished {clock_time(job.finished_at)}")
        elif waited is not None:
            details.append(f"after waiting {fmt_duration(waited)}")
    if job.language is not None:
        details.append(job.language)
    if job.video_seconds is not None:
        details.append(f"{fmt_length(job.video_seconds)} of video")
    if details:
        line.append(" · " + " · ".join(details), style="default")
    return line


# --- live progress -----------------------------------------------------------------------------


class _StateIcon(SpinnerColumn):
    """A spinner while the job is pending, then ✓ or ✗."""

    def render(self, task: Task) -> Text:
        result = task.fields.get("result", "pending")
        if result in ICONS:
            return Text(ICONS[result], style=STYLES[result])
        return super().render(task)  # type: ignore[return-value]


class _Bar(BarColumn):
    """Rich's bar, red when the job failed."""

    def render(self, task: Task) -> ProgressBar:
        bar = super().render(task)
        if task.fields.get("result") == "error":
            bar.complete_style = bar.finished_style = "red"
        return bar


class _Percent(ProgressColumn):
    """The progress the service reports; blank when it reports none (``GET /status``), or before
    it has answered at all (a 0% would claim a progress nobody knows)."""

    def render(self, task: Task) -> Text:
        known = task.fields.get("has_progress", True) and task.fields.get("progress_known")
        if task.total is None or not known:
            return Text("    ")  # none on this endpoint, or none heard of yet
        return Text(f"{task.percentage:>3.0f}%", style="progress.percentage")


class _State(ProgressColumn):
    """Pending: the service's estimate, counting down between answers, or what is wrong with the
    connection (the countdown stops meanwhile). Done: the outcome."""

    def render(self, task: Task) -> Text:
        result = task.fields.get("result", "pending")
        if result == "error":
            return Text(f"error: {task.fields.get('code') or 'unknown'}", style="red")
        if result == "completed":
            took = task.fields.get("took")
            return Text("completed" + (f" in {fmt_duration(took)}" if took is not None else ""), "green")
        link: Link | None = task.fields.get("link")
        if link is not None and link.trouble:
            return Text(describe_link(link), "yellow")
        due: float | None = task.fields.get("due")
        if due is None:
            return Text(task.fields.get("note") or "waiting…", "dim")
        left = due - time.monotonic()
        return Text(f"about {fmt_countdown(left)} left" if left > 0 else "any moment now", "cyan")


class _Requests(ProgressColumn):
    """How many requests the client sent for this job so far."""

    def render(self, task: Task) -> Text:
        count = task.fields.get("requests")
        return Text("" if count is None else f"{count:>2} req", style="dim")


class JobBars:
    """Live progress bars, one per job, fed with each new state of the job.

    ``with JobBars(console) as bars:``, ``bars.add(key, label)`` then
    ``client.wait(job_id, on_progress=bars.updater(key))``. Pending rows show the service's
    progress and its estimate of the time left (counting down between polls); finished rows show
    the outcome.
    """

    def __init__(
        self,
        console: Console,
        *,
        transient: bool = True,
        requests: bool = False,
        elapsed: bool = True,
        bar_width: int = 30,
        disable: bool = False,
    ) -> None:
        columns: list[ProgressColumn] = [
            _StateIcon(),
            _Label(),
            _Bar(bar_width=bar_width),
            _Percent(),
            _State(),
        ]
        if requests:
            columns.append(_Requests())
        if elapsed:
            columns.append(TimeElapsedColumn())
        # Transient bars on a file or a CI log would leave only a blank line: show none there.
        disable = disable or (transient and not console.is_terminal)
        self.progress = Progress(
            *columns, console=console, transient=transient, refresh_per_second=4, disable=disable
        )
        self._tasks: dict[str, TaskID] = {}
        self._pulsing: set[str] = set()
        #: Per row: when the estimate says the job ends (``time.monotonic()``), and since when its
        #: countdown is stopped because the connection is in trouble.
        self._due: dict[str, float | None] = {}
        self._paused: dict[str, float] = {}

    def __enter__(self) -> JobBars:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def add(self, key: str, label: str, *, has_progress: bool = True, note: str = "waiting…") -> None:
        """A new row; ``has_progress=False`` (``GET /status``) shows a pulse instead of a bar.

        ``note`` stands in for the estimate until the service sends one.
        """
        if not has_progress:
            self._pulsing.add(key)
        self._tasks[key] = self.progress.add_task(
            label,
            total=100.0 if has_progress else None,
            has_progress=has_progress,
            result="pending",
            note=note,
        )

    def update(self, key: str, job: Job) -> None:
        """Show a new state of the job."""
        task = self._tasks[key]
        left = seconds_left(job)
        completed = None if job.progress is None else job.progress * 100.0
        if job.done and (job.result == "completed" or completed is None):
            completed = 100.0  # a full bar: green, or red for a failure of unknown progress
        total = 100.0 if job.done or key not in self._pulsing else None
        due = self._due[key] = None if left is None else time.monotonic() + left
        self._paused.pop(key, None)  # an answer: the connection works
        self.progress.update(
            task,
            total=total,
            completed=completed,
            progress_known=completed is not None,
            result=job.result,
            due=due,
            link=None,
            code=job.error.code if job.error else None,
            took=server_duration(job),
        )
        if job.done:
            self.progress.stop_task(task)

    def set_link(self, key: str, link: Link) -> None:
        """Show the connection's trouble on the row ``key`` instead of the estimate, whose
        countdown stops until the connection is back (a new estimate replaces it then)."""
        if key not in self._tasks:
            return
        now, due = time.monotonic(), self._due.get(key)
        if link.trouble:
            self._paused.setdefault(key, now)
        elif key in self._paused:
            paused_at = self._paused.pop(key)
            if due is not None:
                due = self._due[key] = due + (now - paused_at)
        self.progress.update(self._tasks[key], link=link, due=due)

    def updater(self, key: str) -> Callable[[Job], None]:
        """A callback for ``wait(on_progress=...)`` that updates the row ``key``."""
        return functools.partial(self.update, key)

    def set_requests(self, key: str, count: int) -> None:
        """Show how many requests were made for the row ``key`` (if there is one)."""
        if key in self._tasks:
            self.progress.update(self._tasks[key], requests=count)


class _Label(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(task.description)


#: What a row says while the service has sent no estimate yet, by how the client waits.
NOTES = {
    "sse": "connecting…",
    "auto": "held by the service…",
    "long-poll": "held by the service…",
    "poll": "polling…",
}


def first_note(transport: str, url: str) -> str:
    """What a row says before the first answer: where the client is connecting, and how."""
    if transport == "sse":
        return f"connecting to {url}…"
    if transport == "poll":
        return f"polling {url}…"
    return f"waiting on {url} (held)…"


@contextmanager
def job_bars(
    console: Console, key: str, label: str, *, has_progress: bool, transport: str, url: str, disable: bool
) -> Iterator[JobBars]:
    """One transient bar for one wait (nothing at all with ``disable``, or when not a terminal)."""
    with JobBars(console, disable=disable) as bars:
        note = first_note(transport, url) if has_progress else f"GET {url}/status (no estimate there)…"
        bars.add(key, label, has_progress=has_progress, note=note)
        yield bars


class LinkLines:
    """Where no status line is drawn (not a terminal): one line on ``console`` when a connection
    that worked is lost, and one when the service answers again. A listener of
    :class:`~vtrans.cli.link.LinkWatch`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.lost_at: float | None = None

    def __call__(self, key: str, link: Link) -> None:
        if link.phase == "lost" and self.lost_at is None:
            self.lost_at = time.monotonic()
            self.console.print(f"connection to {link.url} lost ({link.cause}): retrying", style="yellow")
        elif not link.trouble and self.lost_at is not None:
            back_after = fmt_duration(time.monotonic() - self.lost_at)
            self.lost_at = None
            self.console.print(f"{link.url} answered again after {back_after}", style="dim")


# --- many jobs ---------------------------------------------------------------------------------


def jobs_table(jobs: list[Job], now: datetime | None = None) -> Table:
    """Jobs as a table, in the order given: id, result, language, video, when created, and what
    matters for the result (its progress and the estimate, how long it took, its error code)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("job", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("lang", no_wrap=True)
    table.add_column("video", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("details")
    for job in jobs:
        details: list[str] = []
        if job.result == "pending":
            if job.progress is not None:
                details.append(f"{job.progress:.0%}")
            left = seconds_left(job, now)
            if left is not None:
                details.append(f"about {fmt_countdown(left)} left" if left > 0 else "any moment now")
        else:
            if job.error is not None:
                details.append(job.error.code)
            took = server_duration(job)
            if took is not None:
                details.append(f"took {fmt_duration(took)}")
        table.add_row(
            job.id or "?",
            Text(job.result, style=STYLES[job.result]),
            job.language or "—",
            "—" if job.video_seconds is None else fmt_length(job.video_seconds),
            "—" if job.created_at is None else clock_time(job.created_at),
            " · ".join(details),
        )
    return table
