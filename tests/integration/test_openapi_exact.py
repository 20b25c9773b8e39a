"""``/openapi.json`` is exact: it lists every route the service has, it is the document of the
service that serves it (keys, rate limit, metrics), and what it refuses the service refuses too.

``test_openapi_fuzz.py`` holds the service to the document operation by operation; this module
checks the few things fuzzing cannot see, and pins the cases an earlier document let through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from vtrans.server.config import ServerConfig
from vtrans.server.http.app import create_app
from vtrans.server.http.openapi import document
from vtrans.server.tenants import parse_keys

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration

GOOD_JOB = {"language": "fr", "video_seconds": 5}


def _routes(config: ServerConfig) -> dict[str, set[str]]:
    """The paths of the service's router, and the methods each takes (HEAD aside: it is GET's)."""
    app: Any = create_app(config)
    while not isinstance(app, Starlette):
        app = app.routes if hasattr(app, "routes") and not isinstance(app.routes, list) else app.app
    routes: dict[str, set[str]] = {}
    for route in app.routes:
        assert isinstance(route, Route)
        routes[route.path] = set(route.methods or ()) - {"HEAD"}
    return routes


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator of ``schema`` whose ``$ref`` resolve in ``doc``."""
    return jsonschema_rs.validator_for({**schema, "components": doc["components"]})


def _parameter(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in doc["paths"][path][method]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found["schema"]
    return schema


@pytest.mark.parametrize(
    "config",
    [
        ServerConfig(store="memory"),
        ServerConfig(store="memory", metrics=False),
        ServerConfig(store="memory", api_keys=parse_keys(["k"]), rate_limit="10/second"),
    ],
    ids=["default", "no-metrics", "keys-and-rate-limit"],
)
def test_every_route_is_in_the_document_and_nothing_else(config: ServerConfig) -> None:
    documented = {path: set(ops) for path, ops in document(config)["paths"].items()}
    routes = {path: {m.lower() for m in methods} for path, methods in _routes(config).items()}
    # /v1/jobs/wait, /v1/jobs/events and /v1/webhook-secret/rotate take every method, to answer
    # the ones they do not serve with a 405 themselves: what they serve is in their endpoint.
    for path in ("/v1/jobs/wait", "/v1/jobs/events", "/v1/webhook-secret/rotate"):
        assert routes.pop(path) == set(), path
        routes[path] = documented[path]
    assert routes == documented


def test_the_served_document_is_the_one_of_its_flags(shared_service: ServiceProcess) -> None:
    with shared_service.client() as client:
        served = client.get("/openapi.json").json()
    assert served == document(ServerConfig())


def test_a_keyed_service_documents_its_keys(module_service_factory: ServiceFactory) -> None:
    service = module_service_factory("--api-key", "t:secret-key", "--no-metrics")
    with service.client() as client:
        served = client.get("/openapi.json").json()
    assert served == document(ServerConfig(api_keys=parse_keys(["t:secret-key"]), metrics=False))
    assert "/metrics" not in served["paths"]
    assert served["paths"]["/v1/jobs"]["get"]["security"] == [{"bearer": []}]
    assert "401" in served["paths"]["/v1/jobs"]["get"]["responses"]
    assert served["paths"]["/status"]["get"]["security"] == [{}, {"bearer": []}]
    assert served["paths"]["/healthz"]["get"]["security"] == []


# --- what the document refuses, the service refuses (and the control: what it takes, it takes) --


def test_a_language_the_document_refuses_the_service_refuses(
    shared_service: ServiceProcess, assert_problem: Callable[..., Any]
) -> None:
    doc = document(ServerConfig())
    body = _validator(doc, {"$ref": "#/components/schemas/JobCreate"})
    with shared_service.client() as client:
        for language in ("00", "xx", "e-n", "f"):
            assert not body.is_valid({**GOOD_JOB, "language": language}), language
            response = client.post("/v1/jobs", json={**GOOD_JOB, "language": language})
            assert_problem(response, 422, detail_contains="language")
        for language in ("fr", "FR", "pt-br", "zh-TW"):
            assert body.is_valid({**GOOD_JOB, "language": language}), language
            assert client.post("/v1/jobs", json={**GOOD_JOB, "language": language}).status_code == 201


@pytest.mark.parametrize(
    ("path", "name", "refused", "taken"),
    [
        (
            "/status",
            "job_id",
            ["c#", "c", "job_" + "A" * 32, "job_" + "0" * 32 + "\n"],
            ["", "job_" + "0" * 32],
        ),
        (
            "/v1/jobs",
            "cursor",
            ["", "c", "C1", "cg", "c8000000000000000", "Zm9v"],
            ["c0", "c7fffffffffffffff"],
        ),
    ],
    ids=["status-job-id", "cursor"],
)
def test_a_query_the_document_refuses_the_service_refuses(
    shared_service: ServiceProcess,
    assert_problem: Callable[..., Any],
    path: str,
    name: str,
    refused: list[str],
    taken: list[str],
) -> None:
    schema = _validator(document(ServerConfig()), _parameter(document(ServerConfig()), path, "get", name))
    with shared_service.client() as client:
        for value in refused:
            assert not schema.is_valid(value), value
            assert_problem(client.get(path, params={name: value}), 400, detail_contains=name.split("_")[-1])
        for value in taken:
            assert schema.is_valid(value), value
            assert client.get(path, params={name: value}).status_code in (200, 404), value


def test_an_idempotency_key_the_document_refuses_the_service_refuses(
    shared_service: ServiceProcess, assert_problem: Callable[..., Any]
) -> None:
    doc = document(ServerConfig())
    schema = _validator(doc, _parameter(doc, "/v1/jobs", "post", "Idempotency-Key"))
    with shared_service.client() as client:
        for key in ("", "k" * 256, "with space", "tab\there", "caf\u00e9"):
            assert not schema.is_valid(key), key
            headers = {"Idempotency-Key": key.encode("latin-1")}
            response = client.post("/v1/jobs", json=GOOD_JOB, headers=headers)  # type: ignore[arg-type]
            assert_problem(response, 400, code="bad-idempotency-key")
        for key in ("k", "k" * 255, "order-42/attempt:1"):
            assert schema.is_valid(key), key
            assert client.post("/v1/jobs", json=GOOD_JOB, headers={"Idempotency-Key": key}).status_code == 201


def test_the_service_refuses_methods_a_path_does_not_list(
    shared_service: ServiceProcess, assert_problem: Callable[..., Any]
) -> None:
    """A 405 problem with ``Allow`` (as the document's description says), never a request for a
    job named after the path (DELETE /v1/jobs/events is not a job called "events")."""
    doc = document(ServerConfig())
    with shared_service.client() as client:
        for path, operations in doc["paths"].items():
            concrete = path.replace("{job_id}", "job_" + "0" * 32).replace("{name}", "x")
            for method in {"get", "post", "put", "patch", "delete"} - set(operations):
                response = client.request(method.upper(), concrete)
                assert_problem(response, 405, code="method-not-allowed")
                assert {m.strip().lower() for m in response.headers["allow"].split(",")} >= set(operations)
