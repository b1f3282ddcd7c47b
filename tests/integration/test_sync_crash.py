"""Kill a node with SIGKILL mid-batch, restart it: the global store ends with exactly its rows."""

from __future__ import annotations

import signal

import pytest

from tests.integration.sync_harness import (
    assert_same_rows,
    global_count,
    local_rows,
    start_cloud,
    start_writer,
    wait_until,
)

pytestmark = pytest.mark.integration

TOTAL = 6000


def test_sigkill_mid_batch_then_restart(mosquitto_url, tmp_path):
    url = f"sqlite:///{tmp_path / 'global.sqlite3'}"
    cloud = start_cloud(mosquitto_url, tmp_path, url)
    # The sink creates the global store as it starts. Waiting for it, and writing at a
    # measured pace (6000 rows in about 6 s), keeps the writer mid-stream when 1000 rows
    # are synced, even when the cloud is slow to start on a busy machine.
    wait_until(lambda: (tmp_path / "global.sqlite3").exists(), 60, "the cloud's global store")
    writer = start_writer(mosquitto_url, "crashy", tmp_path, TOTAL, pause_s=0.05)
    try:
        # Kill once part of the stream is stored globally and more is still on its way.
        wait_until(
            lambda: (
                (tmp_path / "global.sqlite3").exists() and global_count(url, ["crashy"]) >= 1000
            ),
            60,
            "the first synced rows",
        )
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        written = len(local_rows(tmp_path, "crashy"))
        assert 1000 <= written < TOTAL
        restarted = start_writer(mosquitto_url, "crashy", tmp_path, TOTAL)
        out, err = restarted.communicate(timeout=120)
        assert restarted.returncode == 0, err
        assert "synced" in out and "not synced" not in out, out + err
        assert_same_rows(tmp_path, url, "crashy", expected=TOTAL)
    finally:
        for process in (writer, cloud):
            if process.poll() is None:
                process.kill()
                process.wait(10)
