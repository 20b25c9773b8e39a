"""Every error the client raises derives from :class:`VtransError`."""

from __future__ import annotations

from vtrans.protocol import Job, Problem
from vtrans.wording import readable


class VtransError(Exception):
    """Base class of every vtrans client error."""


class TransportError(VtransError):
    """The service could not be reached or stopped answering, even after retries."""


class ProtocolError(VtransError):
    """The service answered something that is not the vtrans protocol (HTML, bad JSON, unknown
    ``result``), even after retries."""


class NoRoute(ProtocolError):
    """A 404 whose body is not JSON: not a vtrans service at this URL (it may be wrong), or one
    without this route. Not retried: asking again makes no route."""


class APIError(VtransError):
    """The service refused the request: ``status`` and the RFC 9457 ``problem`` it sent."""

    def __init__(self, status: int, problem: Problem | None, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.problem, self.detail = status, problem, detail


class InvalidRequest(APIError):
    """The request was malformed or its values were refused (400, 413, 422).

    Its message says what was wrong in words (``video_seconds must be at most 21600 s (6 h)``)
    where the service quoted a validator; ``detail`` is what the service sent.
    """

    def __init__(self, status: int, problem: Problem | None, detail: str) -> None:
        super().__init__(status, problem, detail)
        self.args = (f"HTTP {status}: {readable(detail)}",)


class Unauthorized(APIError):
    """Missing or wrong API key (401, 403)."""


class NotFound(APIError):
    """No such job (404)."""


class Conflict(APIError):
    """The request contradicts the job's state, e.g. cancelling a finished job (409)."""


class ServiceUnavailable(APIError):
    """The service kept answering 429 or 5xx until the retry budget ran out."""


class JobFailed(VtransError):
    """The job ended in ``error``; ``code`` and ``message`` say why, ``job`` is its last state."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.code = job.error.code if job.error else "unknown"
        self.message = job.error.message if job.error else "The service reported an error."
        name = f"job {job.id}" if job.id else "the job"
        super().__init__(f"{name} failed: {self.message} ({self.code})")


class WaitTimeout(VtransError, TimeoutError):
    """The deadline passed before the job finished.

    ``job`` is the last state seen (if any); ``job_ids`` lists the unfinished jobs of a
    :meth:`wait_many`.
    """

    def __init__(
        self, job: Job | None, waited: float, requests: int, job_ids: list[str] | None = None
    ) -> None:
        self.job, self.waited, self.requests, self.job_ids = job, waited, requests, job_ids or []
        if job_ids:
            name, seen = f"{len(job_ids)} jobs", "unfinished: " + ", ".join(job_ids[:3])
            seen += " …" if len(job_ids) > 3 else ""
        else:
            name = f"job {job.id}" if job and job.id else "the job"
            seen = "nothing seen" if job is None else f"last seen: {job.result}"
            if job is not None and job.progress is not None:
                seen += f" at {job.progress:.0%}"
            if job is not None and job.error is not None:
                seen += f", {job.error.code}"
        super().__init__(f"{name} did not finish within {waited:.1f}s ({requests} requests; {seen})")
