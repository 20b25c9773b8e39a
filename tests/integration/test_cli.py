"""The command line as a user runs it: ``python -m vtrans ...`` processes against a real service.

Each exit code of ``vtrans --help`` is checked here: 0 completed, 1 the job failed, 2 usage,
3 timed out, 4 not found, 5 the service could not be reached or refused. No output ever
carries a traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration

JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
UNKNOWN_JOB = "job_" + "0" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def vtrans(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run the command line in a clean environment (no ``VTRANS_*`` of the developer's shell)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VTRANS_")}
    environ.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "vtrans", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def submit(svc: ServiceProcess, *args: str) -> str:
    result = vtrans("submit", "--url", svc.url, "--language", "es", "--video-seconds", "90", *args)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert JOB_ID.match(job_id), result.stdout
    return job_id


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failure prints on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- submit -------------------------------------------------------------------------------------


def test_submit_prints_only_the_job_id(shared_service: ServiceProcess) -> None:
    result = vtrans("submit", "--url", shared_service.url, "--language", "es", "--video-seconds", "90")
    assert result.returncode == 0, result.stderr
    assert JOB_ID.match(result.stdout.strip())
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""


def test_submit_json_prints_the_created_job(shared_service: ServiceProcess) -> None:
    result = vtrans(
        "submit",
        "--url",
        shared_service.url,
        "-l",
        "pt-BR",
        "--video-seconds",
        "30",
        "--source-url",
        "https://example.com/v.mp4",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    job = as_json(result)
    assert JOB_ID.match(job["id"])
    assert (job["result"], job["language"], job["video_seconds"]) == ("pending", "pt-BR", 30.0)
    assert job["source_url"] == "https://example.com/v.mp4"


def test_submit_wait_prints_the_id_then_the_outcome(shared_service: ServiceProcess) -> None:
    args = ("submit", "--url", shared_service.url, "-l", "fr", "--video-seconds", "10", "--duration", "0.5")
    result = vtrans(*args, "--wait")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert JOB_ID.match(first)
    assert first in second
    assert "completed" in second

    failed = vtrans(*args, "--outcome", "error", "--wait", "--json")
    assert failed.returncode == 1, failed.stderr
    assert as_json(failed)["result"] == "error"


def test_usage_errors_exit_2(shared_service: ServiceProcess) -> None:
    missing = vtrans("submit", "--url", shared_service.url, "--video-seconds", "10")
    assert missing.returncode == 2
    assert "--language" in missing.stderr
    assert vtrans("submit", "-l", "es", "--video-seconds", "0").returncode == 2
    assert vtrans("submit", "-l", "es", "--video-seconds", "5", "--timeout", "3").returncode == 2
    assert vtrans("wait", "not/an/id").returncode == 2
    assert vtrans("wait", "--cancel-on-timeout").returncode == 2


# --- status -------------------------------------------------------------------------------------


def test_status_json_parses_and_the_summary_is_short(shared_service: ServiceProcess) -> None:
    job_id = submit(shared_service, "--duration", "60")
    result = vtrans("status", job_id, "--url", shared_service.url, "--json")
    assert result.returncode == 0, result.stderr
    job = as_json(result)
    assert (job["id"], job["result"]) == (job_id, "pending")
    assert 0 <= job["progress"] < 1
    assert job["estimated_seconds_remaining"] > 0

    human = vtrans("status", job_id, "--url", shared_service.url)
    assert human.returncode == 0, human.stderr
    assert human.stdout.count("\n") == 1
    assert job_id in human.stdout
    assert "pending" in human.stdout
    assert "left" in human.stdout  # the service's estimate


def test_status_of_a_failed_job_exits_1(shared_service: ServiceProcess) -> None:
    job_id = submit(shared_service, "--duration", "0", "--outcome", "error")
    result = vtrans("status", job_id, "--url", shared_service.url, "--json")
    assert result.returncode == 1
    job = as_json(result)
    assert job["result"] == "error"
    assert job["error"]["code"]


def test_status_without_a_job_asks_the_spec_endpoint(shared_service: ServiceProcess) -> None:
    result = vtrans("status", "--url", shared_service.url, "--json")
    assert result.returncode == 0, result.stderr
    assert as_json(result) in ({"result": "pending"}, {"result": "completed"})  # exactly the spec's answer
    human = vtrans("status", "--url", shared_service.url)
    assert "GET /status" in human.stdout


# --- wait and its exit codes ----------------------------------------------------------------------


def test_wait_for_a_completed_job_exits_0(shared_service: ServiceProcess) -> None:
    job_id = submit(shared_service, "--duration", "0.5")
    result = vtrans("wait", job_id, "--url", shared_service.url)
    assert result.returncode == 0, result.stderr
    assert job_id in result.stdout
    assert "completed" in result.stdout

    again = vtrans("wait", job_id, "--url", shared_service.url, "--json")
    assert again.returncode == 0
    assert as_json(again)["result"] == "completed"


@pytest.mark.parametrize("transport", ["sse", "long-poll", "poll"])
def test_wait_with_each_transport(shared_service: ServiceProcess, transport: str) -> None:
    job_id = submit(shared_service, "--duration", "0.5")
    result = vtrans("wait", job_id, "--url", shared_service.url, "--transport", transport, "--json")
    assert result.returncode == 0, result.stderr
    assert as_json(result)["result"] == "completed"


def test_wait_for_a_failed_job_exits_1_and_still_prints_json(shared_service: ServiceProcess) -> None:
    job_id = submit(shared_service, "--duration", "0.3", "--outcome", "error")
    result = vtrans("wait", job_id, "--url", shared_service.url, "--json")
    assert result.returncode == 1
    job = as_json(result)
    assert (job["id"], job["result"]) == (job_id, "error")
    code = job["error"]["code"]
    line = error_line(result)
    assert code in line
    assert job["error"]["message"] in line

    human = vtrans("wait", job_id, "--url", shared_service.url)
    assert human.returncode == 1
    assert code in human.stdout

    quiet = vtrans("wait", job_id, "--url", shared_service.url, "--quiet")
    assert quiet.returncode == 1
    assert quiet.stdout == ""
    assert code in error_line(quiet)


def test_wait_timeout_exits_3(shared_service: ServiceProcess) -> None:
    job_id = submit(shared_service, "--duration", "60")
    result = vtrans("wait", job_id, "--url", shared_service.url, "--timeout", "1")
    assert result.returncode == 3
    assert "did not finish" in error_line(result)


def test_cancel_on_timeout_cancels_the_job(shared_service: ServiceProcess) -> None:
    job_id = submit(shared_service, "--duration", "60")
    result = vtrans(
        "wait", job_id, "--url", shared_service.url, "--timeout", "1", "--cancel-on-timeout", "--json"
    )
    assert result.returncode == 3
    assert as_json(result)["id"] == job_id  # the last state seen
    after = vtrans("status", job_id, "--url", shared_service.url, "--json")
    assert after.returncode == 1
    assert as_json(after)["error"]["code"] == "cancelled"


def test_unknown_job_exits_4(shared_service: ServiceProcess) -> None:
    for command in ("wait", "status"):
        result = vtrans(command, UNKNOWN_JOB, "--url", shared_service.url)
        assert result.returncode == 4, (command, result.stderr)
        assert UNKNOWN_JOB in error_line(result)


def test_wait_on_the_spec_endpoint(shared_service: ServiceProcess) -> None:
    result = vtrans("wait", "--url", shared_service.url, "--timeout", "10", "--json")
    assert result.returncode == 0, result.stderr  # the service's /status completes after 1 s
    assert as_json(result) == {"result": "completed"}


def test_unreachable_service_exits_5() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    status = vtrans("status", UNKNOWN_JOB, "--url", url)
    assert status.returncode == 5
    assert "could not reach the service" in error_line(status)
    wait = vtrans("wait", UNKNOWN_JOB, "--retries", "1", env={"VTRANS_URL": url})
    assert wait.returncode == 5
    assert url in error_line(wait)


def test_refused_request_exits_5(shared_service: ServiceProcess) -> None:
    result = vtrans("submit", "--url", shared_service.url, "-l", "xx", "--video-seconds", "10")
    assert result.returncode == 5
    assert "Unknown language" in error_line(result)


def test_api_key_from_the_environment(service_factory: ServiceFactory) -> None:
    svc = service_factory("--api-key", "s3cret")
    refused = vtrans("submit", "--url", svc.url, "-l", "es", "--video-seconds", "10")
    assert refused.returncode == 5
    assert "API key" in error_line(refused)
    env = {"VTRANS_URL": svc.url, "VTRANS_API_KEY": "s3cret"}
    created = vtrans("submit", "-l", "es", "--video-seconds", "10", "--duration", "0.2", env=env)
    assert created.returncode == 0, created.stderr
    waited = vtrans("wait", created.stdout.strip(), env=env)
    assert waited.returncode == 0, waited.stderr


# --- demo -----------------------------------------------------------------------------------------


def test_demo_prints_the_summary_table() -> None:
    result = vtrans("demo", "--jobs", "3", timeout=60.0)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("requests in all")[0]  # the footnotes come after the totals
    rows = [line for line in table.splitlines() if line.startswith(("job_", "/status"))]
    assert len(rows) == 4, result.stdout
    # The middle job fails on purpose; the others, and GET /status, complete.
    assert "✓ completed" in rows[0]
    assert "✗ error (unsupported_media)" in rows[1]
    assert "✓ completed" in rows[2]
    assert rows[3].startswith("/status")
    assert "✓ completed" in rows[3]
    for row in rows:
        assert re.search(r"\d+ (ms|s)$", row), row  # a detection lag for every row
    assert "requests in all" in result.stdout


def test_demo_keep_serves_the_dashboard_until_ctrl_c(wait_until: Any) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VTRANS_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "vtrans", "demo", "--jobs", "1", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=environ,
    )
    out: list[str] = []
    assert demo.stdout is not None
    reader = threading.Thread(target=lambda: out.extend(demo.stdout or ()), daemon=True)
    reader.start()
    try:
        found = wait_until(
            lambda: re.search(r"dashboard at (http://127\.0\.0\.1:\d+)/", "".join(out)),
            60,
            interval=0.1,
            message="the demo to print its dashboard's URL",
        )
        url = found[1]
        page = httpx2.get(url + "/", timeout=5)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert httpx2.get(url + "/v1/jobs", timeout=5).json()["items"]  # the demo's jobs are there
        demo.send_signal(signal.SIGINT)
        assert demo.wait(15) == 130
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    reader.join(5)
    stderr = demo.stderr.read() if demo.stderr is not None else ""
    assert "Traceback" not in stderr + "".join(out)
    assert "interrupted" in "".join(out)
    with pytest.raises(httpx2.TransportError):  # the service is stopped
        httpx2.get(url + "/healthz", timeout=2)
