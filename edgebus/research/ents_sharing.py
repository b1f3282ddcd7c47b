"""How flows on fixed routes share link bandwidth: P3's objective for fixed routes, the
notes' proportional share of the bottleneck, equal shares (the TP baseline) and job-level
progressive filling. Volumes are bytes per frame, capacities and shares bytes/s."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from scipy import sparse

from edgebus.research.topology import Route

_TIE = 1e-9  # relative slack under which a link counts as full


def link_loads(volumes: np.ndarray, routes: Sequence[Route], link_count: int) -> np.ndarray:
    load = np.zeros(link_count)
    for volume, route in zip(volumes, routes, strict=True):
        load[list(route.links)] += volume
    return load


def bottleneck_time(volumes: np.ndarray, routes: Sequence[Route], capacity: np.ndarray) -> float:
    """P3's objective max_i V_i/b_i for fixed routes under its best bandwidth split, which is
    max over links of (bytes per frame crossing it) / B_l."""
    load = link_loads(volumes, routes, len(capacity))
    used = load > 0
    if not used.any():
        return 0.0
    with np.errstate(divide="ignore"):
        return float(np.max(load[used] / capacity[used]))


def proportional_share(
    volumes: np.ndarray, routes: Sequence[Route], capacity: np.ndarray
) -> np.ndarray:
    """b_i = min over links l on route i of B_l V_i / (sum of V over the flows on l): every
    flow on its bottleneck link finishes a frame at the same time."""
    load = link_loads(volumes, routes, len(capacity))
    return np.array(
        [
            min(capacity[link] * volume / load[link] for link in route.links)
            for volume, route in zip(volumes, routes, strict=True)
        ]
    )


def equal_share(routes: Sequence[Route], capacity: np.ndarray) -> np.ndarray:
    """b_i = min over links l on route i of B_l / (number of flows on l)."""
    count = np.zeros(len(capacity))
    for route in routes:
        count[list(route.links)] += 1
    return np.array([min(capacity[link] / count[link] for link in route.links) for route in routes])


def fair_share(
    volumes: np.ndarray,
    routes: Sequence[Route],
    capacity: np.ndarray,
    caps: np.ndarray | None = None,
    groups: Sequence[Hashable] | None = None,
) -> np.ndarray:
    """Progressive filling in frames/s. Every group's rate r rises together, each of its
    flows taking b_i = V_i r; a group stops at the lowest cap (bytes/s) of its flows or when
    a link on one of its routes fills. Flows of one job form a group because the job runs at
    its slowest flow's pace: a flow that outran its siblings would hold bandwidth no frame
    uses. With one group on one bottleneck this is `proportional_share`; no flow ever gets
    less than that, and what a capped or elsewhere-bottlenecked flow cannot use goes to the
    others instead of idling. None for `groups` puts each flow in its own group."""
    count = len(routes)
    labels = list(range(count)) if groups is None else list(groups)
    _, group = np.unique(np.array(labels, dtype=object).astype(str), return_inverse=True)
    group_count = int(group.max()) + 1 if count else 0
    per_flow = np.full(count, np.inf) if caps is None else np.asarray(caps, float) / volumes
    ceiling = np.full(group_count, np.inf)
    np.minimum.at(ceiling, group, per_flow)
    rows = [link for route in routes for link in route.links]
    cols = [i for i, route in enumerate(routes) for _ in route.links]
    on_link = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(capacity), count))
    spare = capacity.astype(float).copy()
    level = np.zeros(group_count)
    active = np.ones(group_count, dtype=bool)
    while active.any():
        demand = on_link @ (volumes * active[group])  # bytes per frame of rising flows, per link
        loaded = demand > 0
        step = np.min(spare[loaded] / demand[loaded], initial=np.inf)
        step = max(0.0, min(step, float(np.min(ceiling[active] - level[active]))))
        level[active] += step
        spare -= step * demand
        full = loaded & (spare <= _TIE * capacity)
        blocked = np.zeros(group_count, dtype=bool)
        if full.any():
            blocked[group[on_link[full].sum(axis=0).A1 > 0]] = True
        done = active & (blocked | (level >= ceiling * (1 - _TIE)))
        if not done.any():  # only float noise left between the step and the freeze test
            done = active
        active &= ~done
    return level[group] * volumes
