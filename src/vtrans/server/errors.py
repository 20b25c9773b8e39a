"""What the service layer raises when it refuses: kinds of refusal, not HTTP statuses.

The HTTP layer maps each kind to a status and an RFC 9457 problem (``code`` names the problem's
type, ``detail`` says what is wrong); other front ends may map them as they like.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal with a stable ``code`` and a human ``detail``."""

    def __init__(self, code: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.retry_after = code, detail, retry_after


class Malformed(ServiceError):
    """The request is not well-formed (a bad id, cursor or parameter)."""


class Invalid(ServiceError):
    """The request is well-formed but its values are refused (an unknown language, say)."""


class NotFound(ServiceError):
    """No such job (or not one the caller may see)."""


class Forbidden(ServiceError):
    """The caller may not do this to this job."""


class Conflict(ServiceError):
    """The job's state does not allow it (cancelling a finished job)."""


class Unavailable(ServiceError):
    """The service cannot answer right now (its store is unreachable, it is shutting down)."""
