"""Whether the service answers, as the status line tells it: learned from the client's hooks.

:class:`LinkWatch` is a client hook (:mod:`vtrans.client.hooks`): each answer marks the link
``up``; each retry marks it ``connecting`` (the service was never reached) or ``lost`` (it
was), with the attempt to come and when it will be made. Every change goes to a listener, keyed
by what the request was about (its job id, else its path), so a screen can keep a row per job.
:func:`describe_link` puts a link in trouble in words.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from vtrans.cli.words import fmt_countdown, fmt_duration
from vtrans.client import ProtocolError, ServiceUnavailable
from vtrans.client.hooks import Hook, RequestDetails, RetryDetails

Phase = Literal["up", "connecting", "lost"]

#: Answers that are retried as failures (see ``client/core.py``): not a sign the service is well.
_FAILING = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Link:
    """The link to the service as last heard of.

    ``attempt`` is the number of the attempt to come, made at ``retry_at``
    (``time.monotonic()``); ``cause`` says what failed, in a few words.
    """

    phase: Phase
    url: str
    attempt: int = 0
    retry_at: float = 0.0
    cause: str = ""

    @property
    def trouble(self) -> bool:
        return self.phase != "up"


Listener = Callable[[str, Link], None]


def cause_of(error: Exception) -> str:
    """A failed attempt in a few words: ``connection refused``, ``HTTP 503``, ``not the vtrans protocol``."""
    if isinstance(error, ServiceUnavailable):
        return f"HTTP {error.status}"
    if isinstance(error, ProtocolError):
        return "not the vtrans protocol"
    text = str(error)
    if "ConnectError" in text:
        return "connection refused" if "refused" in text.lower() else "cannot connect"
    if "ConnectTimeout" in text:
        return "cannot connect (timed out)"
    if "Timeout" in text:
        return "timed out"
    return "connection broken"


#: Causes that mean no connection was made (anything else: one was made, then failed).
NOT_CONNECTED = frozenset({"connection refused", "cannot connect", "cannot connect (timed out)"})


class LinkWatch(Hook):
    """Learns from the client's hooks whether the service at ``url`` answers, and tells
    ``listener(key, link)`` of each change (``key``: the job a request was about, else its path)."""

    def __init__(self, url: str, listener: Listener | None = None) -> None:
        self.url = url
        self.listener = listener
        #: Whether the service was reached (it answered, or a connection was made before it
        #: broke): after that, a failure is a lost connection, not one that cannot be made.
        self.reached = False
        self.links: dict[str, Link] = {}
        #: The last retry since the last answer, and when it was announced (for :meth:`gave_up`).
        self._retry: tuple[RetryDetails, float] | None = None

    def on_request(self, details: RequestDetails) -> None:
        if details.status is None or details.status >= 500 or details.status in _FAILING:
            return  # a failure: the retry that follows (if any) says what comes next
        self.reached, self._retry = True, None
        key = details.job_id or details.path
        if key in self.links and self.links[key].trouble:
            self._set(key, Link("up", self.url))

    def on_retry(self, details: RetryDetails) -> None:
        now = time.monotonic()
        self._retry = (details, now)
        cause = cause_of(details.caused_by)
        self.reached = self.reached or cause not in NOT_CONNECTED
        link = Link(
            "lost" if self.reached else "connecting",
            self.url,
            attempt=details.attempt + 1,
            retry_at=now + details.delay,
            cause=cause,
        )
        self._set(details.job_id or details.path, link)

    def gave_up(self) -> str:
        """How long the client kept trying before it gave up: ``after 7 attempts in 5.0 s``
        (``""`` when it did not retry)."""
        if self._retry is None:
            return ""
        details, at = self._retry
        tried_for = time.monotonic() - at + details.failing_for
        return f"after {details.attempt + 1} attempts in {fmt_duration(tried_for)}"

    def _set(self, key: str, link: Link) -> None:
        self.links[key] = link
        if self.listener is not None:
            self.listener(key, link)


def describe_link(link: Link, now: float | None = None) -> str:
    """The words for a link in trouble (``""`` when it is up):

    ``connection lost, retrying in 2 s (attempt 3)``; ``service failing (HTTP 503), retrying…``;
    before any answer, ``cannot connect to http://…: connection refused, retrying in 1 s (attempt 2)``.
    """
    if not link.trouble:
        return ""
    left = link.retry_at - (time.monotonic() if now is None else now)
    attempt = f"(attempt {link.attempt})"
    retrying = f"retrying in {fmt_countdown(left)} {attempt}" if left > 0 else f"trying again {attempt}…"
    if link.cause.startswith("HTTP") or link.cause == "not the vtrans protocol":
        return f"service failing ({link.cause}), {retrying}"
    if link.phase == "connecting":
        return f"cannot connect to {link.url}: {link.cause}, {retrying}"
    return f"connection lost, {retrying}"
