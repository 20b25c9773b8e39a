"""The machine a benchmark runs on: facts for its report, the load other processes put on it, and
waiting until the other benchmarks (and test suites) are done before timing anything."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from processes import CLK_TCK, descendants, parent

ROOT = Path(__file__).resolve().parent.parent
#: Command lines of processes that would skew a measurement made alongside them.
OTHER_BENCHMARKS = re.compile(r"(^|/)wrk(\s|$)|throughput\.py|polling\.py|e2e\.py|scale\.py|pytest")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- facts ---------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            return int(line.split()[1]) / 2**20
    return 0.0


def machine_line() -> str:
    """``- machine: nproc N, CPU, RAM, OS``: the first line of every report's conditions."""
    return (
        f"- machine: nproc {os.cpu_count()}, {cpu_model()}, {memory_gb():.0f} GB RAM, "
        f"{platform.system()} {platform.release()}"
    )


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def source_state() -> tuple[str, str]:
    """The checked-out commit and the files of ``src/`` changed since (read-only git calls), and a
    hash of the code itself, to notice a change during the run."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(path.read_bytes())
    try:
        head = _git("rev-parse", "--short", "HEAD").strip()
        changed = _git("diff", "HEAD", "--name-only", "--", "src").split()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit", digest.hexdigest()
    text = f"commit {head}" + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")
    return text, digest.hexdigest()


def raise_nofile() -> int:
    """Raise this process's open-files limit to its hard limit; return it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def more_open_files() -> None:
    """:func:`raise_nofile` as a ``preexec_fn``: a server that holds thousands of connections."""
    raise_nofile()


# --- load ----------------------------------------------------------------------------------------


def busy_ticks() -> int:
    """CPU time the whole machine has spent busy so far, in clock ticks (``/proc/stat``)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system + irq + softirq + steal


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Load:
    """What else ran during a measurement: the machine's busy CPU time minus this process's and
    the service's, in cores, and the other benchmarks seen at its start and end."""

    def __init__(self) -> None:
        self.ticks, self.mine, self.wall = busy_ticks(), own_cpu(), time.monotonic()
        self.seen = set(other_benchmarks())

    def cores(self, service_cpu: float) -> float:
        busy = (busy_ticks() - self.ticks) / CLK_TCK
        mine = own_cpu() - self.mine
        self.seen |= set(other_benchmarks())
        return max(0.0, busy - mine - service_cpu) / max(1e-9, time.monotonic() - self.wall)


def background_load(seconds: float = 3.0) -> float:
    """Cores kept busy by other processes over the next ``seconds``."""
    load = Load()
    time.sleep(seconds)
    return load.cores(0.0)


def lineage(pid: int | None = None) -> set[int]:
    """``pid`` (this process by default), its ancestors and its descendants: the processes of one
    benchmark run, whose command lines may well name a benchmark."""
    pid = os.getpid() if pid is None else pid
    family = {pid, *descendants(pid)}
    up = parent(pid)
    while up > 0 and up not in family:
        family.add(up)
        up = parent(up)
    return family


def other_benchmarks() -> list[str]:
    """Command lines of other benchmark processes (not this one, its ancestors or its children)."""
    mine = lineage()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if line and OTHER_BENCHMARKS.search(line):
            found.append(f"{entry.name}: {line[:120]}")
    return found


def kind(command: str) -> str:
    """What a process seen by :func:`other_benchmarks` is, in a word."""
    match = OTHER_BENCHMARKS.search(command)
    return match[0].strip("/ ") if match else command[:40]


def wait_until_quiet(
    limit: float, every: float = 30.0, max_load: float = 0.25, say: Callable[[str], None] = _stderr
) -> list[str]:
    """Wait (at most ``limit`` s, checking every ``every`` s) until no other benchmark runs and
    other processes keep less than ``max_load`` of a core busy; return what still ran then."""
    deadline = time.monotonic() + limit
    while True:
        busy = other_benchmarks()
        load = background_load()
        if not busy and load < max_load:
            return []
        still = [*busy, f"background load {load:.2f} cores"]
        if time.monotonic() >= deadline:
            say(f"still busy after {limit:.0f}s, measuring anyway: {still}")
            return still
        say(f"waiting for the machine to be quiet: {still[0]} ({len(busy)} other benchmark processes)")
        time.sleep(min(every, max(0.0, deadline - time.monotonic())))
