"""The pieces operations are made of: parameters, response headers, answers and problems."""

from __future__ import annotations

from typing import Any

from vtrans.protocol import (
    CURSOR_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    JOB_ID_PATTERN,
    PROBLEM_JSON,
)
from vtrans.server.faults import FAULT_PATTERN
from vtrans.server.http.openapi.schemas import REF

JSON = "application/json"
SSE = "text/event-stream"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


# --- parameters -------------------------------------------------------------------------------


def header(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "A job's id: `job_` and 32 lower-case hex digits (else a 400 problem).",
    "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
}
RESULT = query(
    "result",
    "Only the jobs with this result now.",
    {"type": "string", "enum": ["pending", "completed", "error"]},
)
LIMIT = query(
    "limit", "How many jobs a page holds.", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
)
CURSOR = query(
    "cursor",
    "A page's `next_cursor`, as it was sent (opaque: `c` and hex digits).",
    {"type": "string", "pattern": CURSOR_PATTERN},
)
LISTING = [RESULT, LIMIT, CURSOR]
STATUS_JOB_ID = query(
    "job_id",
    "One of your jobs (default, or empty: the service's own job, which anyone may see).",
    {"type": "string", "pattern": JOB_ID_PATTERN.replace("^", "^(?:").replace("$", ")?$")},
)
IDEMPOTENCY_KEY = header(
    "Idempotency-Key",
    "Retry-safe creation: the same key with the same job answers the job it created (200, "
    "`Idempotent-Replayed: true`); with another job, a 422 problem. 1 to 255 visible ASCII characters.",
    {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
)
PREFER_WAIT = header(
    "Prefer",
    "RFC 7240: `wait=N` holds the answer until the job ends or N seconds pass (capped by "
    "`--max-wait`); other preferences are ignored.",
)
PREFER_PROGRESS = header(
    "Prefer",
    "RFC 7240: `wait=N` holds the answer until the job ends or N seconds pass (capped by "
    "`--max-wait`); with `progress=F` too, until its progress grows by F (0 to 1). Other "
    "preferences are ignored.",
)
ACCEPT_STREAM = header(
    "Accept",
    "`text/event-stream`: one stream of a `done` event per job as each ends, instead of a JSON answer.",
)
LAST_EVENT_ID = header("Last-Event-ID", "Resume the stream after this event (what `EventSource` sends).")
FAULT = header(
    "Vtrans-Fault",
    "Fault injection, for testing a client's retries: `KIND` or `KIND:SECONDS` (0 to 600) with KIND one "
    "of 500, 503, 429, reset, latency (before the request is carried out), 503-after, truncate, drip "
    "(after). The answer says `Vtrans-Fault: KIND; carried-out=0|1`. Else a 400 problem.",
    {"type": "string", "pattern": FAULT_PATTERN},
)

# --- response headers -------------------------------------------------------------------------

_SECONDS = {"type": "string", "pattern": "^[1-9][0-9]*$"}
RETRY_AFTER = {
    "Retry-After": {"description": "Whole seconds to wait before asking again.", "schema": _SECONDS}
}
PENDING_RETRY_AFTER = {
    "Retry-After": {
        "description": "While the job is pending: whole seconds until it is expected to end (capped).",
        "schema": _SECONDS,
    }
}
HELD = {
    "Preference-Applied": {
        "description": "The hold applied (`Prefer: wait`), and `progress` when it was asked for.",
        "schema": {
            "type": "string",
            "pattern": "^wait=[0-9]+(?:\\.[0-9]+)?(?:e[+-][0-9]+)?(?:, progress)?$",
        },
    },
    "Vary": {"description": "With a hold: `Prefer`.", "schema": {"type": "string", "enum": ["Prefer"]}},
}
FAULTED = {
    "Vtrans-Fault": {
        "description": "The fault injected into this answer, and whether the request was carried out.",
        "schema": {"type": "string", "pattern": "^[0-9a-z-]+; carried-out=[01]$"},
    }
}
RATE_LIMITS = {
    "RateLimit-Policy": {
        "description": "The quota and its window (draft-ietf-httpapi-ratelimit-headers).",
        "schema": {"type": "string", "pattern": '^"default";q=[0-9]+;w=[0-9]+$'},
    },
    "RateLimit": {
        "description": "Requests left, and seconds until the window resets.",
        "schema": {"type": "string", "pattern": '^"default";r=[0-9]+;t=[0-9]+$'},
    },
}
WWW_AUTHENTICATE = {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}}

# --- answers ----------------------------------------------------------------------------------

#: What each problem status means here (RFC 9457 bodies, ``type`` ``urn:vtrans:problem:<code>``).
PROBLEMS = {
    400: "Malformed: a bad id, cursor, query, header or body (`malformed-job-id`, `bad-cursor`, "
    "`bad-query`, `bad-idempotency-key`, `empty-body`, `malformed-json`, `bad-fault`).",
    401: "Missing or wrong API key (`unauthorized`): send `Authorization: Bearer <key>`.",
    403: "Not allowed on this job (`status-job`: the job behind GET /status).",
    404: "No such job, or not yours (`job-not-found`, `no-webhook`), or no such resource (`no-such-route`).",
    409: "The state does not allow it (`job-finished`, `secret-fixed`).",
    413: "The body is larger than the service takes (`body-too-large`).",
    422: "Well-formed but refused (`invalid-body`, `unknown-language`, `invalid-job`, "
    "`callback-refused`, `idempotency-key-reused`).",
    429: "Rate-limited (`rate-limited`), or an injected fault.",
    500: "An injected fault (`Vtrans-Fault: 500`); the service answers no other.",
    503: "Unavailable for a moment: the store (`store-unavailable`), shutting down (`shutting-down`), "
    "too many held waits (`too-many-waits`), or an injected fault.",
}
_PROBLEM_HEADERS: dict[int, dict[str, Any]] = {401: WWW_AUTHENTICATE, 429: RETRY_AFTER, 503: RETRY_AFTER}


def problems(codes: tuple[int, ...], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The problem answers ``codes``, each with ``headers`` and its own."""
    return {
        str(code): {
            "description": PROBLEMS[code],
            "headers": {**(headers or {}), **_PROBLEM_HEADERS.get(code, {})},
            "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
        }
        for code in sorted(codes)
    }


def answer(
    description: str, content: dict[str, Any] | None = None, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A successful answer: ``content`` by media type (a schema name for JSON), and ``headers``."""
    made: dict[str, Any] = {"description": description}
    if content:
        made["content"] = {
            media: {"schema": ref(schema) if isinstance(schema, str) else schema}
            for media, schema in content.items()
        }
    if headers:
        made["headers"] = headers
    return made
