"""``GET /metrics``: the Prometheus metrics move as the service works, on one process and on two."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess
    from servers.receiver import Receiver

pytestmark = pytest.mark.integration

JOB = {"language": "es", "video_seconds": 10}


def samples(svc: ServiceProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``, by name and labels."""
    with svc.client() as http:
        response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(svc: ServiceProcess, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples(svc).items() if n == name and wanted <= ls)


def create(http: httpx2.Client, **extra: Any) -> str:
    response = http.post("/v1/jobs", json={**JOB, **extra})
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def test_n_creates_add_n_to_the_created_counter(service: ServiceProcess, client: httpx2.Client) -> None:
    before = value(service, "vtrans_jobs_created_total")
    ids = [create(client) for _ in range(7)]
    # A replay of an Idempotency-Key creates nothing.
    headers = {"Idempotency-Key": "once"}
    assert client.post("/v1/jobs", json=JOB, headers=headers).status_code == 201
    assert client.post("/v1/jobs", json=JOB, headers=headers).status_code == 200
    assert len(set(ids)) == 7
    assert value(service, "vtrans_jobs_created_total") == before + 8


def test_a_finished_job_lands_in_its_result(
    service: ServiceProcess, client: httpx2.Client, wait_until: Callable[..., Any]
) -> None:
    fails = {"duration_seconds": 0.3, "outcome": "error", "error_code": "no_speech_detected"}
    create(client, simulate=fails)
    create(client, simulate={"duration_seconds": 0.3, "outcome": "completed"})
    create(client, simulate={"duration_seconds": 0.3, "outcome": "completed"})
    cancelled = create(client, simulate={"duration_seconds": 60, "outcome": "completed"})
    assert client.delete(f"/v1/jobs/{cancelled}").status_code == 200
    assert client.delete(f"/v1/jobs/{cancelled}").status_code == 200  # a retried DELETE counts once

    def counted() -> dict[tuple[str, str], float] | None:
        found = {
            (dict(ls)["result"], dict(ls)["error_code"]): v
            for (n, ls), v in samples(service).items()
            if n == "vtrans_jobs_finished_total"
        }
        return found if sum(found.values()) >= 4 else None

    found = wait_until(counted, 5, interval=0.1, message="four finished jobs in /metrics")
    assert found == {("completed", ""): 2, ("error", "no_speech_detected"): 1, ("error", "cancelled"): 1}
    assert value(service, "vtrans_job_duration_seconds_count", result="completed") == 2
    # Nothing is counted twice later (the cancelled job's original end is not counted either).
    assert value(service, "vtrans_jobs_finished_total") == 4


def test_jobs_pending_at_a_restart_are_counted_when_they_end(
    service: ServiceProcess, client: httpx2.Client, wait_until: Callable[..., Any]
) -> None:
    job_id = create(client, simulate={"duration_seconds": 4, "outcome": "completed"})
    service.restart()
    with service.client() as http:
        assert http.get(f"/v1/jobs/{job_id}").json()["result"] == "pending", "restarted in time"
    assert value(service, "vtrans_jobs_finished_total", result="completed") == 0
    wait_until(
        lambda: value(service, "vtrans_jobs_finished_total", result="completed") == 1,
        10,
        interval=0.1,
        message="the job created before the restart to be counted",
    )


def test_a_failed_webhook_is_counted_as_failed(
    service_factory: ServiceFactory, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver(status=500)
    svc = service_factory("--webhook-retry-delays", "0.1", "--webhook-timeout", "2")
    with svc.client() as http:
        job_id = create(http, callback_url=hooks.url_for("hooks"), simulate={"duration_seconds": 0.1})

        def failed() -> bool:
            return bool(http.get(f"/v1/jobs/{job_id}/webhook").json()["state"] == "failed")

        wait_until(failed, 10, interval=0.05, message="the webhook to fail")
    assert len(hooks.hooks) == 2
    assert value(svc, "vtrans_webhook_deliveries_total", state="failed") == 1
    assert value(svc, "vtrans_webhook_deliveries_total", state="delivered") == 0
    assert value(svc, "vtrans_webhook_attempts_total", outcome="retry") == 1
    assert value(svc, "vtrans_webhook_attempts_total", outcome="failed") == 1
    assert value(svc, "vtrans_webhook_delivery_attempts_sum", state="failed") == 2
    assert value(svc, "vtrans_webhook_attempt_duration_seconds_count") == 2


def test_a_delivered_webhook_is_counted_as_delivered(
    service_factory: ServiceFactory, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver(failures=1)
    svc = service_factory("--webhook-retry-delays", "0.1,0.1", "--webhook-timeout", "2")
    with svc.client() as http:
        create(http, callback_url=hooks.url_for("hooks"), simulate={"duration_seconds": 0.1})
    wait_until(
        lambda: value(svc, "vtrans_webhook_deliveries_total", state="delivered") == 1,
        10,
        interval=0.05,
        message="the webhook to be delivered",
    )
    assert value(svc, "vtrans_webhook_attempts_total", outcome="retry") == 1
    assert value(svc, "vtrans_webhook_delivery_attempts_sum", state="delivered") == 2


def test_requests_are_timed_by_route_template_never_by_raw_path(
    service: ServiceProcess, client: httpx2.Client
) -> None:
    ids = [create(client) for _ in range(3)]
    for job_id in ids:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    assert client.get("/v1/jobs/job_nope").status_code == 400
    assert client.get("/no/such/path").status_code == 404
    found = samples(service)
    count = "http_server_request_duration_seconds_count"
    route = {("http_route", "/v1/jobs/{job_id}"), ("http_request_method", "GET")}
    assert found[(count, frozenset({*route, ("http_response_status_code", "200")}))] == 3
    assert found[(count, frozenset({*route, ("http_response_status_code", "400")}))] == 1
    # The unknown path has no route: an empty label, not the path.
    unmatched = {("http_route", ""), ("http_request_method", "GET"), ("http_response_status_code", "404")}
    assert found[(count, frozenset(unmatched))] == 1
    labels = {value for _, ls in found for _, value in ls}
    raw = [v for v in labels if any(job_id in v for job_id in ids) or "job_nope" in v or "/no/such" in v]
    assert not raw, f"a raw path became a label: {raw}"


def test_long_polls_are_held_requests_of_their_own(
    service: ServiceProcess, client: httpx2.Client, wait_until: Callable[..., Any]
) -> None:
    job_id = create(client, simulate={"duration_seconds": 60})
    answered: list[int] = []

    def long_poll() -> None:
        with service.client() as http:
            answered.append(http.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"}).status_code)

    holder = threading.Thread(target=long_poll)
    holder.start()
    try:
        wait_until(
            lambda: value(service, "vtrans_held_requests", kind="long-poll") == 1,
            5,
            message="the long-poll to be counted as held",
        )
        assert value(service, "http_server_active_requests") >= 2  # the long-poll and /metrics
    finally:
        client.delete(f"/v1/jobs/{job_id}")  # ends the hold at once
        holder.join(10)
    assert answered == [200]
    assert value(service, "vtrans_held_requests", kind="long-poll") == 0
    held = "vtrans_held_request_duration_seconds_count"
    assert value(service, held, kind="long-poll", http_route="/v1/jobs/{job_id}") == 1
    ordinary = "http_server_request_duration_seconds_count"
    assert value(service, ordinary, http_route="/v1/jobs/{job_id}", http_request_method="GET") == 0


def test_store_operations_are_timed(service: ServiceProcess, client: httpx2.Client) -> None:
    create(client)
    name = "db_client_operation_duration_seconds_count"
    assert value(service, name, db_system_name="sqlite", db_operation_name="add") >= 1


def test_no_metrics_means_no_endpoint(
    service_factory: ServiceFactory, assert_problem: Callable[..., Any]
) -> None:
    svc = service_factory("--no-metrics")
    with svc.client() as http:
        assert_problem(http.get("/metrics"), 404, code="no-such-route")
        assert http.post("/v1/jobs", json=JOB).status_code == 201


def test_two_workers_are_summed(
    service_factory: ServiceFactory,
    pg_url: str,
    wait_until: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # where the service makes its metrics directory
    svc = service_factory("--store", pg_url, "--workers", "2")
    assert [p.name for p in temp.iterdir() if p.name.startswith("vtrans-metrics-")]
    route = {"http_route": "/healthz", "http_request_method": "GET"}
    pids: set[int] = set()
    healthz = value(svc, "http_server_request_duration_seconds_count", **route)  # the start-up probe's
    created = 0

    def both_workers_answered() -> bool:
        nonlocal healthz, created
        # A new connection each time, so that either worker may take it.
        with svc.client() as http:
            pids.add(http.get("/healthz").json()["pid"])
        with svc.client() as http:
            create(http)
        healthz += 1
        created += 1
        return len(pids) == 2

    wait_until(both_workers_answered, 20, interval=0, message="both workers to answer /healthz")
    for _ in range(4):  # whichever worker answers, it reports both
        assert value(svc, "vtrans_jobs_created_total") == created
        assert value(svc, "http_server_request_duration_seconds_count", **route) == healthz
    # A gauge too: a long-poll held by one worker shows in the /metrics of either (within a second).
    with svc.client() as http:
        job_id = create(http, simulate={"duration_seconds": 60})

    def long_poll() -> None:
        with svc.client() as http:
            http.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"})

    holder = threading.Thread(target=long_poll)
    holder.start()
    try:
        for _ in range(3):
            wait_until(
                lambda: value(svc, "vtrans_held_requests", kind="long-poll") == 1,
                5,
                interval=0.1,
                message="the held long-poll in the workers' sum",
            )
    finally:
        with svc.client() as http:
            http.delete(f"/v1/jobs/{job_id}")
        holder.join(10)
    assert svc.stop() == 0
    assert not [p.name for p in temp.iterdir() if p.name.startswith("vtrans-metrics-")], "not cleaned"
