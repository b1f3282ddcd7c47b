"""Processes for the sync tests: a row writer (a node's store + sync agent) and helpers.

Run as `python -m tests.integration.sync_harness writer BROKER NODE DATA_DIR TOTAL`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgebus.config import Settings
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.local import LocalStore
from edgebus.storage.records import ResultRecord
from edgebus.storage.runtime import NodeStorage, local_store_path

FAST_SYNC = {
    "EDGEBUS_SYNC_INTERVAL_S": "0.2",
    "EDGEBUS_SYNC_ACK_TIMEOUT_S": "1.0",
    "EDGEBUS_SYNC_BATCH_ROWS": "200",
    "EDGEBUS_STORE_FLUSH_MS": "20",
    "EDGEBUS_RECONNECT_MIN_S": "0.05",
    "EDGEBUS_RECONNECT_MAX_S": "0.5",
}
CLI = (sys.executable, "-m", "edgebus")
COMPARED = ("seq", "camera", "frame_id", "top_k", "scores", "latency_ms", "offloaded", "ts")


def row(index: int) -> dict[str, Any]:
    return {
        "camera": f"cam-{index % 3}",
        "frame_id": index,
        "top_k": [index % 10, (index + 1) % 10],
        "scores": [0.5, 0.25],
        "latency_ms": index / 7,
        "offloaded": index % 2 == 0,
        "deadline_met": index % 3 != 0,
    }


def env(data_dir: Path, global_url: str = "") -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EDGEBUS_")}
    base.update(FAST_SYNC, EDGEBUS_DATA_DIR=str(data_dir))
    if global_url:
        base["EDGEBUS_GLOBAL_STORE_URL"] = global_url
    return base


def start_writer(
    broker: str,
    node: str,
    data_dir: Path,
    total: int,
    hold: bool = False,
    pause_s: float = 0.01,
    **settings: str,
) -> subprocess.Popen[str]:
    """A node writing `total` rows, 50 every `pause_s`; with hold, `total` more that it keeps
    unsynced, then waits."""
    mode = "holder" if hold else "writer"
    command = [sys.executable, "-m", "tests.integration.sync_harness", mode, broker, node]
    return subprocess.Popen(
        [*command, str(data_dir), str(total), str(pause_s)],
        env={**env(data_dir), **settings},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def start_cloud(broker: str, data_dir: Path, global_url: str) -> subprocess.Popen[str]:
    """The real cloud node, which hosts the sync sink and the global store."""
    return subprocess.Popen(
        [*CLI, "node", "--role", "cloud", "--id", "cloud", "--broker", broker, "--wait", "20"],
        env=env(data_dir, global_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def local_rows(data_dir: Path, node: str) -> list[tuple[Any, ...]]:
    settings = Settings(node_id=node, data_dir=str(data_dir))
    store = LocalStore(local_store_path(settings), node)
    store.open_sync()
    try:
        return _fingerprints(store.all_rows("results"))
    finally:
        assert store.engine is not None
        store.engine.dispose()


def global_rows(url: str, node: str) -> list[tuple[Any, ...]]:
    store = GlobalStore(url)
    store.open()
    try:
        return _fingerprints(store.rows("results", [node]))
    finally:
        store.close()


def global_count(url: str, nodes: list[str]) -> int:
    store = GlobalStore(url)
    store.open()
    try:
        return store.count("results", nodes)
    finally:
        store.close()


def _fingerprints(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(seq, checksum) per row, in seq order, from the compared columns."""
    out = []
    for r in sorted(rows, key=lambda r: r["seq"]):
        body = json.dumps([r[c] for c in COMPARED], sort_keys=True).encode()
        out.append((r["seq"], hashlib.sha256(body).hexdigest()[:16]))
    return out


def assert_same_rows(data_dir: Path, url: str, node: str, expected: int | None = None) -> None:
    local = local_rows(data_dir, node)
    stored = global_rows(url, node)
    assert len(stored) == len({seq for seq, _ in stored}), "duplicate seqs in the global store"
    if expected is not None:
        assert len(local) == expected
    assert [seq for seq, _ in local] == list(range(1, len(local) + 1)), "local seqs have gaps"
    assert stored == local, f"global {len(stored)} rows != local {len(local)} rows"


def wait_until(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


async def _writer(
    broker: str, node: str, data_dir: str, total: int, hold: bool, pause_s: float
) -> None:
    from edgebus.actor.lifecycle import bus_for
    from edgebus.config import load_settings

    settings = load_settings(overrides={"node_id": node, "broker": broker, "data_dir": data_dir})
    bus = bus_for(settings)
    await bus.start(timeout=20)
    storage = NodeStorage(settings, bus)
    await storage.start()
    # A restarted writer carries on after the rows its killed predecessor committed.
    index = storage.store.last_seq
    while index < total:
        for _ in range(min(50, total - index)):
            storage.record(ResultRecord(incarnation=0, **row(index)))
            index += 1
        await asyncio.sleep(pause_s)
    synced = await storage.agent.drain(90)
    if hold:
        # As many rows again, committed but held back by the long sync interval.
        for more in range(total, 2 * total):
            storage.record(ResultRecord(incarnation=0, **row(more)))
        await storage.store.flush()
        print("holding" if synced else "not synced", flush=True)
        await asyncio.Event().wait()  # serve --fresh queries until killed
    print("synced" if synced else f"not synced: {storage.agent.backlog} rows", flush=True)
    await storage.stop()
    await bus.close()


if __name__ == "__main__":
    _, mode, broker_url, node_id, directory, count, pause = sys.argv
    assert mode in ("writer", "holder")
    asyncio.run(_writer(broker_url, node_id, directory, int(count), mode == "holder", float(pause)))
