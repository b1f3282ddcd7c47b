"""Sync into PostgreSQL (a schema of its own per run, dropped afterwards)."""

from __future__ import annotations

import signal
import uuid

import pytest

from edgebus.messages import SyncBatch
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.wire import block, unpack
from tests.integration.sync_harness import (
    assert_same_rows,
    global_count,
    row,
    start_cloud,
    start_writer,
    wait_until,
)

pytestmark = pytest.mark.integration

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url():
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(SERVER)
    schema = f"edgebus_test_{uuid.uuid4().hex[:10]}"
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as exc:
        engine.dispose()
        from tests.conftest import missing_service

        missing_service(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc.orig}")
    yield f"{SERVER}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def test_upsert_is_idempotent_in_postgres(pg_url):
    store = GlobalStore(pg_url)
    store.open()
    try:
        names = ["node", "seq", "ts", *row(0)]
        values = [["n", i + 1, 1.0 + i, *row(i).values()] for i in range(5)]
        batch = SyncBatch("n", 1, 5, [block("results", names, values)], store="s1")
        grouped = unpack(batch.node, batch.store, batch.first_seq, batch.last_seq, batch.rows)
        for _ in range(3):
            store.store([grouped], {("n", "s1"): 5})
        assert store.count("results", ["n"]) == 5
        assert store.progress("n", "s1") == 5
    finally:
        store.close()


def test_a_row_postgres_refuses_is_quarantined_not_blocking(pg_url):
    store = GlobalStore(pg_url)
    store.open()
    try:
        names = ["node", "seq", "ts", *row(0)]
        values = [["n", i + 1, 1.0 + i, *row(i).values()] for i in range(3)]
        grouped = unpack("n", "s1", 1, 3, [block("results", names, values)])
        # Longer than the column: SQLite would take it, PostgreSQL refuses the batch.
        grouped["results"][1]["camera"] = "c" * 300
        assert store.store([grouped], {("n", "s1"): 3}) == 1
        assert [r["seq"] for r in store.rows("results", ["n"])] == [1, 3]
        assert store.progress("n", "s1") == 3
    finally:
        store.close()


def test_two_nodes_one_killed_sync_into_postgres(mosquitto_url, tmp_path, pg_url):
    cloud = start_cloud(mosquitto_url, tmp_path, pg_url)
    steady = start_writer(mosquitto_url, "pg-steady", tmp_path, 3000)
    crashy = start_writer(mosquitto_url, "pg-crashy", tmp_path, 3000)
    restarted = None
    try:
        wait_until(lambda: _count(pg_url, "pg-crashy") >= 500, 60, "rows in PostgreSQL")
        crashy.send_signal(signal.SIGKILL)
        crashy.wait(10)
        restarted = start_writer(mosquitto_url, "pg-crashy", tmp_path, 3000)
        for writer in (steady, restarted):
            out, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err
            assert "synced" in out and "not synced" not in out, out + err
        assert_same_rows(tmp_path, pg_url, "pg-steady", expected=3000)
        assert_same_rows(tmp_path, pg_url, "pg-crashy", expected=3000)
    finally:
        for process in (steady, crashy, restarted, cloud):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


def _count(url: str, node: str) -> int:
    try:
        return global_count(url, [node])
    except Exception:  # the cloud may not have created the tables yet
        return 0
