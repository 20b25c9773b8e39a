"""BENCHMARKS.md holds sections of several benchmarks: each replaces its own and keeps the others'."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import sections


def test_a_section_is_added_then_replaced_in_place(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\npolling\n")
    sections.replace(report, "batch.py", "## Many jobs\nfirst run")
    sections.replace(report, "other.py", "## Other\nx")
    sections.replace(report, "batch.py", "## Many jobs\nsecond run")
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\npolling\n")
    assert "first run" not in text
    assert text.index("second run") < text.index("## Other"), "replaced where it was"
    assert text.count("<!-- batch.py: begin -->") == 1


def test_a_rewrite_of_the_rest_keeps_the_sections(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\nold polling\n")
    sections.replace(report, "batch.py", "## Many jobs\nfigures")
    report.write_text("# Benchmarks\n\nnew polling\n" + sections.kept(report))  # as polling.py does
    text = report.read_text()
    assert "new polling" in text
    assert "old polling" not in text
    assert "## Many jobs\nfigures\n<!-- batch.py: end -->" in text
