"""A fleet of real node processes for the fault tests and benchmarks: start, SIGKILL,
restart, stop.

Every node runs as `python -m edgebus node`, against the fleet's broker or one of its own
(a node at a bridged site talks to its site's broker), with its store under one data
directory, so `edgebus audit` can check the result the way a user would.
Stopping is graceful (SIGTERM, cameras first, the cloud last, so every store syncs)
and escalates to SIGKILL after a bound: nothing a test starts outlives it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgebus.config import ENV_PREFIX, Settings
from edgebus.fashion_mnist import fashion_mnist_installed
from edgebus.storage.audit import AuditReport, audit, local_store_paths

CLI = (sys.executable, "-m", "edgebus")


def default_sensor() -> tuple[str, str]:
    """What a sensor of a default fleet streams (the default pool's data set) and the model
    `qos set --accuracy 0.85 --bandwidth 10kbps` picks from that pool."""
    if fashion_mnist_installed():
        return "fashion-mnist", "fashion-mnist-eco-d2"
    return "accelerometer", "accelerometer-eco-d3"


# Quick reconnects and syncs keep each fault test within seconds.
FAST = {
    "EDGEBUS_SYNC_INTERVAL_S": "0.5",
    "EDGEBUS_SYNC_ACK_TIMEOUT_S": "1.0",
    "EDGEBUS_STORE_FLUSH_MS": "20",
    "EDGEBUS_RECONNECT_MIN_S": "0.05",
    "EDGEBUS_RECONNECT_MAX_S": "0.5",
    "EDGEBUS_HEARTBEAT_S": "1.0",
    "EDGEBUS_EDGE_CAPACITY_FPS": "200",
}


def product_defaults() -> dict[str, str]:
    """FAST put back to the Settings defaults, for a benchmark whose nodes must run as a
    user's would (the edge's capacity measured at start, 50 ms store flushes, ...)."""
    defaults = Settings()
    return {key: str(getattr(defaults, key.removeprefix(ENV_PREFIX).lower())) for key in FAST}


STOP_ORDER = ("camera", "json-view", "edge", "coordinator", "cloud")


@dataclass
class FleetNode:
    role: str
    node_id: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Fleet:
    broker_url: str
    data_dir: Path
    period_ms: int = 300
    env: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, FleetNode] = field(default_factory=dict)
    starts: int = 0
    # node id -> password: that node logs in as itself, its URL in its environment (never
    # on its command line)
    passwords: dict[str, str] = field(default_factory=dict)
    brokers: dict[str, str] = field(default_factory=dict)  # node id -> its own broker URL

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("EDGEBUS_")}
        base.update(FAST)
        base.update(
            EDGEBUS_DATA_DIR=str(self.data_dir),
            EDGEBUS_FRAME_PERIOD_MS=str(self.period_ms),
            EDGEBUS_LOG_LEVEL="info",
        )
        base.update(self.env)
        return base

    def start(
        self, role: str, node_id: str, *extra: str, broker: str | None = None,
        cli: tuple[str, ...] = CLI,
    ) -> FleetNode:  # fmt: skip
        """Start a node; `broker` puts it on another broker than the fleet's (for good:
        a restart keeps it there); `cli` runs the edgebus command another way (under a
        profiler, say)."""
        if broker is not None:
            self.brokers[node_id] = broker
        self.starts += 1
        log = self.data_dir / f"{node_id}.{self.starts}.log"
        # The JSON view is a node with its own command; every other role is `node --role`.
        run = ["json-view"] if role == "json-view" else ["node", "--role", role]
        command = [*cli, *run, "--id", node_id, "--wait", "30", *extra]
        env = self._env()
        env["EDGEBUS_BROKER"] = self.url_for(node_id)
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        self.nodes[node_id] = FleetNode(role, node_id, process, log)
        return self.nodes[node_id]

    def url_for(self, user: str) -> str:
        """The node's broker URL, with `user`'s credentials when it has a password."""
        url = self.brokers.get(user, self.broker_url)
        if user not in self.passwords:
            return url
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{user}:{self.passwords[user]}@{rest}"

    def kill(self, node_id: str) -> None:
        """SIGKILL: no goodbye, no final sync; only the broker's last will says offline."""
        process = self.nodes[node_id].process
        if process.poll() is None:
            process.kill()
        process.wait(10)

    async def stop(self, node_id: str, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL after timeout_s. Returns the exit code."""
        process = self.nodes[node_id].process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        until = time.monotonic() + timeout_s
        while process.poll() is None and time.monotonic() < until:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait(10)
        return process.returncode

    async def stop_all(self, timeout_s: float = 30.0) -> dict[str, int]:
        codes: dict[str, int] = {}
        for role in STOP_ORDER:
            ids = [n.node_id for n in self.nodes.values() if n.role == role]
            results = await asyncio.gather(*(self.stop(i, timeout_s) for i in ids))
            codes.update(zip(ids, results, strict=True))
        return codes

    def kill_all(self) -> None:
        for node in self.nodes.values():
            if node.process.poll() is None:
                node.process.kill()
        for node in self.nodes.values():
            node.process.wait(10)

    def running(self, node_id: str) -> bool:
        return self.nodes[node_id].process.poll() is None

    def log_text(self, node_id: str) -> str:
        return self.nodes[node_id].log.read_text(errors="replace")

    def all_logs(self) -> str:
        parts = []
        for log in sorted(self.data_dir.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def audit(self) -> AuditReport:
        return audit(local_store_paths(self.data_dir), f"sqlite:///{self.data_dir}/global.sqlite3")


async def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def logged(fleet: Fleet, node_id: str, text: str) -> bool:
    return text in fleet.log_text(node_id)
