"""A node's Prometheus endpoint: names, labels and values follow the node's own counters,
read at scrape time; one registry per node; off by default; a taken port is one line;
the shipped Grafana dashboard asks only for metrics the collector emits."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edgebus import __version__
from edgebus.actor.counters import Counts
from edgebus.actor.lifecycle import Node
from edgebus.actor.metrics import MetricsPortError, NodeCollector, metric_names
from edgebus.broker.ports import free_port
from edgebus.config import ConfigError, Settings, load_settings
from edgebus.errors import LaunchError
from edgebus.launch_plan import UpPlan, check_metrics_ports, metrics_line, node_settings

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "edgebus-dashboard.json"


@dataclass(slots=True)
class ProbeCounters(Counts):
    frames_sent: int = 0
    bytes_sent: int = 0
    nodes_online: int = 0  # a level kept in a counters field: a gauge


class CountingNode(Node):
    role = "camera"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.counters = ProbeCounters()

    def stats(self) -> dict[str, float]:
        stats = super().stats()
        stats["bucket_tokens"] = 2.5
        return stats


def settings_for(url: str, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        broker=url, site="mx", node_id="cam-m", role="camera", heartbeat_s=60.0,
        data_dir=str(tmp_path), store_enabled=False, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def samples(text: str) -> dict[str, tuple[dict[str, str], float]]:
    """Sample name -> (labels, value) of one node's scrape."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.name not in found, f"{sample.name} appears twice"
            found[sample.name] = (sample.labels, sample.value)
    return found


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


async def test_the_endpoint_reads_the_nodes_counters_at_scrape_time(memory_broker, tmp_path):
    port = free_port()
    node = CountingNode(settings_for(memory_broker.url, tmp_path, metrics_port=port))
    task = asyncio.create_task(node.run(connect_timeout=5))
    try:
        await asyncio.wait_for(node.ready.wait(), 10)
        node.counters.frames_sent, node.counters.bytes_sent = 7, 1234
        node.counters.nodes_online = 3
        first = samples(await asyncio.to_thread(scrape, port))
        labels, value = first["edgebus_frames_sent_total"]
        assert labels == {"node": "cam-m", "role": "camera", "site": "mx"}
        assert value == 7
        assert first["edgebus_bytes_sent_total"][1] == 1234
        assert first["edgebus_nodes_online"][1] == 3
        assert first["edgebus_bucket_tokens"][1] == 2.5
        assert first["edgebus_node_up"][1] == 1
        assert first["edgebus_bus_connected"][1] == 1
        assert first["edgebus_bus_inflight_window"][1] == node.bus.window > 0
        assert 0 <= first["edgebus_bus_inflight"][1] <= node.bus.window
        assert first["edgebus_bus_published_total"][1] == node.bus.stats.published > 0
        assert first["edgebus_deadletters_total"][1] == 0
        assert first["edgebus_node_info"][0]["version"] == __version__
        # No bookkeeping of its own: the next scrape follows the counters.
        node.counters.frames_sent += 5
        node.bus.stats.reconnects += 1
        second = samples(await asyncio.to_thread(scrape, port))
        assert second["edgebus_frames_sent_total"][1] == 12
        assert second["edgebus_bus_reconnects_total"][1] == 1
    finally:
        node.stop()
        await asyncio.wait_for(task, 15)
    # Stopped with the node: nothing listens there any more (SO_REUSEADDR binds past the
    # scrape's TIME_WAIT, but never beside a listener).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


async def test_a_taken_port_fails_the_node_in_one_line_naming_it(memory_broker, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        node = CountingNode(settings_for(memory_broker.url, tmp_path, metrics_port=port))
        with pytest.raises(MetricsPortError) as caught:
            await asyncio.wait_for(node.run(connect_timeout=5), 15)
    message = str(caught.value)
    assert isinstance(caught.value, LaunchError)  # the CLI prints it as `error: ...`
    assert f"127.0.0.1:{port}" in message and "already in use" in message
    assert "\n" not in message
    assert not node.bus.connected


async def test_metrics_are_off_unless_a_port_is_set(memory_broker, tmp_path):
    node = CountingNode(settings_for(memory_broker.url, tmp_path))
    task = asyncio.create_task(node.run(connect_timeout=5))
    try:
        await asyncio.wait_for(node.ready.wait(), 10)
        assert node.metrics is None
    finally:
        node.stop()
        await asyncio.wait_for(task, 15)


def test_each_node_has_its_own_registry_and_storage_lag(tmp_path):
    # Two nodes in one process, storage on (built, not started): separate series.
    registries = []
    for node_id in ("cam-a", "cam-b"):
        node = CountingNode(
            dataclasses.replace(
                settings_for("memory://unused", tmp_path), node_id=node_id, store_enabled=True
            )
        )
        node.counters.frames_sent = len(registries) + 1
        registry = CollectorRegistry(auto_describe=False)
        registry.register(NodeCollector(node))
        registries.append(registry)
    for index, registry in enumerate(registries):
        found = samples(generate_latest(registry).decode())
        assert found["edgebus_frames_sent_total"] == (
            {"node": f"cam-{'ab'[index]}", "role": "camera", "site": "mx"},
            index + 1,
        )
        assert found["edgebus_sync_rows_waiting"][1] == 0
        assert found["edgebus_sync_last_ack_age_seconds"][1] >= 0
        assert "edgebus_sync_acks_total" in found and "edgebus_rows_stored_total" in found


def test_metrics_port_is_a_setting_from_every_layer(tmp_path):
    assert Settings().metrics_port == 0 and Settings().metrics_host == "127.0.0.1"
    assert load_settings(None, environ={"EDGEBUS_METRICS_PORT": "9400"}).metrics_port == 9400
    (tmp_path / "e.toml").write_text("metrics_port = 9500\n")
    assert load_settings(tmp_path / "e.toml", environ={}).metrics_port == 9500
    with pytest.raises(ConfigError, match="metrics_port: expected a TCP port"):
        load_settings(None, {"metrics_port": 70000}, environ={})


def test_up_gives_node_i_the_port_base_plus_i():
    base = Settings(node_id="x", metrics_port=9400, qos_pool="off")
    nodes = node_settings(base, UpPlan(cameras=2, edges=1, sensors=0))
    assert {n: s.metrics_port for n, s in nodes.items()} == {
        "coordinator": 9400, "cloud": 9401, "edge-1": 9402, "camera-1": 9403, "camera-2": 9404,
    }  # fmt: skip
    assert metrics_line(nodes).endswith("camera-2 127.0.0.1:9404")
    off = node_settings(dataclasses.replace(base, metrics_port=0), UpPlan(sensors=0))
    assert metrics_line(off) == "" and {s.metrics_port for s in off.values()} == {0}
    with pytest.raises(LaunchError, match="--metrics-port 65534"):
        node_settings(dataclasses.replace(base, metrics_port=65534), UpPlan(sensors=0))


def test_up_refuses_a_taken_metrics_port_before_starting_anything():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The first node's port is the taken one: a neighbouring port may be another
        # test's at this moment, and the check names the first port in use it meets.
        base = Settings(node_id="x", metrics_port=port, qos_pool="off")
        nodes = node_settings(base, UpPlan(sensors=0))
        first = next(iter(nodes))  # node i serves on base + i
        with pytest.raises(MetricsPortError, match=f"^{first}: .*127.0.0.1:{port} .*in use"):
            check_metrics_ports(nodes)


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the shipped dashboard: its panels' and its variables'."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    variables = dashboard["templating"]["list"]
    return exprs + [v["definition"] for v in variables if v.get("type") == "query"]


def emitted_names(tmp_path: Path) -> set[str]:
    """What a fleet's nodes emit: a camera under a token bucket, an edge, a cloud and a
    coordinator (built, not started)."""
    from edgebus.coordinator.node import CoordinatorNode
    from edgebus.nodes import CameraNode, CloudNode, EdgeNode

    base = Settings(broker="memory://unused", data_dir=str(tmp_path), qos_pool="off")
    nodes = [
        CameraNode(dataclasses.replace(base, role="camera", node_id="c", offload="dqn")),
        EdgeNode(dataclasses.replace(base, role="edge", node_id="e")),
        CloudNode(dataclasses.replace(base, role="cloud", node_id="cl")),
        CoordinatorNode(dataclasses.replace(base, role="coordinator", node_id="co")),
    ]
    return set().union(*(metric_names(NodeCollector(n).collect()) for n in nodes))


def test_the_grafana_dashboard_asks_only_for_emitted_metrics(tmp_path):
    names = emitted_names(tmp_path)
    required = {
        "edgebus_frames_sent_total", "edgebus_frames_done_total", "edgebus_frames_dropped_total",
        "edgebus_bytes_sent_total", "edgebus_bytes_received_total",
        "edgebus_deadline_hits_total", "edgebus_deadline_misses_total",
        "edgebus_frames_offloaded_total", "edgebus_bucket_tokens", "edgebus_sync_rows_waiting",
        "edgebus_sync_last_ack_age_seconds", "edgebus_deadletters_total",
        "edgebus_bus_reconnects_total", "edgebus_bus_inflight_window",
        "edgebus_bus_unacknowledged", "edgebus_node_up", "edgebus_node_info",
    }  # fmt: skip
    assert required <= names
    exprs = dashboard_exprs()
    assert len(exprs) >= 8
    for expr in exprs:
        used = set(re.findall(r"\bedgebus_[a-z0-9_]+", expr))
        assert used, expr
        assert used <= names, f"{expr}: {sorted(used - names)} not emitted"
    # ... and docs/metrics.md documents every required metric.
    doc = (DASHBOARD.parent.parent / "metrics.md").read_text()
    assert [n for n in sorted(required) if n not in doc] == []
