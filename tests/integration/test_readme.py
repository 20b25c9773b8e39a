"""The README's Python examples run, against a real service, exactly as a reader would run them.

Each ```python block is run as its own process, with the README's address
(http://127.0.0.1:8000) replaced by the test service's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_sync_and_async_examples() -> None:
    assert any("vtrans.Client(" in block for block in BLOCKS)
    assert any("vtrans.AsyncClient(" in block for block in BLOCKS)


@pytest.mark.integration
@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(block: str, shared_service) -> None:  # type: ignore[no-untyped-def]
    code = block.replace("http://127.0.0.1:8000", shared_service.url)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"example failed:\n{code}\n--- stderr ---\n{done.stderr}"
