"""Ten nodes syncing at once into one global store, each ending with exactly its rows."""

from __future__ import annotations

import pytest

from tests.integration.sync_harness import assert_same_rows, start_cloud, start_writer

pytestmark = pytest.mark.integration

NODES = 10
ROWS = 1500


def test_ten_nodes_sync_into_one_global_store(mosquitto_url, tmp_path):
    url = f"sqlite:///{tmp_path / 'global.sqlite3'}"
    cloud = start_cloud(mosquitto_url, tmp_path, url)
    names = [f"node-{i}" for i in range(NODES)]
    writers = [start_writer(mosquitto_url, name, tmp_path, ROWS) for name in names]
    try:
        for writer in writers:
            out, err = writer.communicate(timeout=150)
            assert writer.returncode == 0, err
            assert "synced" in out and "not synced" not in out, out + err
        for name in names:
            assert_same_rows(tmp_path, url, name, expected=ROWS)
    finally:
        for process in (*writers, cloud):
            if process.poll() is None:
                process.kill()
                process.wait(10)
