"""Rate limits per tenant (per client address when the service has no keys), with the IETF headers.

Every answer of the API carries ``RateLimit-Policy: "default";q=100;w=60`` (quota, window) and
``RateLimit: "default";r=42;t=15`` (remaining, seconds until the window resets), as
draft-ietf-httpapi-ratelimit-headers has them; past the quota the answer is a 429 problem with
``Retry-After``. A held long-poll counts once, as the request it is. The counts are kept by each
process (the ``limits`` library's moving window in memory): with N processes behind one address,
a tenant gets up to N times the quota — put an exact global limit in the proxy if you need one.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vtrans.server.http.problems import problem_response
from vtrans.server.tenants import Tenants

#: The paths that count: the API, not the health check, the metrics or the docs.
LIMITED = ("/v1/", "/status")


class RateLimited:
    """ASGI middleware: count each API request against its tenant's quota."""

    def __init__(self, app: ASGIApp, limit: RateLimitItem, tenants: Tenants) -> None:
        self.app, self.limit, self.tenants = app, limit, tenants
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        window = limit.get_expiry()
        self.policy = f'"default";q={limit.amount};w={window}'.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED):
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        allowed = await self.limiter.hit(self.limit, key)
        reset_at, remaining = await self.limiter.get_window_stats(self.limit, key)
        seconds = max(0, math.ceil(reset_at - time.time()))
        headers = [
            (b"ratelimit-policy", self.policy),
            (b"ratelimit", b'"default";r=%d;t=%d' % (remaining, seconds)),
        ]
        if not allowed:
            detail = (
                f"More than {self.limit.amount} requests in {self.limit.get_expiry()} s; wait {seconds} s."
            )
            response = problem_response(
                Request(scope), 429, "rate-limited", detail, {"Retry-After": str(max(1, seconds))}
            )
            response.raw_headers += headers
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _key(self, scope: Scope) -> str:
        """The tenant whose key the request carries; else (no keys, or a wrong one) its address."""
        if not self.tenants.open:
            authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            tenant = self.tenants.from_authorization(authorization)
            if tenant is not None:
                return f"tenant:{tenant}"
        client = scope.get("client")
        return f"address:{client[0] if client else '?'}"
