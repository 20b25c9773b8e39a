"""The spec's ``GET /status``, exactly: every client in the wild depends on it (DESIGN.md, wire contract).

``200``, ``Content-Type: application/json``, body ``{"result": "pending"}`` until the configured
delay has passed since the service started, then one terminal value that never changes again.

Timing is judged against two client-side instants that bracket the creation of the service's
own job (``spawned_at`` <= created <= ``ready_at``, same machine clock as the server's): an answer
*received* before ``spawned_at + delay`` must be pending, and a request *sent* after
``ready_at + delay`` must be terminal. Both bounds are sound whatever the machine's load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

pytestmark = pytest.mark.integration

RESULTS = {"pending", "completed", "error"}
#: Float rounding between the client's and the server's reading of the same clock.
EPSILON = 0.01


@dataclass(frozen=True)
class Observation:
    sent: float
    received: float
    result: str


def observe(client: httpx2.Client, params: dict[str, str] | None = None) -> Observation:
    """One ``GET /status``, checked against the exact contract."""
    sent = time.time()
    response = client.get("/status", params=params)
    received = time.time()
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"result"}, body
    result = body["result"]
    assert result in RESULTS
    assert body == {"result": result}
    retry_after = response.headers.get("retry-after")
    if result == "pending":
        assert retry_after is None or (retry_after.isdigit() and int(retry_after) >= 1), retry_after
    else:
        assert retry_after is None, "a terminal answer must not ask the client to come back"
    return Observation(sent, received, result)


def watch(
    client: httpx2.Client,
    wait_until: Callable[..., Any],
    timeout: float,
    after: int = 15,
    params: dict[str, str] | None = None,
) -> tuple[list[Observation], Observation, list[Observation]]:
    """Poll until terminal; return (pending answers, the first terminal one, ``after`` more)."""
    seen: list[Observation] = []

    def terminal() -> bool:
        seen.append(observe(client, params))
        return seen[-1].result != "pending"

    wait_until(terminal, timeout, interval=0.02, message="GET /status to leave pending")
    later = [observe(client, params) for _ in range(after)]
    return seen[:-1], seen[-1], later


def assert_timing(
    pending: list[Observation], first: Observation, spawned_at: float, ready_at: float, lo: float, hi: float
) -> None:
    """Pending for at least ``lo`` and at most ``hi`` seconds after the service's job was created."""
    for obs in [*pending, first]:
        if obs.received < spawned_at + lo - EPSILON:
            assert obs.result == "pending", f"terminal {obs.received - spawned_at:.3f} s after spawn"
    if pending:
        late = pending[-1].sent - ready_at
        assert late < hi + EPSILON, f"still pending {late:.3f} s after the service was up (delay {hi})"
    assert first.received >= spawned_at + lo - EPSILON


def test_pending_until_the_delay_then_one_terminal_value_forever(
    service_factory: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    delay = 3.0  # longer than a start-up on a busy machine: the first answer must still be pending
    svc = service_factory("--delay", str(delay), "--error-rate", "0")
    with svc.client() as client:
        pending, first, later = watch(client, wait_until, timeout=delay + 10, after=20)
        # Extra query parameters are harmless: clients may add cache-busters.
        later.append(observe(client, {"nonce": "123"}))

    assert pending, "never saw pending: the service took longer than the delay to start"
    assert pending[0].received < svc.spawned_at + delay, "the first answer came too late to be judged"
    assert_timing(pending, first, svc.spawned_at, svc.ready_at, delay, delay)
    assert first.result == "completed"
    assert [obs.result for obs in later] == ["completed"] * len(later)


def test_error_rate_one_ends_in_error_and_stays_there(
    service_factory: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    delay = 0.5
    svc = service_factory("--delay", str(delay), "--error-rate", "1")
    with svc.client() as client:
        pending, first, later = watch(client, wait_until, timeout=delay + 10)
    assert_timing(pending, first, svc.spawned_at, svc.ready_at, delay, delay)
    assert first.result == "error"
    assert {obs.result for obs in later} == {"error"}


def test_random_delay_lands_within_its_bounds(
    service_factory: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    lo, hi = 0.4, 1.2
    svc = service_factory("--delay-min", str(lo), "--delay-max", str(hi), "--error-rate", "0")
    with svc.client() as client:
        pending, first, later = watch(client, wait_until, timeout=hi + 10)
    assert_timing(pending, first, svc.spawned_at, svc.ready_at, lo, hi)
    assert first.result == "completed"
    assert {obs.result for obs in later} == {"completed"}


def test_inverted_delay_bounds_are_refused_at_start(service_factory: Callable[..., Any]) -> None:
    with pytest.raises(RuntimeError, match="min <= max"):
        service_factory("--delay-min", "2", "--delay-max", "1")


def test_status_of_a_job_id_has_the_same_shape(
    service_factory: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    svc = service_factory("--delay", "30")  # the service's own job stays pending throughout
    with svc.client() as client:
        ok = client.post(
            "/v1/jobs", json={"language": "de", "video_seconds": 3, "simulate": {"duration_seconds": 1}}
        )
        bad = client.post(
            "/v1/jobs",
            json={
                "language": "de",
                "video_seconds": 3,
                "simulate": {"duration_seconds": 0.5, "outcome": "error"},
            },
        )
        assert ok.status_code == bad.status_code == 201
        ok_params, bad_params = {"job_id": ok.json()["id"]}, {"job_id": bad.json()["id"]}

        assert observe(client, ok_params).result == "pending"
        _, ok_first, ok_later = watch(client, wait_until, timeout=10, params=ok_params)
        _, bad_first, bad_later = watch(client, wait_until, timeout=10, params=bad_params)
        assert ok_first.result == "completed"
        assert {obs.result for obs in ok_later} == {"completed"}
        assert bad_first.result == "error"
        assert {obs.result for obs in bad_later} == {"error"}
        # The service's own job is a different one: still pending; an empty job_id means "none".
        assert observe(client).result == "pending"
        assert observe(client, {"job_id": ""}).result == "pending"


def test_status_keeps_its_terminal_value_across_restarts(
    service_factory: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    svc = service_factory("--delay", "0.5", "--error-rate", "1")
    with svc.client() as client:
        _, first, _ = watch(client, wait_until, timeout=10, after=0)
    assert first.result == "error"

    # Same SQLite file, now configured to never fail: /status still follows the same job.
    svc.restart(["--delay", "0.5", "--error-rate", "0"])
    with svc.client() as client:
        assert [observe(client).result for _ in range(10)] == ["error"] * 10

    svc.kill()
    svc.start()
    with svc.client() as client:
        assert observe(client).result == "error"

    # --reset-status starts a new job: pending again for its delay, then (error rate 0) completed.
    svc.restart(["--delay", "1", "--error-rate", "0", "--reset-status"])
    with svc.client() as client:
        pending, first, later = watch(client, wait_until, timeout=11)
    assert_timing(pending, first, svc.spawned_at, svc.ready_at, 1.0, 1.0)
    assert pending, "--reset-status did not start a new pending job"
    assert first.result == "completed"
    assert {obs.result for obs in later} == {"completed"}


def test_a_crash_while_pending_keeps_the_original_deadline(
    service_factory: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    delay = 2.0
    svc = service_factory("--delay", str(delay), "--error-rate", "0")
    spawned, ready = svc.spawned_at, svc.ready_at
    with svc.client() as client:
        # Let the service run a while, pending all along, before it crashes.
        wait_until(
            lambda: observe(client).result == "pending" and time.time() > ready + 0.8,
            timeout=5,
            message="0.8 s of pending",
        )
    svc.kill()
    svc.start()
    assert svc.spawned_at > ready + 0.8
    with svc.client() as client:
        pending, first, later = watch(client, wait_until, timeout=delay + 10)
    # The deadline is the first start's: a new job would stay pending until spawned_at + 2 s.
    assert_timing(pending, first, spawned, ready, delay, delay)
    assert first.result == "completed"
    assert {obs.result for obs in later} == {"completed"}


def test_the_status_job_cannot_be_cancelled_through_the_api(service_factory: Callable[..., Any]) -> None:
    """Nothing a client does to ``/v1/jobs`` may end ``GET /status`` before its delay.

    Cancel every job the API lists; ``/status`` must still say pending (its delay is 30 s).
    """
    svc = service_factory("--delay", "30", "--error-rate", "0")
    with svc.client() as client:
        ids: list[str] = []
        params: dict[str, str] = {"limit": "100"}
        while True:
            page = client.get("/v1/jobs", params=params).json()
            ids += [job["id"] for job in page["items"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        for job_id in ids:
            assert client.delete(f"/v1/jobs/{job_id}").status_code < 500
        assert observe(client).result == "pending"
