"""`edgebus audit` over hand-made stores: each frame's records classified, and a camera's
open frames closed in the same transaction as the record that answers them."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import event

from edgebus.storage.audit import audit, local_store_paths
from edgebus.storage.errors import StoreFull
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.local import LocalStore

pytestmark = pytest.mark.timeout(60)

INCARNATION = 5


def frame(frame_id: int, direction: str, **extra: object) -> dict[str, object]:
    return {"camera": "cam", "incarnation": INCARNATION, "frame_id": frame_id,
            "direction": direction, "capture_ts": 1.0, "deadline_ts": 1.3, "codec": "pnc",
            "model_id": "m", **extra}  # fmt: skip


def result(frame_id: int) -> dict[str, object]:
    return {
        "camera": "cam",
        "incarnation": INCARNATION,
        "frame_id": frame_id,
        "top_k": [1],
        "scores": [1.0],
        "latency_ms": 5.0,
        "offloaded": True,
        "deadline_met": True,
    }


async def open_store(tmp_path, node: str) -> LocalStore:
    store = LocalStore(tmp_path / "stores" / f"{node}.sqlite3", node)
    await store.start()
    return store


async def test_each_frame_is_classified_by_its_records(tmp_path):
    (tmp_path / "stores").mkdir()
    GlobalStore(f"sqlite:///{tmp_path}/global.sqlite3").open()
    camera = await open_store(tmp_path, "cam")
    edge = await open_store(tmp_path, "edge-1")
    for frame_id in range(5):
        camera.add("frames", **frame(frame_id, "sent"))
    edge.add("results", **result(0))  # 0: a result
    edge.add("frames", **frame(1, "dropped", reason="overload: waited 1.20 s"))  # 1: dropped
    edge.add("results", **result(2))  # 2: two records
    camera.add("frames", **frame(2, "dropped", reason="no outcome from edge-1 within 30 s"))
    camera.mark_open(
        {
            "incarnation": INCARNATION,
            "frame_id": 3,
            "edge": "",
            "capture_ts": 1.0,
            "deadline_ts": 1.3,
            "codec": "pnc",
            "model_id": "m",
            "bytes_sent": 9,
        }
    )
    # 3: open at the camera, no record yet (awaiting); 4: no record, not open (lost)
    await camera.flush()
    await edge.flush()
    await camera.close()
    await edge.close()

    report = audit(local_store_paths(tmp_path), f"sqlite:///{tmp_path}/global.sqlite3")
    (cam,) = report.cameras
    assert (cam.captured, cam.results, cam.dropped) == (5, 2, 2)
    assert dict(cam.reasons) == {"overload": 1, "no outcome from edge-# within # s": 1}
    assert cam.duplicated == [("cam", INCARNATION, 2)]
    assert cam.awaiting == [("cam", INCARNATION, 3)]
    assert cam.lost == [("cam", INCARNATION, 4)]
    assert not report.ok
    # Every row is local only: unsynced, not lost (no ack covers it).
    assert {s.node: (s.unsynced, s.lost) for s in report.streams} == {
        "cam": (6, 0),
        "edge-1": (3, 0),
    }


async def test_a_frame_is_closed_only_together_with_its_record(tmp_path):
    store = LocalStore(tmp_path / "cam.sqlite3", "cam", flush_interval_s=0.02)
    await store.start()
    opened = {"incarnation": INCARNATION, "frame_id": 1, "edge": "", "capture_ts": 1.0,
              "deadline_ts": 1.3, "codec": "pnc", "model_id": "m", "bytes_sent": 9}  # fmt: skip
    store.mark_open(opened)
    await store.flush()

    def disk_full(conn, cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO frames"):
            raise sqlite3.OperationalError("database or disk is full")

    assert store.engine is not None
    event.listen(store.engine, "before_cursor_execute", disk_full)
    store.mark_closed(INCARNATION, 1)
    store.add("frames", **frame(1, "dropped", reason="refused by edge-1: too late"))
    with pytest.raises(StoreFull):
        await store.flush()
    # The record could not be written, so the frame is still open: a crash now leaves it
    # to be asked about again, never closed without its record.
    assert [f["frame_id"] for f in await store.open_frames()] == [1]
    event.remove(store.engine, "before_cursor_execute", disk_full)
    await store.flush()
    assert await store.open_frames() == []
    assert [r["direction"] for r in store.all_rows("frames")] == ["dropped"]
    await store.close()
