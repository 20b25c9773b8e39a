"""What the dashboard reads: the page of jobs as one event stream, recent webhooks, the static files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess
    from servers.receiver import Receiver

pytestmark = pytest.mark.integration


def pages(response: httpx2.Response) -> Iterator[dict[str, Any]]:
    """The ``page`` events of a stream, decoded."""
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "page":
            yield json.loads(line.removeprefix("data: "))


def test_the_page_stream_is_the_listing_with_counts_and_it_moves(
    service: ServiceProcess, client: httpx2.Client
) -> None:
    ids = [
        client.post("/v1/jobs", json={"language": "es", "video_seconds": 5, "simulate": sim}).json()["id"]
        for sim in ({"duration_seconds": 30}, {"duration_seconds": 30, "outcome": "error"})
    ]
    listing = client.get("/v1/jobs", params={"limit": 2}).json()
    with client.stream("GET", "/v1/jobs/events", params={"limit": 2}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = pages(response)
        first = next(stream)
        assert [job["id"] for job in first["items"]] == [job["id"] for job in listing["items"]] == ids[::-1]
        assert first["next_cursor"] == listing["next_cursor"] is not None  # the /status job is older
        counts = first["counts"]
        # Both jobs are pending; the job behind /status (1 s) may have completed already.
        assert (counts["pending"] + counts["completed"], counts["error"]) == (3, 0)
        assert counts["pending"] >= 2
        second = next(stream)  # a second later: the progress moved
        assert second["items"][0]["progress"] > first["items"][0]["progress"]


def test_the_page_stream_filters_and_pages(
    service: ServiceProcess, client: httpx2.Client, wait_until: Callable[..., Any]
) -> None:
    for outcome in ("error", "completed", "error"):
        sim = {"duration_seconds": 0.01, "outcome": outcome}
        job = {"language": "fr", "video_seconds": 5, "simulate": sim}
        assert client.post("/v1/jobs", json=job).status_code == 201
    wait_until(
        lambda: len(client.get("/v1/jobs", params={"result": "error"}).json()["items"]) == 2,
        5,
        message="both failing jobs to fail",
    )
    with client.stream("GET", "/v1/jobs/events", params={"result": "error", "limit": 1}) as response:
        page = next(pages(response))
    assert [job["result"] for job in page["items"]] == ["error"]
    with client.stream(
        "GET", "/v1/jobs/events", params={"result": "error", "limit": 1, "cursor": page["next_cursor"]}
    ) as response:
        older = next(pages(response))
    assert [job["result"] for job in older["items"]] == ["error"]
    assert older["items"][0]["id"] != page["items"][0]["id"]
    assert older["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [{"limit": "0"}, {"limit": "x"}, {"limit": "101"}, {"result": "done"}, {"cursor": "not-one"}],
)
def test_bad_queries_are_problems(
    shared_service: ServiceProcess, query: dict[str, str], assert_problem: Callable[..., Any]
) -> None:
    with shared_service.client() as http:
        assert_problem(http.get("/v1/jobs/events", params=query), 400)
        if "limit" in query:
            assert_problem(http.get("/v1/webhooks", params=query), 400, code="bad-query")


def test_recent_webhooks_and_their_state(
    service_factory: ServiceFactory, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver()
    svc = service_factory()
    with svc.client() as http:
        body = {"language": "de", "video_seconds": 5, "simulate": {"duration_seconds": 0.1}}
        job_id = http.post("/v1/jobs", json={**body, "callback_url": hooks.url_for("hooks")}).json()["id"]
        http.post("/v1/jobs", json=body)  # no callback: no delivery

        def delivered() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = http.get("/v1/webhooks").json()["items"]
            return items if items and items[0]["state"] == "delivered" else None

        items = wait_until(delivered, 10, message="the webhook to be delivered")
    assert [(d["job_id"], d["attempts"]) for d in items] == [(job_id, 1)]


def test_with_a_key_the_dashboard_api_needs_it_and_the_page_does_not(
    service_factory: ServiceFactory, assert_problem: Callable[..., Any]
) -> None:
    svc = service_factory("--api-key", "k1")
    with svc.client() as http:
        assert_problem(http.get("/v1/jobs/events"), 401, code="unauthorized")
        assert_problem(http.get("/v1/webhooks"), 401, code="unauthorized")
        page = http.get("/")  # the page itself holds no data: it asks for the key
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert http.get("/v1/webhooks", headers={"Authorization": "Bearer k1"}).status_code == 200


def test_only_the_dashboard_and_docs_files_are_served(
    shared_service: ServiceProcess, assert_problem: Callable[..., Any]
) -> None:
    with shared_service.client() as http:
        for path, media in (
            ("/dashboard/dashboard.js", "text/javascript"),
            ("/dashboard/dashboard.css", "text/css"),
            ("/docs/assets/swagger-ui-bundle.js", "text/javascript"),
            ("/docs/assets/swagger-ui.css", "text/css"),
            ("/docs/assets/LICENSE", "text/plain"),
        ):
            response = http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(media), path
        for path in ("/dashboard/nope.js", "/docs/assets/index.css", "/docs/assets/..%2f__init__.py"):
            assert_problem(http.get(path), 404, code="no-such-route")
        html = http.get("/").text + http.get("/docs").text
        assert "http://" not in html.replace("http://127.0.0.1", "")
        assert "https://" not in html


def test_each_tenant_sees_only_its_own_jobs_counts_and_webhooks(
    service_factory: ServiceFactory, receiver: Callable[..., Receiver]
) -> None:
    hooks = receiver()
    svc = service_factory("--api-key", "acme:key-of-acme", "--api-key", "globex:key-of-globex")
    mine: dict[str, str] = {}
    for tenant in ("acme", "globex"):
        with svc.client(headers={"Authorization": f"Bearer key-of-{tenant}"}) as http:
            job = {"language": "es", "video_seconds": 5, "callback_url": hooks.url_for("hooks", tenant)}
            mine[tenant] = http.post("/v1/jobs", json=job).json()["id"]
    for tenant in ("acme", "globex"):
        with svc.client(headers={"Authorization": f"Bearer key-of-{tenant}"}) as http:
            with http.stream("GET", "/v1/jobs/events") as response:
                page = next(pages(response))
            assert [job["id"] for job in page["items"]] == [mine[tenant]]
            assert sum(page["counts"].values()) == 1  # neither the other's job nor the /status one
            webhooks = http.get("/v1/webhooks").json()["items"]
            assert [d["job_id"] for d in webhooks] == [mine[tenant]]
