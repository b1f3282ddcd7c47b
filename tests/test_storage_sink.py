"""The sink's watermark and batch checks, and the idempotent upsert into SQLite."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebus.storage.global_store import GlobalStore, Progress
from edgebus.storage.wire import BadBatch, block, unpack

NAMES = ["node", "seq", "ts", "kind", "detail"]


def events(node: str, first: int, last: int) -> list[dict]:
    return [
        block(
            "events",
            NAMES,
            [[node, s, float(s), "qos_request", {"s": s}] for s in range(first, last + 1)],
        )
    ]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_watermark_is_the_highest_contiguous_seq(data):
    # Batches of a 1..n stream arrive in any order, some twice, some never.
    n = data.draw(st.integers(1, 60))
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=10))) if n > 1 else []
    ranges = list(zip([1, *(c + 1 for c in cuts)], [*cuts, n], strict=True))
    arrived = data.draw(st.lists(st.sampled_from(ranges), max_size=30))
    progress = Progress(0)
    for first, last in arrived:
        progress = progress.with_range(first, last)
    stored = {s for first, last in arrived for s in range(first, last + 1)}
    expected = 0
    while expected + 1 in stored:
        expected += 1
    assert progress.contiguous == expected
    assert all(low > expected + 1 for low, _ in progress.ranges)


def test_unpack_checks_the_header_against_the_rows():
    rows = unpack("a", "s1", 1, 3, events("a", 1, 3))["events"]
    assert len(rows) == 3 and {r["store"] for r in rows} == {"s1"}
    with pytest.raises(BadBatch, match=r"do not cover seqs 1\.\.4"):
        unpack("a", "s1", 1, 4, events("a", 1, 3))
    with pytest.raises(BadBatch, match="rows of another node"):
        unpack("a", "s1", 1, 3, events("b", 1, 3))
    with pytest.raises(BadBatch, match="do not fit table"):
        unpack("a", "s1", 1, 1, [block("events", ["node", "seq", "colour"], [["a", 1, "red"]])])
    with pytest.raises(BadBatch, match="malformed block"):
        unpack("a", "s1", 1, 1, [{"table": "nope", "columns": [], "values": []}])
    with pytest.raises(BadBatch, match="wrong number of values"):
        unpack("a", "s1", 1, 1, [block("events", NAMES, [["a", 1]])])
    with pytest.raises(BadBatch, match="no store identity"):
        unpack("a", "", 1, 3, events("a", 1, 3))


def test_upsert_is_idempotent_and_keeps_the_first_copy(tmp_path):
    store = GlobalStore(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    store.open()
    store.store([unpack("a", "s", 1, 3, events("a", 1, 3))], {("a", "s"): 3})
    changed = events("a", 2, 4)
    changed[0]["values"][0][3] = "model_switch"  # a resend can never overwrite a stored row
    store.store(
        [unpack("a", "s", 2, 4, changed), unpack("b", "t", 1, 2, events("b", 1, 2))],
        {("a", "s"): 4},
    )
    store.store([unpack("a", "s", 1, 3, events("a", 1, 3))], {})
    rows = store.rows("events", ["a"])
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert [r["kind"] for r in rows] == ["qos_request"] * 4  # seq 2 kept its first copy
    assert store.count("events") == 6
    assert store.progress("a", "s") == 4 and store.progress("b", "t") == 0
    assert store.nodes() == ["a"]
    store.close()


def test_a_replaced_store_is_a_new_stream_beside_the_old_one(tmp_path):
    store = GlobalStore(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    store.open()
    store.store([unpack("a", "old", 1, 3, events("a", 1, 3))], {("a", "old"): 3})
    # Same node, seqs from 1 again, but from a store with another identity.
    fresh = events("a", 1, 2)
    fresh[0]["values"][0][3] = "model_switch"
    store.store([unpack("a", "new", 1, 2, fresh)], {("a", "new"): 2})
    rows = store.rows("events", ["a"])
    assert len(rows) == 5
    assert {(r["store"], r["seq"], r["kind"]) for r in rows if r["store"] == "new"} == {
        ("new", 1, "model_switch"),
        ("new", 2, "qos_request"),
    }
    assert store.streams() == {("a", "old"): 3, ("a", "new"): 2}
    store.close()


def test_a_row_the_database_refuses_is_quarantined_and_the_watermark_moves(tmp_path):
    store = GlobalStore(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    store.open()
    rows = unpack("a", "s", 1, 3, events("a", 1, 3))
    rows["events"][1]["kind"] = None  # NOT NULL: the batch as a whole fails
    assert store.store([rows], {("a", "s"): 3}) == 1
    assert [r["seq"] for r in store.rows("events", ["a"])] == [1, 3]
    assert store.progress("a", "s") == 3
    with store.engine.connect() as connection:
        quarantined = connection.exec_driver_sql(
            "SELECT node, seq, table_name, reason FROM quarantine"
        ).all()
    assert len(quarantined) == 1 and quarantined[0][:3] == ("a", 2, "events")
    assert "NOT NULL" in quarantined[0][3]
    store.close()
