"""Sections of BENCHMARKS.md written by other benchmarks than ``polling.py``: each between markers
of its own, replaced when its benchmark runs again and kept when ``polling.py`` rewrites the rest."""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(r"<!-- (?P<name>[\w.]+): begin -->\n.*?<!-- (?P=name): end -->\n", re.S)


def _marked(name: str, text: str) -> str:
    return f"<!-- {name}: begin -->\n{text.strip()}\n<!-- {name}: end -->\n"


def replace(report: Path, name: str, text: str) -> None:
    """Put ``text`` in ``report`` as the section ``name``: where it was, or at the end."""
    current = report.read_text() if report.exists() else ""
    block = _marked(name, text)
    for match in _BLOCK.finditer(current):
        if match["name"] == name:
            report.write_text(current[: match.start()] + block + current[match.end() :])
            return
    report.write_text(current.rstrip("\n") + "\n\n" + block)


def kept(report: Path) -> str:
    """The sections of ``report`` that other benchmarks wrote (to append when rewriting it)."""
    if not report.exists():
        return ""
    return "".join("\n" + match[0] for match in _BLOCK.finditer(report.read_text()))
