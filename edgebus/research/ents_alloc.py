"""Task placement: ENTS' greedy allocation (thesis Alg. 1) and the whole-job baselines
LeastRequested and BalancedResource (the Kubernetes scorers of the same names).

A placement is an int array: the node index of each task of the job, in `job.tasks` order.
They all return None when the nodes' *available* resources cannot hold the job right now,
and raise `InfeasibleJobError` when even empty nodes never could."""

from __future__ import annotations

import numpy as np

from edgebus.research.ents_model import SOURCE, Job, JobError
from edgebus.research.topology import Network

_SLACK = 1e-9  # relative tolerance on resource comparisons, for float sums of demands


class InfeasibleJobError(JobError):
    """A job (or one of its tasks) needs more than any node's capacity R_max."""


def _fits(available: np.ndarray, demand: np.ndarray) -> np.ndarray:
    return np.all(available + _SLACK * (1.0 + np.abs(demand)) >= demand, axis=-1)


def allocate_greedy(
    job: Job, network: Network, available: np.ndarray, bandwidth: np.ndarray
) -> np.ndarray | None:
    """Alg. 1: in topological order put each task on the feasible node minimising
    t_exec = (C of the job's tasks already there + C_i) / PS_j + max_pred D / B̄, where B̄ is
    the mean of `bandwidth` over the shortest route from the predecessor's node.

    The job's own earlier tasks count in the compute term because they share that node's
    compute per frame (see `compute_time`); the thesis' C_i/PS_j alone would keep piling a
    job's tasks onto the fastest node within reach."""
    source = network.node_index(job.source)
    _check_available(network, available)
    if bandwidth.shape != network.bandwidth.shape or np.any(bandwidth < 0):
        raise JobError(
            f"bandwidth must be {len(network.links)} non-negative bytes/s values, one per link"
        )
    for task, demand in zip(job.tasks, job.demands, strict=True):
        if not _fits(network.capacity, demand).any():
            raise InfeasibleJobError(
                f"job {job.name}: task {task.name} needs {task.demand}, more than any node has"
            )
    mean_bandwidth = network.mean_route_bandwidth(bandwidth)
    free = available.astype(float).copy()
    load = np.zeros(network.size)
    node_of = np.full(len(job.tasks), -1, dtype=int)
    for step in job.order:
        feasible = _fits(free, job.demands[step])
        if not feasible.any():
            return None
        transfer = np.zeros(network.size)
        for pred, volume in job.inputs[step]:
            if volume > 0:
                origin = source if pred == SOURCE else node_of[pred]
                with np.errstate(divide="ignore"):
                    transfer = np.maximum(transfer, volume / mean_bandwidth[origin])
        cost = (load + job.workloads[step]) / network.compute + transfer
        cost[~feasible] = np.inf
        chosen = int(np.flatnonzero(feasible)[np.argmin(cost[feasible])])
        node_of[step] = chosen
        free[chosen] -= job.demands[step]
        load[chosen] += job.workloads[step]
    return node_of


def _whole_job_scores(
    job: Job, network: Network, available: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    network.node_index(job.source)  # validated only: these scorers ignore the camera's node
    _check_available(network, available)
    total = job.total_demand()
    if not _fits(network.capacity, total).any():
        raise InfeasibleJobError(
            f"job {job.name}: the whole job needs cpu={total[0]:g}, memory={total[1]:g}, "
            "more than any node has"
        )
    feasible = _fits(available, total)
    with np.errstate(divide="ignore", invalid="ignore"):
        requested = (network.capacity - available + total) / network.capacity
    requested = np.nan_to_num(requested, nan=0.0, posinf=1.0)
    least_requested = np.mean(1.0 - requested, axis=1)
    balanced = 1.0 - np.abs(requested[:, 0] - requested[:, 1])
    return feasible, least_requested, balanced


def place_least_requested(job: Job, network: Network, available: np.ndarray) -> np.ndarray | None:
    """LR: the whole job on the feasible node with the most free capacity after placing it
    (mean over CPU and memory of (capacity - requested) / capacity)."""
    feasible, least_requested, _ = _whole_job_scores(job, network, available)
    if not feasible.any():
        return None
    candidates = np.flatnonzero(feasible)
    chosen = int(candidates[np.argmax(least_requested[candidates])])
    return np.full(len(job.tasks), chosen, dtype=int)


def place_balanced(job: Job, network: Network, available: np.ndarray) -> np.ndarray | None:
    """BR: the whole job on the feasible node whose CPU and memory fractions end up closest
    (1 - |cpu fraction - memory fraction|); ties go to the least requested node, as the
    Kubernetes scheduler adds the two scores."""
    feasible, least_requested, balanced = _whole_job_scores(job, network, available)
    if not feasible.any():
        return None
    candidates = np.flatnonzero(feasible)
    # lexsort's last key is the primary one: balance first, then free capacity
    ranked = np.lexsort((-least_requested[candidates], -np.round(balanced[candidates], 9)))
    return np.full(len(job.tasks), int(candidates[ranked[0]]), dtype=int)


def _check_available(network: Network, available: np.ndarray) -> None:
    if available.shape != network.capacity.shape:
        raise JobError(
            f"available resources must have shape {network.capacity.shape} (nodes x cpu, memory),"
            f" got {available.shape}"
        )
