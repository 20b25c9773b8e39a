"""The service's configuration (the ``vtrans serve`` flags and ``VTRANS_*`` variables map onto it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from limits import RateLimitItem, parse

from vtrans.server.faults import parse_plan
from vtrans.server.simulation import SimulationConfig
from vtrans.server.stores import is_store_spec
from vtrans.server.tenants import ApiKey

#: Standard Webhooks' suggested schedule: the waits before each retry (5 s, 5 min, 30 min, 2 h, …).
STANDARD_RETRY_DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)


def parse_limit(text: str) -> RateLimitItem:
    """``100/minute``, ``10/second``, ``1000 per hour``… (``ValueError`` for anything else)."""
    try:
        return parse(text)
    except ValueError:
        detail = f"a rate limit is a count per second, minute, hour or day (100/minute), not {text!r}"
        raise ValueError(detail) from None


@dataclass(frozen=True)
class StreamConfig:
    """Server-Sent Events: how often progress is sent, keep-alives, lifetime."""

    progress_interval: float = 1.0
    keepalive: float = 15.0
    max_lifetime: float = 300.0
    #: A client that does not take an event within this many seconds is dropped.
    send_timeout: float = 10.0
    #: The reconnection delay suggested to clients (SSE ``retry:``), in milliseconds.
    retry_ms: int = 1000


@dataclass(frozen=True)
class WebhookConfig:
    """Webhook deliveries: signing, retries, and how long and how many at once."""

    #: ``whsec_`` + base64 key; without one, a secret is generated once and kept in the store.
    secret: str | None = None
    retry_delays: tuple[float, ...] = STANDARD_RETRY_DELAYS
    #: How long one delivery may take in all (connect, send, reply), in seconds.
    timeout: float = 15.0
    #: Deliveries in flight at once, per process.
    concurrency: int = 16
    #: At most this much of a receiver's reply is read (only its status matters).
    max_reply_bytes: int = 64 * 1024
    #: How long a rotated-out secret keeps signing alongside the new one, in seconds.
    secret_grace: float = 86400.0

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and self.concurrency >= 1 and self.max_reply_bytes >= 0):
            raise ValueError("webhooks need timeout > 0, concurrency >= 1 and max_reply_bytes >= 0")

    @property
    def lease(self) -> float:
        """How long a process holds a delivery it claimed: longer than a delivery can take, so
        no two processes ever send it at once; a process that dies loses it after this."""
        return 2 * self.timeout + 1.0


@dataclass(frozen=True)
class ConnectionConfig:
    """Bounds on each connection and on how many there are (see :mod:`vtrans.server.http.protocol`)."""

    #: The request line and headers must arrive within this many seconds of the request's start.
    header_timeout: float = 10.0
    #: The body must arrive within this many seconds of the headers.
    body_timeout: float = 30.0
    #: An idle keep-alive connection is closed after this many seconds.
    keep_alive_timeout: float = 5.0
    max_header_bytes: int = 32 * 1024
    max_url_bytes: int = 8 * 1024
    #: Open connections per process; the next one gets a 503.
    max_connections: int = 25_000

    def __post_init__(self) -> None:
        if not (
            self.header_timeout > 0
            and self.body_timeout > 0
            and self.keep_alive_timeout > 0
            and self.max_header_bytes >= 1024
            and self.max_url_bytes >= 256
            and self.max_connections >= 1
        ):
            raise ValueError("connection limits must be positive (headers >= 1 KiB, request line >= 256 B)")


@dataclass(frozen=True)
class CallbackConfig:
    """Where webhooks may go (see :mod:`vtrans.server.callbacks`)."""

    #: Ranges opened to webhooks (CIDR), whatever else refuses them.
    allow: tuple[str, ...] = ()
    #: Whether loopback and private receivers are allowed; ``None``: when the service listens on
    #: loopback only (a local sandbox).
    local: bool | None = None

    def __post_init__(self) -> None:
        import ipaddress

        for cidr in self.allow:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(
                    f"--allow-callback takes CIDR ranges (10.0.0.0/8, ::1/128), not {cidr!r}"
                ) from None


@dataclass(frozen=True)
class ServerConfig:
    """Everything the service needs to know; the defaults make a realistic sandbox."""

    #: ``sqlite`` (a durable file, the default), ``memory`` (gone when the process ends), or a
    #: ``postgresql://user@host:port/db`` URL (shared by many processes).
    store: str = "sqlite"
    db_path: str = "vtrans.db"
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    #: How long the spec's ``GET /status`` stays pending: a uniform draw in [min, max] seconds.
    status_delay_min: float = 5.0
    status_delay_max: float = 15.0
    #: Start a new ``GET /status`` job at start-up instead of keeping the stored one.
    reset_status: bool = False
    #: Makes every job's timeline reproducible: the n-th job of a store gets the same draw.
    seed: int | None = None
    #: API keys, one per tenant: with any, ``/v1/*`` requires ``Authorization: Bearer <key>`` and
    #: each tenant sees its own jobs only; without, the service is an open sandbox.
    api_keys: tuple[ApiKey, ...] = ()
    max_body_bytes: int = 64 * 1024
    #: Longest hold of a long-poll (``Prefer: wait=N``), in seconds.
    max_wait: float = 60.0
    #: Held waits (long-polls, batch waits, event streams) per process; the next gets a 503.
    max_held: int = 20_000
    connections: ConnectionConfig = field(default_factory=ConnectionConfig)
    #: Requests per tenant (per address without keys) and window, e.g. ``100/minute``; ``None``: off.
    rate_limit: str | None = None
    #: Random faults, ``KIND[:PARAM]@RATE,…`` (see :mod:`vtrans.server.http.faults`); ``Vtrans-Fault``
    #: request headers are honoured whatever this is.
    faults: str = ""
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    #: Where the service listens (host, port), when it does on a socket: webhooks to itself are refused.
    listen: tuple[str, int] | None = None
    #: Server-Sent Events: progress rate, keep-alives, lifetime.
    stream: StreamConfig = field(default_factory=StreamConfig)
    #: Webhooks: signing secret, retry schedule, receiver timeout.
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    #: Upper bound of the ``Retry-After`` hint sent with pending jobs, in seconds.
    retry_after_max: float = 60.0
    #: Keep Prometheus metrics and serve them at ``/metrics``.
    metrics: bool = True
    #: Log lines as ``text`` or ``json`` (one object per line); ``access_log``: one per request.
    log_format: str = "text"
    access_log: bool = False

    def __post_init__(self) -> None:
        if not is_store_spec(self.store):
            raise ValueError(f"--store must be sqlite, memory or a postgresql://… URL, not {self.store!r}")
        lo, hi = self.status_delay_min, self.status_delay_max
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
            raise ValueError("the /status delay needs 0 <= min <= max (seconds)")
        if not 0 <= self.max_wait <= 3600:
            raise ValueError("max_wait must be between 0 and 3600 seconds")
        if self.rate_limit is not None:
            parse_limit(self.rate_limit)
        parse_plan(self.faults)
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log_format must be text or json, not {self.log_format!r}")
        if self.retry_after_max < 1:
            raise ValueError("retry_after_max must be at least 1 second")
