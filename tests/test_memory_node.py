"""`python -m edgebus.bench.memory_node`: a real camera on a stock Mosquitto reports, while
it runs, what it gained by owner (traced or not); bad arguments end in one `error:` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgebus.bench.memory_owners import ANON, EDGEBUS
from edgebus.bench.processes import terminate

pytestmark = pytest.mark.timeout(120)


def _camera(report: Path, window_s: float, frames: int, broker: str, data: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEBUS_")}
    env.update(EDGEBUS_DATA_DIR=str(data), EDGEBUS_BROKER=broker, EDGEBUS_FRAME_PERIOD_MS="100")
    node = ("node", "--role", "camera", "--id", "cam-0", "--wait", "30")
    command = [sys.executable, "-m", "edgebus.bench.memory_node", str(report), str(window_s),
               str(frames), *node]  # fmt: skip
    with (data / "camera.log").open("wb") as log:  # a file: a full pipe would stall it
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def _report(process: subprocess.Popen[bytes], path: Path, timeout_s: float) -> dict:
    until = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, (path.parent / "camera.log").read_text()[-3000:]
        assert time.monotonic() < until, "no report"
        time.sleep(0.1)
    return json.loads(path.read_text())


@pytest.mark.parametrize("frames", [0, 16])
def test_a_running_camera_reports_its_gain_by_owner(mosquitto_url, tmp_path, frames):
    report_path = tmp_path / "memory.json"
    process = _camera(report_path, 4, frames, mosquitto_url, tmp_path)
    try:
        report = _report(process, report_path, 90)
        assert process.poll() is None  # written while the camera still ran
    finally:
        terminate(process)
    before, after = report["mapped_before"], report["mapped_after"]
    assert report["window_s"] == 4
    assert report["rss_after"] > report["rss_before"] > 20 * 2**20
    # The camera built its models and ran: it gained anonymous memory and onnxruntime's pages.
    assert after[ANON] > before[ANON]
    assert after["onnxruntime"] > before["onnxruntime"]
    # Everything a camera loads was loaded before the window: no library first mapped in it.
    assert set(after) - set(before) <= {"system libraries"}, set(after) - set(before)
    if frames:
        assert report["traced"].get(EDGEBUS, 0) > 0  # the node's own objects, found as its
    else:
        assert report["traced"] == {}


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["out.json", "2"], "usage"),
        (["out.json", "soon", "8", "node"], "WINDOW_S 'soon'"),
        (["out.json", "2", "deep", "node"], "TRACE_FRAMES 'deep'"),
        (["out.json", "0", "8", "node"], "WINDOW_S '0'"),
        (["out.json", "2", "-1", "node"], "TRACE_FRAMES '-1'"),
    ],
)
def test_bad_arguments_end_in_one_error_line(arguments, named, tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgebus.bench.memory_node", *arguments],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], lines
    assert not (tmp_path / "out.json").exists()


def test_a_report_it_cannot_write_is_one_error_line(tmp_path, capsys):
    from edgebus.bench.memory_node import report

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    report(blocked / "memory.json", 1.0, {"rss_before": 0, "mapped_before": {}})
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: memory report"), lines
