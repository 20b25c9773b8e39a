"""A guided tour of vtrans: start the real service, use the client library, read its logs.

This is the task statement's deliverable — "a small integration test that spins up your server
and uses your client library to demonstrate the usage and print logs". Watch it with

    .venv/bin/pytest tests/integration/test_example.py -s

Each step prints what it does; the library's own log lines (``vtrans.client``) are printed too.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import vtrans


@pytest.fixture
def logs() -> Iterator[None]:
    """Print the library's log lines: every request and decision (DEBUG), one line per wait (INFO)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("    log  %(levelname)-5s %(message)s"))
    logger = logging.getLogger("vtrans.client")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def step(text: str) -> None:
    print(f"\n>>> {text}")


@pytest.mark.integration
def test_a_tour_of_the_client_library(service: Any, logs: None) -> None:
    step(f"The service runs on {service.url} (a real process, SQLite file). Connect a client.")
    with vtrans.Client(service.url) as client:
        step("The task's GET /status: pending for a while, then one terminal result. wait() polls it well.")
        status = client.wait(timeout=30)
        print(f"    /status says {status.result!r}")
        assert status.result == "completed"

        step("Submit a translation. The sandbox lets a test pin its timeline: this one takes 2 s.")
        job = client.create("es", video_seconds=90, simulate={"duration_seconds": 2})
        assert job.id is not None
        print(f"    created {job.id}: {job.result}, done in about {job.estimated_seconds_remaining:.1f}s")

        step("Wait for it. The client long-polls: the service answers the moment the job ends.")
        started = time.monotonic()
        done = client.wait(job.id, timeout=30)
        print(f"    {done.result} after {time.monotonic() - started:.1f}s (progress {done.progress:.0%})")
        assert done.result == "completed"

        step("A failed translation raises JobFailed, with the service's error code and message.")
        failing = client.create(
            "fr", video_seconds=30, simulate={"duration_seconds": 0.5, "outcome": "error"}
        )
        assert failing.id is not None
        with pytest.raises(vtrans.JobFailed) as failed:
            client.wait(failing.id, timeout=30)
        print(f"    JobFailed: code={failed.value.code!r} message={failed.value.message!r}")

        step("A deadline is kept: WaitTimeout carries the last state seen; the job can be cancelled.")
        slow = client.create("de", video_seconds=600)
        assert slow.id is not None
        with pytest.raises(vtrans.WaitTimeout) as timed_out:
            client.wait(slow.id, timeout=1.5, cancel_on_timeout=True)
        last = timed_out.value.job
        assert last is not None
        assert last.error is not None
        print(f"    WaitTimeout after {timed_out.value.waited:.1f}s; now {last.result}/{last.error.code}")

        step("Follow progress as it happens, over Server-Sent Events.")
        streamed = client.create("ja", video_seconds=60, simulate={"duration_seconds": 2.5})
        assert streamed.id is not None
        seen = [(state.result, state.progress) for state in client.events(streamed.id)]
        print(f"    states: {seen}")
        assert seen[-1][0] == "completed"

        step("Wait for many jobs through one request at a time, each reported as it finishes.")
        ids = [client.create("it", 30, simulate={"duration_seconds": 0.5 * (i + 1)}).id for i in range(4)]
        for finished in client.as_completed([i for i in ids if i]):
            print(f"    {finished.id} {finished.result}")

        step("Mistakes are typed errors with the service's explanation, never a traceback from inside.")
        with pytest.raises(vtrans.InvalidRequest) as invalid:
            client.create("xx", video_seconds=-1)
        print(f"    InvalidRequest: {invalid.value}")
        with pytest.raises(vtrans.NotFound) as missing:
            client.get("job_" + "0" * 32)
        print(f"    NotFound: {missing.value}")
