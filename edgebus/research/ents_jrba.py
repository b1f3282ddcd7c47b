"""Routing and bandwidth for flows (thesis P3 and Alg. 2, JRBA), and the shortest-path
baselines.

JRBA solves P3-RELAX-CVX over each flow's k shortest candidate routes with cvxpy, rounds
every flow to its heaviest route (argmax_k m^k_i), improves the rounding by single-flow
moves, then shares the links: by the notes' proportional share of the bottleneck link, or
by job-level progressive filling, which never gives a flow less than that. Times are
seconds per frame; volumes bytes per frame; capacities bytes/s."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cvxpy as cp
import numpy as np
from scipy import sparse

from edgebus.research.ents_model import FlowDemand
from edgebus.research.ents_sharing import (
    equal_share,
    fair_share,
    link_loads,
    proportional_share,
)
from edgebus.research.topology import Network, Route

_TIE = 1e-9  # relative change below which two objective values count as equal
Sharing = Literal["fair", "proportional"]


class RoutingError(ValueError):
    """Flows or capacities that cannot be routed as given."""


@dataclass(frozen=True)
class Routing:
    """One route and one bandwidth (bytes/s) per flow, in the order the flows came in.
    `lp_bound` is TH of the LP relaxation (0 when no LP ran): no integral routing of these
    flows can have a bottleneck time below it."""

    routes: tuple[Route, ...]
    bandwidth: np.ndarray
    lp_bound: float = 0.0


@lru_cache(maxsize=1)
def _lp_solver() -> str:
    installed = cp.installed_solvers()
    for name in ("HIGHS", "CLARABEL"):
        if name in installed:
            _first_solve_quietly(name)
            return name
    raise RuntimeError(f"JRBA needs the HIGHS or CLARABEL solver in cvxpy; have {installed}")


def _first_solve_quietly(solver: str) -> None:
    """HiGHS prints a copyright banner straight to file descriptor 1 the first time a process
    uses it, which would tear through the CLI's progress bar: pay that first solve with
    descriptor 1 pointed at /dev/null."""
    unit = cp.Variable(nonneg=True)
    problem = cp.Problem(cp.Minimize(unit), [unit >= 1])
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1 to protect
        problem.solve(solver=solver)
        return
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            problem.solve(solver=solver)
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def solve_relaxation(
    volumes: np.ndarray, candidates: Sequence[Sequence[Route]], capacity: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """P3-RELAX-CVX: minimise TH subject to sum of m over routes through l <= B_l TH,
    sum_k m^k_i = q_i >= V_i, m >= 0. Returns TH and each flow's m^k_i (bytes per frame)."""
    if not len(candidates) or len(candidates) != len(volumes):
        raise RoutingError("solve_relaxation needs one volume per flow and at least one flow")
    if not np.all(np.asarray(volumes) > 0) or not all(candidates):
        raise RoutingError("every flow needs a volume > 0 bytes and at least one candidate route")
    scale = float(np.max(volumes))  # bytes -> units of the largest flow, for conditioning
    owner = np.repeat(np.arange(len(candidates)), [len(c) for c in candidates])
    columns = [route for routes in candidates for route in routes]
    used = sorted({link for route in columns for link in route.links})
    row_of = {link: row for row, link in enumerate(used)}
    rows = [row_of[link] for route in columns for link in route.links]
    cols = [col for col, route in enumerate(columns) for _ in route.links]
    on_link = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(used), len(columns)))
    of_flow = sparse.csr_matrix(
        (np.ones(len(columns)), (owner, np.arange(len(columns)))),
        shape=(len(candidates), len(columns)),
    )
    mass = cp.Variable(len(columns), nonneg=True)
    bound = cp.Variable()
    problem = cp.Problem(
        cp.Minimize(bound),
        [on_link @ mass <= (capacity[used] / scale) * bound, of_flow @ mass >= volumes / scale],
    )
    problem.solve(solver=_lp_solver())
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or mass.value is None:
        raise RuntimeError(f"P3-RELAX-CVX did not solve: {problem.status}")
    values = np.maximum(mass.value, 0.0) * scale
    split = np.cumsum([len(c) for c in candidates])[:-1]
    assert bound.value is not None  # solved: every variable has a value
    return float(bound.value), list(np.split(values, split))


def round_heaviest(masses: Sequence[np.ndarray]) -> np.ndarray:
    """k* = argmax_k m^k_i. Each flow keeps >= 1/k of its LP mass on its chosen route, so the
    rounded bottleneck time is at most k x the LP's TH."""
    return np.array([int(np.argmax(mass)) for mass in masses], dtype=int)


def improve_routes(
    volumes: np.ndarray,
    candidates: Sequence[Sequence[Route]],
    choice: np.ndarray,
    capacity: np.ndarray,
    max_sweeps: int = 20,
) -> np.ndarray:
    """Move single flows to another candidate route while that lowers (max link
    utilisation, sum of squared utilisations), largest flows first. Argmax rounding can put
    two flows on the same route when the LP split both; this only ever lowers the
    bottleneck, so the k x TH guarantee of the rounding still holds."""
    choice = choice.copy()
    inverse = np.divide(1.0, capacity, out=np.zeros_like(capacity), where=capacity > 0)
    load = link_loads(
        volumes, [c[k] for c, k in zip(candidates, choice, strict=True)], len(capacity)
    )

    def score(trial: np.ndarray) -> tuple[float, float]:
        utilisation = trial * inverse
        return float(utilisation.max(initial=0.0)), float(np.dot(utilisation, utilisation))

    best = score(load)
    for _ in range(max_sweeps):
        moved = False
        for flow in np.argsort(-volumes, kind="stable"):
            if len(candidates[flow]) < 2:
                continue
            current = list(candidates[flow][choice[flow]].links)
            for option, route in enumerate(candidates[flow]):
                if option == choice[flow]:
                    continue
                trial = load.copy()
                trial[current] -= volumes[flow]
                trial[list(route.links)] += volumes[flow]
                trial_score = score(trial)
                if _better(trial_score, best):
                    best, load, moved = trial_score, trial, True
                    choice[flow] = option
                    current = list(route.links)
        if not moved:
            break
    return choice


def _better(trial: tuple[float, float], best: tuple[float, float]) -> bool:
    if trial[0] < best[0] * (1 - _TIE):
        return True
    return trial[0] <= best[0] * (1 + _TIE) and trial[1] < best[1] * (1 - _TIE)


def _check_flows(network: Network, flows: Sequence[FlowDemand], capacity: np.ndarray) -> None:
    if capacity.shape != network.bandwidth.shape or np.any(capacity < 0):
        raise RoutingError(
            f"capacity must be {len(network.links)} non-negative bytes/s values, one per link"
        )
    for flow in flows:
        if flow.src == flow.dst or not flow.volume > 0:
            raise RoutingError(
                f"flow of job {flow.job} needs two distinct nodes and volume > 0 bytes, got "
                f"{flow.src}->{flow.dst} with {flow.volume}"
            )


def _usable(routes: Sequence[Route], capacity: np.ndarray, floor: float) -> list[Route]:
    return [route for route in routes if all(capacity[link] > floor for link in route.links)]


def jrba(
    network: Network,
    flows: Sequence[FlowDemand],
    capacity: np.ndarray,
    k_paths: int = 3,
    polish: bool = True,
    sharing: Sharing = "proportional",
    caps: np.ndarray | None = None,
) -> Routing | None:
    """Alg. 2 over `capacity` (bytes/s per link: full or residual). `caps` (bytes/s per flow)
    bound what `fair` sharing hands out. None when some flow has no candidate route with
    spare bandwidth on every link; the caller's budget is unchanged (subtract
    `Routing.bandwidth` along the routes to commit it)."""
    _check_flows(network, flows, capacity)
    if sharing not in ("fair", "proportional"):
        raise RoutingError(f"sharing must be 'fair' or 'proportional', got {sharing!r}")
    if caps is not None and (len(caps) != len(flows) or not np.all(np.asarray(caps) > 0)):
        raise RoutingError("caps must hold one positive bytes/s value per flow")
    if not flows:
        return Routing((), np.zeros(0))
    floor = _TIE * float(network.bandwidth.max(initial=0.0))
    candidates = []
    for flow in flows:
        usable = _usable(network.candidate_routes(flow.src, flow.dst, k_paths), capacity, floor)
        if not usable:
            return None
        candidates.append(usable)
    volumes = np.array([flow.volume for flow in flows], dtype=float)
    bound, masses = solve_relaxation(volumes, candidates, capacity)
    choice = round_heaviest(masses)
    if polish:
        choice = improve_routes(volumes, candidates, choice, capacity)
    routes = tuple(c[k] for c, k in zip(candidates, choice, strict=True))
    if sharing == "fair":
        shares = fair_share(volumes, routes, capacity, caps, [flow.job for flow in flows])
        return Routing(routes, shares, bound)
    return Routing(routes, proportional_share(volumes, routes, capacity), bound)


def route_shortest(
    network: Network,
    flows: Sequence[FlowDemand],
    capacity: np.ndarray,
    sharing: Literal["equal", "proportional"] = "equal",
) -> Routing | None:
    """Each flow on its fewest-hop route; link bandwidth split equally (the TP baseline) or in
    proportion to volume. None when a route crosses a link with no spare bandwidth."""
    _check_flows(network, flows, capacity)
    if sharing not in ("equal", "proportional"):
        raise RoutingError(f"sharing must be 'equal' or 'proportional', got {sharing!r}")
    if not flows:
        return Routing((), np.zeros(0))
    floor = _TIE * float(network.bandwidth.max(initial=0.0))
    routes = tuple(network.shortest_route(flow.src, flow.dst) for flow in flows)
    if len(_usable(routes, capacity, floor)) < len(routes):
        return None
    if sharing == "equal":
        return Routing(routes, equal_share(routes, capacity))
    volumes = np.array([flow.volume for flow in flows], dtype=float)
    return Routing(routes, proportional_share(volumes, routes, capacity))
