"""What the sync and async clients share: configuration, the choice of clock, and the one place
that turns a flow's :class:`~vtrans.client.core.Send` into an ``httpx2.Request``."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx2

from vtrans import __version__, testing
from vtrans.client import policy
from vtrans.client.clock import Clock, SystemClock, VirtualClock
from vtrans.client.core import Send, Settings
from vtrans.client.hooks import Hook, Hooks
from vtrans.client.memory import Memory
from vtrans.client.policy import PollPolicy
from vtrans.protocol import Simulate

DEFAULT_URL = "http://127.0.0.1:8000"
#: The pool of the HTTP client a Client makes itself. A long-poll or an event stream holds its
#: connection while it waits, so concurrent waits need one connection each: httpx2's default of
#: 100 connections would queue the 101st, and a job that ends meanwhile is seen seconds late. Idle
#: connections are kept to httpx2's 20: httpcore2 probes every idle socket on each request.
POOL_LIMITS = httpx2.Limits(max_connections=None, max_keepalive_connections=20)


class ClientBase:
    """Settings shared by :class:`~vtrans.Client` and :class:`~vtrans.AsyncClient`."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        poll: PollPolicy | None,
        retry: policy.RetryPolicy | None,
        clock: Clock | None,
        rng: random.Random | None,
        timeout: float,
        hooks: Iterable[Hook],
    ) -> None:
        self.base_url = base_url or os.environ.get("VTRANS_URL") or DEFAULT_URL
        api_key = api_key if api_key is not None else os.environ.get("VTRANS_API_KEY")
        self.headers = {"User-Agent": f"vtrans-python/{__version__}"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.poll = poll or PollPolicy()
        self.retry = retry or policy.RetryPolicy()
        self.clock: Clock = clock or SystemClock()
        #: A clock given by the caller (a test's, a fake service's) is used even in testing mode.
        self._own_clock = clock is not None
        self.rng = rng or random.Random()
        self.timeout = timeout
        #: What this client learned from its jobs (see :mod:`vtrans.client.memory`).
        self.memory = Memory()
        #: Told of each request, retry and wait (see :mod:`vtrans.client.hooks`).
        self.hooks = Hooks(hooks)

    def _virtual(self, http: httpx2.Client | httpx2.AsyncClient) -> bool:
        """Whether this call waits on virtual time: in testing mode, unless the client has a clock
        of its own, or talks to a real server over the network (whose jobs take real time: a
        virtual wait there would only run out its deadline)."""
        if not testing.is_testing() or self._own_clock:
            return False
        transport = getattr(http, "_transport", None)
        return not isinstance(transport, (httpx2.HTTPTransport, httpx2.AsyncHTTPTransport))

    def _settings(self, http: httpx2.Client | httpx2.AsyncClient) -> Settings:
        if self._virtual(http):
            # Each call gets a clock of its own, so times remembered from another call mean nothing.
            return Settings(self.poll, self.retry, VirtualClock(), self.rng, self.timeout, hooks=self.hooks)
        return Settings(self.poll, self.retry, self.clock, self.rng, self.timeout, self.memory, self.hooks)


@dataclass(frozen=True)
class Exchange:
    """A request ready to send, and the ``time.monotonic()`` by which its whole exchange — connect,
    headers, body or stream — must be over (``inf``: never)."""

    request: httpx2.Request
    deadline: float


def prepare(
    http: httpx2.Client | httpx2.AsyncClient, send: Send, headers: Mapping[str, str], timeout: float
) -> Exchange:
    """The request ``send`` stands for: the client's ``headers`` under the flow's; ``send.timeout``
    (default ``timeout``) bounds the whole exchange, and each socket operation within it."""
    budget = timeout if send.timeout is None else send.timeout
    each = budget if send.idle is None else min(budget, send.idle)
    request = http.build_request(
        send.method,
        send.path,
        params=send.params,
        headers={**headers, **send.headers},
        content=send.content,
        timeout=None if each == math.inf else each,
    )
    return Exchange(request, time.monotonic() + budget)


def as_simulate(simulate: Simulate | dict[str, object] | None) -> Simulate | None:
    if simulate is None or isinstance(simulate, Simulate):
        return simulate
    return Simulate(**simulate)  # type: ignore[arg-type]
