"""ENTS (thesis Ch. 3): the entry point the coordinator calls whenever it recomputes the
live bus's scheduling policies, and the plan it gets back.

`schedule_round` is one OTFA round (Alg. 4): running jobs keep their placement, waiting jobs
are placed by the greedy allocation (Alg. 1), and one JRBA (Alg. 2) re-routes every flow.
The plan says, per job, where each task runs and, per flow, its route and bandwidth cap;
`RoundPlan.for_node` cuts it into what one node's `sched/policy/<node>` message needs.
The algorithms themselves live in the `ents_*` modules and are re-exported here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edgebus.research.ents_alloc import (
    InfeasibleJobError,
    allocate_greedy,
    place_balanced,
    place_least_requested,
)
from edgebus.research.ents_jrba import (
    Routing,
    RoutingError,
    jrba,
    route_shortest,
    solve_relaxation,
)
from edgebus.research.ents_model import (
    SOURCE,
    FlowDemand,
    Job,
    JobError,
    Task,
    compute_time,
    placed_flows,
    throughput,
)
from edgebus.research.ents_online import Arrival, SimResult, simulate
from edgebus.research.ents_rounds import SCHEDULERS, RoundOptions, otfa_round
from edgebus.research.ents_sharing import (
    bottleneck_time,
    equal_share,
    fair_share,
    proportional_share,
)
from edgebus.research.ents_state import ClusterState, JobRun, plan_run
from edgebus.research.topology import Network

__all__ = [
    "SCHEDULERS",
    "Arrival",
    "FlowDemand",
    "FlowPlan",
    "InfeasibleJobError",
    "Job",
    "JobError",
    "JobPlan",
    "NodeDirective",
    "RoundOptions",
    "RoundPlan",
    "Routing",
    "RoutingError",
    "SimResult",
    "Task",
    "allocate_greedy",
    "bottleneck_time",
    "compute_time",
    "equal_share",
    "fair_share",
    "jrba",
    "place_balanced",
    "place_least_requested",
    "proportional_share",
    "route_shortest",
    "schedule_round",
    "simulate",
    "solve_relaxation",
    "throughput",
]

_SLACK = 1e-9


@dataclass(frozen=True)
class FlowPlan:
    """One flow of a job: `volume` bytes per frame from `src_task` on `src_node` (None: the
    camera input at the job's source) to `dst_task` on `dst_node`, sent along `route` (node
    names, both ends included) at no more than `bandwidth` bytes/s."""

    job: str
    src_task: str | None
    dst_task: str
    src_node: str
    dst_node: str
    volume: float
    route: tuple[str, ...]
    bandwidth: float

    def next_hop(self, node: str) -> str | None:
        """Where `node` forwards this flow; None at the destination or off the route."""
        if node not in self.route[:-1]:
            return None
        return self.route[self.route.index(node) + 1]


@dataclass(frozen=True)
class JobPlan:
    """A running job: task name -> node name, its flows, and the frames/s they give."""

    job: Job
    placement: Mapping[str, str]
    flows: tuple[FlowPlan, ...]
    throughput: float


@dataclass(frozen=True)
class NodeDirective:
    """What one node must do: the (job, task) pairs to run, and for each flow it sends or
    relays, the next hop and the bandwidth cap."""

    node: str
    tasks: tuple[tuple[str, str], ...]
    forwards: tuple[tuple[FlowPlan, str], ...]


@dataclass(frozen=True)
class RoundPlan:
    """Every job that runs after the round (earlier ones re-routed, new ones started), and
    the names of the jobs that started now and of those still waiting."""

    jobs: tuple[JobPlan, ...]
    started: tuple[str, ...]
    waiting: tuple[str, ...]

    def for_node(self, node: str) -> NodeDirective:
        tasks = tuple(
            (plan.job.name, task)
            for plan in self.jobs
            for task, at in plan.placement.items()
            if at == node
        )
        forwards = tuple(
            (flow, hop)
            for plan in self.jobs
            for flow in plan.flows
            if (hop := flow.next_hop(node)) is not None
        )
        return NodeDirective(node, tasks, forwards)


def schedule_round(
    network: Network,
    jobs: Sequence[Job],
    running: Sequence[JobPlan] = (),
    k_paths: int = 3,
    options: RoundOptions | None = None,
) -> RoundPlan:
    """One OTFA round: start what fits of `jobs` (longest-waiting first) next to the
    `running` plans of the previous round, and re-route every flow. `options` (its
    `k_paths` is replaced by the argument) sets the admission floor and rule and the
    bandwidth sharing."""
    options = replace(options or RoundOptions(), k_paths=k_paths)
    names = [job.name for job in jobs] + [plan.job.name for plan in running]
    if len(set(names)) != len(names):
        raise JobError(f"job names must be unique across jobs and running, got {names}")
    state = ClusterState(network, [_as_run(plan, network) for plan in running])
    overcommitted = np.flatnonzero(np.any(state.available < -_SLACK * network.capacity, axis=1))
    if overcommitted.size:
        raise JobError(
            f"running plans need more than node {network.nodes[overcommitted[0]].name} holds"
        )
    fresh = otfa_round(state, list(jobs), options)
    started = {run.job.name for run in fresh}
    return RoundPlan(
        tuple(_as_plan(run, network) for run in state.running.values()),
        tuple(job.name for job in jobs if job.name in started),
        tuple(job.name for job in jobs if job.name not in started),
    )


def _as_plan(run: JobRun, network: Network) -> JobPlan:
    names = [node.name for node in network.nodes]
    tasks = run.job.tasks
    flows = tuple(
        FlowPlan(
            run.job.name,
            None if flow.src_task == SOURCE else tasks[flow.src_task].name,
            tasks[flow.dst_task].name,
            names[flow.src],
            names[flow.dst],
            flow.volume,
            tuple(names[i] for i in route.nodes),
            float(rate),
        )
        for flow, route, rate in zip(run.flows, run.routes, run.bandwidth, strict=True)
    )
    placement = {task.name: names[node] for task, node in zip(tasks, run.node_of, strict=True)}
    return JobPlan(run.job, placement, flows, run.throughput)


def _as_run(plan: JobPlan, network: Network) -> JobRun:
    job = plan.job
    missing = [task.name for task in job.tasks if task.name not in plan.placement]
    if missing:
        raise JobError(f"running plan of job {job.name} places no node for tasks {missing}")
    node_of = np.array([network.node_index(plan.placement[task.name]) for task in job.tasks])
    flows = placed_flows(job, node_of, network.node_index(job.source))
    by_tasks = {(flow.src_task, flow.dst_task): flow for flow in plan.flows}
    routes, rates = [], []
    for flow in flows:
        key = (
            None if flow.src_task == SOURCE else job.tasks[flow.src_task].name,
            job.tasks[flow.dst_task].name,
        )
        if key not in by_tasks:
            raise JobError(f"running plan of job {job.name} has no route for flow {key}")
        routes.append(network.route_of([network.node_index(n) for n in by_tasks[key].route]))
        rates.append(by_tasks[key].bandwidth)
    routing = Routing(tuple(routes), np.array(rates, dtype=float))
    return plan_run(job, node_of, flows, routing, network)
