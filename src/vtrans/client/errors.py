"""Every error the client raises derives from :class:`VtransError`."""

from __future__ import annotations

import re

from vtrans.protocol import Job, Problem


class VtransError(Exception):
    """Base class of every vtrans client error."""


class TransportError(VtransError):
    """The service could not be reached or stopped answering, even after retries."""


class ProtocolError(VtransError):
    """The service answered something that is not the vtrans protocol (HTML, bad JSON, unknown
    ``result``), even after retries."""


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


# --- validator text in words --------------------------------------------------------------------

_WORDS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}
_TYPES = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "null": "null",
    "array": "an array",
    "object": "an object",
}
_AT = r"(?: - at `\$\.?(?P<at>[^`]*)`)?"
_VALIDATOR = [
    (re.compile(r"Expected `\w+` (?P<op>[<>]=?) (?P<n>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)" + _AT), "bound"),
    (re.compile(r"Expected `str` of length (?P<op>[<>]=?) (?P<n>\d+)" + _AT), "length"),
    (re.compile(r"Expected `(?P<want>\w+)`, got `(?P<got>\w+)`" + _AT), "type"),
    (re.compile(r"Object missing required field `(?P<field>[^`]+)`" + _AT), "missing"),
    (re.compile(r"Object contains unknown field `(?P<field>[^`]+)`" + _AT), "unknown"),
    (re.compile(r"Invalid enum value (?P<value>'[^']*'|\S+)" + _AT), "enum"),
]


def readable(detail: str) -> str:
    """``detail`` with a quoted validator message (msgspec's ``Expected `float` <= 21600.0 - at
    `$.video_seconds```) put in words (``video_seconds must be at most 21600 s (6 h)``)."""
    for pattern, kind in _VALIDATOR:
        match = pattern.search(detail)
        if match is not None:
            return detail[: match.start()] + _words(kind, match) + detail[match.end() :]
    return detail


def _words(kind: str, match: re.Match[str]) -> str:
    at = match["at"] or ""
    name = at or "the body"
    if kind == "bound":
        return f"{name} must be {_WORDS[match['op']]} {_amount(float(match['n']), at)}"
    if kind == "length":
        return f"{name} must be {_WORDS[match['op']]} {match['n']} characters long"
    if kind == "type":
        want, got = (_TYPES.get(match[k], f"`{match[k]}`") for k in ("want", "got"))
        return f"{name} must be {want}, not {got}"
    if kind == "enum":
        return f"{name} cannot be {match['value']}"
    field = f"{at}.{match['field']}" if at else match["field"]
    if kind == "missing":
        return f"{field} is required"
    return f"{field} is not a field of this request"


def _amount(number: float, field: str) -> str:
    """``21600 s (6 h)`` for a field in seconds, else the number as it was."""
    if not field.endswith("seconds"):
        return f"{number:g}"
    hours, minutes = number / 3600, number / 60
    longer = f" ({hours:g} h)" if number >= 3600 else f" ({minutes:g} min)" if number >= 60 else ""
    return f"{number:g} s{longer}"
