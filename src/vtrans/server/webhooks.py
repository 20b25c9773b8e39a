"""Webhook delivery: a POST to the job's ``callback_url`` when it ends, signed per Standard Webhooks.

Deliveries live in the store, so they survive restarts: one due while the service was down is
sent when it comes back. The sender sleeps until the next delivery is due (or until a new job or
a cancellation wakes it), retries failures on a backoff schedule, and stops on ``410 Gone``.
Delivery is at least once: receivers deduplicate on ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx2
import msgspec

from vtrans import __version__
from vtrans.protocol import Job, WebhookEvent, sign_webhook
from vtrans.server.store import Delivery, Store

log = logging.getLogger(__name__)

#: Standard Webhooks' suggested schedule: the waits before each retry (5 s, 5 min, 30 min, 2 h, …).
STANDARD_RETRY_DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
SECRET_KEY = "webhook_secret"


@dataclass(frozen=True)
class WebhookConfig:
    #: ``whsec_`` + base64 key; without one, a secret is generated once and kept in the store.
    secret: str | None = None
    retry_delays: tuple[float, ...] = STANDARD_RETRY_DELAYS
    #: How long a receiver has to answer, in seconds.
    timeout: float = 15.0
    concurrency: int = 16


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def check_secret(secret: str) -> None:
    """Raise ``ValueError`` unless ``secret`` is ``whsec_`` and a base64 key of 24 to 64 bytes."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        key = b""
    if not secret.startswith("whsec_") or not 24 <= len(key) <= 64:
        raise ValueError("the webhook secret must be 'whsec_' and a base64 key of 24 to 64 bytes")


class WebhookSender:
    """Sends due deliveries; run :meth:`run` as a task, call :meth:`wake` when one may be due."""

    def __init__(
        self,
        store: Store,
        config: WebhookConfig,
        secret: str,
        describe: Callable[[str, float], Job | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.config, self.secret = store, config, secret
        self.describe, self.clock = describe, clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        limits = httpx2.Limits(max_connections=self.config.concurrency)
        headers = {"User-Agent": f"vtrans-webhooks/{__version__}", "Content-Type": "application/json"}
        async with httpx2.AsyncClient(timeout=self.config.timeout, limits=limits, headers=headers) as http:
            while True:
                self._wake.clear()
                due = self.store.due_deliveries(self.clock(), limit=self.config.concurrency)
                if due:
                    await asyncio.gather(*(self._deliver(http, d) for d in due))
                    continue
                next_at = self.store.next_delivery_at()
                timeout = None if next_at is None else max(0.0, next_at - self.clock())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(self, http: httpx2.AsyncClient, delivery: Delivery) -> None:
        now = self.clock()
        job = self.describe(delivery.job_id, now)
        if job is None or not job.done:  # cannot happen: deliveries fall due when jobs end
            log.error("delivery %s is due but job %s is not finished", delivery.id, delivery.job_id)
            return
        kind = "job.completed" if job.result == "completed" else "job.failed"
        payload = msgspec.json.encode(
            WebhookEvent(type=kind, timestamp=datetime.fromtimestamp(now, timezone.utc), data=job)
        )
        stamp = int(now)
        headers = {
            "webhook-id": delivery.id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign_webhook(self.secret, delivery.id, stamp, payload),
        }
        attempts = delivery.attempts + 1
        try:
            reply = await http.post(delivery.url, content=payload, headers=headers)
            error = None if 200 <= reply.status_code < 300 else f"HTTP {reply.status_code}"
            gone = reply.status_code == 410
        except httpx2.HTTPError as exc:
            error, gone = f"{type(exc).__name__}: {exc}", False
        if error is None:
            log.info("webhook %s for %s delivered (attempt %d)", delivery.id, job.id, attempts)
            self._update(delivery, "delivered", attempts, now, None)
        elif gone or attempts > len(self.config.retry_delays):
            log.warning(
                "webhook %s for %s abandoned after %d attempts: %s", delivery.id, job.id, attempts, error
            )
            self._update(delivery, "gone" if gone else "failed", attempts, now, error)
        else:
            retry_at = self.clock() + self.config.retry_delays[attempts - 1]
            log.info(
                "webhook %s attempt %d failed (%s); retry in %.0fs",
                delivery.id,
                attempts,
                error,
                retry_at - self.clock(),
            )
            self._update(delivery, "pending", attempts, retry_at, error)

    def _update(
        self, delivery: Delivery, state: str, attempts: int, due_at: float, error: str | None
    ) -> None:
        self.store.update_delivery(delivery.id, state=state, attempts=attempts, due_at=due_at, error=error)
