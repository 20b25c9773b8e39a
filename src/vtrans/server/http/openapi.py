"""The OpenAPI 3.1 document (``/openapi.json``); the interactive page over it is ``docs.py``'s.

Schemas come from the wire models themselves (msgspec), so the document cannot drift from them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from vtrans import __version__
from vtrans.protocol import PROBLEM_JSON, Job, JobCreate, JobPage, Problem, Status
from vtrans.server.feed import Webhooks

_REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _problems(*codes: int) -> dict[str, Any]:
    schema = {"content": {PROBLEM_JSON: {"schema": _ref("Problem")}}}
    return {str(code): {"description": "A problem (RFC 9457).", **schema} for code in codes}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "While pending: whole seconds until the job is expected to finish.",
        "schema": {"type": "integer"},
    }
}
_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^job_[0-9a-f]{32}$"},
}


_LISTING: list[dict[str, Any]] = [
    {
        "name": "result",
        "in": "query",
        "required": False,
        "schema": {"enum": ["pending", "completed", "error"]},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "A page's next_cursor.",
    },
]


def document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [Job, JobCreate, JobPage, Status, Problem, Webhooks], ref_template=_REF
    )
    job_ok = {**_json("Job", "The job now."), "headers": _RETRY_AFTER}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vtrans — simulated video-translation service",
            "version": __version__,
            "description": (
                "A sandbox that behaves like a video-translation backend. `GET /status` is the "
                "original task's contract; `/v1/jobs` is the full job API. Errors are "
                "`application/problem+json` (RFC 9457)."
            ),
        },
        "paths": {
            "/status": {
                "get": {
                    "summary": "The spec's status: pending until a delay, then completed or error",
                    "parameters": [
                        {
                            "name": "job_id",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "Any job's id (default: the service's own).",
                        }
                    ],
                    "responses": {
                        "200": {**_json("Status", "The result."), "headers": _RETRY_AFTER},
                        **_problems(400, 404),
                    },
                }
            },
            "/v1/jobs": {
                "post": {
                    "summary": "Create a translation job",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                            "description": "Retry-safe creation: a repeated key returns the job it created.",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("JobCreate")}},
                    },
                    "responses": {
                        "201": {**_json("Job", "Created; Location names the job."), "headers": _RETRY_AFTER},
                        "200": _json("Job", "Replay of an Idempotency-Key."),
                        **_problems(400, 401, 413, 422),
                    },
                },
                "get": {
                    "summary": "List jobs, newest first",
                    "parameters": _LISTING,
                    "responses": {"200": _json("JobPage", "One page of jobs."), **_problems(400, 401)},
                },
            },
            "/v1/jobs/events": {
                "get": {
                    "summary": "Follow a page of jobs live (what the dashboard shows)",
                    "description": (
                        "Server-Sent Events: a `page` event whose data is the listing `GET /v1/jobs` "
                        "answers now (same `result`, `limit`, `cursor`) with `counts` by result, sent "
                        "each second while it changes; then a `retry:` hint at the stream's end."
                    ),
                    "parameters": _LISTING,
                    "responses": {
                        "200": {"description": "The stream.", "content": {"text/event-stream": {}}},
                        **_problems(400, 401),
                    },
                }
            },
            "/v1/webhooks": {
                "get": {
                    "summary": "Recent webhook deliveries and their state",
                    "parameters": [_LISTING[1]],
                    "responses": {
                        "200": _json("Webhooks", "The deliveries of the newest jobs with a callback."),
                        **_problems(400, 401),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (absent with --no-metrics)",
                    "responses": {
                        "200": {"description": "Text exposition format.", "content": {"text/plain": {}}}
                    },
                }
            },
            "/v1/jobs/{job_id}": {
                "get": {
                    "summary": "Get a job",
                    "parameters": [_JOB_ID],
                    "responses": {"200": job_ok, **_problems(400, 401, 404)},
                },
                "delete": {
                    "summary": "Cancel a job (it ends as error/cancelled)",
                    "parameters": [_JOB_ID],
                    "responses": {
                        "200": _json("Job", "The cancelled job."),
                        **_problems(400, 401, 403, 404, 409),
                    },
                },
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
