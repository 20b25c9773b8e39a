"""Rate limits per tenant, with the IETF ``RateLimit`` and ``RateLimit-Policy`` headers and a 429
problem with ``Retry-After`` past the quota; a long-poll counts once; the vtrans client rides a 429."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

import vtrans

if TYPE_CHECKING:
    from conftest import ServiceFactory

pytestmark = pytest.mark.integration

HEADER = re.compile(r'^"default";r=(\d+);t=(\d+)$')


def test_each_tenant_has_its_own_quota_and_is_told_what_is_left(
    service_factory: ServiceFactory, assert_problem: Callable[..., Any]
) -> None:
    svc = service_factory("--rate-limit", "5/minute", "--api-key", "a:key-aaaa", "--api-key", "b:key-bbbb")
    with (
        svc.client(headers={"Authorization": "Bearer key-aaaa"}) as a,
        svc.client(headers={"Authorization": "Bearer key-bbbb"}) as b,
    ):
        answers = [a.get("/v1/jobs") for _ in range(5)]
        assert [r.status_code for r in answers] == [200] * 5
        assert {r.headers["ratelimit-policy"] for r in answers} == {'"default";q=5;w=60'}
        remaining = [int(HEADER.match(r.headers["ratelimit"]).group(1)) for r in answers]  # type: ignore[union-attr]
        assert remaining == [4, 3, 2, 1, 0]
        refused = a.get("/v1/jobs")
        body = assert_problem(refused, 429, code="rate-limited")
        assert "5 requests in 60 s" in body["detail"]
        seconds = int(HEADER.match(refused.headers["ratelimit"]).group(2))  # type: ignore[union-attr]
        assert 0 < seconds <= 60
        assert int(refused.headers["retry-after"]) == max(1, seconds)
        assert b.get("/v1/jobs").status_code == 200, "another tenant's quota is its own"
        assert a.get("/healthz").status_code == 200, "the health check is not counted"


def test_a_long_poll_counts_once(service_factory: ServiceFactory) -> None:
    svc = service_factory("--rate-limit", "3/minute")
    with svc.client(timeout=10) as http:
        job = http.post(
            "/v1/jobs", json={"language": "fr", "video_seconds": 5, "simulate": {"duration_seconds": 0.5}}
        )
        held = http.get(f"/v1/jobs/{job.json()['id']}", headers={"Prefer": "wait=5"})
        assert held.json()["result"] != "pending"
        assert HEADER.match(held.headers["ratelimit"]).group(1) == "1"  # type: ignore[union-attr]


def test_the_client_waits_out_a_429(service_factory: ServiceFactory) -> None:
    svc = service_factory("--rate-limit", "3/second")
    with vtrans.Client(svc.url) as client:
        jobs = [
            client.create("fr", 5, simulate={"duration_seconds": 0.2, "outcome": "completed"})
            for _ in range(6)
        ]
    assert len({job.id for job in jobs}) == 6, "every create went through, after waiting its turn"
