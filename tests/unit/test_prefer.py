"""``Prefer`` (RFC 7240): the ``wait`` and ``progress`` preferences read as sent, and a value not
understood (``wait=1e309``, ``wait=5x``) ignored rather than read as a prefix of it."""

from __future__ import annotations

import pytest

from vtrans.protocol import parse_prefer_progress, parse_prefer_wait


@pytest.mark.parametrize(
    ("header", "wait", "progress"),
    [
        ("wait=5", 5.0, None),
        ('wait="5"', 5.0, None),
        ("respond-async, wait=10.5", 10.5, None),
        ("WAIT = 30; progress=0.1", 30.0, 0.1),
        ("wait=30, progress=1", 30.0, 1.0),
        ("wait=1e309", None, None),
        ("wait=5x", None, None),
        ("wait=-1", None, None),
        ("await=5", None, None),
        ("wait=30, progress=0.1e3", 30.0, None),
        ("wait=30, progress=2", 30.0, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_preferences(header: str | None, wait: float | None, progress: float | None) -> None:
    assert parse_prefer_wait(header) == wait
    assert parse_prefer_progress(header) == progress
