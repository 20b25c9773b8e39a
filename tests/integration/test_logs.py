"""Request ids and structured logs: ``X-Request-Id`` in and out, in problems, and in JSON log lines."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration


def json_lines(svc: ServiceProcess) -> list[dict[str, Any]]:
    """The log of the service's last start, every line parsed as JSON (a line that is not fails)."""
    text = svc.log_text().rsplit("\n--- ", 1)[1]
    return [json.loads(line) for line in text.splitlines()[1:] if line.strip()]


def test_a_request_id_is_echoed_or_made(service: ServiceProcess, assert_problem: Callable[..., Any]) -> None:
    with service.client() as http:
        mine = http.get("/healthz", headers={"X-Request-Id": "trace-42/a.b"})
        assert mine.headers["x-request-id"] == "trace-42/a.b"
        made = [http.get("/healthz").headers["x-request-id"] for _ in range(2)]
        assert made[0] != made[1]
        assert all(1 <= len(rid) <= 128 and rid.isascii() and rid.isprintable() for rid in made)
        for bad in ("x" * 129, "has space", "tab\there", ""):
            replaced = http.get("/healthz", headers={"X-Request-Id": bad}).headers["x-request-id"]
            assert replaced != bad
            assert " " not in replaced
        problem = http.get("/v1/jobs/nope", headers={"X-Request-Id": "req-7"})
        body = assert_problem(problem, 400, code="malformed-job-id")
        assert body["request_id"] == "req-7" == problem.headers["x-request-id"]
        assert body["instance"] == "/v1/jobs/nope"


def test_json_logs_one_object_per_line(
    service_factory: ServiceFactory, wait_until: Callable[..., Any]
) -> None:
    svc = service_factory("--log-format", "json", "--access-log")
    with svc.client() as http:
        created = http.post(
            "/v1/jobs", json={"language": "fr", "video_seconds": 5}, headers={"X-Request-Id": "create-1"}
        )
        job_id = created.json()["id"]
        http.get(f"/v1/jobs/{job_id}", headers={"X-Request-Id": "get-1"})
        http.get("/v1/jobs/job_0", headers={"X-Request-Id": "bad-1"})

    def access(request_id: str) -> dict[str, Any] | None:
        found = [line for line in json_lines(svc) if line.get("request_id") == request_id]
        return found[0] if found else None

    got = wait_until(lambda: access("get-1"), 5, message="the access line of the GET")
    assert got["level"] == "info"
    assert got["logger"] == "vtrans.access"
    assert got["route"] == "/v1/jobs/{job_id}"
    assert got["job_id"] == job_id
    assert got["status"] == 200
    assert got["method"] == "GET"
    assert isinstance(got["duration_ms"], float | int)
    assert got["time"].endswith("+00:00")
    assert job_id in got["event"]
    bad = wait_until(lambda: access("bad-1"), 5, message="the access line of the bad GET")
    assert bad["status"] == 400
    assert bad["route"] == "/v1/jobs/{job_id}"
    create = wait_until(lambda: access("create-1"), 5, message="the access line of the POST")
    assert (create["status"], create["route"], create["job_id"]) == (201, "/v1/jobs", job_id)
    lines = json_lines(svc)  # every line parses, uvicorn's own too
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert all({"time", "level", "logger", "event"} <= line.keys() for line in lines)


def test_text_logs_without_access_lines_by_default(service: ServiceProcess) -> None:
    with service.client() as http:
        http.get("/healthz", headers={"X-Request-Id": "quiet-1"})
    assert "quiet-1" not in service.log_text()
