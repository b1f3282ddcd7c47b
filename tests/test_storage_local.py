"""The local store: gapless per-node seqs, WAL, retention, and full/locked/corrupt files."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import event

from edgebus.storage.errors import SchemaMismatch, StoreCorrupt, StoreFull, StoreLocked
from edgebus.storage.local import LocalStore


def result(i: int, **extra: object) -> dict[str, object]:
    return {
        "camera": "cam",
        "frame_id": i,
        "top_k": [1, 2],
        "scores": [0.6, 0.4],
        "latency_ms": 1.5,
        "offloaded": False,
        "deadline_met": True,
        **extra,
    }


def seqs(store: LocalStore) -> list[int]:
    return [r["seq"] for r in store.all_rows("results")]


async def test_seqs_are_gapless_across_tables_and_restarts(tmp_path):
    store = LocalStore(tmp_path / "n.sqlite3", "n")
    await store.start()
    for i in range(5):
        store.add("results", **result(i))
        store.add("events", kind="qos_request", detail={"i": i})
    assert await store.flush() == 10
    await store.close()
    again = LocalStore(tmp_path / "n.sqlite3", "n")
    await again.start()
    assert again.last_seq == 10
    again.add("results", **result(5))
    assert await again.flush() == 11
    assert seqs(again) == [1, 3, 5, 7, 9, 11]
    assert [r["seq"] for r in again.all_rows("events")] == [2, 4, 6, 8, 10]
    with again.engine.connect() as connection:  # type: ignore[union-attr]
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    await again.close()


async def test_unknown_table_or_column_is_refused(tmp_path):
    store = LocalStore(tmp_path / "n.sqlite3", "n")
    with pytest.raises(ValueError, match="unknown table 'nope'"):
        store.add("nope", x=1)
    with pytest.raises(ValueError, match="has no column"):
        store.add("results", **result(0), colour="red")


async def test_disk_full_keeps_old_rows_and_retries_new_ones(tmp_path, caplog):
    store = LocalStore(tmp_path / "n.sqlite3", "n", flush_interval_s=0.02)
    await store.start()
    for i in range(20):
        store.add("results", **result(i))
    await store.flush()
    pages = {"limit": "PRAGMA max_page_count = 1"}

    def limit(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.execute(pages["limit"])

    assert store.engine is not None
    event.listen(store.engine, "connect", limit)
    store.engine.dispose()  # new connections get the page limit: the disk is "full"
    for i in range(20, 2020):
        store.add("results", **result(i, scores=[0.5] * 60))
    with pytest.raises(StoreFull, match="database or disk is full"):
        await store.flush()
    assert store.pending == 2000
    await asyncio.sleep(0.1)
    assert store._writer is not None and not store._writer.done()  # still running
    assert "\n" not in str(store.error)
    event.remove(store.engine, "connect", limit)
    store.engine.dispose()
    assert await store.flush() == 2020
    assert seqs(store) == list(range(1, 2021))
    await store.close()


async def test_locked_database_is_reported_and_rows_wait(tmp_path):
    path = tmp_path / "n.sqlite3"
    store = LocalStore(path, "n", busy_timeout_s=0.1)
    await store.start()
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN EXCLUSIVE")
    store.add("results", **result(0))
    with pytest.raises(StoreLocked, match="database is locked"):
        await store.flush()
    assert store.pending == 1
    blocker.rollback()
    blocker.close()
    assert await store.flush() == 1
    await store.close()


async def test_corrupt_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "n.sqlite3"
    path.write_bytes(b"\x00garbage" * 1000)
    store = LocalStore(path, "n")
    with pytest.raises(StoreCorrupt, match=r"not a usable SQLite database"):
        store.open_sync()
    assert path.read_bytes() == b"\x00garbage" * 1000


async def test_other_schema_version_is_refused(tmp_path):
    path = tmp_path / "n.sqlite3"
    store = LocalStore(path, "n")
    store.open_sync()
    store.engine.dispose()  # type: ignore[union-attr]
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE edgebus_schema SET version = 99")
    with pytest.raises(SchemaMismatch, match="schema version 99 found"):
        LocalStore(path, "n").open_sync()


async def test_retention_prunes_only_old_synced_rows(tmp_path):
    store = LocalStore(tmp_path / "n.sqlite3", "n")
    await store.start()
    for i in range(10):
        store.add("results", **result(i), ts=1000.0 + i)  # old
    for i in range(10, 15):
        store.add("results", **result(i), ts=9000.0)  # new
    await store.flush()
    await store.mark_synced(6)  # seqs 1..6 synced
    await store._saver  # type: ignore[misc]  # pruning waits for the saved watermark
    assert await store.prune(older_than_ts=5000.0) == 6
    assert seqs(store) == list(range(7, 16))
    await store.mark_synced(15)
    await store._saver  # type: ignore[misc]
    assert await store.prune(older_than_ts=5000.0) == 4
    await store.close()
    reopened = LocalStore(tmp_path / "n.sqlite3", "n")
    reopened.open_sync()
    assert reopened.last_seq == 15 and reopened.acked_seq == 15  # the counter never goes back


async def test_a_row_the_store_cannot_take_is_quarantined_and_the_rest_written(tmp_path):
    store = LocalStore(tmp_path / "n.sqlite3", "n")
    await store.start()
    store.add("results", **result(0))
    store.add("results", **result(1, latency_ms=float("nan")))  # SQLite would store NULL
    store.add("results", **result(2, scores=[float("inf")]))
    store.add("frames", camera="c", frame_id=3, direction="sent", capture_ts=1.0,
              deadline_ts=2.0, codec="pnc", model_id="m" * 100)  # fmt: skip
    store.add("results", **result(4))
    assert await store.flush() == 2  # the two good rows, gapless
    assert seqs(store) == [1, 2]
    assert store.stats.rows_quarantined == 3
    with store.engine.connect() as connection:  # type: ignore[union-attr]
        kept = connection.exec_driver_sql("SELECT table_name, reason, row FROM quarantine").all()
    assert [k[0] for k in kept] == ["results", "results", "frames"]
    assert "latency_ms" in kept[0][1] and "NaN" in kept[0][2]
    assert "model_id is longer than 64" in kept[2][1]
    await store.close()


async def test_the_store_keeps_its_identity_and_a_new_file_gets_a_new_one(tmp_path):
    first = LocalStore(tmp_path / "n.sqlite3", "n")
    await first.start()
    identity = first.store_id
    await first.close()
    again = LocalStore(tmp_path / "n.sqlite3", "n")
    await again.start()
    assert again.store_id == identity and len(identity) == 32
    await again.close()
    (tmp_path / "n.sqlite3").unlink()
    fresh = LocalStore(tmp_path / "n.sqlite3", "n")
    await fresh.start()
    assert fresh.store_id != identity
    await fresh.close()
