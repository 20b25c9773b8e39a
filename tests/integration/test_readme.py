"""The README's Python examples run, against a real service, exactly as a reader would run them —
and every time: each runs 20 times (concurrently, in one process per example) against a sandbox
with its default error rate, so an example that fails one run in ten fails here.

The README's address (http://127.0.0.1:8000) is replaced by the test service's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import ServiceProcess

README = Path(__file__).parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
RUNS = 20
#: Runs the example given on stdin RUNS times at once, each in a thread of its own, and fails if
#: any run failed.
HARNESS = f"""
import sys, threading, traceback
code = sys.stdin.read()
failures = []
def run():
    try:
        exec(compile(code, "README example", "exec"), {{"__name__": "__main__"}})
    except BaseException:
        failures.append(traceback.format_exc())
threads = [threading.Thread(target=run) for _ in range({RUNS})]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
if failures:
    sys.exit(f"{{len(failures)}} of {RUNS} runs failed; the first:\\n{{failures[0]}}")
"""


def test_the_readme_has_sync_and_async_examples() -> None:
    assert any("vtrans.Client(" in block for block in BLOCKS)
    assert any("vtrans.AsyncClient(" in block for block in BLOCKS)


@pytest.fixture(scope="module")
def sandbox(module_service_factory: Callable[..., ServiceProcess]) -> ServiceProcess:
    """The sandbox as a reader starts it: the default error rate, a short GET /status delay."""
    return module_service_factory("--delay", "1", defaults=False)


@pytest.mark.integration
@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs_every_time(block: str, sandbox: ServiceProcess) -> None:
    code = block.replace("http://127.0.0.1:8000", sandbox.url)
    done = subprocess.run(
        [sys.executable, "-c", HARNESS], input=code, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"example failed:\n{code}\n--- stderr ---\n{done.stderr[-3000:]}"
