"""How a stored job looks on the wire: the one place that renders a job's state as a :class:`Job`."""

from __future__ import annotations

from datetime import datetime, timezone

from vtrans.protocol import Job
from vtrans.server.simulation import State
from vtrans.server.stores import StoredJob


def _time(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc)


def to_wire(job: StoredJob, state: State, now: float) -> Job:
    """The job as the API reports it at ``now``, in state ``state``."""
    remaining = state.estimated_remaining
    return Job(
        id=job.id,
        result=state.result,
        progress=state.progress,
        language=job.language,
        video_seconds=job.video_seconds,
        created_at=_time(job.timeline.created_at),
        finished_at=_time(state.finished_at),
        estimated_completion_at=None if remaining is None else _time(now + remaining),
        estimated_seconds_remaining=None if remaining is None else max(0.001, round(remaining, 3)),
        error=state.error,
        source_url=job.source_url,
        callback_url=job.callback_url,
    )
