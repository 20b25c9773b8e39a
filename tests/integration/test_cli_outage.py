"""The command line tells the truth about the connection: ``vtrans wait`` in a real pseudo-terminal
while its service is killed and restarted, and against a service that is not there at all.

The terminal's output is read as it comes; each redraw of the status line is a frame (rich
draws them with ``\\r`` and an erase-line sequence).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from cli_helpers import UNKNOWN_JOB, VTRANS, clean_env, spawn, submit
from conftest import free_port

if TYPE_CHECKING:
    from conftest import ServiceFactory

pytestmark = pytest.mark.integration

COLUMNS, ROWS = 200, 30
_STYLE = re.compile(rb"\x1b\[[0-9;]*m")
_FRAME_BREAK = re.compile(rb"\r|\n|\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A command running in a pseudo-terminal of ``COLUMNS`` x ``ROWS`` (stdin, stdout and stderr),
    its output collected by a thread as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the command and its terminal are gone
                return
            if not chunk:
                return
            with self.lock:
                self.output += chunk

    def mark(self) -> int:
        """Where the output is now, to read only what comes after."""
        with self.lock:
            return len(self.output)

    def frames(self, since: int = 0) -> list[str]:
        """Each line drawn since ``since``, without colours (the status line's redraws, in order)."""
        with self.lock:
            raw = bytes(self.output[since:])
        pieces = _FRAME_BREAK.split(_STYLE.sub(b"", raw))
        return [text for piece in pieces if (text := piece.decode(errors="replace").strip())]

    def last(self) -> str:
        frames = self.frames(max(0, self.mark() - 4000))
        return frames[-1] if frames else ""

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.reader.join(5)
        os.close(self.master)


@contextlib.contextmanager
def terminal(*args: str) -> Iterator[Terminal]:
    term = Terminal([*VTRANS, *args], clean_env({"TERM": "xterm-256color", "COLUMNS": str(COLUMNS)}))
    try:
        yield term
    finally:
        term.close()


def percent(frame: str) -> int | None:
    match = re.search(r"(\d+)%", frame)
    return int(match.group(1)) if match else None


@pytest.mark.timeout(90)
def test_the_status_line_says_the_connection_is_lost_and_the_wait_resumes(
    service_factory: ServiceFactory, wait_until: Any
) -> None:
    svc = service_factory()
    job_id = submit(svc, "--duration", "12")
    with terminal("wait", job_id, "--url", svc.url) as term:
        wait_until(lambda: "left" in term.last(), 10, message="the estimate on the status line")
        before_kill = term.mark()
        progress_before = percent(term.last())
        svc.kill()  # kill -9, as in a crash: returns once the process is gone

        def lost() -> bool:
            return any("connection lost" in frame for frame in term.frames(before_kill))

        wait_until(lost, 1.0, message="'connection lost' on the status line within a second")
        # The service stays down while the client retries a few times...
        wait_until(lambda: re.search(r"\(attempt ([4-9]|\d\d+)\)", term.last()), 10, message="attempt 4")
        down = term.frames(before_kill)
        first_lost = next(i for i, frame in enumerate(down) if "connection lost" in frame)
        outage = down[first_lost:]
        # ...and meanwhile every redraw says so, with the next retry, and none counts the estimate down.
        assert len(outage) >= 2, outage
        assert all("connection lost" in frame for frame in outage), outage
        assert all("left" not in frame for frame in outage), outage
        assert any(re.search(r"retrying in \d+ s \(attempt \d+\)", frame) for frame in outage), outage
        assert all(percent(frame) == progress_before for frame in outage), outage

        before_restart = term.mark()
        svc.start()  # same port, same SQLite file
        code = term.wait(timeout=40)

    assert code == 0, term.frames()[-5:]
    after = term.frames(before_restart)
    resumed = [frame for frame in after if "left" in frame]
    assert resumed, after  # the estimate counts down again...
    assert all("connection lost" not in frame for frame in after[after.index(resumed[0]) :])
    assert percent(resumed[0]) is not None
    assert percent(resumed[0]) > (progress_before or 0)  # ...from where the job is now
    assert f"{job_id}  completed" in after[-1]


@pytest.mark.timeout(60)
def test_the_status_line_says_where_it_cannot_connect() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with terminal("wait", UNKNOWN_JOB, "--url", url) as term:
        code = term.wait(timeout=30)
    took = time.monotonic() - started
    frames = term.frames()
    assert code == 5
    trying = [frame for frame in frames if f"cannot connect to {url}: connection refused" in frame]
    assert any(re.search(r"retrying in \d+ s \(attempt [2-9]\)", frame) for frame in trying), frames
    assert all(percent(frame) is None for frame in frames), "no progress is known before an answer"
    assert frames[-1].startswith(f"error: could not reach the service at {url} after ")
    assert 5.0 <= took < 12.0, took  # RetryPolicy's budget: 5 s


@pytest.mark.timeout(60)
def test_without_a_terminal_a_lost_connection_gets_a_line(
    service_factory: ServiceFactory, wait_until: Any
) -> None:
    svc = service_factory()
    job_id = submit(svc, "--duration", "6")
    process = spawn("wait", job_id, "--url", svc.url, "--transport", "sse")
    try:
        with svc.client() as http:
            wait_until(lambda: http.get("/healthz").json()["waiting"] >= 1, 10, message="the event stream")
        svc.kill()
        svc.start()
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].startswith(f"connection to {svc.url} lost (")
    assert re.fullmatch(rf"{re.escape(svc.url)} answered again after \d+\.\d s", lines[1]), lines[1]
    assert f"{job_id}  completed" in stdout
