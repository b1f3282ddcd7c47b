"""A small fleet's metrics, scraped by Debian's real Prometheus server and read back
through its HTTP API: the values Prometheus stores are the nodes' own counters."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgebus import __version__
from edgebus.bench.processes import terminate
from edgebus.broker.ports import free_port, wait_for_port
from edgebus.config import Settings
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.cloud import CloudNode
from edgebus.nodes.edge import EdgeNode
from tests.conftest import missing_service
from tests.test_metrics import dashboard_exprs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FRAMES = 6


@dataclasses.dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, expr: str) -> list[dict[str, object]]:
        address = f"{self.url}/api/v1/query?query={urllib.parse.quote(expr)}"
        with urllib.request.urlopen(address, timeout=5) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, expr: str) -> float | None:
        """The single series' value, or None while Prometheus has none."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[tuple[Prometheus, list[int]]]:
    """Prometheus (the binary, never its service) scraping three ports every second."""
    binary = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if binary is None:
        missing_service("no prometheus binary (make setup installs Debian's as root)")
    ports = [free_port() for _ in range(3)]
    targets = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: edgebus\n    static_configs:\n"
        f"      - targets: [{targets}]\n"
    )
    web = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn"],
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        wait_for_port(web, 30)
        yield Prometheus(f"http://127.0.0.1:{web}", process), ports
    finally:
        terminate(process, timeout_s=15)
        log.close()


async def until(check, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


async def test_prometheus_scrapes_the_nodes_own_counters(
    prometheus_server, memory_broker, tmp_path
):
    server, (edge_port, camera_port, cloud_port) = prometheus_server
    base = Settings(
        broker=memory_broker.url, site="prom", data_dir=str(tmp_path / "data"),
        frame_period_ms=250, heartbeat_s=1.0, sync_interval_s=0.5, qos_pool="off",
    )  # fmt: skip
    cloud = CloudNode(
        dataclasses.replace(base, role="cloud", node_id="cloud-p", metrics_port=cloud_port)
    )
    edge = EdgeNode(
        dataclasses.replace(base, role="edge", node_id="edge-p", metrics_port=edge_port)
    )
    camera = CameraNode(
        dataclasses.replace(base, role="camera", node_id="cam-p", metrics_port=camera_port),
        max_frames=FRAMES,
    )
    tasks = [asyncio.create_task(cloud.run(connect_timeout=10))]
    try:
        await asyncio.wait_for(cloud.ready.wait(), 30)
        tasks.append(asyncio.create_task(edge.run(connect_timeout=10)))
        await asyncio.wait_for(edge.ready.wait(), 30)
        tasks.append(asyncio.create_task(camera.run(connect_timeout=10)))

        async def every_frame_decided() -> bool:
            counted = edge.counters.frames_done + edge.counters.drop_records
            return camera.counters.frames_sent == FRAMES and counted >= FRAMES

        await until(every_frame_decided, 60, f"the edge to decide {FRAMES} frames")

        async def scraped(expr: str, expected: float) -> bool:
            return await asyncio.to_thread(server.value, expr) == expected

        # The counters are still now; Prometheus's next scrapes store exactly them.
        frames_sent = 'edgebus_frames_sent_total{node="cam-p",role="camera",site="prom"}'
        await until(lambda: scraped(frames_sent, FRAMES), 30, "Prometheus to scrape cam-p")
        bytes_sent = float(camera.counters.bytes_sent)
        await until(
            lambda: scraped('edgebus_bytes_sent_total{node="cam-p"}', bytes_sent),
            10,
            f"bytes_sent {bytes_sent}",
        )
        done = float(edge.counters.frames_done)
        hits = float(edge.counters.deadline_hits)
        await until(
            lambda: scraped('edgebus_frames_done_total{node="edge-p"}', done), 10, "frames_done"
        )
        await until(lambda: scraped('edgebus_deadline_hits_total{node="edge-p"}', hits), 10, "hits")

        # A scrape may time out (1 s) on a busy machine; the next one brings the target back.
        async def all_up() -> bool:
            targets = await asyncio.to_thread(server.query, 'up{job="edgebus"}')
            return sorted(float(t["value"][1]) for t in targets) == [1.0, 1.0, 1.0]

        await until(all_up, 15, "all three targets up")
        info = await asyncio.to_thread(server.query, 'edgebus_node_info{node="cloud-p"}')
        assert info[0]["metric"]["version"] == __version__
        window = await asyncio.to_thread(server.value, 'edgebus_bus_inflight_window{node="edge-p"}')
        assert window == float(edge.bus.window)
        assert await asyncio.to_thread(server.value, 'edgebus_node_up{node="cam-p"}') == 1.0

        # The cloud acknowledges the camera's rows: the sync lag reaches Prometheus too.
        async def synced() -> bool:
            acks = await asyncio.to_thread(server.value, 'edgebus_sync_acks_total{node="cam-p"}')
            return acks is not None and acks > 0

        await until(synced, 20, "a sync ack for cam-p in Prometheus")
        age = await asyncio.to_thread(
            server.value, 'edgebus_sync_last_ack_age_seconds{node="cam-p"}'
        )
        waiting = await asyncio.to_thread(server.value, 'edgebus_sync_rows_waiting{node="cam-p"}')
        assert age is not None and 0 <= age < 10
        assert waiting is not None and waiting >= 0
        # Every expression of the shipped Grafana dashboard is valid PromQL here.
        for expr in dashboard_exprs():
            if expr.startswith("label_values("):  # Grafana's, not PromQL: its selector is
                expr = expr.removeprefix("label_values(").rsplit(",", 1)[0]
            await asyncio.to_thread(
                server.query, expr.replace("$site", ".+").replace("$node", ".+")
            )
    finally:
        camera.stop()
        edge.stop()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        cloud.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        assert task.exception() is None
