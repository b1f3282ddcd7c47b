"""A fleet of real node processes (cloud, one edge, N cameras) measured over a window: each
process's CPU seconds and peak RSS, and the frames each node recorded in that window."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import func, select

from edgebus.bench.process_fleet import CLI, Fleet, product_defaults
from edgebus.bench.rss_sampler import RssSampler
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.models import Frame


@dataclass
class Usage:
    """CPU seconds in the window and peak RSS, per node."""

    cpu_s: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)


class WindowSampler:
    """Samples RSS all along the window (RssSampler) and CPU at its start and end."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        self.usage = Usage()
        self._cpu_start: dict[str, float] = {}
        self._rss = RssSampler(processes)

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    def start_window(self) -> None:
        self._cpu_start = {name: self._cpu(p) for name, p in self.processes.items()}
        self._rss.start()

    def end_window(self) -> None:
        for name, process in self.processes.items():
            self.usage.cpu_s[name] = self._cpu(process) - self._cpu_start[name]
        self._rss.stop()
        self.usage.peak_rss.update(self._rss.peak)


def frames_in(store_url: str, node: str, start: float, end: float) -> int:
    """Frames a node recorded (sent, received or dropped) captured within [start, end)."""
    store = GlobalStore(store_url)
    store.open()
    try:
        with store.engine.connect() as connection:
            query = select(func.count()).where(
                Frame.node == node, Frame.capture_ts >= start, Frame.capture_ts < end
            )
            return int(connection.execute(query).scalar_one())
    finally:
        store.close()


@dataclass
class FleetWindow:
    """One measured run: usage per node over [start, end) and what the audit found."""

    usage: Usage
    start: float
    end: float
    store_url: str  # the cloud's global store
    lost: int
    duplicated: int


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every fleet benchmark takes: where results go, and the fleet's shape."""
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--period-ms", type=int, default=500)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=30.0)


def camera_names(cameras: int) -> list[str]:
    return [f"camera-{i}" for i in range(cameras)]


async def measure_fleet(
    broker_url: str, workdir: Path, cameras: int, period_ms: int, warmup_s: float,
    duration_s: float, cli_for: Callable[[str], tuple[str, ...] | None] = lambda node: None,
) -> FleetWindow:  # fmt: skip
    """Cloud, edge-1 and the cameras at the product's defaults; after the warm-up, the
    window's CPU and peak RSS per node; then every node stopped and the fleet audited.
    `cli_for(node)` may name another command line for a node (a profiler around it)."""
    fleet = Fleet(broker_url, workdir, period_ms=period_ms, env=product_defaults())
    try:
        fleet.start("cloud", "cloud-1")
        for role, node in [("edge", "edge-1")] + [("camera", c) for c in camera_names(cameras)]:
            fleet.start(role, node, cli=cli_for(node) or CLI)
        processes = {n: psutil.Process(fleet.nodes[n].process.pid) for n in fleet.nodes}
        sampler = WindowSampler(processes)
        await asyncio.sleep(warmup_s)
        start = time.time()
        sampler.start_window()
        await asyncio.sleep(duration_s)
        sampler.end_window()
        end = time.time()
        await fleet.stop_all()
    finally:
        fleet.kill_all()
    report = fleet.audit()
    store_url = f"sqlite:///{workdir}/global.sqlite3"
    return FleetWindow(sampler.usage, start, end, store_url, report.frames_lost,
                       report.frames_duplicated)  # fmt: skip
