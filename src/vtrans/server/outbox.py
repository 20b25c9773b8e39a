"""Webhook deliveries: a POST to the job's ``callback_url`` when it ends, signed per Standard Webhooks.

Deliveries live in the store, so they survive restarts. Each process runs an :class:`Outbox`: it
claims due deliveries with a lease (so no two processes send one at once, and a dead process's
deliveries go to another once its lease ends), sends up to ``concurrency`` at once, each within a
total deadline and reading at most a little of the reply, and records the outcome. A delivery that
fails for any reason (a refused connection, a URL no client can send to, a receiver that hangs or
trickles) fails alone: it is retried on the schedule or marked failed; the others go on. Delivery
is at least once: receivers deduplicate on ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

import httpx2
import msgspec

from vtrans import __version__
from vtrans.protocol import Job, WebhookEvent, sign_webhook
from vtrans.server.callbacks import Guard
from vtrans.server.config import WebhookConfig
from vtrans.server.observer import NO_OBSERVER, Observer
from vtrans.server.stores import Delivery, Store, StoreError

log = logging.getLogger(__name__)

#: Longest sleep of an outbox on a shared store: what another process added (and then died
#: before sending) is picked up within this.
RECHECK_SHARED = 2.0
#: Wait before claiming again after the store failed.
STORE_RETRY = 1.0


class Outbox:
    """Sends due deliveries: run :meth:`run` as a task; :meth:`wake` when one may have fallen due."""

    def __init__(
        self,
        store: Store,
        config: WebhookConfig,
        describe: Callable[[str], Awaitable[tuple[Job, str] | None]],
        secrets: Callable[[str], Awaitable[list[str]]],
        clock: Callable[[], float] = time.time,
        transport: httpx2.AsyncBaseTransport | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.store, self.config, self.describe, self.clock = store, config, describe, clock
        #: The secrets that sign a tenant's webhooks now (several while a rotation's grace lasts).
        self.secrets = secrets
        #: Where requests go (``None``: the network); an in-process fake captures them instead.
        self.transport = transport
        #: Checks a destination when sending, and pins the request to the address checked.
        self.guard = guard
        #: Who holds a lease: unique to this process's outbox.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        #: Told the outcome of every attempt (the metrics, when they are kept).
        self.observer: Observer = NO_OBSERVER

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        headers = {
            "User-Agent": f"vtrans-webhooks/{__version__}",
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",  # the reply is read raw, and only a little of it
        }
        limits = httpx2.Limits(max_connections=self.config.concurrency, max_keepalive_connections=0)
        async with httpx2.AsyncClient(
            timeout=self.config.timeout,
            limits=limits,
            headers=headers,
            follow_redirects=False,
            trust_env=False,
            transport=self.transport,
        ) as http:
            try:
                while True:
                    self._wake.clear()
                    try:
                        timeout = await self._claim_and_send(http)
                    except StoreError as exc:
                        log.warning(
                            "webhooks: the store failed (%s); trying again in %.0fs", exc, STORE_RETRY
                        )
                        timeout = STORE_RETRY
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout)
            finally:
                for task in self._in_flight:
                    task.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)
                with contextlib.suppress(StoreError):  # else the leases run out on their own
                    released = await self.store.release_deliveries(self.owner)
                    if released:
                        log.info("webhooks: %d deliveries in flight left for later", released)

    async def _claim_and_send(self, http: httpx2.AsyncClient) -> float | None:
        """Start sending what is due, as far as slots allow; return how long to sleep."""
        free = self.config.concurrency - len(self._in_flight)
        if free > 0:
            now = self.clock()
            for delivery in await self.store.claim_deliveries(now, free, now + self.config.lease, self.owner):
                task = asyncio.create_task(self._deliver(http, delivery))
                self._in_flight.add(task)
                task.add_done_callback(self._done)
        if len(self._in_flight) >= self.config.concurrency:
            return None  # a finished delivery wakes the loop
        next_at = await self.store.next_delivery_at()
        timeout = None if next_at is None else max(0.0, next_at - self.clock())
        if self.store.shared:
            timeout = RECHECK_SHARED if timeout is None else min(timeout, RECHECK_SHARED)
        return timeout

    async def idle(self) -> bool:
        """Nothing in flight and nothing due now (an in-process fake waits for this)."""
        if self._in_flight or self._wake.is_set():
            return False
        next_at = await self.store.next_delivery_at()
        return next_at is None or next_at > self.clock()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("webhooks: a delivery task failed", exc_info=exc)

    async def _deliver(self, http: httpx2.AsyncClient, delivery: Delivery) -> None:
        described = await self.describe(delivery.job_id)
        if described is None or not described[0].done:  # cannot happen: deliveries fall due when jobs end
            log.error("webhook %s is due but job %s is not finished", delivery.id, delivery.job_id)
            return
        job, tenant = described
        now = self.clock()
        kind = "job.completed" if job.result == "completed" else "job.failed"
        payload = msgspec.json.encode(
            WebhookEvent(type=kind, timestamp=datetime.fromtimestamp(now, timezone.utc), data=job)
        )
        stamp = int(now)
        headers = {
            "webhook-id": delivery.id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": " ".join(
                sign_webhook(secret, delivery.id, stamp, payload) for secret in await self.secrets(tenant)
            ),
        }
        attempts = delivery.attempts + 1
        gone = False
        started = time.perf_counter()
        try:
            status = await asyncio.wait_for(
                self._post(http, delivery.url, payload, headers), self.config.timeout
            )
        except asyncio.TimeoutError:
            error: str | None = f"no answer within {self.config.timeout:g}s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        else:
            error = None if 200 <= status < 300 else f"HTTP {status}"
            gone = status == 410
        state = await self._record(delivery, job.id or delivery.job_id, attempts, error, gone)
        self.observer.webhook_attempt(state, attempts, time.perf_counter() - started)

    async def _post(self, http: httpx2.AsyncClient, url: str, payload: bytes, headers: dict[str, str]) -> int:
        """POST to an address the guard allows and return the status, reading at most
        ``max_reply_bytes`` of the reply."""
        extensions: dict[str, str] = {}
        if self.guard is not None:
            url, host, extensions = await self.guard.pinned(url)
            headers = {**headers, **host}
        async with http.stream("POST", url, content=payload, headers=headers, extensions=extensions) as reply:
            read = 0
            if not reply.is_stream_consumed:  # an in-process transport hands it over read already
                async for chunk in reply.aiter_raw():
                    read += len(chunk)
                    if read >= self.config.max_reply_bytes:
                        break
            return reply.status_code

    async def _record(
        self, delivery: Delivery, job_id: str, attempts: int, error: str | None, gone: bool
    ) -> str:
        """Record an attempt's outcome; return the delivery's state now."""
        now = self.clock()
        if error is None:
            log.info("webhook %s for %s delivered (attempt %d)", delivery.id, job_id, attempts)
            state, due_at = "delivered", now
        elif gone or attempts > len(self.config.retry_delays):
            log.warning(
                "webhook %s for %s abandoned after %d attempts: %s", delivery.id, job_id, attempts, error
            )
            state, due_at = ("gone" if gone else "failed"), now
        else:
            delay = self.config.retry_delays[attempts - 1]
            log.info("webhook %s attempt %d failed (%s); retry in %.0fs", delivery.id, attempts, error, delay)
            state, due_at = "pending", now + delay
        kept = await self.store.finish_delivery(
            delivery.id, self.owner, state=state, attempts=attempts, due_at=due_at, error=error
        )
        if not kept:
            log.warning("webhook %s: the lease ran out before the outcome was recorded", delivery.id)
        return state
