"""A batch's open-frame changes, netted to at most one close and one open statement, leave
the open_frames table exactly as applying them one by one would."""

from __future__ import annotations

import random

import pytest

from edgebus.storage.local_writes import OpenChange, net_open_changes

pytestmark = pytest.mark.timeout(30)

Table = dict[tuple[int, int], dict]


def key(frame: dict) -> tuple[int, int]:
    return frame["incarnation"], frame["frame_id"]


def one_by_one(table: Table, changes: list[OpenChange]) -> Table:
    table = dict(table)
    for opened, frame in changes:
        if opened:
            table.setdefault(key(frame), frame)  # the store's upsert ignores a duplicate
        else:
            table.pop(key(frame), None)
    return table


def netted(table: Table, changes: list[OpenChange]) -> Table:
    table = dict(table)
    closes, opens = net_open_changes(changes)
    for frame in closes:
        table.pop(key(frame), None)
    for frame in opens:
        table.setdefault(key(frame), frame)
    return table


def test_netted_changes_leave_the_table_as_one_by_one_would():
    rng = random.Random(7)
    for _ in range(2000):
        keys = [(1, i) for i in range(4)]
        before = {k: {"incarnation": k[0], "frame_id": k[1], "v": "old"}
                  for k in keys if rng.random() < 0.3}  # fmt: skip
        changes: list[OpenChange] = []
        for step in range(rng.randint(0, 8)):
            incarnation, frame_id = rng.choice(keys)
            frame = {"incarnation": incarnation, "frame_id": frame_id, "v": step}
            changes.append((rng.random() < 0.5, frame))
        assert netted(before, changes) == one_by_one(before, changes), (before, changes)


def test_a_frame_answered_before_the_commit_costs_only_its_close():
    frame = {"incarnation": 1, "frame_id": 5, "edge": "edge-1"}
    closes, opens = net_open_changes([(True, frame), (False, {"incarnation": 1, "frame_id": 5})])
    assert [key(f) for f in closes] == [(1, 5)] and opens == []
