"""Typed store records: each one's fields are its table's columns, less the keys the
store adds, so a record can neither miss a column nor name one the table lacks."""

from __future__ import annotations

import dataclasses

import pytest

from edgebus.messages import Result
from edgebus.storage.local import LocalStore
from edgebus.storage.models import ROW_MODELS, SENT, columns
from edgebus.storage.records import (
    RECORD_TYPES,
    EventRecord,
    FrameRecord,
    ResultRecord,
    columns_of,
)

STORE_KEYS = {"node", "store", "seq"}

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("record_type", RECORD_TYPES, ids=lambda t: t.__name__)
def test_a_record_has_exactly_its_tables_columns(record_type):
    fields = {field.name for field in dataclasses.fields(record_type)}
    assert fields == set(columns(record_type.TABLE)) - STORE_KEYS


def test_every_synced_table_has_a_record():
    assert {record_type.TABLE for record_type in RECORD_TYPES} == set(ROW_MODELS)


def test_a_result_record_carries_the_result():
    result = Result("edge-1", "cam-1", 7, [3, 1], [0.9, 0.1], 100, 2, 12.5, ts=5.0,
                    incarnation=2, deadline_met=True)  # fmt: skip
    record = ResultRecord.of(result)
    assert columns_of(record) == {
        "camera": "cam-1", "incarnation": 2, "frame_id": 7, "top_k": [3, 1],
        "scores": [0.9, 0.1], "latency_ms": 12.5, "offloaded": True, "deadline_met": True,
        "ts": 5.0,
    }  # fmt: skip


async def test_records_are_stored_as_rows(tmp_path):
    store = LocalStore(tmp_path / "s.sqlite3", "cam-1")
    await store.start()
    try:
        frame = FrameRecord(camera="cam-1", incarnation=1, frame_id=4, direction=SENT,
                            capture_ts=1.0, deadline_ts=1.5, codec="pnc", model_id="m",
                            bytes_sent=900)  # fmt: skip
        store.add(frame.TABLE, **columns_of(frame))
        event = EventRecord(kind="offload_decision", detail={"offload": True})
        store.add(event.TABLE, **columns_of(event))
        await store.flush()
        (row,) = store.all_rows("frames")
        assert row["frame_id"] == 4 and row["bytes_sent"] == 900 and row["edge"] == ""
        assert row["ts"] > 0  # recorded now when the record leaves ts unset
        (stored_event,) = store.all_rows("events")
        assert stored_event["detail"] == {"offload": True}
    finally:
        await store.close()
