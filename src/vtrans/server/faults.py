"""Faults to inject (parsed here; injected by :mod:`vtrans.server.http.faults`, which documents them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

BEFORE = ("500", "503", "429", "reset", "latency")
AFTER = ("503-after", "truncate", "drip")
KINDS = BEFORE + AFTER
DEFAULT_PARAM = {"429": 1.0, "latency": 1.0, "drip": 5.0}
#: ``KIND`` or ``KIND:SECONDS``, seconds a decimal from 0 to 600 (``/openapi.json`` says the same).
FAULT_PATTERN = (
    "^(?:" + "|".join(sorted(KINDS, key=len, reverse=True)) + ")"
    "(?::(?:600(?:\\.0+)?|[1-5]?[0-9]{1,2}(?:\\.[0-9]+)?))?$"
)
_FAULT_RE = re.compile(FAULT_PATTERN)


@dataclass(frozen=True)
class Fault:
    kind: str
    param: float

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``KIND`` or ``KIND:PARAM``; ``ValueError`` says what is wrong."""
        kind, _, raw = text.strip().partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(KINDS)}")
        try:
            param = float(raw) if raw else DEFAULT_PARAM.get(kind, 0.0)
        except ValueError:
            raise ValueError(f"the parameter of {kind} is a number of seconds, not {raw!r}") from None
        if not 0 <= param <= 600:
            raise ValueError(f"the parameter of {kind} must be between 0 and 600 seconds")
        if not _FAULT_RE.fullmatch(text.strip()):
            raise ValueError(
                f"a fault is KIND or KIND:SECONDS, seconds a decimal like 2 or 0.5, not {text!r}"
            )
        return cls(kind, param)


def parse_plan(spec: str) -> tuple[tuple[Fault, float], ...]:
    """``KIND[:PARAM]@RATE`` items, comma-separated; the rates add up to at most 1."""
    plan = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        fault, at, rate = item.rpartition("@")
        try:
            probability = float(rate)
        except ValueError:
            probability = -1.0
        if not at or not 0 < probability <= 1:
            raise ValueError(f"a fault rate is KIND[:PARAM]@RATE with 0 < RATE <= 1 (503@0.05), not {item!r}")
        plan.append((Fault.parse(fault), probability))
    if sum(rate for _, rate in plan) > 1:
        raise ValueError("the fault rates add up to more than 1")
    return tuple(plan)
