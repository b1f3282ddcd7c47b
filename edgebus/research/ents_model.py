"""ENTS jobs (thesis Ch. 3): a DAG of tasks fed by a camera at a source node, the flows a
placement implies, and the per-frame times of P1 (units in `topology`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np

from edgebus.research.topology import Network, Resources

SOURCE = -1  # task index standing for the job's source node in a flow


class JobError(ValueError):
    """A job description that cannot be scheduled."""


@dataclass(frozen=True)
class Task:
    """Task i: workload C_i (FLOP per frame) and resource demand R^i_req."""

    name: str
    workload: float
    demand: Resources

    def __post_init__(self) -> None:
        if not self.name:
            raise JobError("a task needs a non-empty name")
        if not self.workload >= 0:
            raise JobError(f"task {self.name}: workload must be >= 0 FLOP, got {self.workload}")


@dataclass(frozen=True, eq=False)
class Job:
    """A DAG job J = (T, P). `data[(a, b)]` is D_{a,b}, the bytes per frame task a sends
    task b; every task without predecessors receives `input_bytes` per frame from `source`.
    Online, the job processes `frames` frames and never faster than the camera's
    `frame_rate` (None: no cap)."""

    name: str
    tasks: tuple[Task, ...]
    data: Mapping[tuple[str, str], float]
    source: str
    input_bytes: float
    frames: int = 300
    frame_rate: float | None = 30.0

    def __post_init__(self) -> None:
        if not self.tasks:
            raise JobError(f"job {self.name}: needs at least one task")
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise JobError(f"job {self.name}: task names must be unique, got {names}")
        for (a, b), size in self.data.items():
            if a not in names or b not in names:
                raise JobError(f"job {self.name}: data edge {a}->{b} names an unknown task")
            if not size >= 0:
                raise JobError(f"job {self.name}: data {a}->{b} must be >= 0 bytes, got {size}")
        if not self.input_bytes >= 0:
            raise JobError(f"job {self.name}: input_bytes must be >= 0, got {self.input_bytes}")
        if self.frames < 1:
            raise JobError(f"job {self.name}: frames must be >= 1, got {self.frames}")
        if self.frame_rate is not None and not self.frame_rate > 0:
            raise JobError(f"job {self.name}: frame_rate must be > 0, got {self.frame_rate}")
        if not nx.is_directed_acyclic_graph(self._dag):
            raise JobError(f"job {self.name}: the task graph has a cycle")

    @cached_property
    def _dag(self) -> nx.DiGraph:
        dag = nx.DiGraph()
        dag.add_nodes_from(range(len(self.tasks)))
        position = {task.name: i for i, task in enumerate(self.tasks)}
        dag.add_edges_from((position[a], position[b]) for a, b in self.data)
        return dag

    @cached_property
    def order(self) -> tuple[int, ...]:
        """Task indices in topological order, ties broken by declaration order."""
        return tuple(nx.lexicographical_topological_sort(self._dag))

    @cached_property
    def inputs(self) -> tuple[tuple[tuple[int, float], ...], ...]:
        """Per task, its (predecessor index, bytes per frame); SOURCE for the camera input."""
        position = {task.name: i for i, task in enumerate(self.tasks)}
        incoming: list[list[tuple[int, float]]] = [[] for _ in self.tasks]
        for (a, b), size in self.data.items():
            incoming[position[b]].append((position[a], float(size)))
        for task_inputs in incoming:
            if not task_inputs:
                task_inputs.append((SOURCE, float(self.input_bytes)))
        return tuple(tuple(items) for items in incoming)

    @cached_property
    def workloads(self) -> np.ndarray:
        return np.array([task.workload for task in self.tasks], dtype=float)

    @cached_property
    def demands(self) -> np.ndarray:
        return np.array([task.demand.as_array() for task in self.tasks])

    def total_demand(self) -> np.ndarray:
        return self.demands.sum(axis=0)


@dataclass(frozen=True)
class FlowDemand:
    """Flow f = <src, dst, size>: `volume` bytes per frame from node src to node dst.
    `src_task` is SOURCE for the camera input."""

    job: str
    src: int
    dst: int
    volume: float
    src_task: int
    dst_task: int


def placed_flows(job: Job, node_of: Sequence[int] | np.ndarray, source: int) -> list[FlowDemand]:
    """The flows a placement implies; data between tasks on one node costs no network time,
    so it makes no flow."""
    flows = []
    for task, task_inputs in enumerate(job.inputs):
        for pred, volume in task_inputs:
            src = source if pred == SOURCE else int(node_of[pred])
            if src != int(node_of[task]) and volume > 0:
                flows.append(FlowDemand(job.name, src, int(node_of[task]), volume, pred, task))
    return flows


def compute_time(job: Job, node_of: Sequence[int] | np.ndarray, network: Network) -> float:
    """max over nodes of the job's workload there / PS: a node runs the job's tasks it holds
    one after another on each frame (the thesis' 55/200 for a whole job on e1), while
    different nodes work on successive frames as a pipeline."""
    per_node = np.bincount(np.asarray(node_of), weights=job.workloads, minlength=network.size)
    return float(np.max(per_node / network.compute))


def throughput(job: Job, compute_seconds: float, transfer_seconds: float) -> float:
    """TP = 1 / t_p (P1), capped by the camera's frame rate."""
    period = max(compute_seconds, transfer_seconds)
    rate = math.inf if period <= 0 else 1.0 / period
    return rate if job.frame_rate is None else min(rate, job.frame_rate)


def frame_floor(job: Job, compute_seconds: float) -> float:
    """The shortest useful per-frame transfer time: a flow faster than the job's compute (or
    the camera) cannot raise its throughput, so its bandwidth is capped at volume / this."""
    camera = 0.0 if job.frame_rate is None else 1.0 / job.frame_rate
    return max(compute_seconds, camera)
