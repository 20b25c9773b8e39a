"""Words for numbers: durations, countdowns, video lengths, clock times, a job's estimate."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from vtrans.protocol import Job


def fmt_duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f} s"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_countdown(seconds: float) -> str:
    """Whole seconds, rounded up, so a countdown does not flicker: ``8 s``, ``1 min 05 s``."""
    whole = max(1, math.ceil(seconds))
    return f"{whole} s" if whole < 60 else fmt_duration(float(whole))


def fmt_length(seconds: float) -> str:
    """A video's length: ``10 s``, ``1 min 30 s``, ``5 min``, ``1 h 20 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:g} s"
    minutes, secs = divmod(whole, 60)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min" + (f" {secs} s" if secs else "")


def clock_time(moment: datetime) -> str:
    """A server timestamp as local wall-clock time, ``14:03:41``."""
    return moment.astimezone().strftime("%H:%M:%S")


def seconds_left(job: Job, now: datetime | None = None) -> float | None:
    """The service's estimate of the time left: the relative one if sent, else from the absolute one."""
    if job.estimated_seconds_remaining is not None:
        return job.estimated_seconds_remaining
    if job.estimated_completion_at is not None:
        now = now or datetime.now(timezone.utc)
        return (job.estimated_completion_at - now).total_seconds()
    return None


def server_duration(job: Job) -> float | None:
    """How long the job took on the service: ``created_at`` to ``finished_at``."""
    if job.created_at is None or job.finished_at is None:
        return None
    return (job.finished_at - job.created_at).total_seconds()


def short_id(job_id: str) -> str:
    """``job_3f2a1b…``: enough to tell jobs apart on one screen."""
    return job_id if len(job_id) <= 11 else f"{job_id[:10]}…"
