"""Shared fixtures: the real service as a process on 127.0.0.1, and bounded waiting helpers.

Integration tests never talk to an in-process app: they start ``python -m vtrans serve`` on a
free loopback port, wait until ``GET /healthz`` answers, and stop it at teardown. Everything
here is reusable by any test that needs a live service (the client library's tests too)::

    @pytest.mark.integration
    def test_something(service_factory, wait_until):
        svc = service_factory("--seed", "7")  # started; stopped at teardown
        with svc.client() as client:
            job = client.post("/v1/jobs", json={"language": "fr", "video_seconds": 5}).json()
            wait_until(lambda: client.get(f"/v1/jobs/{job['id']}").json()["result"] != "pending", 5)
        svc.kill()  # kill -9
        svc.start()  # same port, same SQLite file

Fixtures:

``service_factory``
    ``service_factory(*args, db_path=None, defaults=True, start=True) -> ServiceProcess``:
    extra ``vtrans serve`` flags; a fresh SQLite file in ``tmp_path`` unless another ``--store``;
    with ``defaults`` the service's ``GET /status`` delay is 1 s and its error rate 0 (each only
    when the flags do not say otherwise). Every process it made is stopped at teardown.
``service``
    a started service with those defaults (SQLite file in ``tmp_path``, ``--delay 1``,
    ``--error-rate 0``); ``client`` is an ``httpx2.Client`` on it.
``shared_service``
    one such service per test module, for tests that only need *a* service and create what
    they look at (bad input, read-only checks): saves a start per test.
``wait_until`` / ``wait_for_job``
    poll with a bounded deadline (the only kind of waiting tests do; never a bare sleep).
``spec_server`` / ``drip_server``
    the stand-alone servers of ``tests/servers/`` as processes: a spec-literal ``GET /status`` with
    injectable faults, and a server that drips its answers one byte at a time.
``assert_problem``
    check an RFC 9457 ``application/problem+json`` answer (status, ``type``, ``title``, ``detail``).
``receiver``
    ``receiver(failures=0, status=204, hold=0)``: a webhook receiver on 127.0.0.1 that records
    every request and misbehaves on demand (``tests/servers/receiver.py``), closed at teardown.
``pg_url``
    the URL of a fresh PostgreSQL database of this test's own, dropped at teardown (skipped,
    which fails CI, when PostgreSQL is not running on 127.0.0.1:5432).

A service that fails to start raises :class:`ServiceError` quoting its log; each process's log
is ``service-N.log`` in the test's ``tmp_path``. For annotations, import the types under
``if TYPE_CHECKING: from conftest import ServiceFactory, ServiceProcess``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import asyncpg
import httpx2
import pytest

from servers.receiver import Receiver
from vtrans.client.hooks import Hook, RequestDetails, RetryDetails, WaitDetails

T = TypeVar("T")

#: How long a service may take to answer ``/healthz`` after it is spawned.
STARTUP_TIMEOUT = 15.0
#: How long ``stop()`` waits after SIGTERM before it sends SIGKILL.
STOP_TIMEOUT = 5.0
#: The flags ``service_factory`` adds unless told otherwise: a short, always-successful ``/status``.
DEFAULT_DELAY = "1"
DEFAULT_ERROR_RATE = "0"
#: Terminal results of a job (``/status`` and ``/v1/jobs/{id}`` share the words).
TERMINAL = frozenset(("completed", "error"))


class ServiceError(RuntimeError):
    """The service process did not come up (it exited, or ``/healthz`` never answered)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class HookRecorder(Hook):
    """Client hooks that keep what they are told: each request, retry and wait."""

    def __init__(self) -> None:
        self.requests: list[RequestDetails] = []
        self.retries: list[RetryDetails] = []
        self.waits: list[WaitDetails] = []

    def on_request(self, details: RequestDetails) -> None:
        self.requests.append(details)

    def on_retry(self, details: RetryDetails) -> None:
        self.retries.append(details)

    def on_wait(self, details: WaitDetails) -> None:
        self.waits.append(details)


def answer_within(sock: socket.socket, seconds: float) -> tuple[float, bytes]:
    """Everything a server sends on ``sock`` until it closes it, and how long that took."""
    sock.settimeout(seconds)
    started, data = time.monotonic(), b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return time.monotonic() - started, data
        data += chunk


def wait_until(
    predicate: Callable[[], T | None], timeout: float, interval: float = 0.02, message: str = "condition"
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that; fail after ``timeout`` s.

    The predicate is always called at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {message} (last: {value!r})")
        time.sleep(min(interval, remaining))


def wait_for_job(client: httpx2.Client, job_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{job_id}`` until the job is terminal; return its body."""

    def terminal() -> dict[str, Any] | None:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["result"] in TERMINAL else None

    return wait_until(terminal, timeout, message=f"job {job_id} to finish")


class ServiceProcess:
    """``python -m vtrans serve`` as a child process on a fixed port of 127.0.0.1.

    ``args`` are extra ``vtrans serve`` flags; ``db_path`` (a SQLite file) is passed as ``--db``
    when given. The port and the database file stay the same across ``restart()`` and
    ``kill()`` + ``start()``, so a test can check what survives. The process's output (uvicorn's
    log, tracebacks) goes to ``log_path`` and is quoted when the service fails to start.

    ``spawned_at`` and ``ready_at`` are wall-clock times (``time.time()``, the server's clock too)
    just before the last spawn and when ``/healthz`` first answered: anything the service
    creates at start-up (the job behind ``GET /status``) is created between the two.
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        db_path: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.args = list(args)
        self.db_path = Path(db_path) if db_path is not None else None
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="vtrans-service-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self.ready_at = 0.0
        #: Once started, the port is the service's: a restart keeps it.
        self.started_once = False

    def __repr__(self) -> str:
        return f"<ServiceProcess {self.url} args={self.args!r} running={self.running}>"

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """The command line the service runs with."""
        cmd = [sys.executable, "-m", "vtrans", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.db_path is not None:
            cmd += ["--db", str(self.db_path)]
        return cmd + self.args

    def start(self) -> ServiceProcess:
        """Spawn the service and return once ``GET /healthz`` answers 200.

        Raises :class:`ServiceError` (with the process's log) if it exits first or does not
        answer within ``startup_timeout`` seconds.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        # A clean environment: no VTRANS_* variable of the developer's shell changes the flags.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTRANS_")}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {' '.join(self.command())}\n".encode())
            log.flush()
            self.spawned_at = time.time()
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.log_path.parent,
            )
        deadline = time.monotonic() + self.startup_timeout
        with httpx2.Client(timeout=1.0) as probe:
            while True:
                code = self.process.poll()
                if code is not None and self._port_taken() and not self.started_once:
                    # free_port() only found a port free a moment ago: another test took it since.
                    self.port = free_port()
                    self.url = f"http://127.0.0.1:{self.port}"
                    return self.start()
                if code is not None:
                    raise ServiceError(
                        f"the service exited with {code} before it answered:\n{self.log_tail()}"
                    )
                try:
                    if probe.get(f"{self.url}/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise ServiceError(
                        f"/healthz did not answer within {self.startup_timeout} s:\n{self.log_tail()}"
                    )
                time.sleep(0.02)
        self.ready_at = time.time()
        self.started_once = True
        return self

    def _port_taken(self) -> bool:
        return f"cannot listen on 127.0.0.1:{self.port}: Address already in use" in self.log_tail(3)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` s; return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode

    def kill(self) -> None:
        """``kill -9``: no graceful shutdown, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def restart(self, args: Sequence[str] | None = None) -> ServiceProcess:
        """Stop gracefully and start again on the same port and database (with new ``args`` if given)."""
        self.stop()
        if args is not None:
            self.args = list(args)
        return self.start()

    # --- talking to it ------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx2.Client:
        """An ``httpx2.Client`` whose ``base_url`` is the service (close it, or use ``with``)."""
        kwargs.setdefault("timeout", 10.0)
        return httpx2.Client(base_url=self.url, **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def _has_flag(args: Sequence[str], *names: str) -> bool:
    return any(arg == name or arg.startswith(f"{name}=") for arg in args for name in names)


def _flag_value(args: Sequence[str], name: str) -> str | None:
    """The value of the last ``--name value`` or ``--name=value`` in ``args``."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"{name}="):
            value = arg.partition("=")[2]
    return value


class ServiceFactory(Protocol):
    def __call__(
        self,
        *args: str,
        db_path: str | os.PathLike[str] | None = None,
        defaults: bool = True,
        start: bool = True,
    ) -> ServiceProcess: ...


def _service_args(args: Sequence[str], defaults: bool) -> list[str]:
    extra = list(args)
    if defaults:
        if not _has_flag(extra, "--delay", "--delay-min", "--delay-max"):
            extra += ["--delay", DEFAULT_DELAY]
        if not _has_flag(extra, "--error-rate"):
            extra += ["--error-rate", DEFAULT_ERROR_RATE]
    return extra


def _services_in(directory: Path) -> Iterator[ServiceFactory]:
    """The body of the service factories: services with files in ``directory``, stopped at the end."""
    made: list[ServiceProcess] = []
    counter = itertools.count(1)

    def make(
        *args: str,
        db_path: str | os.PathLike[str] | None = None,
        defaults: bool = True,
        start: bool = True,
    ) -> ServiceProcess:
        n = next(counter)
        if db_path is None and _flag_value(args, "--store") in (None, "sqlite"):
            db_path = directory / f"vtrans-{n}.db"
        svc = ServiceProcess(_service_args(args, defaults), db_path, log_path=directory / f"service-{n}.log")
        made.append(svc)
        return svc.start() if start else svc

    yield make
    for svc in made:
        svc.stop()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start services with extra ``vtrans serve`` flags; all are stopped at teardown.

    Each call gets its own port, log and (unless ``--store memory`` or ``db_path``) SQLite file
    in ``tmp_path``. With ``defaults=True`` the ``/status`` delay is 1 s and the error rate 0
    unless the flags set them. With ``start=False`` the process is returned unstarted.
    """
    yield from _services_in(tmp_path)


@pytest.fixture
def service(service_factory: ServiceFactory) -> ServiceProcess:
    """A started service: SQLite file in ``tmp_path``, ``--delay 1``, ``--error-rate 0``."""
    return service_factory()


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx2.Client]:
    """An ``httpx2.Client`` on ``service``."""
    with service.client() as http:
        yield http


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service per test module (same defaults as ``service``), for tests that need no fresh state."""
    directory = tmp_path_factory.mktemp("shared-service")
    svc = ServiceProcess(
        _service_args((), defaults=True), directory / "vtrans.db", log_path=directory / "service.log"
    )
    with svc:
        yield svc


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """:func:`wait_until`: poll a predicate with a bounded deadline."""
    return wait_until


@pytest.fixture(name="wait_for_job")
def wait_for_job_fixture() -> Callable[..., dict[str, Any]]:
    """:func:`wait_for_job`: poll a job until it is terminal, with a bounded deadline."""
    return wait_for_job


PROBLEM_JSON = "application/problem+json"


def assert_problem(
    response: httpx2.Response, status: int, *, code: str | None = None, detail_contains: str | None = None
) -> dict[str, Any]:
    """Check an RFC 9457 answer: the status, the media type, and ``type``/``title``/``status``/``detail``.

    ``code`` is the problem's kind (``urn:vtrans:problem:<code>``); ``detail_contains`` a fragment
    the human explanation must mention. Returns the body.
    """
    where = (
        f"{response.request.method} {response.request.url} -> {response.status_code} {response.text[:300]}"
    )
    assert response.status_code == status, where
    assert response.headers.get("content-type", "").split(";")[0].strip() == PROBLEM_JSON, where
    body = response.json()
    assert isinstance(body, dict), where
    assert isinstance(body.get("type"), str), where
    assert body["type"], where
    assert isinstance(body.get("title"), str), where
    assert body["title"], where
    assert body.get("status") == status, where
    assert isinstance(body.get("detail"), str), where
    assert len(body["detail"]) >= 10, where
    if code is not None:
        assert body["type"] == f"urn:vtrans:problem:{code}", where
    if detail_contains is not None:
        assert detail_contains.lower() in body["detail"].lower(), where
    return body


@pytest.fixture(name="assert_problem")
def assert_problem_fixture() -> Callable[..., dict[str, Any]]:
    """:func:`assert_problem`: check an ``application/problem+json`` answer."""
    return assert_problem


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """``receiver(failures=0, status=204, hold=0)``: a running webhook receiver, closed at teardown."""
    made: list[Receiver] = []

    def make(failures: int = 0, status: int = 204, hold: float = 0.0) -> Receiver:
        made.append(Receiver(failures, status, hold))
        return made[-1]

    yield make
    for each in made:
        each.close()


#: Where the tests make (and drop) their PostgreSQL databases.
PG_ADMIN = os.environ.get("VTRANS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin(statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(PG_ADMIN, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    # In a thread of its own: the fixture may be asked for from inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own (``postgresql://…``), dropped at teardown."""
    name = f"vtrans_test_{uuid.uuid4().hex[:16]}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not available at {PG_ADMIN}: {exc}")
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``VTRANS_NO_SKIPS=1`` (as ``.ci/run`` sets it), a skipped test fails the run: a test
    that needs a real part (Redis, say) must not pass silently on a machine without it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if os.environ.get("VTRANS_NO_SKIPS") == "1" and skipped and exitstatus == 0:
        print(f"\nVTRANS_NO_SKIPS=1: {skipped} test(s) were skipped; failing the run.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="module")
def module_service_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceFactory]:
    """Like ``service_factory``, but the services live for the whole test module: for tests that
    share one service started with particular flags (one start per module, not one per test)."""
    yield from _services_in(tmp_path_factory.mktemp("module-services"))


# --- the servers of tests/servers/ as processes -----------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SpecServer:
    process: subprocess.Popen[bytes]
    port: int
    delay: float
    result: str
    started: float  # time.time() when the server started: the answer is terminal from started + delay
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ServerScripts:
    """Servers of ``tests/servers/`` run as processes: ``start(*args)`` runs
    ``python -m tests.servers.<module> --port 0 *args``, waits for its ``ready k=v …`` line and
    returns the process, those fields and its log; ``stop()`` stops every one it started."""

    def __init__(self, tmp_path: Path, module: str) -> None:
        self.tmp_path, self.module = tmp_path, module
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> tuple[subprocess.Popen[bytes], dict[str, str], Path]:
        log_path = self.tmp_path / f"{self.module.replace('_', '-')}-{len(self.started)}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", f"tests.servers.{self.module}", "--port", "0", *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self.started.append(process)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15.0)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("ready "):
            process.kill()
            raise AssertionError(f"{self.module} did not start: {line!r}\n{log_path.read_text()}")
        return process, dict(item.split("=", 1) for item in line.split()[1:]), log_path

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def spec_server(tmp_path: Path) -> Iterator[Callable[..., SpecServer]]:
    """``spec_server(*args)``: start ``python -m tests.servers.spec_server --port 0 *args``."""
    servers = ServerScripts(tmp_path, "spec_server")

    def start(*args: str) -> SpecServer:
        process, fields, log_path = servers.start(*args)
        return SpecServer(
            process,
            int(fields["port"]),
            float(fields["delay"]),
            fields["result"],
            float(fields["started"]),
            log_path,
        )

    yield start
    servers.stop()


@pytest.fixture
def drip_server(tmp_path: Path) -> Iterator[Callable[[str, float], str]]:
    """``drip_server(what, interval)``: start ``tests/servers/drip_server.py``, which answers every
    request by dripping its ``headers`` or its ``body`` one byte every ``interval`` s; its URL."""
    servers = ServerScripts(tmp_path, "drip_server")

    def start(what: str, interval: float) -> str:
        _, fields, _ = servers.start("--drip", what, "--interval", str(interval))
        return f"http://127.0.0.1:{fields['port']}"

    yield start
    servers.stop()


def awaitable(kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of a sync (``kind="sync"``, run in a worker thread) or async client, as an async
    function; iterators come back as lists. Lets one test drive ``Client`` and ``AsyncClient``."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        if kind == "sync":

            def run() -> Any:
                result = method(*args, **kwargs)
                return list(result) if inspect.isgenerator(result) else result

            return await anyio.to_thread.run_sync(run)
        result = method(*args, **kwargs)
        if hasattr(result, "__aiter__"):
            return [item async for item in result]
        return await result

    return call


# --- a real browser (Debian's chromium, driven by Playwright) ----------------------------------

#: Debian's package; Playwright never downloads a browser of its own here.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class BrowserPage:
    """A fresh page of a headless Chromium, and every URL it requested."""

    page: Any  # playwright.sync_api.Page
    requested: list[str]

    def hosts(self) -> set[str]:
        """The hosts of every request made (``data:`` and ``blob:`` URLs have none)."""
        from urllib.parse import urlsplit

        return {
            urlsplit(url).hostname or ""
            for url in self.requested
            if url.split(":")[0] in ("http", "https", "ws", "wss")
        }


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, for a test module (skipped, which fails CI, when missing)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[BrowserPage]:
    """A new page (its own context: no shared storage) that records every request it makes."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    made = BrowserPage(page, [])
    page.on("request", lambda request: made.requested.append(request.url))
    yield made
    context.close()
