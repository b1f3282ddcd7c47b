"""Stop the broker, then kill the cloud sink, mid-stream: still exactly the rows written."""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.sync_harness import (
    assert_same_rows,
    global_count,
    start_cloud,
    start_writer,
    wait_until,
)

pytestmark = pytest.mark.integration

TOTAL = 6000


def _finish(writer, timeout_s: float = 120) -> None:  # type: ignore[no-untyped-def]
    out, err = writer.communicate(timeout=timeout_s)
    assert writer.returncode == 0, err
    assert "synced" in out and "not synced" not in out, out + err


def _first_rows(url: str, path, node: str, count: int) -> None:  # type: ignore[no-untyped-def]
    wait_until(
        lambda: path.exists() and global_count(url, [node]) >= count, 60, f"{count} synced rows"
    )


def test_broker_stopped_during_sync(persistent_mosquitto, tmp_path):
    url = f"sqlite:///{tmp_path / 'global.sqlite3'}"
    broker = persistent_mosquitto.url
    cloud = start_cloud(broker, tmp_path, url)
    writer = start_writer(broker, "cut", tmp_path, TOTAL)
    try:
        _first_rows(url, tmp_path / "global.sqlite3", "cut", 1000)
        persistent_mosquitto.stop()
        stored_while_down = global_count(url, ["cut"])
        time.sleep(2.0)  # the writer keeps committing locally meanwhile
        assert global_count(url, ["cut"]) <= stored_while_down + 200 * 8
        persistent_mosquitto.start()
        _finish(writer)
        assert_same_rows(tmp_path, url, "cut", expected=TOTAL)
    finally:
        for process in (writer, cloud):
            if process.poll() is None:
                process.kill()
                process.wait(10)


def test_cloud_sink_killed_and_restarted(mosquitto_url, tmp_path):
    url = f"sqlite:///{tmp_path / 'global.sqlite3'}"
    cloud = start_cloud(mosquitto_url, tmp_path, url)
    writer = start_writer(mosquitto_url, "orphan", tmp_path, TOTAL)
    restarted = None
    try:
        _first_rows(url, tmp_path / "global.sqlite3", "orphan", 1000)
        cloud.send_signal(signal.SIGKILL)
        cloud.wait(10)
        time.sleep(1.5)  # batches published now reach no sink and are never acked
        restarted = start_cloud(mosquitto_url, tmp_path, url)
        _finish(writer)
        assert_same_rows(tmp_path, url, "orphan", expected=TOTAL)
    finally:
        for process in (writer, cloud, restarted):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
