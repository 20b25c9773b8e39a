"""The OpenAPI 3.1 document (``/openapi.json``); the interactive page over it is ``docs.py``'s.

Exact for the service that serves it: every route, the schemas of the wire models tightened with
the very patterns the service validates with, every header it reads or sends, and every problem
it may answer. ``tests/integration/test_openapi_fuzz.py`` holds the service to it (Schemathesis).

- ``schemas``: the components (the wire models' schemas, tightened);
- ``parts``: parameters, headers, answers and problems;
- ``paths``: every route as an operation.
"""

from __future__ import annotations

from typing import Any

from vtrans import __version__
from vtrans.server.config import ServerConfig
from vtrans.server.http.openapi.paths import Paths
from vtrans.server.http.openapi.schemas import components

DESCRIPTION = """A sandbox that behaves like a video-translation backend. `GET /status` is the \
original task's contract; `/v1/jobs` is the full job API.

Errors are `application/problem+json` (RFC 9457): `type` is `urn:vtrans:problem:<code>`, and \
`request_id` names the request in the service's logs. A method a path does not list is a 405 \
problem with `Allow`; a path not listed here is a 404 problem.

`Vtrans-Fault` injects one fault into the request that carries it (see the parameter)."""


def document(config: ServerConfig | None = None) -> dict[str, Any]:
    """The document of a service started with ``config``."""
    config = config or ServerConfig()
    paths = Paths(
        keys=bool(config.api_keys), rate_limited=config.rate_limit is not None, metrics=config.metrics
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vtrans — simulated video-translation service",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "paths": paths.document(),
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (`--api-key`)."}
            },
        },
    }
