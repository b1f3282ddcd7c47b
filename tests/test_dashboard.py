"""The fleet view `up` shows: recent and whole-run figures, a table printed whole off a
terminal, and children's output relayed a named line at a time."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console

from edgebus.dashboard import RECENT_RESULTS, FleetView
from edgebus.launch import print_wide
from edgebus.launch_children import relay_output
from edgebus.messages import Heartbeat, Result


def _result(frame_id: int, units: int, correct: bool) -> Result:
    return Result(
        camera="camera-1", frame_id=frame_id, node="edge-1", top_k=[3 if correct else 4],
        scores=[0.9], bytes_received=units * 100, chunks_received=units,
        label=3, units_received=units, latency_ms=100.0,
    )  # fmt: skip


def _view_with_results() -> FleetView:
    view = FleetView()
    view.on_heartbeat(Heartbeat("camera-1", "camera", 1, {"frames_sent": 40.0}), now=0.0)
    # 20 early results: 2 units, all wrong; then 20 late ones: 10 units, all right.
    for i in range(2 * RECENT_RESULTS):
        early = i < RECENT_RESULTS
        view.on_result(_result(i, 2 if early else 10, correct=not early))
    return view


def test_the_summary_averages_the_whole_run_and_the_live_view_the_recent_results():
    row = _view_with_results().rows["camera-1"]
    assert row.recent_text() == ("10.0", "100%")
    assert row.run_text() == ("6.0", "50%")


def _text(table, width: int = 80, terminal: bool = False) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    print_wide(console, table)
    return out.getvalue()


def test_the_tables_name_what_they_average_and_the_deadline():
    view = _view_with_results()
    live = _text(view.table(deadline_ms=500), width=300)
    assert f"top-1 (last {RECENT_RESULTS})" in live and "deadline 500 ms per frame" in live
    summary = _text(view.table(title="summary", duration_s=20.0, deadline_ms=250))
    assert "top-1 (run)" in summary and "units/frame (run)" in summary
    assert "deadline 250 ms per frame" in summary


def test_off_a_terminal_the_table_prints_whole_at_any_console_width():
    text = _text(_view_with_results().table(title="summary", duration_s=20.0), width=80)
    lines = text.splitlines()
    header = next(line for line in lines if "node" in line and "role" in line)
    # Every column title on one line: nothing folded.
    for title in ("frames/s", "deadline hits", "offloaded · bucket", "top-1 (run)", "last result"):
        assert title in header, header
    assert len({len(line) for line in lines[1:]}) == 1  # one width, the table's own
    assert "camera-1#39→3 100ms" in text


def test_on_a_terminal_the_table_keeps_to_the_terminal():
    text = _text(_view_with_results().table(), width=80, terminal=True)
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.timeout(30)
def test_a_childs_output_is_relayed_a_named_line_at_a_time(capfd):
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('one'); print('two', file=sys.stderr)"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    relay = relay_output(child, "edge-7")
    child.wait(10)
    relay.join(10)
    assert not relay.is_alive()
    lines = capfd.readouterr().err.splitlines()
    assert sorted(lines) == ["edge-7: one", "edge-7: two"]
