"""`edgebus experiment offload`: input errors and the per-cell scoring."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgebus.cli import app
from edgebus.experiments.offload import Cell, FrameRecord, summarise
from edgebus.messages import Result
from edgebus.nodes.frame_job import SentFrame

runner = CliRunner()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--codecs", "gif"], "--codecs: codec 'gif'"),
        (["--scenarios", "jammed"], "--scenarios: unknown link scenario 'jammed'"),
        (["--scenarios", "off"], "'off' has no link"),
        (["--chunk-bytes", "0,-4"], "--chunk-bytes: expected integers >= 0"),
        (["--frames", "0"], "--frames: expected 1..2000"),
        (["--cameras-at-once", "0"], "--cameras-at-once: expected at least 1"),
    ],
)
def test_bad_options_are_one_line(tmp_path, flags, message):
    result = runner.invoke(app, ["experiment", "offload", "--out", str(tmp_path), *flags])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def _sent(frame_id: int, label: int, units: int) -> SentFrame:
    return SentFrame("cam", frame_id, label, 0.0, 0.002, units, 10, units, 100 * units,
                     120 * units + 100, 0, 6000.0)  # fmt: skip


def _result(frame_id: int, top_k: list[int]) -> Result:
    return Result("edge", "cam", frame_id, top_k, [0.2] * 5, 0, 0, 300.0 + frame_id)


def test_summary_scores_against_the_sent_labels():
    cell = Cell("pnc", 500, "none", 0)
    records = [
        FrameRecord(cell, _sent(0, 3, 10), _result(0, [3, 1, 2, 4, 5]), 1),  # top-1 hit
        FrameRecord(cell, _sent(1, 7, 4), _result(1, [1, 2, 7, 4, 5]), 2),  # top-5, duplicated
        FrameRecord(cell, _sent(2, 9, 0), _result(2, [1, 2, 3, 4, 5]), 1),  # miss
        FrameRecord(cell, _sent(3, 0, 2), None, 0),  # no result
    ]
    (summary,) = summarise(records, {cell: -0.01}, {500: 0})
    assert (summary.frames, summary.results, summary.duplicate_results) == (4, 3, 1)
    # The frame without a result counts as a miss.
    assert summary.top1 == pytest.approx(1 / 4) and summary.top5 == pytest.approx(2 / 4)
    assert summary.fully_offloaded == pytest.approx(0.25)
    assert summary.mean_units == pytest.approx(4.0)
    assert summary.throughput_bps == pytest.approx(sum(120 * u + 100 for u in (10, 4, 0, 2)) / 2)
    assert summary.throughput_error == -0.01


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_the_fashion_mnist_grid_runs_its_own_models(tmp_path, fashion_mnist_dir):
    import csv

    result = runner.invoke(
        app,
        ["experiment", "offload", "--data", "fashion-mnist", "--codecs",
         "pnc:fashion_pnc28,webp0", "--periods", "500", "--scenarios", "none:0.7",
         "--frames", "10", "--out", str(tmp_path)],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with (tmp_path / "offload_cells.csv").open() as fh:
        cells = {row["codec"]: row for row in csv.DictReader(fh)}
    assert set(cells) == {"pnc:fashion_pnc28", "webp0"}
    for row in cells.values():
        # Each camera played the first ten test images to the Fashion-MNIST classifier.
        assert int(row["results"]) == 10 and float(row["top1"]) >= 0.6, row
        assert int(row["overruns"]) == 0 and row["scenario"] == "none:0.7"
    # At 0.7 of the "none" preset a whole PNC frame (ten features) fits in 500 ms.
    assert float(cells["pnc:fashion_pnc28"]["mean_units"]) >= 9
