"""Exit codes of the command line, and the one line on stderr that goes with each error.

=====  ==========================================================================================
code   meaning
=====  ==========================================================================================
0      done: the job completed (``status``: it is pending or completed; ``cancel``: it is
       cancelled; ``jobs``: the list is printed)
1      the job ended in ``error`` (its code and message are printed)
2      usage error or request refused: a bad flag or argument, or the service refused the request
       (400/422: a malformed id, an unknown language, a video too long; 401/403: the API key;
       409: the job already ended)
3      timed out: ``--timeout`` passed before the job finished
4      not found: the service has no such job
5      the service could not be reached, kept failing (429/5xx), or answered garbage (not the
       vtrans protocol); see ``--fail-fast`` and :class:`vtrans.RetryPolicy`'s ``budget``
6      ``serve`` could not start (its port is taken, its store cannot be used)
130    interrupted (Ctrl-C); a job already submitted keeps running on the service
=====  ==========================================================================================
"""

from __future__ import annotations

import enum
from typing import IO, Any

import click

from vtrans.client import (
    APIError,
    Conflict,
    JobFailed,
    NotFound,
    ProtocolError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    VtransError,
    WaitTimeout,
)


class Exit(enum.IntEnum):
    """What the process's exit status means (the table in this module's docstring)."""

    COMPLETED = 0
    JOB_FAILED = 1
    #: A bad flag or argument, or a request the service refused (a 4xx other than 404).
    USAGE = 2
    TIMED_OUT = 3
    NOT_FOUND = 4
    #: Unreachable, failing (429/5xx after the retry budget), or not speaking the protocol.
    SERVICE = 5
    START_FAILED = 6
    INTERRUPTED = 130


#: The table above, as the group's ``--help`` shows it (``\b`` keeps click from rewrapping it).
EXIT_CODES_HELP = """\b
Exit codes:
    0  done: the job completed (status: pending or completed;
       cancel: cancelled; jobs: listed)
    1  the job ended in error (its code and message are printed)
    2  usage error, or the service refused the request (400/422: a
       malformed id, an unknown language, a video too long; 401/403:
       the API key; 409: the job already ended)
    3  timed out (--timeout passed first)
    4  no such job
    5  the service could not be reached, kept failing (429/5xx), or
       answered garbage (not the vtrans protocol)
    6  serve could not start (its port is taken, its store unusable)
  130  interrupted (a job already submitted keeps running)"""


def exit_code(exc: VtransError) -> Exit:
    """The exit status for a client error."""
    if isinstance(exc, JobFailed):
        return Exit.JOB_FAILED
    if isinstance(exc, WaitTimeout):
        return Exit.TIMED_OUT
    if isinstance(exc, NotFound):
        return Exit.NOT_FOUND
    if isinstance(exc, APIError) and not isinstance(exc, ServiceUnavailable) and exc.status < 500:
        return Exit.USAGE
    return Exit.SERVICE


def describe(exc: VtransError, url: str, tried: str = "") -> str:
    """One clear line saying what went wrong, naming the service when that helps; ``tried``
    says how long the client kept trying (``after 7 attempts in 5.0 s``)."""
    tried = f" {tried}" if tried else ""
    if isinstance(exc, JobFailed):
        return f"{exc.job.id or 'GET /status'} failed: {exc.message} ({exc.code})"
    if isinstance(exc, WaitTimeout):
        return str(exc)
    if isinstance(exc, NotFound):
        return f"not found: {exc.detail} (on {url})"
    if isinstance(exc, TransportError):
        return f"could not reach the service at {url}{tried}: {exc}"
    if isinstance(exc, ServiceUnavailable):
        return f"the service at {url} kept failing{tried}: {exc}"
    if isinstance(exc, ProtocolError):
        return f"{url} did not answer with the vtrans protocol{tried}: {exc}"
    if isinstance(exc, Unauthorized):
        return f"the service at {url} refused the API key: {exc.detail} (use --api-key or VTRANS_API_KEY)"
    if isinstance(exc, Conflict):
        return f"the service at {url} refused: {exc.detail}"
    if isinstance(exc, APIError):
        return f"the service at {url} refused the request: {exc}"
    return str(exc)


# --- usage errors in one line ------------------------------------------------------------------


class UsageLine(click.ClickException):
    """A usage error shown as every error is: ``error: <what>`` in one line on stderr."""

    exit_code = Exit.USAGE

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.format_message())
        ctx = error.ctx
        self.command = ctx.command_path if ctx is not None else "vtrans"

    def show(self, file: IO[Any] | None = None) -> None:
        message = self.format_message().rstrip(".")
        click.echo(f"error: {message} (see: {self.command} --help)", file=file, err=file is None)


class Group(click.Group):
    """The ``vtrans`` group: click's usage errors come out as one line, as every other error."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # `vtrans` alone: the help
        except click.UsageError as error:
            raise UsageLine(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise UsageLine(error) from None
