"""What the end-to-end benchmarks share: a server process started and stopped in bounded time, and
its CPU and memory from /proc (summed over its worker processes, when it has some)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server on ``port``, optionally pinned to ``cpu`` (``taskset`` execs it: same pid), its
    output in ``workdir/name.log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        workdir: Path,
        cpu: int | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.port, self.preexec_fn = name, port, preexec_fn
        self.argv = ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_path: str = "/healthz") -> None:
        """Start, and return once ``ready_path`` answers 200; raise with the log if it does not."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.log_path.parent,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},  # no __pycache__ in benchmarks/
                preexec_fn=self.preexec_fn,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {START_TIMEOUT:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)

    def pids(self) -> list[int]:
        """The process and its descendants (``--workers N`` serves from N children)."""
        return [self.pid, *descendants(self.pid)]

    def cpu_seconds(self) -> float:
        """User + system CPU time so far, all threads, summed over :meth:`pids` (a worker that
        exited takes its time with it)."""
        return sum(cpu_seconds(pid) for pid in self.pids())

    def rss(self) -> int:
        """Resident set size in bytes, summed over :meth:`pids` (pages they share count once per
        process: an upper bound)."""
        return sum(rss(pid) for pid in self.pids())

    def pss(self) -> int:
        """Proportional set size in bytes, summed over :meth:`pids` (shared pages split between
        their sharers: what the processes cost the machine together)."""
        return sum(pss(pid) for pid in self.pids())

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def parent(pid: int) -> int:
    """The parent's pid (0 when there is none or the process is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def children_of() -> dict[int, list[int]]:
    """Every process's children, by pid (from ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(parent(int(entry.name)), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    tree, found, todo = children_of(), [], [pid]
    while todo:
        kids = tree.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all threads (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class CPUCounter:
    """The CPU seconds spent so far by a changing set of processes (``pids()`` lists them when
    called): call it before and after a measurement. A process that exits keeps the time last
    seen of it, so the count never goes back."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.pids = pids
        self._seen: dict[int, float] = {}

    def __call__(self) -> float:
        for pid in self.pids():
            self._seen[pid] = max(self._seen.get(pid, 0.0), cpu_seconds(pid))
        return sum(self._seen.values())
