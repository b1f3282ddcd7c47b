"""`edgebus bench sync` runs end to end (no timing is asserted: numbers go to docs)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from edgebus.bench.mosquitto import mosquitto_binary

pytestmark = pytest.mark.integration

ENV = {k: v for k, v in os.environ.items() if not k.startswith("EDGEBUS_")}


def test_bench_sync_writes_its_table(tmp_path):
    if mosquitto_binary() is None:
        from tests.conftest import missing_service

        missing_service("the mosquitto binary is needed by bench sync")
    result = subprocess.run(
        [sys.executable, "-m", "edgebus", "bench", "sync", "--rows", "1000", "--nodes", "1,2",
         "--targets", "sqlite", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "bench_sync.csv").open()))
    assert [(r["target"], r["nodes"], r["rows"]) for r in rows] == [
        ("sqlite", "1", "1000"),
        ("sqlite", "2", "1000"),
    ]
    assert all(float(r["rows_per_s"]) > 0 and float(r["direct_rows_per_s"]) > 0 for r in rows)


def test_bench_sync_rejects_an_unknown_target():
    result = subprocess.run(
        [sys.executable, "-m", "edgebus", "bench", "sync", "--targets", "oracle"],
        capture_output=True, text=True, timeout=60, env=ENV,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --targets 'oracle': expected sqlite and/or postgresql")
