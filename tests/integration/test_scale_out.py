"""Many service processes on one PostgreSQL database: one truth, prompt wake-ups, webhooks sent
once at a time by whoever is alive — and one SQLite file served by one process only.

Every service here is a real ``vtrans serve`` process on 127.0.0.1, on a database of the test's
own (``pg_url``), driven over HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from conftest import free_port
from servers.receiver import Receiver
from vtrans.protocol import Simulate
from vtrans.server.simulation import SimulationConfig, draw_timeline
from vtrans.server.stores import NewJob
from vtrans.server.stores.sqlite import sqlite_store

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration

#: Webhooks retried quickly, each delivery given 1 s in all (so a lease lasts 3 s).
FAST_HOOKS = ("--webhook-retry-delays", "0.2,0.2,0.2", "--webhook-timeout", "1")


def create(http: httpx2.Client, seconds: float, **fields: Any) -> dict[str, Any]:
    body = {
        "language": "de",
        "video_seconds": 30,
        "simulate": {"duration_seconds": seconds, "outcome": "completed"},
    }
    response = http.post("/v1/jobs", json={**body, **fields})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def cluster(factory: ServiceFactory, pg_url: str, n: int, *args: str) -> list[ServiceProcess]:
    return [factory("--store", pg_url, *args) for _ in range(n)]


def held(svc: ServiceProcess, at_least: int) -> Callable[[], bool]:
    def check() -> bool:
        with svc.client() as http:
            return int(http.get("/healthz").json()["waiting"]) >= at_least

    return check


# --- one truth --------------------------------------------------------------------------------


def test_a_cancel_on_one_process_wakes_the_waiters_of_another_and_all_agree(
    service_factory: ServiceFactory, pg_url: str, wait_until: Callable[..., Any]
) -> None:
    a, b, c = cluster(service_factory, pg_url, 3)
    with a.client() as on_a, b.client(timeout=30) as on_b, c.client() as on_c:
        job = create(on_a, 600)
        path = f"/v1/jobs/{job['id']}"
        answers: dict[str, Any] = {}

        def long_poll() -> None:
            response = on_b.get(path, headers={"Prefer": "wait=25"})
            answers["long-poll"] = (time.monotonic(), response.status_code, response.json())

        def batch() -> None:
            response = on_b.post("/v1/jobs/wait", json={"ids": [job["id"]]}, headers={"Prefer": "wait=25"})
            answers["batch"] = (time.monotonic(), response.status_code, response.json())

        def stream() -> None:
            with (
                httpx2.Client(base_url=b.url, timeout=30) as http,
                http.stream("GET", f"{path}/events") as events,
            ):
                last = ""
                for line in events.iter_lines():
                    if line.startswith("event:"):
                        last = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and last == "done":
                        answers["events"] = (
                            time.monotonic(),
                            200,
                            httpx2.Response(200, content=line[5:]).json(),
                        )
                        return

        threads = [threading.Thread(target=f) for f in (long_poll, batch, stream)]
        for thread in threads:
            thread.start()
        wait_until(held(b, 3), 10, message="three waits held on B")
        cancelled_at = time.monotonic()
        response = on_c.delete(path)
        assert response.status_code == 200, response.text
        for thread in threads:
            thread.join(10)

        for kind in ("long-poll", "batch", "events"):
            at, status, body = answers[kind]
            assert status == 200, (kind, body)
            assert at - cancelled_at < 1.0, (
                f"{kind} on B answered {at - cancelled_at:.3f}s after the cancel on C"
            )
        assert answers["long-poll"][2]["error"]["code"] == "cancelled"
        assert answers["events"][2]["error"]["code"] == "cancelled"
        assert [item["id"] for item in answers["batch"][2]["items"]] == [job["id"]]

        # Every process answers the same for the job, for GET /status, and the same listing.
        others = [create(on_a, 0.2), create(on_b, 600), create(on_c, 0.3)]
        for short in (others[0], others[2]):  # finished answers are frozen: comparable byte for byte
            wait_until(
                lambda short=short: on_a.get(f"/v1/jobs/{short['id']}").json()["result"] != "pending", 5
            )
        for http in (on_a, on_b, on_c):
            assert http.get(path).json() == on_a.get(path).json()
            assert http.get("/status").json() == on_a.get("/status").json()
            for other in others:
                body = http.get(f"/v1/jobs/{other['id']}").json()
                assert (body["id"], body["result"], body["finished_at"]) == (
                    other["id"],
                    on_a.get(f"/v1/jobs/{other['id']}").json()["result"],
                    on_a.get(f"/v1/jobs/{other['id']}").json()["finished_at"],
                )
        listings = [
            [j["id"] for j in http.get("/v1/jobs", params={"limit": 100}).json()["items"]]
            for http in (on_a, on_b, on_c)
        ]
        assert listings[0] == listings[1] == listings[2]
        assert {job["id"], *(o["id"] for o in others)} <= set(listings[0])


def test_the_same_idempotency_key_on_two_processes_at_once_makes_one_job(
    service_factory: ServiceFactory, pg_url: str
) -> None:
    a, b = cluster(service_factory, pg_url, 2)
    body = {"language": "fr", "video_seconds": 12}
    with a.client() as on_a, b.client() as on_b, concurrent.futures.ThreadPoolExecutor(8) as pool:

        def pair(i: int) -> tuple[httpx2.Response, httpx2.Response]:
            start = threading.Barrier(2)

            def send(http: httpx2.Client) -> httpx2.Response:
                start.wait(5)
                return http.post("/v1/jobs", json=body, headers={"Idempotency-Key": f"key-{i}"})

            first, second = pool.submit(send, on_a), pool.submit(send, on_b)
            return first.result(), second.result()

        with concurrent.futures.ThreadPoolExecutor(4) as pairs:
            results = list(pairs.map(pair, range(100)))
    statuses = sorted(r.status_code for answer in results for r in answer)
    assert statuses == [200] * 100 + [201] * 100, "one created, one replayed, never a 5xx"
    ids = {answer[0].json()["id"] for answer in results}
    assert all(answer[0].json()["id"] == answer[1].json()["id"] for answer in results)
    assert len(ids) == 100


# --- webhooks ---------------------------------------------------------------------------------


def test_two_processes_deliver_200_webhooks_each_once_never_at_the_same_time(
    service_factory: ServiceFactory,
    pg_url: str,
    receiver: Callable[..., Receiver],
    wait_until: Callable[..., Any],
) -> None:
    hooks = receiver(hold=0.02)
    a, b = cluster(service_factory, pg_url, 2, *FAST_HOOKS)
    with a.client() as on_a, b.client() as on_b:
        jobs = [create((on_a, on_b)[n % 2], 0.5 + (n % 10) / 10, callback_url=hooks.url) for n in range(200)]
    wanted = {"msg_" + job["id"].removeprefix("job_") for job in jobs}
    wait_until(lambda: set(hooks.delivered()) >= wanted, 30, interval=0.1, message="200 webhooks")
    delivered = hooks.delivered()
    assert set(delivered) == wanted
    assert hooks.overlaps() == []
    assert all(len(sent) == 1 for sent in delivered.values()), "without a crash, each is sent once"

    def sent_by() -> list[int] | None:  # each process logs a delivery once it has recorded it
        counts = [svc.log_text().count("delivered (attempt 1)") for svc in (a, b)]
        return counts if sum(counts) == 200 else None

    wait_until(sent_by, 5, message="200 deliveries logged")
    assert min(sent_by() or [0]) > 0, f"both processes share the work: {sent_by()}"


def test_a_process_killed_mid_delivery_loses_its_lease_and_the_other_delivers(
    service_factory: ServiceFactory,
    pg_url: str,
    receiver: Callable[..., Receiver],
    wait_until: Callable[..., Any],
) -> None:
    hooks = receiver(hold=0.6)
    a, b = cluster(service_factory, pg_url, 2, *FAST_HOOKS)
    with a.client() as on_a:
        jobs = [create(on_a, 0.3, callback_url=hooks.url) for _ in range(30)]
    wait_until(lambda: any(h.ended == 0 for h in hooks.hooks), 10, message="a delivery in flight")
    a.kill()
    wanted = {"msg_" + job["id"].removeprefix("job_") for job in jobs}

    def answered() -> bool:
        done = {i for i, sent in hooks.delivered().items() if any(h.ended for h in sent)}
        return done >= wanted

    wait_until(answered, 30, interval=0.1, message="every webhook answered")
    assert hooks.overlaps() == []
    assert b.log_text().count("delivered (attempt") > 0, "the survivor delivered A's share"


def test_a_bad_callback_fails_only_its_own_delivery(
    service_factory: ServiceFactory,
    receiver: Callable[..., Receiver],
    wait_until: Callable[..., Any],
    tmp_path: Path,
) -> None:
    hooks = receiver()
    db = tmp_path / "hostile.db"
    now = time.time()

    async def plant() -> None:  # rows no API accepts, as an older version or a hand may have left them
        store = sqlite_store(db)
        await store.open()
        for n, url in enumerate(("http://127.0.0.1:9/x\x00", "http://127.0.0.1:9/x\r\nX-Evil: 1"), 1):
            pinned = Simulate(duration_seconds=1.5, outcome="completed")
            timeline = draw_timeline(SimulationConfig(), random.Random(n), now, 10, pinned)
            job = NewJob(
                id=f"job_{n:032x}", language="fr", video_seconds=10, callback_url=url, timeline=timeline
            )
            await store.add(job)
        await store.close()

    asyncio.run(plant())
    svc = service_factory(*FAST_HOOKS, db_path=db)
    closed_port = free_port()
    bad = {
        "unresolvable": "http://no-such-host.invalid/hook",
        "refused": f"http://127.0.0.1:{closed_port}/hook",
        "hang": hooks.url_for("hang"),
        "trickle": hooks.url_for("trickle"),
        "huge": hooks.url_for("huge"),
    }
    with svc.client() as http:
        bad_jobs = {kind: create(http, 1.0, callback_url=url) for kind, url in bad.items()}
        good = [create(http, 1.0, callback_url=hooks.url) for _ in range(20)]
        due = time.time() + 1.0
        rss_before = rss(svc)
        wanted = {"msg_" + job["id"].removeprefix("job_") for job in good}
        wait_until(lambda: set(hooks.delivered()) >= wanted, 10, interval=0.05, message="the good webhooks")
        late = time.time() - due
        assert late < 1.5, f"the good webhooks waited {late:.2f}s behind the bad ones"

        def attempted(job_id: str) -> dict[str, Any] | None:
            body: dict[str, Any] = http.get(f"/v1/jobs/{job_id}/webhook").json()
            return body if body["attempts"] >= 1 else None

        for kind, job in bad_jobs.items():
            state = wait_until(lambda job=job: attempted(job["id"]), 10, message=f"the {kind} delivery tried")
            if kind == "huge":  # a 2xx is a delivery, whatever follows it: the rest is not read
                assert (state["state"], state["last_error"]) == ("delivered", None)
                continue
            assert state["last_error"], kind
            if kind in ("hang", "trickle"):
                assert "no answer within 1s" in state["last_error"]
        for planted in (f"job_{1:032x}", f"job_{2:032x}"):
            state = wait_until(
                lambda planted=planted: attempted(planted), 10, message="the planted delivery tried"
            )
            assert state["state"] in ("pending", "failed")
            assert state["last_error"]
        grown = rss(svc) - rss_before
        assert grown < 15 * 2**20, f"the service grew by {grown / 2**20:.0f} MB reading a 300 MB reply"
        assert http.get("/healthz").status_code == 200
    assert "Traceback" not in svc.log_text()


def rss(svc: ServiceProcess) -> int:
    assert svc.process is not None
    return int(Path(f"/proc/{svc.process.pid}/statm").read_text().split()[1]) * 4096


# --- crashes and processes --------------------------------------------------------------------


def test_kill_9_and_restart_on_postgresql_loses_no_job_and_no_webhook(
    service_factory: ServiceFactory,
    pg_url: str,
    receiver: Callable[..., Receiver],
    wait_until: Callable[..., Any],
) -> None:
    hooks = receiver()
    svc = service_factory("--store", pg_url, *FAST_HOOKS)
    with svc.client() as http:
        hooked = [create(http, 1.0 + n / 20, callback_url=hooks.url) for n in range(30)]
        long = [create(http, 3600) for _ in range(10)]
        before = {job["id"]: http.get(f"/v1/jobs/{job['id']}").json()["created_at"] for job in hooked + long}
    svc.kill()
    svc.start()
    with svc.client() as http:
        after = {job_id: http.get(f"/v1/jobs/{job_id}").json()["created_at"] for job_id in before}
    assert after == before
    wanted = {"msg_" + job["id"].removeprefix("job_") for job in hooked}
    wait_until(
        lambda: set(hooks.delivered()) >= wanted, 15, interval=0.1, message="every webhook after the crash"
    )


def test_workers_share_one_port_and_wake_each_other(
    service_factory: ServiceFactory, pg_url: str, wait_until: Callable[..., Any]
) -> None:
    svc = service_factory("--store", pg_url, "--workers", "2")
    pids = set()
    deadline = time.monotonic() + 10
    while len(pids) < 2 and time.monotonic() < deadline:
        with svc.client() as http:  # a new connection each time: the kernel spreads them
            pids.add(http.get("/healthz").json()["pid"])
    assert len(pids) == 2, "two worker processes answer on the one port"
    with svc.client(timeout=30) as http:
        job = create(http, 600)
        answer: dict[str, Any] = {}

        def long_poll() -> None:
            with svc.client(timeout=30) as mine:
                answer["job"] = mine.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=25"}).json()

        def holding() -> bool:
            with svc.client() as probe:  # whichever worker answers: retry until the holder does
                return int(probe.get("/healthz").json()["waiting"]) >= 1

        thread = threading.Thread(target=long_poll)
        thread.start()
        wait_until(holding, 10, message="the long-poll held by a worker")
        started = time.monotonic()
        # Cancel through fresh connections, which the kernel spreads over the workers: the cancel
        # reaches the holder in its own process or through PostgreSQL, promptly either way.
        for _ in range(4):
            with svc.client() as other:
                other.delete(f"/v1/jobs/{job['id']}")
        thread.join(10)
        assert time.monotonic() - started < 2
        assert answer["job"]["error"]["code"] == "cancelled"


def test_workers_need_a_shared_store(service_factory: ServiceFactory) -> None:
    svc = service_factory("--workers", "2", start=False)
    done = subprocess.run(svc.command(), capture_output=True, text=True, timeout=30, cwd=svc.log_path.parent)
    assert done.returncode == 6
    assert "--workers 2 needs a store that several processes share" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_second_process_on_a_served_sqlite_file_refuses_naming_it(service_factory: ServiceFactory) -> None:
    first = service_factory()
    second = service_factory(db_path=first.db_path, start=False)
    done = subprocess.run(
        second.command(), capture_output=True, text=True, timeout=30, cwd=second.log_path.parent
    )
    assert done.returncode == 6
    assert str(first.db_path) in done.stderr
    assert "already served by another vtrans process" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    with first.client() as http:
        assert http.get("/healthz").status_code == 200, "the first one serves on"
