"""What the dashboard watches, with no HTTP in it: a live page of jobs, and recent webhooks.

One stream per page of the dashboard, rather than one per job: a browser opens at most six
connections to a host, and a page shows dozens of jobs. The stream sends the page (the jobs of a
listing, newest first, with the counts by result) each ``progress_interval`` while it changes,
at once when one of its jobs is cancelled, and a keep-alive when nothing moves. A visitor sees
their own jobs and webhooks (their tenant's), as the listing shows them, and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from vtrans.protocol import Job, Result
from vtrans.server import simulation
from vtrans.server.service import Service
from vtrans.server.stores import Delivery

RESULT_NAMES: tuple[Result, ...] = ("pending", "completed", "error")


class Snapshot(msgspec.Struct, kw_only=True):
    """A page of jobs as it is now, and how many jobs there are by result."""

    items: list[Job]
    next_cursor: str | None
    counts: dict[str, int]


class Webhooks(msgspec.Struct, kw_only=True):
    """The webhook deliveries of the newest jobs that have one."""

    items: list[Delivery]


async def counts(service: Service, *, tenant: str) -> dict[str, int]:
    now = service.clock()
    return {
        result: await service.store.count_jobs(tenant=tenant, window=simulation.window(result, now))
        for result in RESULT_NAMES
    }


async def snapshots(
    service: Service, result: Result | None, limit: int, cursor: str | None, *, tenant: str
) -> AsyncIterator[bytes | None]:
    """The tenant's page, JSON-encoded, each time it differs from the last (``None``: a keep-alive
    is due). Ends after the stream's ``max_lifetime``, or as the service shuts down."""
    cfg = service.config.stream
    started = last_write = service.clock()
    last = b""
    shown: set[str] = set()  # the jobs on the page: a cancellation of one sends the page at once
    with service.wakeups.watch(shown, batch=True) as watch:
        while True:
            watch.take()
            page = await service.list_jobs(result, limit, cursor, tenant=tenant)
            shown.clear()
            shown.update(view.job.id for view in page.items)
            snapshot = Snapshot(
                items=[view.wire() for view in page.items],
                next_cursor=page.next_cursor,
                counts=await counts(service, tenant=tenant),
            )
            encoded = msgspec.json.encode(snapshot)
            now = service.clock()
            if encoded != last:
                yield encoded
                last, last_write = encoded, now
            elif now - last_write >= cfg.keepalive:
                yield None
                last_write = now
            if now - started >= cfg.max_lifetime or service.draining:
                return
            await watch.sleep(cfg.progress_interval)


async def recent_webhooks(service: Service, limit: int, *, tenant: str) -> Webhooks:
    return Webhooks(items=await service.store.recent_deliveries(tenant=tenant, limit=limit))
