"""The cluster during online scheduling: running jobs, the resources and bandwidth they
hold, and how a placement plus a routing becomes a running job's throughput."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgebus.research.ents_jrba import Routing
from edgebus.research.ents_model import (
    FlowDemand,
    Job,
    JobError,
    compute_time,
    frame_floor,
    throughput,
)
from edgebus.research.topology import Network, Route


@dataclass(frozen=True, eq=False)
class JobRun:
    """A started job: its placement (node index per task), flows, their routes and
    bandwidth caps (bytes/s), and the frames/s that gives."""

    job: Job
    node_of: np.ndarray
    flows: tuple[FlowDemand, ...]
    routes: tuple[Route, ...]
    bandwidth: np.ndarray
    compute_seconds: float
    throughput: float


class ClusterState:
    """What the running jobs hold: available resources per node (R_avail) and the residual
    bandwidth per link, both recomputed from the running jobs so float drift cannot build up."""

    def __init__(self, network: Network, running: Sequence[JobRun] = ()) -> None:
        self.network = network
        self.running: dict[str, JobRun] = {}
        self.available = network.capacity.copy()
        self.residual = network.bandwidth.copy()
        for run in running:
            self.add(run)

    def add(self, run: JobRun) -> None:
        if run.job.name in self.running:
            raise JobError(f"job {run.job.name} is already running")
        self.running[run.job.name] = run
        self.take_resources(run.job, run.node_of)
        self._refresh_bandwidth()

    def remove(self, name: str) -> JobRun:
        run = self.running.pop(name)
        self._refresh_resources()
        self._refresh_bandwidth()
        return run

    def replace_runs(self, runs: Sequence[JobRun]) -> None:
        """Swap in new routes and bandwidth for running jobs (OTFA re-plans them all)."""
        for run in runs:
            self.running[run.job.name] = run
        self._refresh_bandwidth()

    def take_resources(self, job: Job, node_of: np.ndarray) -> None:
        np.subtract.at(self.available, node_of, job.demands)

    def give_resources(self, job: Job, node_of: np.ndarray) -> None:
        np.add.at(self.available, node_of, job.demands)

    def link_usage(self) -> np.ndarray:
        usage = np.zeros(len(self.network.links))
        for run in self.running.values():
            for route, rate in zip(run.routes, run.bandwidth, strict=True):
                usage[list(route.links)] += rate
        return usage

    def _refresh_resources(self) -> None:
        self.available = self.network.capacity.copy()
        for run in self.running.values():
            self.take_resources(run.job, run.node_of)

    def _refresh_bandwidth(self) -> None:
        self.residual = np.maximum(self.network.bandwidth - self.link_usage(), 0.0)


def plan_run(
    job: Job, node_of: np.ndarray, flows: Sequence[FlowDemand], routing: Routing, network: Network
) -> JobRun:
    """Cap every flow at the rate the job's compute can use (more would not raise its
    throughput and would starve later jobs), then TP = 1 / max(compute, max V/b)."""
    seconds = compute_time(job, node_of, network)
    floor = frame_floor(job, seconds)
    volumes = np.array([flow.volume for flow in flows], dtype=float)
    bandwidth = routing.bandwidth.astype(float)
    if floor > 0 and len(flows):
        bandwidth = np.minimum(bandwidth, volumes / floor)
    with np.errstate(divide="ignore"):
        transfer = float(np.max(volumes / bandwidth)) if len(flows) else 0.0
    return JobRun(
        job,
        node_of,
        tuple(flows),
        routing.routes,
        bandwidth,
        seconds,
        throughput(job, seconds, transfer),
    )


def flow_caps(
    job: Job, node_of: np.ndarray, flows: Sequence[FlowDemand], network: Network
) -> np.ndarray | None:
    """Per flow, the most bytes/s the job can use: V_i / (its compute time or camera period)."""
    floor = frame_floor(job, compute_time(job, node_of, network))
    if floor <= 0:
        return None
    return np.array([flow.volume / floor for flow in flows], dtype=float)
