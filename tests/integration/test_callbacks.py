"""Safe callbacks on the real service: destinations inside refused with a 422 at creation, a
webhook to an opened range delivered to the address checked, redirects not followed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from servers.receiver import Receiver

if TYPE_CHECKING:
    from conftest import ServiceFactory

pytestmark = pytest.mark.integration


def create(http: Any, url: str, *, seconds: float = 0.3) -> Any:
    simulate = {"duration_seconds": seconds}
    body = {"language": "fr", "video_seconds": 5, "callback_url": url, "simulate": simulate}
    return http.post("/v1/jobs", json=body)


#: Jobs accepted only to see the 201 end long after the test: nothing is sent off loopback.
NEVER = 3600.0


def test_inside_destinations_are_refused_at_creation(
    service_factory: ServiceFactory, assert_problem: Callable[..., Any]
) -> None:
    svc = service_factory("--no-local-callbacks")
    refused = {
        "http://169.254.169.254/latest/meta-data": "link-local",
        "http://0.0.0.0:9/": "unspecified",
        "http://2130706433:9/": "loopback",
        "http://0x7f.1:9/": "loopback",
        "http://127.0.0.1:9/": "loopback",
        "http://[::1]:9/": "loopback",
        "http://[::ffff:127.0.0.1]:9/": "loopback",
        "http://10.1.2.3/": "private",
        "http://localhost:9/": "loopback",
        "http://224.0.0.1/": "multicast",
    }
    with svc.client() as http:
        for url, reason in refused.items():
            body = assert_problem(create(http, url), 422, code="callback-refused")
            assert reason in body["detail"], (url, body["detail"])
        assert_problem(create(http, "http://user:pw@example.com/x"), 422, detail_contains="credentials")
        public = create(http, "https://example.com/hook", seconds=NEVER)
        assert public.status_code == 201, "a public name is fine"


def test_a_local_sandbox_takes_local_receivers_but_not_itself(
    service_factory: ServiceFactory, assert_problem: Callable[..., Any]
) -> None:
    svc = service_factory()
    with svc.client() as http:
        assert create(http, "http://127.0.0.1:9/hook", seconds=NEVER).status_code == 201
        assert create(http, "http://10.1.2.3/hook", seconds=NEVER).status_code == 201
        assert_problem(create(http, f"http://127.0.0.1:{svc.port}/v1/jobs"), 422, detail_contains="itself")
        assert_problem(create(http, "http://169.254.169.254/"), 422, detail_contains="link-local")


def test_an_opened_range_gets_its_webhooks_and_redirects_are_not_followed(
    service_factory: ServiceFactory, receiver: Callable[..., Receiver], wait_until: Callable[..., Any]
) -> None:
    hooks = receiver()
    svc = service_factory(
        "--no-local-callbacks", "--allow-callback", "127.0.0.1/32", "--webhook-retry-delays", "60"
    )
    with svc.client() as http:
        job = create(http, hooks.url).json()
        moved = create(http, hooks.url_for("status", "302")).json()
        [hook] = wait_until(lambda: [h for h in hooks.hooks if h.path.startswith("/hooks/")], 10)
        assert hook.headers["host"] == f"127.0.0.1:{hooks.server.server_port}"
        assert hook.headers["webhook-id"] == "msg_" + job["id"].removeprefix("job_")

        def tried() -> dict[str, Any] | None:
            state: dict[str, Any] = http.get(f"/v1/jobs/{moved['id']}/webhook").json()
            return state if state["attempts"] else None

        assert wait_until(tried, 10)["last_error"] == "HTTP 302"
    assert [h.path for h in hooks.hooks].count("/status/302") == 1, "the redirect was not followed"
