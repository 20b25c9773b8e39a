"""What the client commands share: the connection options, one client per command, and the
turning of a result or a client error into an exit status and one line on stderr.

A command's client retries a failing service on :class:`vtrans.RetryPolicy`'s budget, as the
library does (``--fail-fast``: :attr:`RetryPolicy.FAIL_FAST`). A :class:`~vtrans.cli.link.LinkWatch`
hook tells whoever is listening — the wait's status line, or a spinner during a one-shot
call — when the service stops answering and how the retries go.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.status import Status
from rich.text import Text

from vtrans.cli.display import error, make_console, setup_logging
from vtrans.cli.errors import Exit, describe, exit_code
from vtrans.cli.link import Link, LinkWatch, Listener, describe_link
from vtrans.client import Client, RetryPolicy, VtransError

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass
class Session:
    """One client command's settings, its two consoles (results on stdout, the rest on stderr)
    and the watch on its connection."""

    url: str
    api_key: str | None
    retry: RetryPolicy
    out: Console
    err: Console
    watch: LinkWatch = field(init=False)

    def __post_init__(self) -> None:
        self.watch = LinkWatch(self.url)

    def client(self) -> Client:
        """A client on the service, its connection watched."""
        return Client(self.url, api_key=self.api_key, retry=self.retry, hooks=[self.watch])

    @contextlib.contextmanager
    def listening(self, listener: Listener | None) -> Iterator[None]:
        """Send the connection's news to ``listener`` for the duration."""
        before, self.watch.listener = self.watch.listener, listener
        try:
            yield
        finally:
            self.watch.listener = before

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """Around one-shot calls: on a terminal, once an attempt has failed, a spinner that says
        where the client is connecting and how the retries go."""
        spinner = RetrySpinner(self.err)
        try:
            with self.listening(spinner):
                yield
        finally:
            spinner.stop()

    def fail(self, exc: VtransError) -> NoReturn:
        """One line on stderr and the exit status that goes with the error."""
        self.err.print(error(describe(exc, self.url, self.watch.gave_up())))
        raise click.exceptions.Exit(exit_code(exc))


class RetrySpinner:
    """A transient spinner on ``console`` (a terminal only), started at the first retry: it shows
    the connection's trouble (``cannot connect to …, retrying in 1 s (attempt 3)``)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.link: Link | None = None
        self.status: Status | None = None

    def __call__(self, key: str, link: Link) -> None:
        self.link = link
        if link.trouble and self.status is None and self.console.is_terminal:
            self.status = self.console.status(self, spinner_style="yellow")
            self.status.start()

    def __rich__(self) -> Text:
        link = self.link
        if link is None or not link.trouble:
            return Text(f"connected to {link.url if link else 'the service'}…", "dim")
        return Text(describe_link(link), "yellow")

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def _default_url() -> str:
    return os.environ.get("VTRANS_URL") or DEFAULT_URL


_CLIENT_OPTIONS = (
    click.option(
        "--url",
        # The variable's value, when set, is the default --help shows.
        default=_default_url(),
        envvar="VTRANS_URL",
        show_envvar=True,
        metavar="URL",
        help="The service's base URL.",
    ),
    click.option(
        "--api-key",
        envvar="VTRANS_API_KEY",
        show_envvar=True,
        metavar="KEY",
        help="Sent as 'Authorization: Bearer KEY'.",
    ),
    click.option(
        "--fail-fast",
        is_flag=True,
        envvar="VTRANS_FAIL_FAST",
        show_envvar=True,
        help="Give up at the first connection error, 429 or 5xx. Without it, a failing request is "
        f"retried for {RetryPolicy().budget:g} s, and a wait that has had an answer rides out "
        f"outages of up to {RetryPolicy().outage / 60:g} min (the library's RetryPolicy).",
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
    def run(*, url: str, api_key: str | None, fail_fast: bool, verbose: int, **kwargs: Any) -> None:
        err = make_console(stderr=True)
        setup_logging(verbose, err)
        retry = RetryPolicy.FAIL_FAST if fail_fast else RetryPolicy()
        session = Session(url, api_key or None, retry, make_console(), err)
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
