"""The replay benchmarks' options: one plan per rate, rounded to whole cameras, and one
`error:` line with exit 2 for an option out of range; and the floor benchmarks' figure."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from edgebus.bench.floor_plot import FloorRun, plot_floor
from edgebus.bench.replay_options import OptionError, add_replay_arguments, replay_plans

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_replay_arguments(parser, rates="100")
    return parser.parse_args(["--out", "x", *argv])


def test_each_rate_becomes_whole_cameras_over_the_period():
    plans = replay_plans(parsed("--rates", "50,101,0.5", "--period-ms", "300"))
    assert [(p.cameras, p.period_ms) for p in plans] == [(15, 300), (30, 300), (1, 300)]
    assert replay_plans(parsed())[0].cameras == 50  # the default 100 frames/s at 500 ms


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--rates", "fast"), "--rates 'fast': expected numbers"),
        (("--rates", "100,-5"), "must be positive"),
        (("--period-ms", "0"), "must be positive"),
        (("--rates", ","), "must be positive"),
    ],
)
def test_an_option_out_of_range_is_named(argv, message):
    with pytest.raises(OptionError, match=message):
        replay_plans(parsed(*argv))


@pytest.mark.parametrize("script", ["bench_replay.py", "bench_edge_floor.py"])
def test_the_benchmarks_refuse_bad_rates_with_one_line(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--out", str(tmp_path), "--rates",
         "fast"], capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: --rates 'fast': expected numbers"]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_floor_figure_has_a_real_and_a_floor_bar_per_run(tmp_path):
    path = tmp_path / "floor.png"
    plot_floor(path, [FloorRun("run 1", 2.0, 1.0, 0.5), FloorRun("run 2", 2.1, 0.9, 0.4)],
               base="models", least="libraries", ylabel="ms", title="t")  # fmt: skip
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
