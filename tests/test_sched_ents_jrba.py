"""JRBA's LP routing against brute force over every path choice, and the sharing rules."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgebus.research.ents_jrba import (
    RoutingError,
    improve_routes,
    jrba,
    round_heaviest,
    solve_relaxation,
)
from edgebus.research.ents_model import FlowDemand
from edgebus.research.ents_sharing import (
    bottleneck_time,
    fair_share,
    link_loads,
    proportional_share,
)
from edgebus.research.topology import (
    NoRouteError,
    TopologyError,
    random_network,
)

K = 3
SEEDS = range(40)


def random_case(seed: int):
    rng = np.random.default_rng(100 + seed)
    network = random_network(7, 1e5, seed=seed)
    flows = []
    for _ in range(int(rng.integers(3, 6))):
        src, dst = (int(x) for x in rng.choice(network.size, size=2, replace=False))
        flows.append(FlowDemand("j", src, dst, float(rng.uniform(1e3, 1e5)), 0, 1))
    candidates = [network.candidate_routes(f.src, f.dst, K) for f in flows]
    volumes = np.array([f.volume for f in flows])
    return network, flows, candidates, volumes


def time_of(volumes, candidates, choice, capacity) -> float:
    routes = [routes[k] for routes, k in zip(candidates, choice, strict=True)]
    return bottleneck_time(volumes, routes, capacity)


def brute_force(volumes, candidates, capacity) -> float:
    return min(
        bottleneck_time(volumes, list(choice), capacity)
        for choice in itertools.product(*candidates)
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_lp_bounds_and_rounding_against_brute_force(seed):
    network, _, candidates, volumes = random_case(seed)
    capacity = network.bandwidth
    best = brute_force(volumes, candidates, capacity)
    bound, masses = solve_relaxation(volumes, candidates, capacity)
    choice = round_heaviest(masses)
    rounded = bottleneck_time(
        volumes, [c[k] for c, k in zip(candidates, choice, strict=False)], capacity
    )
    polished_choice = improve_routes(volumes, candidates, choice, capacity)
    polished = bottleneck_time(
        volumes, [c[k] for c, k in zip(candidates, polished_choice, strict=False)], capacity
    )
    # the relaxation never beats an integral routing; argmax keeps >= 1/k of every flow's
    # LP mass on its route, so rounding costs at most a factor k
    assert bound <= best * (1 + 1e-6)
    assert best <= rounded * (1 + 1e-9)
    assert rounded <= K * bound * (1 + 1e-6)
    assert best <= polished * (1 + 1e-9) <= rounded * (1 + 1e-9)
    integral = all(np.max(m) >= np.sum(m) * (1 - 1e-6) for m in masses)
    if integral:
        assert rounded == pytest.approx(best, rel=1e-6)


def test_polished_rounding_is_usually_optimal():
    """The measured quality over the 40 seeded cases: argmax rounding alone matches brute
    force on 22 (worst 1.53x), the polished rounding on 34 (worst 1.39x)."""
    ratios = []
    for seed in SEEDS:
        network, _, candidates, volumes = random_case(seed)
        capacity = network.bandwidth
        best = brute_force(volumes, candidates, capacity)
        _, masses = solve_relaxation(volumes, candidates, capacity)
        choice = improve_routes(volumes, candidates, round_heaviest(masses), capacity)
        ratios.append(
            bottleneck_time(
                volumes, [c[k] for c, k in zip(candidates, choice, strict=False)], capacity
            )
            / best
        )
    assert max(ratios) <= 1.5
    assert sum(r <= 1 + 1e-6 for r in ratios) >= len(ratios) * 3 // 4
    assert integral_cases() >= 3  # the integral branch of the bounds test is exercised


def integral_cases() -> int:
    count = 0
    for seed in SEEDS:
        network, _, candidates, volumes = random_case(seed)
        _, masses = solve_relaxation(volumes, candidates, network.bandwidth)
        count += all(np.max(m) >= np.sum(m) * (1 - 1e-6) for m in masses)
    return count


@pytest.mark.parametrize("seed", range(4))
def test_jrba_shares_never_exceed_link_capacity(seed):
    network, flows, _, _volumes = random_case(seed)
    residual = network.bandwidth * np.linspace(0.3, 1.0, len(network.links))
    for sharing in ("proportional", "fair"):
        routing = jrba(network, flows, residual, K, sharing=sharing)
        used = np.zeros(len(network.links))
        for route, rate in zip(routing.routes, routing.bandwidth, strict=False):
            used[list(route.links)] += rate
        assert np.all(used <= residual * (1 + 1e-9))
        assert np.all(routing.bandwidth > 0)


@pytest.mark.parametrize("seed", range(4))
def test_fair_share_never_gives_less_than_proportional(seed):
    network, _flows, candidates, volumes = random_case(seed)
    routes = [c[0] for c in candidates]
    groups = ["a", "b"] * len(routes)
    fair = fair_share(volumes, routes, network.bandwidth, groups=groups[: len(routes)])
    proportional = proportional_share(volumes, routes, network.bandwidth)
    used = np.zeros(len(network.links))
    for route, rate in zip(routes, fair, strict=False):
        used[list(route.links)] += rate
    assert np.all(used <= network.bandwidth * (1 + 1e-9))
    per_group = {}
    for label, f, p, v in zip(groups, fair, proportional, volumes, strict=False):
        per_group.setdefault(label, []).append((f / v, p / v))
    for pairs in per_group.values():
        # a group runs at its slowest flow: that rate is never below proportional sharing's
        assert min(f for f, _ in pairs) >= min(p for _, p in pairs) * (1 - 1e-9)


def test_fair_share_respects_caps_and_hands_the_rest_on():
    network, _flows, candidates, _volumes = random_case(0)
    routes = [candidates[0][0]] * 2
    two = np.array([1e4, 1e4])
    capacity = network.bandwidth
    bottleneck = min(capacity[list(routes[0].links)])
    shares = fair_share(two, routes, capacity, caps=np.array([bottleneck / 4, np.inf]))
    assert shares[0] == pytest.approx(bottleneck / 4)
    assert shares[1] == pytest.approx(bottleneck * 3 / 4)


def test_full_links_block_a_flow_and_saturated_routes_return_none():
    network, flows, _, _ = random_case(1)
    assert jrba(network, flows, np.zeros(len(network.links)), K) is None


def test_bad_flows_and_capacities_raise():
    network, flows, _, _ = random_case(2)
    same = FlowDemand("j", 0, 0, 1.0, 0, 1)
    with pytest.raises(RoutingError, match="two distinct nodes"):
        jrba(network, [same], network.bandwidth)
    with pytest.raises(RoutingError, match="capacity"):
        jrba(network, flows, -network.bandwidth)
    with pytest.raises(RoutingError, match="sharing"):
        jrba(network, flows, network.bandwidth, sharing="greedy")
    with pytest.raises(TopologyError, match="k"):
        jrba(network, flows, network.bandwidth, k_paths=0)


def test_loads_count_each_link_of_each_route():
    network, _, candidates, volumes = random_case(3)
    routes = [c[-1] for c in candidates]
    load = link_loads(volumes, routes, len(network.links))
    assert load.sum() == pytest.approx(
        sum(v * len(r.links) for v, r in zip(volumes, routes, strict=False))
    )


def test_disconnected_nodes_have_no_route():
    from edgebus.research.topology import EdgeNode, Link, Network, Resources

    box = Resources(cpu=1, memory=1)
    network = Network([EdgeNode(n, 1.0, box) for n in ("a", "b", "c")], [Link("a", "b", 1.0)])
    with pytest.raises(NoRouteError, match="no path from a to c"):
        network.candidate_routes(0, 2, 2)


def test_bad_relaxation_inputs_raise():
    network, _, candidates, volumes = random_case(0)
    with pytest.raises(RoutingError, match="at least one flow"):
        solve_relaxation(np.zeros(0), [], network.bandwidth)
    with pytest.raises(RoutingError, match="volume > 0"):
        solve_relaxation(-volumes, candidates, network.bandwidth)
