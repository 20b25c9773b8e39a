"""The dashboard and the API docs in a real browser (headless Chromium): live, offline, local only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import BrowserPage, ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration

LOCAL = {"127.0.0.1"}


@pytest.fixture(scope="module")
def dashboard_service(module_service_factory: ServiceFactory) -> ServiceProcess:
    return module_service_factory()


@pytest.fixture
def page(browser_page: BrowserPage) -> Iterator[Any]:
    """The browser's page; after the test, no request of it may have left 127.0.0.1."""
    yield browser_page.page
    assert browser_page.requested, "the page requested nothing"
    assert browser_page.hosts() <= LOCAL, f"requests left 127.0.0.1: {browser_page.requested}"


def create(svc: ServiceProcess, **job: Any) -> str:
    with svc.client() as http:
        response = http.post("/v1/jobs", json={"language": "de", "video_seconds": 30, **job})
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def progress(page: Any, job_id: str) -> float:
    return float(page.get_attribute(f'tr[data-job-id="{job_id}"]', "data-progress"))


def test_the_dashboard_shows_a_new_job_move_and_end_without_a_reload(
    dashboard_service: ServiceProcess, page: Any, wait_until: Callable[..., Any]
) -> None:
    page.goto(dashboard_service.url + "/")
    page.wait_for_selector("#live:not(.off)")  # the page's event stream is open
    page.evaluate("window.__sameDocument = true")  # a reload would forget it
    job_id = create(dashboard_service, simulate={"duration_seconds": 4, "outcome": "completed"})
    row = f'tr[data-job-id="{job_id}"]'
    page.wait_for_selector(row)
    first = progress(page, job_id)
    moved = wait_until(
        lambda: 0 < (p := progress(page, job_id)) < 1 and p > first and p, 4, message="progress to move"
    )
    assert page.get_attribute(row, "data-result") == "pending"
    assert "left" in page.inner_text(f"{row} td:nth-child(6)")  # the estimate
    page.wait_for_selector(f'{row}[data-result="completed"]', timeout=10_000)
    assert progress(page, job_id) == 1.0 > moved
    assert "completed" in page.inner_text(f"{row} td:nth-child(4)")
    assert page.evaluate("window.__sameDocument") is True
    assert int(page.inner_text("#count-completed")) >= 1


def test_the_dashboard_filters_by_result_and_shows_failures(
    dashboard_service: ServiceProcess, page: Any
) -> None:
    failed = create(
        dashboard_service,
        simulate={"duration_seconds": 0.2, "outcome": "error", "error_code": "source_unreachable"},
    )
    pending = create(dashboard_service, simulate={"duration_seconds": 120})
    page.goto(dashboard_service.url + "/")
    page.wait_for_selector(f'tr[data-job-id="{failed}"][data-result="error"]')
    assert "source_unreachable" in page.inner_text(f'tr[data-job-id="{failed}"]')
    page.click('[data-filter="error"]')  # the table empties, then fills from the filtered stream
    page.wait_for_selector(f'tr[data-job-id="{failed}"]')
    assert page.locator(f'tr[data-job-id="{pending}"]').count() == 0
    results = page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.dataset.result)")
    assert results
    assert set(results) == {"error"}


def test_the_dashboard_asks_for_a_key_and_shows_that_tenant_only(
    service_factory: ServiceFactory, page: Any
) -> None:
    svc = service_factory("--api-key", "acme:sesame", "--api-key", "globex:other-key")
    jobs = {}
    for key in ("sesame", "other-key"):
        with svc.client(headers={"Authorization": f"Bearer {key}"}) as http:
            jobs[key] = http.post("/v1/jobs", json={"language": "es", "video_seconds": 10}).json()["id"]
    job_id = jobs["sesame"]
    page.goto(svc.url + "/")
    page.wait_for_selector("#key-form:not([hidden])")
    assert page.is_hidden("#main")
    page.fill("#key", "wrong")
    page.click("#key-form button")
    page.wait_for_selector("#key-form:not([hidden])")
    assert "not accepted" in page.inner_text("#key-error")
    page.fill("#key", "sesame")
    page.click("#key-form button")
    page.wait_for_selector(f'tr[data-job-id="{job_id}"]')
    assert page.is_visible("#main")
    rows = page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.dataset.jobId)")
    assert rows == [job_id]  # not globex's job, nor the service's own /status job
    assert page.inner_text("#count-all") == "1"


def test_the_api_docs_render_offline(dashboard_service: ServiceProcess, page: Any) -> None:
    page.goto(dashboard_service.url + "/docs")
    page.wait_for_selector(".opblock")
    operations = page.eval_on_selector_all(
        ".opblock .opblock-summary-path", "paths => paths.map(p => p.textContent.trim())"
    )
    assert {"/status", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/events", "/metrics"} <= set(operations)
    assert page.locator(".opblock").count() >= 6
