"""One scheduling round of each online scheduler: OTFS (thesis Alg. 3), OTFA (Alg. 4) and
the baselines TP (greedy tasks, shortest path, equal sharing), LR and BR (whole job on one
node, shortest path, its one input flow takes the path's spare).

A round takes the waiting jobs (longest-waiting first) and the cluster's state, starts the
jobs it can and reserves their resources and bandwidth. A job starts only if its planned
throughput reaches `min_throughput` frames/s: every scheduler here would otherwise start
jobs on the last crumbs of a link and hold their nodes for hours. On an idle cluster the
longest-waiting job starts whatever its throughput, since waiting cannot improve it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from edgebus.research.ents_alloc import (
    allocate_greedy,
    place_balanced,
    place_least_requested,
)
from edgebus.research.ents_jrba import Routing, Sharing, jrba, route_shortest
from edgebus.research.ents_model import FlowDemand, Job, JobError, placed_flows
from edgebus.research.ents_state import ClusterState, JobRun, flow_caps, plan_run
from edgebus.research.topology import Network

SCHEDULERS = ("OTFA", "OTFS", "TP", "LR", "BR")


Admission = Literal["sequential", "all"]


@dataclass(frozen=True)
class RoundOptions:
    """k_paths: candidate routes per flow for JRBA. min_throughput: frames/s a job must get
    to start (and, under OTFA, keep when newcomers arrive). sharing: JRBA's bandwidth step.
    admission: which waiting jobs OTFA starts before its joint re-plan (`otfa_round`)."""

    k_paths: int = 3
    min_throughput: float = 0.25
    sharing: Sharing = "fair"
    admission: Admission = "sequential"

    def __post_init__(self) -> None:
        if self.k_paths < 1:
            raise JobError(f"k_paths must be >= 1, got {self.k_paths}")
        if not self.min_throughput > 0:
            raise JobError(f"min_throughput must be > 0 frames/s, got {self.min_throughput}")
        if self.sharing not in ("fair", "proportional"):
            raise JobError(f"sharing must be 'fair' or 'proportional', got {self.sharing!r}")
        if self.admission not in ("sequential", "all"):
            raise JobError(f"admission must be 'sequential' or 'all', got {self.admission!r}")


Placer = Callable[[Job, ClusterState], "np.ndarray | None"]
Router = Callable[
    [Network, Sequence[FlowDemand], np.ndarray, "np.ndarray | None"], "Routing | None"
]


def _greedy(job: Job, state: ClusterState) -> np.ndarray | None:
    return allocate_greedy(job, state.network, state.available, state.residual)


def _least_requested(job: Job, state: ClusterState) -> np.ndarray | None:
    return place_least_requested(job, state.network, state.available)


def _balanced(job: Job, state: ClusterState) -> np.ndarray | None:
    return place_balanced(job, state.network, state.available)


def one_by_one_round(
    state: ClusterState, queue: Sequence[Job], place: Placer, route: Router, min_throughput: float
) -> list[JobRun]:
    """Place, route and commit each waiting job in turn on what the earlier ones left."""
    started = []
    for job in queue:
        node_of = place(job, state)
        if node_of is None:
            continue
        flows = placed_flows(job, node_of, state.network.node_index(job.source))
        caps = flow_caps(job, node_of, flows, state.network)
        routing = route(state.network, flows, state.residual, caps)
        if routing is None:
            continue
        run = plan_run(job, node_of, flows, routing, state.network)
        if run.throughput >= min_throughput or not state.running:
            state.add(run)
            started.append(run)
    return started


def otfa_round(state: ClusterState, queue: Sequence[Job], options: RoundOptions) -> list[JobRun]:
    """Alg. 4, one joint JRBA over every flow, running jobs' included. Which waiting jobs
    start is `options.admission`:

    - "sequential" (default): the jobs OTFS would start on the residual bandwidth. The joint
      re-plan of those plus the running jobs is adopted when it raises the mean planned
      throughput (and keeps every new job at the floor); otherwise the sequential plan
      stands. Re-routing everything can then only help the round it is made in.
    - "all": every waiting job that the greedy allocation can place (Alg. 4 as printed), see
      `otfa_admit_all_round`. Measured here it admits more jobs than the links can feed and
      loses throughput to OTFS under load, so it is kept as an ablation."""
    if options.admission == "all":
        return otfa_admit_all_round(state, queue, options)
    trial = ClusterState(state.network, list(state.running.values()))
    sequential = one_by_one_round(
        trial, queue, _greedy, _lp_router(options), options.min_throughput
    )
    if not trial.running:
        return []
    placed = [(run.job, run.node_of) for run in sequential]
    for job, node_of in placed:
        state.take_resources(job, node_of)
    runs = _replan(state, placed, options)
    for job, node_of in placed:
        state.give_resources(job, node_of)  # add() below takes them again
    held, fresh = runs[: len(state.running)], runs[len(state.running) :]
    joint = float(np.mean([run.throughput for run in runs]))
    alone = float(np.mean([run.throughput for run in trial.running.values()]))
    floor_kept = all(run.throughput >= options.min_throughput for run in fresh)
    chosen = fresh if floor_kept and joint >= alone else sequential
    if chosen is fresh:
        state.replace_runs(held)
    for run in chosen:
        state.add(run)
    return list(chosen)


def otfa_admit_all_round(
    state: ClusterState, queue: Sequence[Job], options: RoundOptions
) -> list[JobRun]:
    """Alg. 4 as printed: place every waiting job that fits, then one JRBA over all flows,
    running jobs' included, on the full link capacities. The re-plan moves running jobs too,
    so the `min_throughput` floor holds for them as well: while a new job is below it the
    slowest new job is put back, while a running job is pushed below it the newest arrival
    is, and JRBA re-runs after each."""
    idle = not state.running
    placed: list[tuple[Job, np.ndarray]] = []
    for job in queue:
        node_of = _greedy(job, state)
        if node_of is not None:
            state.take_resources(job, node_of)
            placed.append((job, node_of))
    first = 1 if idle else 0  # on an idle cluster the longest-waiting job always starts
    while True:
        runs = _replan(state, placed, options)
        held, fresh = runs[: len(state.running)], runs[len(state.running) :]
        slow = [i for i in range(first, len(fresh)) if fresh[i].throughput < options.min_throughput]
        if slow:
            drop = min(slow, key=lambda i: fresh[i].throughput)
        elif len(placed) > first and any(run.throughput < options.min_throughput for run in held):
            drop = len(placed) - 1
        else:
            break
        job, node_of = placed.pop(drop)
        state.give_resources(job, node_of)
    for job, node_of in placed:
        state.give_resources(job, node_of)  # add() below takes them again
    state.replace_runs(held)
    for run in fresh:
        state.add(run)
    return list(fresh)


def _lp_router(options: RoundOptions) -> Router:
    """JRBA (Alg. 2) on whatever capacity the caller passes: OTFS's residual bandwidth."""

    def route(
        network: Network, flows: Sequence[FlowDemand], capacity: np.ndarray, caps: np.ndarray | None
    ) -> Routing | None:
        return jrba(network, flows, capacity, options.k_paths, sharing=options.sharing, caps=caps)

    return route


def _replan(
    state: ClusterState, placed: Sequence[tuple[Job, np.ndarray]], options: RoundOptions
) -> list[JobRun]:
    """Running jobs (in `state.running` order) then `placed`, all re-routed by one JRBA."""
    network = state.network
    owners = [(run.job, run.node_of) for run in state.running.values()] + list(placed)
    per_job = [
        placed_flows(job, node_of, network.node_index(job.source)) for job, node_of in owners
    ]
    caps = [
        np.full(len(flows), np.inf) if (c := flow_caps(job, node_of, flows, network)) is None else c
        for (job, node_of), flows in zip(owners, per_job, strict=True)
    ]
    routing = jrba(
        network,
        [flow for flows in per_job for flow in flows],
        network.bandwidth,
        options.k_paths,
        sharing=options.sharing,
        caps=np.concatenate(caps) if caps else None,
    )
    if routing is None:  # full capacities are positive, so only a broken network gets here
        raise JobError("JRBA found no route on the full network")
    runs, start = [], 0
    for (job, node_of), flows in zip(owners, per_job, strict=True):
        end = start + len(flows)
        share = replace(
            routing, routes=routing.routes[start:end], bandwidth=routing.bandwidth[start:end]
        )
        runs.append(plan_run(job, node_of, flows, share, network))
        start = end
    return runs


def run_round(
    scheduler: str, state: ClusterState, queue: Sequence[Job], options: RoundOptions
) -> list[JobRun]:
    """One round of the named scheduler (one of SCHEDULERS). `options.sharing` is JRBA's
    bandwidth step, so it matters to OTFS and OTFA only; the baselines share equally."""
    if scheduler == "OTFA":
        return otfa_round(state, queue, options)

    def equal_route(
        network: Network, flows: Sequence[FlowDemand], capacity: np.ndarray, caps: np.ndarray | None
    ) -> Routing | None:
        return route_shortest(network, flows, capacity, "equal")

    rounds: dict[str, tuple[Placer, Router]] = {
        "OTFS": (_greedy, _lp_router(options)),
        "TP": (_greedy, equal_route),
        "LR": (_least_requested, equal_route),
        "BR": (_balanced, equal_route),
    }
    if scheduler not in rounds:
        raise JobError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    place, route = rounds[scheduler]
    return one_by_one_round(state, queue, place, route, options.min_throughput)
