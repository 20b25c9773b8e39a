"""Every route of the service as an operation: what it takes and everything it may answer.

An API operation (``/v1/…`` and ``/status``) also takes ``Vtrans-Fault`` and may answer the faults
it asks for; with API keys it needs one (401 otherwise); with a rate limit, every answer carries
the ``RateLimit`` headers and a 429 may come. What depends on how the service was started is said
only when it is so, so the document of a running service is exact for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vtrans.protocol import MAX_BATCH
from vtrans.server.http.dashboard import FILES
from vtrans.server.http.docs import ASSETS
from vtrans.server.http.openapi import parts
from vtrans.server.http.openapi.parts import JSON, SSE, answer, problems, ref

#: Problems any API request may get: a bad ``Vtrans-Fault`` (400), injected faults (429, 500, 503),
#: a store that fails or a shutdown (503).
_API_PROBLEMS = (400, 429, 500, 503)
_TEXT = {"type": "string"}


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip()


@dataclass(frozen=True)
class Paths:
    """The paths of a service started with API keys or not, a rate limit or not, metrics or not."""

    keys: bool
    rate_limited: bool
    metrics: bool

    def api(
        self,
        summary: str,
        ok: dict[str, Any],
        *,
        params: list[dict[str, Any]] | None = None,
        body: str | None = None,
        codes: tuple[int, ...] = (),
        auth: str = "required",
        description: str | None = None,
    ) -> dict[str, Any]:
        """An API operation; ``ok`` its successful answers by status; ``codes`` its own problems;
        ``auth``: ``required``, or ``optional`` (anyone, or a tenant for its own jobs)."""
        headers = {**parts.FAULTED, **(parts.RATE_LIMITS if self.rate_limited else {})}
        codes = (*_API_PROBLEMS, *codes, *((401,) if self.keys else ()))
        operation: dict[str, Any] = {
            "summary": summary,
            "parameters": [*(params or []), parts.FAULT],
            "responses": {
                **{
                    code: {**each, "headers": {**each.get("headers", {}), **headers}}
                    for code, each in ok.items()
                },
                **problems(codes, headers),
            },
        }
        if description:
            operation["description"] = description
        if body is not None:
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
        if self.keys:
            operation["security"] = [{"bearer": []}] if auth == "required" else [{}, {"bearer": []}]
        else:
            operation["security"] = []
        return operation

    def plain(
        self,
        summary: str,
        ok: dict[str, Any],
        *,
        params: list[dict[str, Any]] | None = None,
        codes: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        """An operation beside the API (health, docs, dashboard, metrics): open to anyone."""
        return {
            "summary": summary,
            "parameters": params or [],
            "security": [],
            "responses": {**ok, **problems((*codes, 503))},
        }

    def document(self) -> dict[str, Any]:
        held_job = answer(
            "The job now (after the hold, if one was asked for).",
            {JSON: "Job"},
            {**parts.PENDING_RETRY_AFTER, **parts.HELD},
        )
        paths: dict[str, Any] = {
            "/status": {
                "get": self.api(
                    "The original contract: pending until a delay, then completed or error",
                    {
                        "200": answer(
                            "The result.", {JSON: "Status"}, {**parts.PENDING_RETRY_AFTER, **parts.HELD}
                        )
                    },
                    params=[parts.STATUS_JOB_ID, parts.PREFER_WAIT],
                    codes=(404,),
                    auth="optional",
                )
            },
            "/v1/jobs": {
                "post": self.api(
                    "Create a translation job",
                    {
                        "201": answer(
                            "Created; `Location` names the job.",
                            {JSON: "Job"},
                            {
                                **parts.PENDING_RETRY_AFTER,
                                "Location": {
                                    "required": True,
                                    "schema": {"type": "string", "pattern": "^/v1/jobs/job_[0-9a-f]{32}$"},
                                },
                            },
                        ),
                        "200": answer(
                            "The job this Idempotency-Key created before.",
                            {JSON: "Job"},
                            {
                                **parts.PENDING_RETRY_AFTER,
                                "Idempotent-Replayed": {"required": True, "schema": {"enum": ["true"]}},
                                "Location": {"required": True, "schema": {"type": "string"}},
                            },
                        ),
                    },
                    params=[parts.IDEMPOTENCY_KEY],
                    body="JobCreate",
                    codes=(413, 422),
                ),
                "get": self.api(
                    "List your jobs, newest first",
                    {"200": answer("One page of jobs.", {JSON: "JobPage"})},
                    params=parts.LISTING,
                ),
            },
            "/v1/jobs/wait": {
                "post": self.api(
                    f"Wait for many jobs at once (up to {MAX_BATCH})",
                    {
                        "200": answer(
                            "The watched jobs that have ended (JSON); or, with `Accept: text/event-stream`, "
                            "a stream of one `done` event per job as each ends.",
                            {JSON: "JobsWaitResult", SSE: "JobDoneEvent"},
                            parts.HELD,
                        )
                    },
                    params=[parts.PREFER_WAIT, parts.ACCEPT_STREAM],
                    body="JobsWait",
                    codes=(404, 413, 422),
                    description=(
                        "The ended jobs among `ids`, and how many are pending; with `Prefer: wait=N`, held "
                        "until one ends. An id that is not one of your jobs is a 404 problem."
                    ),
                )
            },
            "/v1/jobs/events": {
                "get": self.api(
                    "Follow a page of jobs live (what the dashboard shows)",
                    {"200": answer("The stream.", {SSE: "PageEvent"})},
                    params=parts.LISTING,
                    description=(
                        "Server-Sent Events: a `page` event whose data is the listing `GET /v1/jobs` answers "
                        "now (same `result`, `limit`, `cursor`) with `counts` by result (schema `Snapshot`), "
                        "sent each second while it changes; a `retry:` hint at the stream's end."
                    ),
                )
            },
            "/v1/jobs/{job_id}": {
                "get": self.api(
                    "Get a job (with `Prefer: wait=N`, a long-poll)",
                    {"200": held_job},
                    params=[parts.JOB_ID, parts.PREFER_PROGRESS],
                    codes=(404,),
                ),
                "delete": self.api(
                    "Cancel a job (it ends as error/cancelled; cancelling it again answers it again)",
                    {"200": answer("The cancelled job.", {JSON: "Job"})},
                    params=[parts.JOB_ID],
                    codes=(403, 404, 409),
                ),
            },
            "/v1/jobs/{job_id}/events": {
                "get": self.api(
                    "Follow a job: Server-Sent Events",
                    {
                        "200": answer(
                            "`progress` events (id `p<percent>`) while pending, then `done` (id `done`) "
                            "with the job; each event's data is a `Job`.",
                            {SSE: "JobEvent"},
                        )
                    },
                    params=[parts.JOB_ID, parts.LAST_EVENT_ID],
                    codes=(404,),
                )
            },
            "/v1/jobs/{job_id}/webhook": {
                "get": self.api(
                    "The state of a job's webhook delivery",
                    {"200": answer("The delivery.", {JSON: "Delivery"})},
                    params=[parts.JOB_ID],
                    codes=(404,),
                )
            },
            "/v1/webhooks": {
                "get": self.api(
                    "Recent webhook deliveries and their state",
                    {
                        "200": answer(
                            "The deliveries of your newest jobs with a callback.", {JSON: "Webhooks"}
                        )
                    },
                    params=[parts.LIMIT],
                )
            },
            "/v1/webhook-secret": {
                "get": self.api(
                    "Your webhook signing secrets (Standard Webhooks `whsec_…`)",
                    {
                        "200": answer(
                            "The current secret, and the previous one while it still signs.",
                            {JSON: "Secrets"},
                        )
                    },
                )
            },
            "/v1/webhook-secret/rotate": {
                "post": self.api(
                    "Rotate your webhook signing secret",
                    {
                        "200": answer(
                            "The new secret; the previous one signs along until `previous_until`.",
                            {JSON: "Secrets"},
                        )
                    },
                    codes=(409,),
                )
            },
            "/healthz": {"get": self.plain("Liveness", {"200": answer("Alive.", {JSON: "Health"})})},
            "/openapi.json": {
                "get": self.plain(
                    "This document", {"200": answer("OpenAPI 3.1.", {JSON: {"type": "object"}})}
                )
            },
            "/docs": {
                "get": self.plain(
                    "Swagger UI over this document", {"200": answer("The page.", {"text/html": _TEXT})}
                )
            },
            "/docs/assets/{name}": {
                "get": self.plain(
                    "The assets of /docs (Swagger UI 5, served by the service itself)",
                    {"200": answer("The asset.", {_media(t): _TEXT for t in ASSETS.values()})},
                    params=[_name(sorted(ASSETS))],
                    codes=(404,),
                )
            },
            "/": {
                "get": self.plain("The live dashboard", {"200": answer("The page.", {"text/html": _TEXT})})
            },
            "/dashboard/{name}": {
                "get": self.plain(
                    "The dashboard's script and style",
                    {
                        "200": answer(
                            "The file.",
                            {_media(t): _TEXT for n, t in FILES.items() if n != "dashboard.html"},
                        )
                    },
                    params=[_name(sorted(n for n in FILES if n != "dashboard.html"))],
                    codes=(404,),
                )
            },
        }
        if self.metrics:
            paths["/metrics"] = {
                "get": self.plain(
                    "Prometheus metrics",
                    {"200": answer("Text exposition format.", {"text/plain": _TEXT})},
                )
            }
        return paths


def _name(names: list[str]) -> dict[str, Any]:
    return {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": names}}
