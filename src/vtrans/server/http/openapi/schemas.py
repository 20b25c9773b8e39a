"""The document's schemas: the wire models' own (msgspec), tightened with the patterns the service
validates with (:mod:`vtrans.protocol`), so that what the schema admits is what the service takes."""

from __future__ import annotations

from typing import Any

import msgspec

from vtrans.protocol import (
    CURSOR_PATTERN,
    HTTP_URL_PATTERN,
    JOB_ID_PATTERN,
    LANGUAGE_PATTERN,
    LANGUAGES,
    Job,
    JobCreate,
    JobPage,
    JobsWait,
    JobsWaitResult,
    Status,
)
from vtrans.server.feed import Snapshot, Webhooks
from vtrans.server.http.problems import ServiceProblem
from vtrans.server.tenants import Secrets

REF = "#/components/schemas/{name}"

#: What the models' own schemas cannot say: each entry is added to the string branch of a property.
_TIGHTER: dict[str, dict[str, dict[str, Any]]] = {
    "JobCreate": {
        "language": {
            "pattern": LANGUAGE_PATTERN,
            "description": f"A target language, in any case: {', '.join(sorted(LANGUAGES))}.",
            "examples": ["fr"],
        },
        "source_url": {"pattern": HTTP_URL_PATTERN, "format": "uri"},
        "callback_url": {
            "pattern": HTTP_URL_PATTERN,
            "format": "uri",
            "description": (
                "Where the job's webhook goes when it ends. A destination the service refuses "
                "(link-local, multicast, itself; loopback and private ranges unless it listens on "
                "loopback only) is a 422 problem `callback-refused`."
            ),
        },
    },
    "Job": {
        "id": {"pattern": JOB_ID_PATTERN},
        "language": {"enum": sorted(LANGUAGES)},
        "progress": {"minimum": 0, "maximum": 1},
        "estimated_seconds_remaining": {"minimum": 0},
    },
    "JobPage": {"next_cursor": {"pattern": CURSOR_PATTERN}},
    "Snapshot": {"next_cursor": {"pattern": CURSOR_PATTERN}},
    "Problem": {
        "type": {"pattern": "^urn:vtrans:problem:[a-z-]+$"},
        "status": {"minimum": 400, "maximum": 599},
        "title": {"minLength": 1},
        "detail": {"minLength": 1},
    },
    "Delivery": {"job_id": {"pattern": JOB_ID_PATTERN}, "url": {"pattern": HTTP_URL_PATTERN}},
}


def _event(description: str, kinds: list[str], ids: str | None, data: str) -> dict[str, Any]:
    """A Server-Sent Event: its kind, its id (if it has one), and its data, a JSON ``data``."""
    properties: dict[str, Any] = {
        "event": {"enum": kinds},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": REF.format(name=data)},
        },
    }
    if ids is not None:
        properties["id"] = {"type": "string", "pattern": ids}
    required = ["event", "data"] if ids is None else ["event", "id", "data"]
    return {"type": "object", "description": description, "properties": properties, "required": required}


#: The events of each stream (``retry:`` hints and ``:`` keep-alive comments aside).
EVENTS = {
    "JobEvent": _event(
        "`progress` while the job is pending (id `p<percent>`), then `done` (id `done`).",
        ["progress", "done"],
        "^(?:p(?:100|[1-9]?[0-9])|done)$",
        "Job",
    ),
    "JobDoneEvent": _event("A watched job has ended (id: the job's).", ["done"], JOB_ID_PATTERN, "Job"),
    "PageEvent": _event("The page as it is now.", ["page"], None, "Snapshot"),
}

HEALTH = {
    "type": "object",
    "description": "Liveness: which process answered, and how many waits and streams it holds.",
    "properties": {
        "ok": {"const": True},
        "waiting": {"type": "integer", "minimum": 0},
        "pid": {"type": "integer", "minimum": 1},
    },
    "required": ["ok", "waiting", "pid"],
    "additionalProperties": False,
}


def components() -> dict[str, Any]:
    """The schemas, by name (``Problem`` is the problem the service sends: RFC 9457 and its
    ``request_id``)."""
    models = [Job, JobCreate, JobPage, JobsWait, JobsWaitResult, Status, ServiceProblem, Snapshot, Webhooks]
    _, schemas = msgspec.json.schema_components([*models, Secrets], ref_template=REF)
    schemas["Problem"] = schemas.pop(ServiceProblem.__name__)
    schemas["Problem"]["required"] = ["type", "title", "status", "detail"]
    schemas["JobsWait"]["properties"]["ids"]["items"] = {"type": "string", "pattern": JOB_ID_PATTERN}
    schemas["Health"] = HEALTH
    schemas.update(EVENTS)
    for name, properties in _TIGHTER.items():
        for field, extra in properties.items():
            _string_branch(schemas[name]["properties"][field]).update(extra)
    return schemas


def _string_branch(schema: dict[str, Any]) -> dict[str, Any]:
    """The part of a property's schema that describes its non-null value."""
    for branch in schema.get("anyOf", ()):
        if branch.get("type") != "null":
            found: dict[str, Any] = branch
            return found
    return schema
