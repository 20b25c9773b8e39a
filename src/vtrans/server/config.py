"""The service's configuration (the ``vtrans serve`` flags and ``VTRANS_*`` variables map onto it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vtrans.server.events import StreamConfig
from vtrans.server.simulation import SimulationConfig
from vtrans.server.webhooks import WebhookConfig


@dataclass(frozen=True)
class ServerConfig:
    """Everything the service needs to know; the defaults make a realistic sandbox."""

    #: ``sqlite`` (a durable file, the default) or ``memory`` (gone when the process ends).
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
    #: When set, ``/v1/*`` requires ``Authorization: Bearer <api_key>``.
    api_key: str | None = None
    max_body_bytes: int = 64 * 1024
    #: Longest hold of a long-poll (``Prefer: wait=N``), in seconds.
    max_wait: float = 60.0
    #: Server-Sent Events: progress rate, keep-alives, lifetime.
    stream: StreamConfig = field(default_factory=StreamConfig)
    #: Webhooks: signing secret, retry schedule, receiver timeout.
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    #: Upper bound of the ``Retry-After`` hint sent with pending jobs, in seconds.
    retry_after_max: float = 60.0

    def __post_init__(self) -> None:
        if self.store not in ("sqlite", "memory"):
            raise ValueError(f"store must be 'sqlite' or 'memory', not {self.store!r}")
        lo, hi = self.status_delay_min, self.status_delay_max
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
            raise ValueError("the /status delay needs 0 <= min <= max (seconds)")
        if not 0 <= self.max_wait <= 3600:
            raise ValueError("max_wait must be between 0 and 3600 seconds")
        if self.retry_after_max < 1:
            raise ValueError("retry_after_max must be at least 1 second")
