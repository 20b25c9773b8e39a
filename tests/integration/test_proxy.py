"""The deployment's reverse proxy (``deploy/nginx.conf``, as docker-compose.yml runs it) in front of
two replicas on one PostgreSQL database: long-polls held through it, events unbuffered, a dead
replica skipped. The config file is the committed one; only its addresses are rewritten."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from conftest import ROOT, free_port

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration

CONFIG = ROOT / "deploy" / "nginx.conf"


def render(replicas: list[ServiceProcess], port: int, directory: Path) -> Path:
    """The committed config with this test's replicas, port and files."""
    text = CONFIG.read_text()
    servers = "\n".join(f"        server 127.0.0.1:{r.port} max_fails=1 fail_timeout=2s;" for r in replicas)
    text = text.replace("        server vtrans:8000 max_fails=1 fail_timeout=2s;", servers)
    assert text.count("listen 8000;") == 1
    text = text.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    text = text.replace("/tmp/vtrans-nginx", str(directory / "nginx"))
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


@pytest.fixture
def proxied(
    service_factory: ServiceFactory, pg_url: str, tmp_path: Path, wait_until: Callable[..., Any]
) -> Iterator[tuple[str, list[ServiceProcess]]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed (apt-get install nginx-light; .ci/run does)")
    replicas = [service_factory("--store", pg_url) for _ in range(2)]
    port = free_port()
    config = render(replicas, port, tmp_path)
    checked = subprocess.run([nginx, "-t", "-c", str(config), "-e", "stderr"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [nginx, "-c", str(config), "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "nginx.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx2.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx2.TransportError:
            return False

    try:
        wait_until(up, 10, message="nginx in front of the replicas")
        yield url, replicas
    finally:
        process.terminate()
        process.wait(10)


def test_a_long_poll_is_held_through_the_proxy_and_woken_across_replicas(
    proxied: tuple[str, list[ServiceProcess]], wait_until: Callable[..., Any]
) -> None:
    url, replicas = proxied
    with httpx2.Client(base_url=url, timeout=30) as http:
        job = http.post(
            "/v1/jobs", json={"language": "es", "video_seconds": 9, "simulate": {"duration_seconds": 600}}
        )
        job_id = job.json()["id"]
        started = time.monotonic()
        held = http.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=2"})
        assert held.status_code == 200
        assert held.headers["preference-applied"] == "wait=2"
        assert 1.9 <= time.monotonic() - started < 4, "held for the whole hold, not cut by the proxy"

        answer: dict[str, Any] = {}

        def long_poll() -> None:
            with httpx2.Client(base_url=url, timeout=30) as mine:
                answer["job"] = mine.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=20"}).json()
                answer["at"] = time.monotonic()

        thread = threading.Thread(target=long_poll)
        thread.start()
        wait_until(lambda: sum(waiting(r) for r in replicas) >= 1, 10, message="the hold on a replica")
        cancelled = time.monotonic()
        assert http.delete(f"/v1/jobs/{job_id}").status_code == 200
        thread.join(10)
        assert answer["job"]["error"]["code"] == "cancelled"
        assert answer["at"] - cancelled < 1.0


def job(seconds: float) -> dict[str, Any]:
    simulate = {"duration_seconds": seconds, "outcome": "completed"}
    return {"language": "es", "video_seconds": 9, "simulate": simulate}


def waiting(replica: ServiceProcess) -> int:
    with replica.client() as http:
        return int(http.get("/healthz").json()["waiting"])


def test_events_pass_the_proxy_as_they_happen(proxied: tuple[str, list[ServiceProcess]]) -> None:
    url, _ = proxied
    with httpx2.Client(base_url=url, timeout=30) as http:
        body = {
            "language": "es",
            "video_seconds": 9,
            "simulate": {"duration_seconds": 3, "outcome": "completed"},
        }
        job_id = http.post("/v1/jobs", json=body).json()["id"]
        started = time.monotonic()
        arrivals: list[tuple[float, str]] = []
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as events:
            for line in events.iter_lines():
                if line.startswith("event:"):
                    arrivals.append((time.monotonic() - started, line.split(":", 1)[1].strip()))
    kinds = [kind for _, kind in arrivals]
    assert kinds[-1] == "done"
    assert kinds.count("progress") >= 2
    assert arrivals[0][0] < 1.0, f"the first event came through after {arrivals[0][0]:.2f}s: buffered"
    assert arrivals[-1][0] >= 2.5


def test_a_batch_wait_of_thousands_of_ids_passes_the_proxy(proxied: tuple[str, list[ServiceProcess]]) -> None:
    """Batch bodies go up to 1 MiB (10,000 ids): the proxy lets them through to the service."""
    url, _ = proxied
    ids = [f"job_{n:032x}" for n in range(4000)]  # well-formed, unknown: about 150 KB of body
    with httpx2.Client(base_url=url, timeout=10) as http:
        answer = http.post("/v1/jobs/wait", json={"ids": ids})
    assert answer.status_code == 404, answer.text[:200]
    assert answer.json()["type"].endswith("job-not-found")


def test_a_dead_replica_is_skipped(proxied: tuple[str, list[ServiceProcess]]) -> None:
    url, replicas = proxied
    replicas[0].kill()
    with httpx2.Client(base_url=url, timeout=10) as http:
        answers = [http.get("/status").status_code for _ in range(10)]
        created = http.post("/v1/jobs", json={"language": "es", "video_seconds": 9})
    assert answers == [200] * 10
    assert created.status_code == 201
