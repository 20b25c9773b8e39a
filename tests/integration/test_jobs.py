"""The ``/v1/jobs`` API on the real service: lifecycle, listing, idempotency, seeds, auth, docs."""

from __future__ import annotations

import math
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

if TYPE_CHECKING:
    from conftest import ServiceFactory

pytestmark = pytest.mark.integration

JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
FIELDS = {
    "id",
    "result",
    "progress",
    "language",
    "video_seconds",
    "created_at",
    "finished_at",
    "estimated_completion_at",
    "estimated_seconds_remaining",
    "error",
    "source_url",
    "callback_url",
}
#: Rounding of wire timestamps (microseconds) and of ``estimated_seconds_remaining`` (milliseconds).
EPSILON = 0.01


def ts(value: str) -> float:
    """A wire timestamp (RFC 3339, ``Z``) as Unix seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def create(client: httpx2.Client, headers: dict[str, str] | None = None, **fields: Any) -> httpx2.Response:
    body = {"language": "fr", "video_seconds": 60, **fields}
    return client.post("/v1/jobs", json=body, headers=headers)


def create_ok(client: httpx2.Client, **fields: Any) -> dict[str, Any]:
    response = create(client, **fields)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def simulate(duration: float, outcome: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"duration_seconds": duration, **extra}
    if outcome is not None:
        spec["outcome"] = outcome
    return spec


def assert_retry_after(response: httpx2.Response, remaining: float) -> None:
    value = response.headers.get("retry-after")
    assert value is not None, "a pending job must say when to come back"
    assert value.isdigit(), value
    assert int(value) >= 1
    assert abs(int(value) - remaining) <= 1, (value, remaining)


# --- lifecycle --------------------------------------------------------------------------------


def test_create_answers_201_with_location_and_the_job(client: httpx2.Client) -> None:
    before = time.time()
    response = create(
        client,
        language="pt-BR",
        video_seconds=42.5,
        source_url="https://videos.example.com/a.mp4",
        callback_url="https://hooks.example.com/vtrans",
    )
    after = time.time()
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    job = response.json()
    assert set(job) == FIELDS
    assert JOB_ID.match(job["id"])
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert "idempotent-replayed" not in response.headers
    assert job["result"] == "pending"
    assert 0 <= job["progress"] < 1
    assert job["language"] == "pt-BR"
    assert job["video_seconds"] == 42.5
    assert job["source_url"] == "https://videos.example.com/a.mp4"
    assert job["callback_url"] == "https://hooks.example.com/vtrans"
    assert before - EPSILON <= ts(job["created_at"]) <= after + EPSILON
    assert job["finished_at"] is None
    assert job["error"] is None
    assert job["estimated_seconds_remaining"] > 0
    assert ts(job["estimated_completion_at"]) > ts(job["created_at"])
    assert_retry_after(response, job["estimated_seconds_remaining"])

    fetched = client.get(response.headers["location"])
    assert fetched.status_code == 200
    again = fetched.json()
    assert {k: again[k] for k in ("id", "language", "video_seconds", "created_at", "source_url")} == {
        k: job[k] for k in ("id", "language", "video_seconds", "created_at", "source_url")
    }


def test_a_pending_job_reports_progress_and_a_consistent_estimate(client: httpx2.Client) -> None:
    job = create_ok(client, simulate=simulate(2))
    sent = time.time()
    response = client.get(f"/v1/jobs/{job['id']}")
    received = time.time()
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == "pending"
    assert 0 <= body["progress"] <= 0.99
    remaining = body["estimated_seconds_remaining"]
    assert remaining > 0
    # estimated_completion_at is "now + remaining", where now is when the server answered.
    answered_at = ts(body["estimated_completion_at"]) - remaining
    assert sent - EPSILON <= answered_at <= received + EPSILON
    assert body["finished_at"] is None
    assert body["error"] is None
    assert_retry_after(response, remaining)
    assert response.headers.get("cache-control") == "no-store"


def test_a_job_completes_after_its_simulated_duration(
    client: httpx2.Client, wait_for_job: Callable[..., dict[str, Any]]
) -> None:
    job = create_ok(client, simulate=simulate(1))
    done = wait_for_job(client, job["id"], timeout=6)
    assert done["result"] == "completed"
    assert done["progress"] == 1.0
    assert done["error"] is None
    assert done["estimated_completion_at"] is None
    assert done["estimated_seconds_remaining"] is None
    assert ts(done["finished_at"]) == pytest.approx(ts(done["created_at"]) + 1, abs=EPSILON)
    response = client.get(f"/v1/jobs/{job['id']}")
    assert "retry-after" not in response.headers
    assert response.json() == done, "a finished job never changes"


def test_a_job_fails_with_an_error_object(
    client: httpx2.Client, wait_for_job: Callable[..., dict[str, Any]]
) -> None:
    failing = create_ok(client, simulate=simulate(0.5, "error"))
    coded = create_ok(client, simulate=simulate(0.5, error_code="quota_exceeded"))

    failed = wait_for_job(client, failing["id"], timeout=6)
    assert failed["result"] == "error"
    assert set(failed["error"]) == {"code", "message"}
    assert failed["error"]["code"]
    assert failed["error"]["code"] != "cancelled"
    assert failed["error"]["message"]
    assert ts(failed["finished_at"]) == pytest.approx(ts(failed["created_at"]) + 0.5, abs=EPSILON)
    assert failed["estimated_seconds_remaining"] is None

    failed_with_code = wait_for_job(client, coded["id"], timeout=6)
    assert failed_with_code["result"] == "error"
    assert failed_with_code["error"]["code"] == "quota_exceeded"
    assert failed_with_code["error"]["message"]


def test_a_failed_job_does_not_claim_full_progress(
    client: httpx2.Client, wait_for_job: Callable[..., dict[str, Any]]
) -> None:
    """Progress 1.0 means "done": pending is capped at 0.99, a failure must not report 1.0 either."""
    job = create_ok(client, simulate=simulate(0.3, "error"))
    failed = wait_for_job(client, job["id"], timeout=6)
    assert failed["result"] == "error"
    assert failed["progress"] < 1.0


def test_cancel_ends_a_pending_job_as_cancelled_and_is_idempotent(
    client: httpx2.Client, assert_problem: Callable[..., Any]
) -> None:
    job = create_ok(client, simulate=simulate(600))
    before = time.time()
    response = client.delete(f"/v1/jobs/{job['id']}")
    after = time.time()
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["id"] == job["id"]
    assert cancelled["result"] == "error"
    assert cancelled["error"]["code"] == "cancelled"
    assert cancelled["error"]["message"]
    assert before - EPSILON <= ts(cancelled["finished_at"]) <= after + EPSILON
    assert cancelled["estimated_seconds_remaining"] is None
    assert "retry-after" not in response.headers

    again = client.delete(f"/v1/jobs/{job['id']}")
    assert again.status_code == 200, again.text
    assert again.json()["error"]["code"] == "cancelled"
    assert again.json()["finished_at"] == cancelled["finished_at"], "a second cancel changes nothing"
    assert client.get(f"/v1/jobs/{job['id']}").json() == cancelled
    assert client.get("/status", params={"job_id": job["id"]}).json() == {"result": "error"}


def test_cancelling_a_finished_job_is_a_conflict(
    client: httpx2.Client, wait_for_job: Callable[..., dict[str, Any]], assert_problem: Callable[..., Any]
) -> None:
    completed = create_ok(client, simulate=simulate(0))
    failed = create_ok(client, simulate=simulate(0, "error"))
    for job, result in ((completed, "completed"), (failed, "error")):
        before = wait_for_job(client, job["id"], timeout=5)
        assert before["result"] == result
        assert_problem(client.delete(f"/v1/jobs/{job['id']}"), 409, code="job-finished")
        assert client.get(f"/v1/jobs/{job['id']}").json() == before, "a refused cancel changes nothing"


def test_progress_is_monotone_and_the_estimate_shrinks(
    client: httpx2.Client, wait_until: Callable[..., Any]
) -> None:
    job = create_ok(client, simulate=simulate(1.5))
    seen: list[dict[str, Any]] = []

    def done() -> bool:
        seen.append(client.get(f"/v1/jobs/{job['id']}").json())
        return bool(seen[-1]["result"] != "pending")

    wait_until(done, timeout=8, interval=0.05, message="the job to finish")
    progress = [body["progress"] for body in seen]
    assert len(progress) >= 5
    assert progress == sorted(progress), progress
    assert all(0 <= p <= 0.99 for p in progress[:-1])
    assert progress[-1] == 1.0
    assert len(set(progress[:-1])) > 1, "progress never moved while pending"
    remaining = [body["estimated_seconds_remaining"] for body in seen[:-1]]
    assert remaining == sorted(remaining, reverse=True), remaining
    assert all(r > 0 for r in remaining)


# --- listing ----------------------------------------------------------------------------------


def list_all(client: httpx2.Client, limit: int, **params: str) -> list[list[dict[str, Any]]]:
    """Every page of ``GET /v1/jobs``, following ``next_cursor``."""
    pages: list[list[dict[str, Any]]] = []
    query: dict[str, str | int] = {"limit": limit, **params}
    while True:
        response = client.get("/v1/jobs", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        pages.append(page["items"])
        assert len(page["items"]) <= limit
        if page["next_cursor"] is None:
            return pages
        assert page["items"], "a page with a cursor must not be empty"
        query["cursor"] = page["next_cursor"]
        assert len(pages) < 100, "pagination does not end"


def test_listing_is_newest_first_and_pages_cover_every_job_once(client: httpx2.Client) -> None:
    mine = [create_ok(client, video_seconds=10 + i, simulate=simulate(60))["id"] for i in range(7)]
    pages = list_all(client, limit=3)
    assert all(len(page) == 3 for page in pages[:-1])
    items = [job for page in pages for job in page]
    ids = [job["id"] for job in items]
    assert len(ids) == len(set(ids)), "a job appeared twice"
    assert set(mine) <= set(ids), "a job is missing"
    assert [i for i in ids if i in mine] == mine[::-1], "not newest first"
    created = [ts(job["created_at"]) for job in items]
    assert created == sorted(created, reverse=True)
    # One page with everything agrees with the paginated walk.
    assert [job["id"] for job in list_all(client, limit=100)[0]] == ids


def test_listing_filters_by_result(
    client: httpx2.Client, wait_for_job: Callable[..., dict[str, Any]]
) -> None:
    completed = create_ok(client, simulate=simulate(0))["id"]
    failed = create_ok(client, simulate=simulate(0, "error"))["id"]
    pending = create_ok(client, simulate=simulate(600))["id"]
    cancelled = create_ok(client, simulate=simulate(600))["id"]
    assert client.delete(f"/v1/jobs/{cancelled}").status_code == 200
    wait_for_job(client, completed)
    wait_for_job(client, failed)

    expected = {"completed": {completed}, "error": {failed, cancelled}, "pending": {pending}}
    mine = {completed, failed, pending, cancelled}
    for result, ids in expected.items():
        items = [job for page in list_all(client, limit=2, result=result) for job in page]
        assert {job["result"] for job in items} <= {result}
        assert {job["id"] for job in items} & mine == ids, result


# --- idempotency ------------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_same_job(client: httpx2.Client) -> None:
    key = {"Idempotency-Key": "order-1234"}
    first = create(client, headers=key, simulate=simulate(60))
    second = create(client, headers=key, simulate=simulate(60))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 200, second.text
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["created_at"] == first.json()["created_at"]
    assert second.headers["location"] == first.headers["location"]

    other = create(client, headers={"Idempotency-Key": "order-5678"})
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]
    plain = [create_ok(client)["id"] for _ in range(2)]
    assert len(set(plain)) == 2, "without a key every POST creates a job"


def test_an_idempotency_key_reused_for_another_request_is_refused(
    client: httpx2.Client, assert_problem: Callable[..., dict[str, Any]]
) -> None:
    """draft-ietf-httpapi-idempotency-key-header: a key reused with a different payload is a 422,
    and it neither creates a job nor changes the one the key names."""
    key = {"Idempotency-Key": "order-9999"}
    first = create(client, headers=key, simulate=simulate(60))
    assert first.status_code == 201
    before = [job["id"] for page in list_all(client, limit=100) for job in page]
    for changed in ({"language": "de"}, {"video_seconds": 61}, {"callback_url": "http://127.0.0.1:9/x"}):
        refused = create(client, headers=key, **changed)
        body = assert_problem(refused, 422, code="idempotency-key-reused", detail_contains=first.json()["id"])
        assert "Idempotency-Key" in body["detail"]
    assert [job["id"] for page in list_all(client, limit=100) for job in page] == before
    again = create(client, headers=key, simulate=simulate(60))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


# --- seeds ------------------------------------------------------------------------------------

SEEDED_LENGTHS = [1, 8, 3, 12, 5, 10]


def seeded_run(svc: Any) -> list[tuple[Any, ...]]:
    """Create a fixed sequence of jobs; return each one's planned offsets once it finished."""
    with svc.client() as client:
        created = [create_ok(client, language="es", video_seconds=v) for v in SEEDED_LENGTHS]
        return [
            (
                round(ts(job["estimated_completion_at"]) - ts(job["created_at"]), 2),
                job["estimated_seconds_remaining"],
            )
            for job in created
        ]


def finished(svc: Any, wait_for_job: Callable[..., dict[str, Any]]) -> list[tuple[Any, ...]]:
    with svc.client() as client:
        page = client.get("/v1/jobs", params={"limit": 100}).json()["items"]
        ids = [job["id"] for job in page if job["language"] == "es"][::-1]
        assert len(ids) == len(SEEDED_LENGTHS)
        out = []
        for job_id in ids:
            job = wait_for_job(client, job_id, timeout=10)
            code = job["error"]["code"] if job["error"] else None
            out.append((job["result"], code, round(ts(job["finished_at"]) - ts(job["created_at"]), 3)))
        return out


def test_a_seed_makes_timelines_reproducible(
    service_factory: Callable[..., Any], wait_for_job: Callable[..., dict[str, Any]]
) -> None:
    fast = ["--base-seconds", "0.2", "--speed", "0.05", "--error-rate", "0.5"]
    runs = [service_factory("--seed", seed, *fast) for seed in ("42", "42", "7")]
    planned = [seeded_run(svc) for svc in runs]
    outcomes = [finished(svc, wait_for_job) for svc in runs]

    for (a_end, a_left), (b_end, b_left) in zip(planned[0], planned[1], strict=True):
        assert a_end == pytest.approx(b_end, abs=0.02)
        assert a_left == pytest.approx(b_left, abs=0.02)
    for a, b in zip(outcomes[0], outcomes[1], strict=True):
        assert a[:2] == b[:2], "same seed, different outcome"
        assert a[2] == pytest.approx(b[2], abs=0.002), "same seed, different duration"
    assert {result for result, _, _ in outcomes[0] + outcomes[2]} == {"completed", "error"}
    durations = [[d for *_, d in run] for run in outcomes]
    assert any(abs(a - c) > 0.01 for a, c in zip(durations[0], durations[2], strict=True)), (
        "another seed, same timelines"
    )


# --- API key ----------------------------------------------------------------------------------


def test_an_api_key_guards_v1_but_not_status(
    service_factory: Callable[..., Any], assert_problem: Callable[..., Any]
) -> None:
    svc = service_factory("--api-key", "s3cret")
    job_path = "/v1/jobs/job_" + "0" * 32
    with svc.client() as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"}):
            for method, path in (
                ("POST", "/v1/jobs"),
                ("GET", "/v1/jobs"),
                ("GET", job_path),
                ("DELETE", job_path),
            ):
                response = client.request(
                    method, path, headers=headers, json={"language": "fr", "video_seconds": 1}
                )
                assert_problem(response, 401, code="unauthorized")
                assert response.headers["www-authenticate"].lower().startswith("bearer")

        auth = {"Authorization": "Bearer s3cret"}
        created = client.post("/v1/jobs", json={"language": "fr", "video_seconds": 1}, headers=auth)
        assert created.status_code == 201, created.text
        assert client.get(created.headers["location"], headers=auth).status_code == 200
        assert client.get("/v1/jobs", headers={"Authorization": "bearer s3cret"}).status_code == 200

        status = client.get("/status")
        assert status.status_code == 200
        assert status.json() == {"result": "pending"}
        assert client.get("/healthz").status_code == 200


# --- docs -------------------------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_describes_the_api(shared_service: Any) -> None:
    with shared_service.client() as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    paths = doc["paths"]
    assert set(paths["/status"]) >= {"get"}
    assert set(paths["/v1/jobs"]) >= {"get", "post"}
    assert set(paths["/v1/jobs/{job_id}"]) >= {"get", "delete"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("responses"), f"{method} {path} has no responses"
    schemas = doc["components"]["schemas"]
    assert {"Job", "JobCreate", "Problem"} <= set(schemas)
    assert {"language", "video_seconds"} <= set(schemas["JobCreate"]["required"])
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, f"dangling {ref}"


def test_docs_serve_html(shared_service: Any) -> None:
    with shared_service.client() as client:
        response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "/openapi.json" in response.text


def test_healthz(shared_service: Any) -> None:
    with shared_service.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert isinstance(body["waiting"], int)
    assert body["waiting"] >= 0


def test_a_long_poll_is_let_go_when_its_client_leaves(
    service: Any, client: httpx2.Client, wait_until: Callable[..., Any]
) -> None:
    """A client that disconnects during a long-poll ends its hold at once, not when the hold ends."""
    job = client.post(
        "/v1/jobs", json={"language": "es", "video_seconds": 60, "simulate": {"duration_seconds": 3600}}
    ).json()
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
        sock.sendall(f"GET /v1/jobs/{job['id']} HTTP/1.1\r\nHost: x\r\nPrefer: wait=60\r\n\r\n".encode())
        wait_until(lambda: client.get("/healthz").json()["waiting"] == 1, 5, message="the long-poll held")
    wait_until(lambda: client.get("/healthz").json()["waiting"] == 0, 2, message="the hold let go")


def test_healthz_counts_every_held_request_all_the_time(
    service: Any, client: httpx2.Client, wait_until: Callable[..., Any]
) -> None:
    """A long-poll, a job's event stream and the dashboard's page stream are held the whole time,
    not only between the events they send."""
    job = client.post(
        "/v1/jobs", json={"language": "es", "video_seconds": 60, "simulate": {"duration_seconds": 3600}}
    ).json()
    held = [
        f"GET /v1/jobs/{job['id']} HTTP/1.1\r\nHost: x\r\nPrefer: wait=60\r\n\r\n",
        f"GET /v1/jobs/{job['id']}/events HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/jobs/events HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    socks = [socket.create_connection(("127.0.0.1", service.port), timeout=5) for _ in held]
    try:
        for sock, request in zip(socks, held, strict=True):
            sock.sendall(request.encode())
        wait_until(lambda: client.get("/healthz").json()["waiting"] == 3, 5, message="three held")
        readings = [client.get("/healthz").json()["waiting"] for _ in range(30)]
    finally:
        for sock in socks:
            sock.close()
    assert set(readings) == {3}, readings
    wait_until(lambda: client.get("/healthz").json()["waiting"] == 0, 5, message="all let go")


def test_retry_after_max_sets_the_cap(service_factory: ServiceFactory) -> None:
    """``--hints retry-after --retry-after-max 600``: no estimate in the body; an hour's job says
    600 (the cap), a 100 s job its own estimate, in whole seconds."""
    service = service_factory("--hints", "retry-after", "--retry-after-max", "600")
    with service.client() as http:
        long, short = create(http, simulate=simulate(3600)), create(http, simulate=simulate(100))
    assert long.headers["retry-after"] == "600"
    assert long.json()["estimated_seconds_remaining"] is None
    assert 30 <= int(short.headers["retry-after"]) <= 300


def test_retry_after_is_whole_seconds_for_long_jobs(client: httpx2.Client) -> None:
    """A long job's hint is capped (60 s by default) and still an integer."""
    response = create(client, simulate=simulate(3600))
    assert response.status_code == 201
    value = response.headers["retry-after"]
    assert value.isdigit()
    assert 1 <= int(value) <= 60
    assert response.json()["estimated_seconds_remaining"] > 60
    assert math.isfinite(ts(response.json()["estimated_completion_at"]))
