"""`edgebus query`: the global store, --fresh rows from the owning node, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.sync_harness import env, start_cloud, start_writer

pytestmark = pytest.mark.integration


def query(*args: str, data_dir, timeout: float = 60) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "edgebus", "query", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(data_dir),
    )


def test_fresh_adds_rows_the_global_store_lacks(mosquitto_url, tmp_path):
    url = f"sqlite:///{tmp_path / 'global.sqlite3'}"
    cloud = start_cloud(mosquitto_url, tmp_path, url)
    # A long interval and big batches: after syncing 200 rows the node holds 200 back.
    holder = start_writer(
        mosquitto_url,
        "slow",
        tmp_path,
        200,
        hold=True,
        EDGEBUS_SYNC_INTERVAL_S="600",
        EDGEBUS_SYNC_BATCH_ROWS="100000",
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        common = ("--node", "slow", "--format", "json", "--store-url", url)
        synced = json.loads(query("results", *common, data_dir=tmp_path).stdout)
        assert len(synced) == 200 and all(r["synced"] for r in synced)
        fresh = query("results", *common, "--fresh", "--broker", mosquitto_url, data_dir=tmp_path)
        assert fresh.returncode == 0, fresh.stderr
        rows = json.loads(fresh.stdout)
        assert [r["seq"] for r in sorted(rows, key=lambda r: r["seq"])] == list(range(1, 401))
        assert sum(not r["synced"] for r in rows) == 200
        csv_out = query("results", *common[:2], "--format", "csv", "--since", "1h",
                        "--store-url", url, data_dir=tmp_path).stdout  # fmt: skip
        assert csv_out.splitlines()[0].startswith("node,seq,ts,")
        assert len(csv_out.splitlines()) == len(synced) + 1
    finally:
        for process in (holder, cloud):
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("--since", "yesterday"), 2, "--since 'yesterday': expected a duration"),
        (("--format", "xml"), 2, "--format 'xml': expected one of table, json, csv"),
        (("--store-url", "mysql://db"), 2, "global_store_url: expected sqlite:///path"),
        (("--store-url", "postgresql+psycopg://postgres@127.0.0.1:1/test"), 2, "global store"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, args, code, text):
    result = query("results", *args, data_dir=tmp_path)
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_table_is_one_line_error(tmp_path):
    result = query("bogus", data_dir=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: table 'bogus': expected one of frames, results, events, node_status"
    )
    assert "Traceback" not in result.stderr


def test_corrupt_global_store_is_reported_and_kept(tmp_path):
    path = tmp_path / "global.sqlite3"
    path.write_bytes(b"not a database, but someone's data" * 100)
    before = path.read_bytes()
    result = query("results", "--store-url", f"sqlite:///{path}", data_dir=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip().startswith("error: global store") and "not a usable" in result.stderr
    )
    assert path.read_bytes() == before
