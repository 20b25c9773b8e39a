"""Running the command line as a user does: ``python -m vtrans ...`` as a process, in a clean
environment, and reading what it printed. Shared by the CLI's test modules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import ServiceProcess

JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
UNKNOWN_JOB = "job_" + "0" * 32
VTRANS = [sys.executable, "-m", "vtrans"]


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without the developer's ``VTRANS_*`` variables, plus ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VTRANS_")}
    environ.update(env or {})
    return environ


def vtrans(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run the command line (stdin, stdout and stderr not terminals); no output has a traceback."""
    result = subprocess.run(
        [*VTRANS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start the command line in the background (no terminal), its output piped, to signal or kill."""
    return subprocess.Popen(
        [*VTRANS, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def submit(svc: ServiceProcess, *args: str) -> str:
    """Submit a job of 90 s of video in Spanish (plus ``args``); its id."""
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
