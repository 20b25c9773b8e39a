"""Exit codes of the command line, and the one-line message for each client error.

=====  ==========================================================================
code   meaning
=====  ==========================================================================
0      the job completed (``status``: the job is pending or completed)
1      the job ended in ``error`` (its code and message are printed)
2      usage error: a bad flag or argument (click's own)
3      timed out: ``--timeout`` passed before the job finished
4      not found: no such job on this service
5      the service could not be reached, kept failing, refused the request, or did not
       answer with the vtrans protocol (any other client error)
6      ``serve`` could not start (its store cannot be used, its port is taken)
130    interrupted (Ctrl-C); the job keeps running on the service
=====  ==========================================================================
"""

from __future__ import annotations

import enum

from vtrans.client import (
    APIError,
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
    USAGE = 2
    TIMED_OUT = 3
    NOT_FOUND = 4
    SERVICE = 5
    START_FAILED = 6
    INTERRUPTED = 130


#: The table above, as the group's ``--help`` shows it (``\b`` keeps click from rewrapping it).
EXIT_CODES_HELP = """\b
Exit codes:
    0  the job completed (status: pending or completed)
    1  the job ended in error (its code and message are printed)
    2  usage error (a bad flag or argument)
    3  timed out (--timeout passed first)
    4  no such job
    5  the service could not be reached, failed, refused the request,
       or did not speak the vtrans protocol
    6  serve could not start (its store or its port)
  130  interrupted (the job keeps running on the service)"""


def exit_code(exc: VtransError) -> Exit:
    """The exit status for a client error."""
    if isinstance(exc, JobFailed):
        return Exit.JOB_FAILED
    if isinstance(exc, WaitTimeout):
        return Exit.TIMED_OUT
    if isinstance(exc, NotFound):
        return Exit.NOT_FOUND
    return Exit.SERVICE


def describe(exc: VtransError, url: str) -> str:
    """One clear line saying what went wrong, naming the service when that helps."""
    if isinstance(exc, JobFailed):
        return f"{exc.job.id or 'GET /status'} failed: {exc.message} ({exc.code})"
    if isinstance(exc, WaitTimeout):
        return str(exc)
    if isinstance(exc, NotFound):
        return f"not found: {exc.detail} (on {url})"
    if isinstance(exc, TransportError):
        return f"could not reach the service at {url}: {exc}"
    if isinstance(exc, ServiceUnavailable):
        return f"the service at {url} kept failing: {exc}"
    if isinstance(exc, ProtocolError):
        return f"{url} did not answer with the vtrans protocol: {exc}"
    if isinstance(exc, Unauthorized):
        return f"the service at {url} refused the API key: {exc.detail} (use --api-key or VTRANS_API_KEY)"
    if isinstance(exc, APIError):
        return f"the service at {url} refused the request: {exc}"
    return str(exc)
