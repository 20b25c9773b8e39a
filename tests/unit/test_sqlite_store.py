"""What only the SQLite store has: a file, its lock, its schema versions, and looking at it read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vtrans.protocol import JobError
from vtrans.server.simulation import state_at
from vtrans.server.stores import StoreError
from vtrans.server.stores.sqlite import VERSION, sqlite_store

pytestmark = pytest.mark.anyio

#: The schema of vtrans 0.1 (schema 1), as its store created it.
SCHEMA_1 = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, idempotency_key TEXT UNIQUE,
    language TEXT NOT NULL, video_seconds REAL NOT NULL, source_url TEXT, callback_url TEXT,
    created_at REAL NOT NULL, planned_end REAL NOT NULL, ends_at REAL NOT NULL, outcome TEXT NOT NULL,
    error_code TEXT, error_message TEXT, progress_exponent REAL NOT NULL, estimate_factor REAL NOT NULL
);
CREATE INDEX jobs_ends_at ON jobs (ends_at);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, url TEXT NOT NULL, due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending', last_error TEXT
);
CREATE INDEX deliveries_due ON deliveries (state, due_at);
"""


def write_version_1(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.execute(
        "INSERT INTO jobs VALUES (7, 'job_" + "a" * 32 + "', 'key-1', 'fr', 60, 'https://e.com/v.mp4', "
        "'http://127.0.0.1:9/h', 1000, 1030, 1012, 'error', 'no_speech_detected', 'No speech.', 1.1, 0.9)"
    )
    db.execute(
        "INSERT INTO jobs VALUES (8, 'job_" + "b" * 32 + "', NULL, 'ja', 10, NULL, NULL, "
        "1001, 1006, 1006, 'completed', NULL, NULL, 0.9, 1.2)"
    )
    db.execute("INSERT INTO meta VALUES ('status_job_id', 'job_" + "b" * 32 + "')")
    db.execute(
        "INSERT INTO deliveries VALUES ('msg_"
        + "a" * 32
        + "', 'job_"
        + "a" * 32
        + "', 'http://127.0.0.1:9/h', 1012, 2, 'pending', 'HTTP 500')"
    )
    db.commit()
    db.close()


async def test_a_file_of_schema_1_is_brought_up_to_date_keeping_everything(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_version_1(path)
    store = sqlite_store(path)
    await store.open()
    try:
        failed = await store.get("job_" + "a" * 32)
        assert failed is not None
        assert (failed.seq, failed.language, failed.idempotency_key, failed.callback_url) == (
            7,
            "fr",
            "key-1",
            "http://127.0.0.1:9/h",
        )
        assert failed.timeline.error == JobError("no_speech_detected", "No speech.")
        assert state_at(failed.timeline, 1020).result == "error"
        assert state_at(failed.timeline, 1010).result == "pending"
        done = await store.get("job_" + "b" * 32)
        assert done is not None
        assert state_at(done.timeline, 1007).result == "completed"
        assert await store.get_meta("status_job_id") == done.id
        delivery = await store.delivery(failed.id)
        assert delivery is not None
        assert (delivery.attempts, delivery.state, delivery.last_error) == (2, "pending", "HTTP 500")
        assert [d.id for d in await store.claim_deliveries(2000, 10, 2100, "me")] == [delivery.id]
        assert await store.count() == 8
    finally:
        await store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == VERSION


async def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {VERSION + 1}").connection.close()
    with pytest.raises(StoreError, match="newer vtrans") as refused:
        await sqlite_store(path).open()
    assert str(path) in str(refused.value)


async def test_a_path_that_cannot_be_a_file_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the SQLite file") as refused:
        await sqlite_store(blocker / "jobs.db").open()
    assert str(blocker / "jobs.db") in str(refused.value)


async def test_garbage_in_place_of_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match="cannot use the SQLite file") as refused:
        await sqlite_store(path).open()
    assert str(path) in str(refused.value)


async def test_a_served_file_can_be_read_by_another_process_read_only(tmp_path: Path) -> None:
    path = tmp_path / "served.db"
    served = sqlite_store(path)
    await served.open()
    await served.set_meta("k", "v")
    look = sqlite_store(path, read_only=True)
    await look.open()
    try:
        assert await look.get_meta("k") == "v"
    finally:
        await look.close()
        await served.close()
