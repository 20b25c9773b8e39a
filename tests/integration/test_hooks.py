"""Client hooks against the real service (a process) and a closed port, sync and async: each
request, retry and wait is reported with its details, and the Prometheus hook turns them into
metrics in the registry it is given."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from conftest import HookRecorder, awaitable, free_port
from vtrans.client import AsyncClient, Client, RetryPolicy, TransportError, WaitTimeout
from vtrans.client.prometheus import PrometheusHook

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Watched:
    """A client of the parametrized kind whose hooks are a :class:`HookRecorder` and a
    :class:`PrometheusHook` on a registry of its own; ``await watched.method(...)``."""

    def __init__(self, kind: str, url: str, **kwargs: Any) -> None:
        self.kind, self.hook, self.registry = kind, HookRecorder(), CollectorRegistry()
        hooks = [self.hook, PrometheusHook(self.registry)]
        self.client = (
            Client(url, hooks=hooks, **kwargs) if kind == "sync" else AsyncClient(url, hooks=hooks, **kwargs)
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return awaitable(self.kind, getattr(self.client, name))

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture(params=["sync", "async"])
def watched(request: pytest.FixtureRequest) -> Iterator[Callable[..., Watched]]:
    made: list[Watched] = []

    def make(url: str, **kwargs: Any) -> Watched:
        made.append(Watched(request.param, url, **kwargs))
        return made[-1]

    yield make
    for each in made:
        if isinstance(each.client, Client):
            each.client.close()


async def test_a_create_and_a_wait_are_reported_and_counted(
    shared_service: Any, watched: Callable[..., Watched]
) -> None:
    client = watched(shared_service.url)
    created = await client.create("fr", 4.0, simulate={"duration_seconds": 1.0, "outcome": "completed"})
    done = await client.wait(created.id, timeout=10.0)

    post, get = client.hook.requests  # the default long-poll: one held GET
    assert (post.method, post.route, post.job_id, post.attempt, post.status) == (
        "POST",
        "/v1/jobs",
        None,
        1,
        201,
    )
    assert (get.method, get.path, get.route, get.job_id) == (
        "GET",
        f"/v1/jobs/{created.id}",
        "/v1/jobs/{id}",
        created.id,
    )
    assert (get.attempt, get.status, get.error) == (1, 200, None)
    assert 0.5 <= get.elapsed <= 2.0  # held until the job ended, about 1 s after its creation
    [wait] = client.hook.waits
    assert (wait.job_id, wait.result, wait.requests, wait.retries, wait.error) == (
        created.id,
        "completed",
        1,
        0,
        None,
    )
    assert wait.job == done
    assert wait.lag is not None
    assert -0.01 <= wait.lag < 0.5  # one round trip after finished_at (same machine, same clock)
    assert client.hook.retries == []

    assert client.metric("vtrans_client_requests_total", method="POST", route="/v1/jobs", status="201") == 1
    assert (
        client.metric("vtrans_client_requests_total", method="GET", route="/v1/jobs/{id}", status="200") == 1
    )
    assert (
        client.metric("vtrans_client_request_duration_seconds_count", method="GET", route="/v1/jobs/{id}")
        == 1
    )
    assert client.metric("vtrans_client_waits_total", result="completed", transport="auto") == 1
    assert client.metric("vtrans_client_wait_duration_seconds_count", result="completed") == 1
    assert client.metric("vtrans_client_detection_lag_seconds_count") == 1
    assert created.id not in generate_latest(client.registry).decode()  # routes, never job ids


async def test_a_timeout_is_reported_and_counted(
    shared_service: Any, watched: Callable[..., Watched]
) -> None:
    client = watched(shared_service.url)
    created = await client.create("ko", 60.0, simulate={"duration_seconds": 60.0})
    with pytest.raises(WaitTimeout) as caught:
        await client.wait(created.id, timeout=0.5, transport="sse")
    [wait] = client.hook.waits
    assert (wait.job_id, wait.result, wait.transport, wait.error) == (
        created.id,
        "timeout",
        "sse",
        caught.value,
    )
    assert client.metric("vtrans_client_waits_total", result="timeout", transport="sse") == 1
    assert client.hook.requests[-1].route == "/v1/jobs/{id}/events"


async def test_retries_and_a_failed_wait_on_a_closed_port_are_reported_and_counted(
    watched: Callable[..., Watched],
) -> None:
    client = watched(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(budget=0.5))
    with pytest.raises(TransportError):
        await client.wait("job_" + "c" * 32, timeout=30.0)
    assert client.hook.requests
    assert {(r.status, r.error) for r in client.hook.requests} == {(None, "ConnectError")}
    assert [r.attempt for r in client.hook.requests] == list(range(1, len(client.hook.requests) + 1))
    assert len(client.hook.retries) == len(client.hook.requests) - 1
    assert all(isinstance(r.caused_by, TransportError) for r in client.hook.retries)
    [wait] = client.hook.waits
    assert (wait.result, type(wait.error)) == ("failed", TransportError)
    retried = client.metric(
        "vtrans_client_retries_total", method="GET", route="/v1/jobs/{id}", reason="TransportError"
    )
    assert retried == len(client.hook.retries)
    assert client.metric("vtrans_client_waits_total", result="failed", transport="auto") == 1


def test_hooks_on_one_registry_share_its_metrics() -> None:
    registry = CollectorRegistry()
    assert PrometheusHook(registry).metrics is PrometheusHook(registry).metrics  # no duplicate error
    assert PrometheusHook(CollectorRegistry()).metrics is not PrometheusHook(registry).metrics
