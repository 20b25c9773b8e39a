"""Jobs survive a crash: ``kill -9`` the service, start it on the same SQLite file, nothing moved.

A job's timeline is drawn once and stored, so after a restart every job has the same creation
time, the same planned completion and, once finished, the same result. The services here run
with ``--estimate-spread 0`` so that the reported ``estimated_completion_at`` *is* the planned
end (with noise it drifts with the time of asking) and can be compared across the crash.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx2
import pytest

pytestmark = pytest.mark.integration

EPSILON = 0.01
STABLE = ("id", "language", "video_seconds", "created_at", "source_url", "callback_url")


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def create(client: httpx2.Client, simulate: dict[str, Any], **headers: str) -> dict[str, Any]:
    body = {
        "language": "ja",
        "video_seconds": 30,
        "source_url": "https://example.com/v.mp4",
        "simulate": simulate,
    }
    response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_every_job_survives_kill_9_with_its_timeline(
    service_factory: Callable[..., Any], wait_for_job: Callable[..., dict[str, Any]]
) -> None:
    svc = service_factory("--estimate-spread", "0")
    with svc.client() as client:
        jobs = {
            "completed": create(client, {"duration_seconds": 0.2}),
            "failed": create(client, {"duration_seconds": 0.2, "error_code": "source_unreachable"}),
            "finishes_later": create(client, {"duration_seconds": 2}),
            "long": create(client, {"duration_seconds": 3600}),
            "cancelled": create(client, {"duration_seconds": 3600}),
            "keyed": create(client, {"duration_seconds": 3600}, **{"Idempotency-Key": "survives"}),
        }
        assert client.delete(f"/v1/jobs/{jobs['cancelled']['id']}").status_code == 200
        wait_for_job(client, jobs["completed"]["id"])
        wait_for_job(client, jobs["failed"]["id"])
        before = {name: client.get(f"/v1/jobs/{job['id']}").json() for name, job in jobs.items()}
        listed_before = [job["id"] for job in client.get("/v1/jobs", params={"limit": 100}).json()["items"]]
    assert before["finishes_later"]["result"] == "pending", "the crash must happen while it is pending"

    svc.kill()
    svc.start()

    with svc.client() as client:
        after = {name: client.get(f"/v1/jobs/{job['id']}").json() for name, job in jobs.items()}
        listed_after = [job["id"] for job in client.get("/v1/jobs", params={"limit": 100}).json()["items"]]
        replay = client.post(
            "/v1/jobs",
            json={"language": "ja", "video_seconds": 30, "source_url": "https://example.com/v.mp4"},
            headers={"Idempotency-Key": "survives"},
        )
        finished_later = wait_for_job(client, jobs["finishes_later"]["id"], timeout=8)

    assert listed_after == listed_before
    for name, job in after.items():
        assert {k: job[k] for k in STABLE} == {k: before[name][k] for k in STABLE}, name

    # Finished jobs are frozen: byte for byte the same answer.
    for name in ("completed", "failed", "cancelled"):
        assert after[name] == before[name], name
    assert after["completed"]["result"] == "completed"
    assert after["failed"]["error"]["code"] == "source_unreachable"
    assert after["cancelled"]["error"]["code"] == "cancelled"

    # Pending jobs still aim at the same instant.
    for name in ("long", "keyed"):
        assert after[name]["result"] == "pending", name
        assert ts(after[name]["estimated_completion_at"]) == pytest.approx(
            ts(before[name]["estimated_completion_at"]), abs=EPSILON
        ), name
        assert after[name]["progress"] >= before[name]["progress"]

    # The one that was pending at the crash ends when it was always going to.
    assert finished_later["result"] == "completed"
    created = ts(jobs["finishes_later"]["created_at"])
    assert ts(finished_later["finished_at"]) == pytest.approx(created + 2, abs=EPSILON)

    # The idempotency key still names its job.
    assert replay.status_code == 200, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["id"] == jobs["keyed"]["id"]


def test_a_graceful_restart_keeps_jobs_too(service_factory: Callable[..., Any]) -> None:
    svc = service_factory()
    with svc.client() as client:
        job = create(client, {"duration_seconds": 3600})
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: the exit is 0 or -SIGTERM, not -SIGKILL.
    assert svc.stop() in (0, -signal.SIGTERM), "SIGTERM should end the service cleanly"
    svc.start()
    with svc.client() as client:
        again = client.get(f"/v1/jobs/{job['id']}")
    assert again.status_code == 200
    assert again.json()["created_at"] == job["created_at"]


def test_the_memory_store_forgets_on_restart(
    service_factory: Callable[..., Any], assert_problem: Callable[..., Any]
) -> None:
    svc = service_factory("--store", "memory")
    assert svc.db_path is None
    with svc.client() as client:
        job = create(client, {"duration_seconds": 3600})
        assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
    svc.restart()
    with svc.client() as client:
        assert_problem(client.get(f"/v1/jobs/{job['id']}"), 404, code="job-not-found")
