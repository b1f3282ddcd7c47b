"""`edgebus up` records every frame and result locally, and the global store gets them all."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess

import pytest

from edgebus.config import Settings
from edgebus.coordinator.node import CoordinatorNode
from edgebus.messages import ModelSwitch, QosRequest
from edgebus.nodes import CloudNode
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.runtime import global_store_url
from tests.integration.sync_harness import CLI, env

pytestmark = pytest.mark.integration


def test_up_syncs_every_frame_and_result(tmp_path):
    result = subprocess.run(
        [*CLI, "up", "--duration", "4", "--cameras", "2", "--no-dashboard"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    summary = re.search(r"summary: (.*)", result.stdout, re.S).group(1).replace("\n", " ")
    values = {
        k: float(v) for k, v in (item.split("=") for item in summary.replace(",", " ").split())
    }
    sent = values["frames_sent"]
    assert sent >= 10
    # The camera's "sent" row and the edge's "received" row of every frame.
    assert values["stored_frames"] == 2 * sent
    assert values["stored_results"] == values["frames_classified"] == sent
    assert values["global_rows"] == values["local_rows"] > 3 * sent
    query = subprocess.run(
        [*CLI, "query", "results", "--node", "edge-1", "--format", "json", "--since", "5m"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(tmp_path),
    )
    assert query.returncode == 0, query.stderr
    rows = json.loads(query.stdout)
    assert len(rows) == sent and all(r["synced"] for r in rows)
    # Two image cameras and the default sensor stream, started together.
    streams = ("camera-1", "camera-2", "sensor-1")
    assert {(r["camera"], r["frame_id"]) for r in rows} == {
        (c, f) for c in streams for f in range(int(sent) // len(streams))
    }


async def test_coordinator_records_events_into_the_global_store(actor_broker_url, tmp_path):
    base = Settings(
        broker=actor_broker_url,
        protocol="3.1.1",
        data_dir=str(tmp_path),
        sync_interval_s=0.2,
        sync_ack_timeout_s=1.0,
        qos_pool="off",  # no orchestrator: it would answer the request and guard the switch
    )
    cloud = CloudNode(dataclasses.replace(base, role="cloud", node_id="cloud"))
    coordinator = CoordinatorNode(dataclasses.replace(base, role="coordinator", node_id="coord"))
    tasks = [asyncio.create_task(node.run(connect_timeout=10)) for node in (cloud, coordinator)]
    await asyncio.wait_for(asyncio.gather(cloud.ready.wait(), coordinator.ready.wait()), 10)
    await coordinator.bus.publish(
        coordinator.topics.qos_request(), QosRequest("cli", 0.9, 2e5, ts=5.0), qos=1
    )
    await coordinator.bus.publish(
        coordinator.topics.model_switch(), ModelSwitch("ae-8", 1, "ab" * 32, "ECO", 0), qos=1
    )
    for _ in range(100):
        if coordinator.counters.events_model_switch:
            break
        await asyncio.sleep(0.05)
    coordinator.stop()
    await tasks[1]
    cloud.stop()
    await tasks[0]
    store = GlobalStore(global_store_url(base))
    store.open()
    events = store.rows("events", ["coord"])
    statuses = store.rows("node_status", ["coord"])
    store.close()
    assert [e["kind"] for e in events] == ["qos_request", "model_switch"]
    assert events[0]["detail"]["accuracy"] == 0.9
    assert statuses[0]["state"] == "online" and statuses[-1]["state"] == "offline"
