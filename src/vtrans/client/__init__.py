"""The vtrans client library: :class:`Client` (sync) and :class:`AsyncClient` (asyncio)."""

from vtrans.client.aio import AsyncClient
from vtrans.client.clock import SystemClock, VirtualClock
from vtrans.client.errors import (
    APIError,
    Conflict,
    InvalidRequest,
    JobFailed,
    NotFound,
    ProtocolError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    VtransError,
    WaitTimeout,
)
from vtrans.client.policy import PollPolicy, RetryPolicy
from vtrans.client.sync import Client

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "Conflict",
    "InvalidRequest",
    "JobFailed",
    "NotFound",
    "PollPolicy",
    "ProtocolError",
    "RetryPolicy",
    "ServiceUnavailable",
    "SystemClock",
    "TransportError",
    "Unauthorized",
    "VirtualClock",
    "VtransError",
    "WaitTimeout",
]
