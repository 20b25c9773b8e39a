"""The command line as a user runs it: ``python -m vtrans ...`` processes against a real service.

Each row of the exit-code table (``vtrans --help``, the README) has a test here: 0 completed,
1 the job failed, 2 usage or a refused request, 3 timed out, 4 not found, 5 unreachable or
garbage, 6 ``serve`` could not start, 130 interrupted. No output ever carries a traceback, and
every error is one line on stderr. The status line during an outage: ``test_cli_outage.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from cli_helpers import JOB_ID, UNKNOWN_JOB, as_json, error_line, spawn, submit, vtrans
from conftest import free_port

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration


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


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("submit", "--video-seconds", "10"), "--language"),
        (("submit", "-l", "es", "--video-seconds", "0"), "--video-seconds"),
        (("submit", "-l", "es", "--video-seconds", "nan"), "'nan' is not a finite number of seconds"),
        (("submit", "-l", "es", "--video-seconds", "inf"), "'inf' is not a finite number of seconds"),
        (("submit", "-l", "es", "--video-seconds", "5", "--duration", "nan"), "--duration"),
        (("submit", "-l", "es", "--video-seconds", "5", "--timeout", "3"), "only apply with --wait"),
        (("wait", "not/an/id"), "not a job id"),
        (("wait", "--cancel-on-timeout"), "needs a JOB_ID"),
        (("jobs", "--limit", "0"), "--limit"),
        (("status", "--bogus"), "--bogus"),
    ],
)
def test_usage_errors_exit_2_in_one_line(args: tuple[str, ...], says: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing there: a usage error is found before any request
    result = vtrans(*args, "--url", url)
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert says in line
    assert line.endswith("--help)")  # where to read more


def test_a_video_too_long_is_refused_in_words_before_any_request() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing there: exit 2, not 5, so no request was made
    result = vtrans("submit", "--url", url, "-l", "es", "--video-seconds", "1e9")
    assert result.returncode == 2
    assert "--video-seconds must be at most 6 h (21600 s)" in error_line(result)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("wait", "nonsense"), "'nonsense' is not a job id"),  # 400, from the service
        (("status", "nonsense"), "'nonsense' is not a job id"),
        (("cancel", "nonsense"), "'nonsense' is not a job id"),
        (("submit", "-l", "xx", "--video-seconds", "10"), "Unknown language 'xx'"),  # 422
    ],
)
def test_a_request_the_service_refuses_exits_2(
    shared_service: ServiceProcess, args: tuple[str, ...], says: str
) -> None:
    result = vtrans(*args, "--url", shared_service.url)
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert "refused" in line
    assert says in line


def test_the_language_code_may_be_in_any_case(shared_service: ServiceProcess) -> None:
    for given, stored in (("ES", "es"), ("pt-br", "pt-BR")):
        result = vtrans("submit", "--url", shared_service.url, "-l", given, "--video-seconds", "5", "--json")
        assert result.returncode == 0, result.stderr
        assert as_json(result)["language"] == stored


def test_the_url_help_names_its_variable_and_shows_its_value() -> None:
    def help_text(env: dict[str, str] | None = None) -> str:
        return " ".join(vtrans("status", "--help", env=env).stdout.split())  # as if never wrapped

    assert "[env var: VTRANS_URL; default: http://127.0.0.1:8000]" in help_text()
    custom = help_text({"VTRANS_URL": "http://translate.test:9000"})
    assert "[env var: VTRANS_URL; default: http://translate.test:9000]" in custom
    assert "[env var: VTRANS_API_KEY]" in custom
    assert "[env var: VTRANS_FAIL_FAST]" in custom


def test_the_exit_codes_are_in_the_help_and_the_readme() -> None:
    help_codes = re.findall(r"^ +(\d+)  \w", vtrans("--help").stdout, flags=re.M)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    readme_codes = re.findall(r"^\| `(\d+)` \|", readme, flags=re.M)
    assert help_codes == readme_codes == ["0", "1", "2", "3", "4", "5", "6", "130"]


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
    # Exactly the spec's answer, as the service sends it: no other field, not even a null one.
    assert result.stdout in ('{"result":"pending"}\n', '{"result":"completed"}\n')
    with httpx2.Client() as http:
        assert json.loads(result.stdout).keys() == http.get(f"{shared_service.url}/status").json().keys()
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


def test_unreachable_service_exits_5_after_the_retry_budget() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    status = vtrans("status", UNKNOWN_JOB, "--url", url)
    took = time.monotonic() - started
    assert status.returncode == 5
    line = error_line(status)
    assert f"could not reach the service at {url} after" in line
    # The library's budget (RetryPolicy().budget, 5 s), not attempts of the command line's own.
    assert 5.0 <= took < 10.0, took

    started = time.monotonic()
    wait = vtrans("wait", UNKNOWN_JOB, "--fail-fast", env={"VTRANS_URL": url})
    assert time.monotonic() - started < 4.0
    assert wait.returncode == 5
    assert url in error_line(wait)


def test_garbage_exits_5(spec_server: Any) -> None:
    server = spec_server("--faults", "html x*")  # a captive portal's page, every time
    result = vtrans("status", "--url", server.url, "--fail-fast")
    assert result.returncode == 5, result.stderr
    assert "did not answer with the vtrans protocol" in error_line(result)


def test_a_404_page_that_is_not_vtrans_exits_5_saying_the_url_may_be_wrong(spec_server: Any) -> None:
    server = spec_server("--faults", "404 x*")  # nginx's HTML 404 page, every time
    result = vtrans("status", "--url", server.url)
    assert result.returncode == 5, result.stderr
    line = error_line(result)
    assert "answered 404 with text/html" in line
    assert "the URL may be wrong" in line
    assert server.log().count(" GET /status ") == 1, "not retried"


def test_a_wrong_api_key_exits_2_and_the_key_comes_from_the_environment(
    service_factory: ServiceFactory,
) -> None:
    svc = service_factory("--api-key", "s3cret")
    refused = vtrans("submit", "--url", svc.url, "-l", "es", "--video-seconds", "10")
    assert refused.returncode == 2
    assert "API key" in error_line(refused)
    env = {"VTRANS_URL": svc.url, "VTRANS_API_KEY": "s3cret"}
    created = vtrans("submit", "-l", "es", "--video-seconds", "10", "--duration", "0.2", env=env)
    assert created.returncode == 0, created.stderr
    waited = vtrans("wait", created.stdout.strip(), env=env)
    assert waited.returncode == 0, waited.stderr


def test_serve_on_a_busy_port_exits_6(shared_service: ServiceProcess, tmp_path: Path) -> None:
    port = str(shared_service.port)
    result = vtrans("serve", "--port", port, "--db", str(tmp_path / "other.db"), timeout=30.0)
    assert result.returncode == 6
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot listen" in lines[0]
    assert port in lines[0]


PG = "postgresql://"


@pytest.mark.parametrize(
    ("flags", "named", "why"),
    [
        (["--db", "{tmp}/a-file/jobs.db"], "{tmp}/a-file/jobs.db", "cannot open the SQLite file"),
        (["--db", "{tmp}/garbage.db"], "{tmp}/garbage.db", "cannot use the SQLite file"),
        (
            ["--store", "postgresql://vtrans:hunter2@127.0.0.1:{closed}/x"],
            "127.0.0.1:{closed}",
            "cannot use PostgreSQL",
        ),
        (
            ["--store", "postgresql://postgres@127.0.0.1:5432/no_such_db_{closed}"],
            "no_such_db_",
            "cannot use PostgreSQL",
        ),
    ],
    ids=["db-under-a-file", "db-not-sqlite", "postgresql-refused", "postgresql-no-database"],
)
def test_serve_start_up_failures_are_one_line_naming_the_cause(
    tmp_path: Path, flags: list[str], named: str, why: str
) -> None:
    (tmp_path / "a-file").write_text("a file, not a directory")
    (tmp_path / "garbage.db").write_bytes(b"not a database, " * 200)
    closed = str(free_port())
    args = [flag.format(tmp=tmp_path, closed=closed) for flag in flags]
    result = vtrans("serve", "--port", str(free_port()), *args, timeout=30.0)
    assert result.returncode == 6, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert why in line
    assert named.format(tmp=tmp_path, closed=closed) in line
    assert "hunter2" not in line, "a password is never shown"


@pytest.mark.parametrize("store", ["mysql://x", "sqlite3", ""])
def test_an_unknown_store_is_a_usage_error(store: str) -> None:
    result = vtrans("serve", "--store", store, timeout=30.0)
    assert result.returncode == 2
    assert "--store must be sqlite, memory or a postgresql://" in result.stderr


def test_ctrl_c_exits_130(shared_service: ServiceProcess, wait_until: Any) -> None:
    job_id = submit(shared_service, "--duration", "60")
    process = spawn("wait", job_id, "--url", shared_service.url, "--transport", "long-poll")
    try:
        with httpx2.Client(base_url=shared_service.url) as http:
            # The service holds the wait's poll: the command is waiting.
            wait_until(lambda: http.get("/healthz").json()["waiting"] >= 1, 10, message="a held poll")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert stdout == ""
    assert "Traceback" not in stderr
    assert stderr.strip() == "interrupted: a job already submitted keeps running on the service"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_stopped_by_ctrl_c_exits_130_quietly(
    service_factory: ServiceFactory, request: pytest.FixtureRequest, workers: str
) -> None:
    """Drained and stopped, as asked: not click's ``Aborted!`` and 1 (a job that ended in error)."""
    store = ["--store", request.getfixturevalue("pg_url")] if workers != "1" else []
    svc = service_factory(*store, "--workers", workers)
    assert svc.process is not None
    svc.process.send_signal(signal.SIGINT)
    assert svc.process.wait(10) == 130, svc.log_tail()
    assert "Aborted!" not in svc.log_text()
    assert "Traceback" not in svc.log_text()


# --- cancel and jobs ------------------------------------------------------------------------------


def test_cancel_a_pending_job(shared_service: ServiceProcess) -> None:
    job_id = submit(shared_service, "--duration", "60")
    result = vtrans("cancel", job_id, "--url", shared_service.url)
    assert result.returncode == 0, result.stderr
    assert job_id in result.stdout
    assert "cancelled" in result.stdout
    again = vtrans("cancel", job_id, "--url", shared_service.url, "--json")
    assert again.returncode == 0, again.stderr  # a cancelled job may be cancelled again
    job = as_json(again)
    assert (job["id"], job["result"], job["error"]["code"]) == (job_id, "error", "cancelled")
    status = vtrans("status", job_id, "--url", shared_service.url, "--json")
    assert as_json(status)["error"]["code"] == "cancelled"


def test_cancel_a_finished_job_exits_2_and_an_unknown_one_4(shared_service: ServiceProcess) -> None:
    job_id = submit(shared_service, "--duration", "0")
    finished = vtrans("cancel", job_id, "--url", shared_service.url)
    assert finished.returncode == 2
    assert "already ended" in error_line(finished)
    unknown = vtrans("cancel", UNKNOWN_JOB, "--url", shared_service.url)
    assert unknown.returncode == 4
    assert UNKNOWN_JOB in error_line(unknown)


def test_jobs_lists_the_newest_first(service: ServiceProcess) -> None:
    done = submit(service, "--duration", "0")
    failed = submit(service, "--duration", "0", "--outcome", "error")
    pending = submit(service, "--duration", "60")

    table = vtrans("jobs", "--url", service.url)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if JOB_ID.match(line.split(" ")[0])]
    ours = [row.split()[0] for row in rows if row.split()[0] in (done, failed, pending)]
    assert ours == [pending, failed, done]
    by_id = {row.split()[0]: row for row in rows}
    assert "pending" in by_id[pending]
    assert "left" in by_id[pending]  # the estimate
    assert "error" in by_id[failed]
    assert "completed" in by_id[done]

    lines = vtrans("jobs", "--url", service.url, "--json", "--limit", "2")
    assert lines.returncode == 0, lines.stderr
    jobs = [json.loads(line) for line in lines.stdout.splitlines()]  # JSON Lines: one job per line
    assert [job["id"] for job in jobs] == [pending, failed]

    errors = vtrans("jobs", "--url", service.url, "--json", "--result", "error")
    assert [json.loads(line)["id"] for line in errors.stdout.splitlines()] == [failed]


def test_jobs_pages_through_more_than_a_page(service: ServiceProcess) -> None:
    made = {submit(service, "--duration", "0") for _ in range(3)}
    with httpx2.Client(base_url=service.url) as http:
        total = len(http.get("/v1/jobs", params={"limit": 100}).json()["items"])
    result = vtrans("jobs", "--url", service.url, "--json", "--limit", str(total))
    listed = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    assert len(listed) == total
    assert made <= set(listed)


def test_jobs_on_an_empty_list_says_so(service: ServiceProcess) -> None:
    result = vtrans("jobs", "--url", service.url, "--result", "error")  # the error rate is 0
    assert result.returncode == 0
    assert result.stdout == ""
    assert "no error jobs" in result.stderr


# --- demo -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [120, 80])
def test_demo_prints_the_summary_table(columns: int) -> None:
    result = vtrans("demo", "--jobs", "3", env={"COLUMNS": str(columns)}, timeout=60.0)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("requests in all")[0]  # the footnotes come after the totals
    rows = [line for line in table.splitlines() if line.startswith(("job_", "/status"))]
    assert len(rows) == 4, result.stdout
    lines = table.splitlines()
    grid = lines[next(i for i, line in enumerate(lines) if line.startswith("job ")) :]
    assert all(len(line) <= columns for line in grid), "the table fits the terminal"
    # The middle job fails on purpose; the others, and GET /status, complete.
    assert "✓ completed" in rows[0]
    assert ("✗ error (unsupported_media)" if columns > 100 else "✗ error (unsupp…") in rows[1]
    assert "✓ completed" in rows[2]
    assert rows[3].startswith("/status")
    assert "✓ completed" in rows[3]
    for row in rows:
        assert re.search(r"\d+ (ms|s)$", row), row  # a detection lag, with its unit, for every row
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
