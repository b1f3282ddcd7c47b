"""The `ents` experiment part on a micro preset: files, rows and the three targets."""

from __future__ import annotations

import csv

from edgebus.experiments import scheduling_ents
from edgebus.experiments.scheduling_ents import Preset
from edgebus.research.ents import SCHEDULERS

MICRO = Preset(
    seeds=1,
    nodes=(8,),
    jobs=(6,),
    bandwidths=(1.0, 10.0),
    overhead_nodes=(10, 50),
    overhead_repeats=1,
    default=(8, 6, 1.0),
    frames=20,
)


def test_micro_run_writes_files_rows_and_checks(tmp_path):
    ticks = []
    report = scheduling_ents.run_preset(tmp_path, MICRO, ticks.append)
    assert report.name == "ents"
    names = {path.name for path in report.files}
    for knob in ("nodes", "jobs", "bandwidth", "overhead"):
        assert f"ents_{knob}.csv" in names and f"ents_{knob}.png" in names
    assert all(path.exists() and path.stat().st_size > 0 for path in report.files)
    with (tmp_path / "ents_runs.csv").open() as handle:
        runs = list(csv.DictReader(handle))
    main = [r for r in runs if r["variant"] == "main"]
    # default point, 10 Mbps point; each with every scheduler
    assert {r["scheduler"] for r in main} == set(SCHEDULERS)
    assert len(main) == 2 * len(SCHEDULERS)
    assert all(float(r["throughput_fps"]) > 0 for r in runs)
    assert len(report.checks) == 3
    assert any("50 nodes" in label for label in report.checks)
    assert len(report.rows) <= 25
    assert report.seconds > 0
    assert len(ticks) == scheduling_ents.preset_steps(MICRO)
