"""The ``vtrans`` commands. The connection flags, and every ``serve`` flag, also read ``VTRANS_*``
environment variables.

``submit``, ``status`` and ``wait`` are thin shells over :class:`vtrans.Client`: they print what
it returns and turn what it raises into an exit status and one line on stderr (never a
traceback). ``serve`` runs the service; ``demo`` runs both, see :mod:`vtrans.cli.demo`.

Exit codes (:class:`vtrans.cli.errors.Exit`):

====  =====================================================================================
0     the job completed (``status``: the job is pending or completed)
1     the job ended in ``error``: its code and message are printed
2     usage error: a bad flag or argument (click's own)
3     timed out: ``--timeout`` passed before the job finished
4     not found: the service has no such job
5     the service could not be reached, kept failing, refused the request, or did not answer
      with the vtrans protocol (any other :class:`vtrans.VtransError`)
130   interrupted (Ctrl-C); the job keeps running on the service
====  =====================================================================================

With ``--json`` the job is printed as JSON on stdout whatever its result (the exit status still
says how it ended); progress bars, logs and errors always go to stderr.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import click
import msgspec
from rich.console import Console
from rich.text import Text

from vtrans import __version__
from vtrans.cli.display import ICONS, error, job_bars, make_console, setup_logging, short_id, summary
from vtrans.cli.errors import EXIT_CODES_HELP, Exit, describe, exit_code
from vtrans.cli.serve import serve
from vtrans.client import TRANSPORTS, Client, JobFailed, RetryPolicy, Transport, VtransError, WaitTimeout
from vtrans.protocol import Job, Simulate, Status

DEFAULT_URL = "http://127.0.0.1:8000"

transport_option = click.option(
    "--transport",
    type=click.Choice(TRANSPORTS),
    help="How to wait: the job's event stream (sse), polls held by the service (long-poll), "
    "plain polls (poll), or auto (long-poll, falling back to polls).  "
    "[default: sse with a progress bar, else auto]",
)


def timeout_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS", help=help)


#: Attempts per request of the one-shot commands (``status``, ``submit``): a person is waiting.
QUICK_ATTEMPTS = 3


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
    help=f"""Submit video translations and wait for them well; or run the sandbox service.

\b
  vtrans serve                           # the service, on http://127.0.0.1:8000
  ID=$(vtrans submit --language es --video-seconds 90)
  vtrans wait "$ID"                      # a live progress bar, then the outcome
  vtrans demo                            # all of it, on a temporary service

{EXIT_CODES_HELP}
""",
)
@click.version_option(__version__, prog_name="vtrans")
def cli() -> None:
    pass


# --- what the client commands share ----------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One client command's settings, and its two consoles (results on stdout, the rest on stderr)."""

    url: str
    api_key: str | None
    retries: int | None
    out: Console
    err: Console

    def client(self, *, waiting: bool) -> Client:
        """A client; it retries a failing request 8 times while waiting, else 3 (unless ``--retries``)."""
        attempts = self.retries or (RetryPolicy().attempts if waiting else QUICK_ATTEMPTS)
        return Client(self.url, api_key=self.api_key, retry=RetryPolicy(attempts=attempts))

    def fail(self, exc: VtransError) -> NoReturn:
        """One line on stderr and the exit status that goes with the error."""
        self.err.print(error(describe(exc, self.url)))
        raise click.exceptions.Exit(exit_code(exc))


_CLIENT_OPTIONS = (
    click.option(
        "--url",
        default=DEFAULT_URL,
        envvar="VTRANS_URL",
        metavar="URL",
        help="The service's base URL.",
    ),
    click.option(
        "--api-key",
        envvar="VTRANS_API_KEY",
        metavar="KEY",
        help="Sent as 'Authorization: Bearer KEY'.",
    ),
    click.option(
        "--retries",
        type=click.IntRange(1),
        envvar="VTRANS_RETRIES",
        metavar="N",
        help="Attempts per request on connection errors, 429 and 5xx before giving up "
        f"[default: {RetryPolicy().attempts} when waiting, else {QUICK_ATTEMPTS}]",
    ),
    click.option(
        "-v",
        "--verbose",
        count=True,
        show_default=False,
        help="Log what the client does (-vv: every request).",
    ),
)


def client_command(command: Callable[..., int]) -> Callable[..., None]:
    """Add the connection options and turn the command's result or client error into the exit status."""

    @functools.wraps(command)
    def run(*, url: str, api_key: str | None, retries: int | None, verbose: int, **kwargs: Any) -> None:
        err = make_console(stderr=True)
        setup_logging(verbose, err)
        session = Session(url, api_key or None, retries, make_console(), err)
        try:
            code = command(session, **kwargs)
        except VtransError as exc:
            session.fail(exc)
        except KeyboardInterrupt:
            err.print("interrupted: a job already submitted keeps running on the service")
            raise click.exceptions.Exit(Exit.INTERRUPTED) from None
        raise click.exceptions.Exit(code)

    for option in reversed(_CLIENT_OPTIONS):
        run = option(run)
    return run


def _job_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (not value or "/" in value or value in (".", "..")):
        raise click.BadParameter(f"{value!r} is not a job id")
    return value


def _echo_json(job: Job | Status) -> None:
    click.echo(msgspec.json.encode(job).decode())


def _as_job(outcome: Job | Status) -> Job:
    """A job to show: ``GET /status`` says only its result."""
    return outcome if isinstance(outcome, Job) else Job(result=outcome.result)


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
    try:
        with job_bars(
            session.err, "job", label, has_progress=job_id is not None, transport=transport, disable=not show
        ) as bars:
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
@click.option("-l", "--language", required=True, help="Target language, e.g. es, fr, pt-BR.")
@click.option(
    "--video-seconds",
    required=True,
    type=click.FloatRange(0, min_open=True),
    metavar="SECONDS",
    help="Length of the video.",
)
@click.option("--source-url", metavar="URL", help="Where the service fetches the video.")
@click.option("--callback-url", metavar="URL", help="Webhook the service calls when the job ends.")
@click.option(
    "--duration",
    type=click.FloatRange(0),
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
    with session.client(waiting=and_wait) as client:
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
    with session.client(waiting=False) as client:
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
    with session.client(waiting=True) as client:
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
