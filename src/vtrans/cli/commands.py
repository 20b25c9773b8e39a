"""The ``vtrans`` commands. The connection flags, and every ``serve`` flag, also read ``VTRANS_*``
environment variables.

``submit``, ``status``, ``wait``, ``cancel`` and ``jobs`` are thin shells over :class:`vtrans.Client`
(see :mod:`vtrans.cli.session`): they print what it returns and turn what it raises into an exit
status and one line on stderr (never a traceback); the exit codes are in :mod:`vtrans.cli.errors`.
``serve`` runs the service; ``demo`` runs both, see :mod:`vtrans.cli.demo`.

With ``--json`` the job is printed as JSON on stdout whatever its result (the exit status still
says how it ended); ``jobs --json`` prints one job per line (JSON Lines). Progress bars, logs and
errors always go to stderr.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any, Literal

import click
import msgspec
from rich.text import Text

from vtrans import __version__
from vtrans.cli.display import (
    ICONS,
    WIDE,
    JobBars,
    LinkLines,
    error,
    job_bars,
    jobs_table,
    make_console,
    setup_logging,
    summary,
)
from vtrans.cli.errors import EXIT_CODES_HELP, Exit, Group, describe
from vtrans.cli.link import Listener
from vtrans.cli.serve import serve
from vtrans.cli.session import Session, client_command
from vtrans.cli.words import fmt_length, short_id
from vtrans.client import TRANSPORTS, Client, JobFailed, Transport, WaitTimeout
from vtrans.protocol import MAX_VIDEO_SECONDS, RESULTS, Job, Simulate, Status

transport_option = click.option(
    "--transport",
    type=click.Choice(TRANSPORTS),
    help="How to wait: the job's event stream (sse), polls held by the service (long-poll), "
    "plain polls (poll), or auto (long-poll, falling back to polls).  "
    "[default: sse with a progress bar, else auto]",
)


def timeout_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS", help=help)


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
    help=f"""Submit video translations and wait for them well; or run the sandbox service.

\b
  vtrans serve                           # the service, on http://127.0.0.1:8000
  ID=$(vtrans submit --language es --video-seconds 90)
  vtrans wait "$ID"                      # a live progress bar, then the outcome
  vtrans jobs                            # the latest jobs, newest first
  vtrans demo                            # all of it, on a temporary service

{EXIT_CODES_HELP}
""",
)
@click.version_option(__version__, prog_name="vtrans")
def cli() -> None:
    pass


# --- what the client commands share ----------------------------------------------------------


def _job_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (not value or "/" in value or value in (".", "..")):
        raise click.BadParameter(f"{value!r} is not a job id")
    return value


class _Seconds(click.FloatRange):
    """A range of seconds that refuses nan and inf too (click lets nan through any bound)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


def _video_seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """The video's length, refused here (before any request) when the service would refuse it."""
    if value is not None and value > MAX_VIDEO_SECONDS:
        raise click.UsageError(
            f"--video-seconds must be at most {fmt_length(MAX_VIDEO_SECONDS)} ({MAX_VIDEO_SECONDS:g} s),"
            f" not {value:g} s",
            ctx,
        )
    return value


def _echo_json(job: Job | Status) -> None:
    click.echo(msgspec.json.encode(job).decode())


def _as_job(outcome: Job | Status) -> Job:
    """A job to show: ``GET /status`` says only its result."""
    return outcome if isinstance(outcome, Job) else Job(result=outcome.result)


def _listener(session: Session, bars: JobBars, *, show: bool, quiet: bool) -> Listener | None:
    """Who hears of connection trouble during a wait: the bar's status line; without a bar (not a
    terminal), a line on stderr when the connection is lost and one when it is back; with -q, no one."""
    if show:
        return lambda key, link: bars.set_link("job", link)
    return None if quiet else LinkLines(session.err)


def _wait(
    session: Session,
    client: Client,
    job_id: str | None,
    *,
    timeout: float | None,
    cancel_on_timeout: bool,
    transport: Transport | None,
    as_json: bool,
    quiet: bool,
) -> int:
    """Wait with a live bar on stderr, print the outcome; the exit status (a timeout raises)."""
    started = time.monotonic()
    label = short_id(job_id) if job_id else "GET /status"
    show = not quiet and session.err.is_terminal
    if transport is None:
        # A progress bar wants the pushed progress of the event stream; else the fewest requests.
        transport = "sse" if show and job_id else "auto"
    bars_shown = job_bars(
        session.err,
        "job",
        label,
        has_progress=job_id is not None,
        transport=transport,
        url=session.url,
        disable=not show,
    )
    try:
        with bars_shown as bars, session.listening(_listener(session, bars, show=show, quiet=quiet)):
            outcome = client.wait(
                job_id,
                timeout=timeout,
                on_progress=bars.updater("job"),
                raise_on_error=False,
                cancel_on_timeout=cancel_on_timeout,
                transport=transport,
            )
    except WaitTimeout as exc:
        if as_json and exc.job is not None:
            _echo_json(exc.job if job_id else Status(result=exc.job.result))
        if cancel_on_timeout:
            session.err.print(error(f"{describe(exc, session.url)}; it was cancelled"))
            raise click.exceptions.Exit(Exit.TIMED_OUT) from None
        session.fail(exc)
    waited = time.monotonic() - started
    job = _as_job(outcome)
    if as_json:
        _echo_json(outcome)
    elif not quiet:
        icon = ICONS[job.result]
        session.out.print(
            Text(f"{icon} ", style="green" if job.result == "completed" else "red")
            + summary(job, waited=waited)
        )
    if job.result == "error":
        if as_json or quiet:  # else the summary above said it
            session.err.print(error(describe(JobFailed(job), session.url)))
        return Exit.JOB_FAILED
    return Exit.COMPLETED


# --- the client commands ----------------------------------------------------------------------


@cli.command()
@click.option(
    "-l", "--language", required=True, help="Target language, e.g. es, fr, pt-BR (any case: ES is es)."
)
@click.option(
    "--video-seconds",
    required=True,
    type=_Seconds(0, min_open=True),
    callback=_video_seconds,
    metavar="SECONDS",
    help=f"Length of the video (at most {fmt_length(MAX_VIDEO_SECONDS)}).",
)
@click.option("--source-url", metavar="URL", help="Where the service fetches the video.")
@click.option("--callback-url", metavar="URL", help="Webhook the service calls when the job ends.")
@click.option(
    "--duration",
    type=_Seconds(0),
    metavar="SECONDS",
    help="Simulation: the job takes exactly this long.",
)
@click.option(
    "--outcome",
    type=click.Choice(["completed", "error"]),
    help="Simulation: how the job ends.",
)
@click.option("--wait", "and_wait", is_flag=True, help="Then wait for it, as 'vtrans wait' does.")
@timeout_option("With --wait: give up after this long (exit code 3).")
@transport_option
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON instead of its id.")
@click.option("-q", "--quiet", is_flag=True, help="With --wait: no progress bar and no summary.")
@client_command
def submit(
    session: Session,
    language: str,
    video_seconds: float,
    source_url: str | None,
    callback_url: str | None,
    duration: float | None,
    outcome: Literal["completed", "error"] | None,
    and_wait: bool,
    timeout: float | None,
    transport: Transport | None,
    as_json: bool,
    quiet: bool,
) -> int:
    """Submit a translation job and print its id (with --wait, wait for it too)."""
    if not and_wait and (timeout is not None or transport is not None):
        raise click.UsageError("--timeout and --transport only apply with --wait")
    simulate = None
    if duration is not None or outcome is not None:
        simulate = Simulate(duration_seconds=duration, outcome=outcome)
    with session.client() as client:
        with session.calling():
            job = client.create(
                language, video_seconds, source_url=source_url, callback_url=callback_url, simulate=simulate
            )
        assert job.id is not None
        if not and_wait:
            if as_json:
                _echo_json(job)
            else:
                click.echo(job.id)
                if session.err.is_terminal:
                    session.err.print(f"wait for it with: vtrans wait {job.id}", style="dim")
            return Exit.COMPLETED
        if not as_json:
            click.echo(job.id)
        return _wait(
            session,
            client,
            job.id,
            timeout=timeout,
            cancel_on_timeout=False,
            transport=transport,
            as_json=as_json,
            quiet=quiet,
        )


@cli.command()
@click.argument("job_id", required=False, callback=_job_id)
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@client_command
def status(session: Session, job_id: str | None, as_json: bool) -> int:
    """Show a job's state now: its result, progress and the service's estimate.

    Without JOB_ID, ask the spec's GET /status, which says only "result".
    """
    with session.client() as client, session.calling():
        outcome = client.get(job_id) if job_id else client.status()
    job = _as_job(outcome)
    if as_json:
        _echo_json(outcome)
    else:
        session.out.print(summary(job))
    return Exit.JOB_FAILED if job.result == "error" else Exit.COMPLETED


@cli.command()
@click.argument("job_id", required=False, callback=_job_id)
@timeout_option("Give up after this long (exit code 3).  [default: no limit]")
@click.option("--cancel-on-timeout", is_flag=True, help="Cancel the job when giving up.")
@transport_option
@click.option("--json", "as_json", is_flag=True, help="Print the final job as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary: just the exit code.")
@client_command
def wait(
    session: Session,
    job_id: str | None,
    timeout: float | None,
    cancel_on_timeout: bool,
    transport: Transport | None,
    as_json: bool,
    quiet: bool,
) -> int:
    """Wait until a job finishes, with a live progress bar; exit 0 if it completed, 1 if not.

    Without JOB_ID, wait on the spec's GET /status (no progress there: a spinner and the time).
    """
    if cancel_on_timeout and job_id is None:
        raise click.UsageError("--cancel-on-timeout needs a JOB_ID (GET /status cannot be cancelled)")
    with session.client() as client:
        return _wait(
            session,
            client,
            job_id,
            timeout=timeout,
            cancel_on_timeout=cancel_on_timeout,
            transport=transport,
            as_json=as_json,
            quiet=quiet,
        )


@cli.command()
@click.argument("job_id", callback=_job_id)
@click.option("--json", "as_json", is_flag=True, help="Print the cancelled job as JSON.")
@client_command
def cancel(session: Session, job_id: str, as_json: bool) -> int:
    """Cancel a pending job: it ends as error with code 'cancelled'.

    Exit 0 once it is cancelled (cancelling it again is fine); 2 if it had already ended
    otherwise; 4 if there is no such job.
    """
    with session.client() as client, session.calling():
        job = client.cancel(job_id)
    if as_json:
        _echo_json(job)
    else:
        session.out.print(summary(job))
    return Exit.COMPLETED


@cli.command()
@click.option("--result", type=click.Choice(sorted(RESULTS)), help="Only the jobs with this result.")
@click.option("--limit", default=20, type=click.IntRange(1, 10_000), help="At most this many jobs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job and per line (JSON Lines).")
@client_command
def jobs(
    session: Session, result: Literal["pending", "completed", "error"] | None, limit: int, as_json: bool
) -> int:
    """List the latest jobs, newest first: a table, or JSON Lines with --json."""
    with session.client() as client, session.calling():
        listed = list(itertools.islice(client.jobs(result, page_size=min(limit, 100)), limit))
    if as_json:
        for job in listed:
            _echo_json(job)
    elif listed:
        if not session.out.is_terminal:
            session.out.width = WIDE  # a log or a file: one line per job, however long
        session.out.print(jobs_table(listed))
    else:
        which = f"{result} " if result else ""
        session.err.print(f"no {which}jobs on {session.url}", style="dim")
    return Exit.COMPLETED


@cli.command()
@click.option(
    "--jobs", "count", default=5, type=click.IntRange(1, 20), help="How many jobs to submit (one fails)."
)
@click.option(
    "--keep",
    is_flag=True,
    help="Then keep the service up, with its dashboard, until Ctrl-C (and keep its SQLite file).",
)
@click.option(
    "-v", "--verbose", count=True, show_default=False, help="Log what the client does (-vv: every request)."
)
def demo(count: int, keep: bool, verbose: int) -> None:
    """Start a temporary service, wait for several jobs at once, and show what it cost.

    The jobs have different lengths and one of them fails; the spec's GET /status is waited on
    too. The summary shows, for each, its outcome, how long it took on the service, how many
    requests the client made, and how late the client learned the outcome.
    """
    from vtrans.cli.demo import run

    console = make_console()
    setup_logging(verbose, console)
    raise click.exceptions.Exit(run(console, count, keep=keep))


# --- the service -------------------------------------------------------------------------------


cli.add_command(serve)
