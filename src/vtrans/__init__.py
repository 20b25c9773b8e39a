"""vtrans: submit video translations and wait for them well, on any server.

import vtrans

with vtrans.Client("http://127.0.0.1:8000") as client:
    job = client.create("es", video_seconds=90)
    done = client.wait(job.id, timeout=600)
"""

__version__ = "0.1.0"

from vtrans.client import (
    APIError,
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    JobFailed,
    NotFound,
    PollPolicy,
    ProtocolError,
    RetryPolicy,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    VtransError,
    WaitTimeout,
)
from vtrans.protocol import Job, JobError, Simulate, Status

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "Conflict",
    "InvalidRequest",
    "Job",
    "JobError",
    "JobFailed",
    "NotFound",
    "PollPolicy",
    "ProtocolError",
    "RetryPolicy",
    "ServiceUnavailable",
    "Simulate",
    "Status",
    "TransportError",
    "Unauthorized",
    "VtransError",
    "WaitTimeout",
    "__version__",
]
