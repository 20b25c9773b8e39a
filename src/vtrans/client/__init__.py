"""The vtrans client library: :class:`Client` (sync) and :class:`AsyncClient` (asyncio)."""

from vtrans.client.aio import AsyncClient
from vtrans.client.clock import SystemClock, VirtualClock
from vtrans.client.deadline import async_http_transport, http_transport
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
from vtrans.client.hooks import Hook, LoggingHook, RequestDetails, RetryDetails, WaitDetails
from vtrans.client.policy import PollPolicy, RetryPolicy
from vtrans.client.sync import Client
from vtrans.client.waiting import TRANSPORTS, Transport

__all__ = [
    "TRANSPORTS",
    "APIError",
    "AsyncClient",
    "Client",
    "Conflict",
    "Hook",
    "InvalidRequest",
    "JobFailed",
    "LoggingHook",
    "NotFound",
    "PollPolicy",
    "ProtocolError",
    "RequestDetails",
    "RetryDetails",
    "RetryPolicy",
    "ServiceUnavailable",
    "SystemClock",
    "Transport",
    "TransportError",
    "Unauthorized",
    "VirtualClock",
    "VtransError",
    "WaitDetails",
    "WaitTimeout",
    "async_http_transport",
    "http_transport",
]
