"""The metrics of one app, without a server: a registry per app, and when a job counts as finished."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from vtrans.protocol import JobError
from vtrans.server import ServerConfig, create_app, simulation
from vtrans.server.metrics import Metrics
from vtrans.server.simulation import Timeline
from vtrans.server.stores import StoredJob


def job(ends_at: float = 110.0, outcome: str = "completed", code: str | None = None) -> StoredJob:
    error = None if code is None else JobError(code=code, message="failed")
    timeline = Timeline(
        created_at=100.0,
        planned_end=110.0,
        ends_at=ends_at,
        outcome=outcome,  # type: ignore[arg-type]
        error=error,
        progress_exponent=1.0,
        estimate_factor=1.0,
    )
    return StoredJob(
        id="job_" + "0" * 32,
        seq=1,
        language="es",
        video_seconds=10.0,
        source_url=None,
        callback_url=None,
        timeline=timeline,
    )


def finished(metrics: Metrics) -> dict[tuple[str, str], float]:
    return {
        (s.labels["result"], s.labels["error_code"]): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == "vtrans_jobs_finished_total"
    }


def test_two_apps_in_one_process_keep_their_own_metrics() -> None:
    first, second = (create_app(ServerConfig(store="memory")) for _ in range(2))
    assert first.metrics is not None
    assert second.metrics is not None
    first.metrics.created.inc(3)
    assert first.metrics.registry.get_sample_value("vtrans_jobs_created_total") == 3
    assert second.metrics.registry.get_sample_value("vtrans_jobs_created_total") == 0


def test_no_metrics_means_no_metrics_object() -> None:
    app = create_app(ServerConfig(store="memory", metrics=False))
    assert app.metrics is None


def test_a_job_counts_at_its_end_unless_its_timeline_changed() -> None:
    async def scenario() -> dict[tuple[str, str], float]:
        metrics = Metrics("memory", clock=lambda: 100.0)

        async def lookup_same(job_id: str) -> StoredJob:
            return job()

        async def lookup_cancelled(job_id: str) -> StoredJob:
            return _with(simulation.cancel(job().timeline, 105.0))

        metrics.start(lookup_same)
        await metrics._count_if_unchanged(job())
        metrics.start(lookup_cancelled)
        await metrics._count_if_unchanged(job())  # cancelled meanwhile: the canceller counted it
        return finished(metrics)

    assert asyncio.run(scenario()) == {("completed", ""): 1}


def _with(timeline: Timeline) -> StoredJob:
    base = job()
    return StoredJob(
        id=base.id,
        seq=base.seq,
        language=base.language,
        video_seconds=base.video_seconds,
        source_url=None,
        callback_url=None,
        timeline=timeline,
    )


def test_a_cancellation_counts_once_and_drops_the_timer() -> None:
    async def scenario() -> tuple[dict[tuple[str, str], float], int]:
        metrics = Metrics("memory", clock=lambda: 100.0)

        async def lookup(job_id: str) -> StoredJob:
            return job()

        metrics.start(lookup)
        metrics.job_created(job())
        timers = len(metrics._timers)
        metrics.job_cancelled(_with(simulation.cancel(job().timeline, 105.0)))
        assert not metrics._timers
        return finished(metrics), timers

    counted, timers = asyncio.run(scenario())
    assert timers == 1
    assert counted == {("error", "cancelled"): 1}


def test_unknown_error_codes_are_one_label_value() -> None:
    metrics = Metrics("memory")
    metrics.job_cancelled(job(outcome="error", code="my_own_test_code"))
    metrics.job_cancelled(job(outcome="error", code="no_speech_detected"))
    assert finished(metrics) == {("error", "other"): 1, ("error", "no_speech_detected"): 1}
