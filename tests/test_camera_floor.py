"""The floor camera of bench_camera_floor.py does a camera's per-frame work for real: every
frame due in the window is captured, encoded, sent, answered and recorded, and its rows
are synced and acknowledged."""

from __future__ import annotations

import sqlite3

import pytest

from edgebus.bench.floor_fleet import run_floor_fleet

pytestmark = pytest.mark.timeout(90)


def _rows(path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"select count(*) from {table}").fetchone()[0])


def test_floor_cameras_send_record_and_sync_every_frame(mosquitto_url, tmp_path):
    fleet = run_floor_fleet(mosquitto_url, tmp_path, cameras=2, period_ms=100, warmup_s=0.5,
                            duration_s=2.0, sync_interval_s=0.5)  # fmt: skip
    assert len(fleet.reports) == 2
    for index, report in enumerate(fleet.reports):
        assert 19 <= report.frames <= 21, report  # due in [0.5 s, 2.5 s) at 100 ms
        assert 0 < report.codec_cpu_s < report.cpu_s, report
        recorded = _rows(tmp_path / f"floor-{index}.sqlite3", "frames")
        assert recorded >= report.frames + 4  # the warm-up's frames are recorded too
        assert _rows(tmp_path / f"floor-{index}.sqlite3", "open_frames") == 0
        # Synced every 0.5 s: all but the last interval's rows were acknowledged.
        assert recorded - 6 <= report.rows_synced <= recorded, report
    whole, codec = fleet.ms_per_frame()
    assert 0 < codec < whole
