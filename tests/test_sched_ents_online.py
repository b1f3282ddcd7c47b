"""The online simulation (OTFS, OTFA and the baselines) and the random topologies."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from edgebus.research.ents import SCHEDULERS, RoundOptions, simulate
from edgebus.research.ents_online import Arrival, SimulationError
from edgebus.research.ents_rounds import (
    _greedy,
    _lp_router,
    one_by_one_round,
    run_round,
)
from edgebus.research.ents_state import ClusterState
from edgebus.research.ents_workload import object_attribute_job, poisson_arrivals
from edgebus.research.topology import (
    EdgeNode,
    Link,
    Network,
    Resources,
    TopologyError,
    mbps,
    random_network,
)


def small_case(seed: int = 0):
    network = random_network(8, mbps(1), seed=seed)
    return network, poisson_arrivals(network, 10, rate=0.5, seed=seed, frames=20)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_schedulers_never_overcommit_nodes_or_links(scheduler):
    network, arrivals = small_case()
    seen = []

    def check(now, state):
        assert np.all(state.available >= -1e-9 * network.capacity)
        held = np.zeros_like(network.capacity)
        usage = np.zeros(len(network.links))
        for run in state.running.values():
            np.add.at(held, run.node_of, run.job.demands)
            for route, rate in zip(run.routes, run.bandwidth, strict=True):
                usage[list(route.links)] += rate
        assert np.all(held <= network.capacity * (1 + 1e-9))
        assert np.all(usage <= network.bandwidth * (1 + 1e-9))
        seen.append(len(state.running))

    result = simulate(network, arrivals, scheduler, observe=check)
    assert len(result.outcomes) == len(arrivals)
    assert max(seen) >= 2  # jobs did share the cluster
    for outcome in result.outcomes:
        assert outcome.start >= outcome.arrival
        assert outcome.finish > outcome.start
        assert 0 < outcome.throughput <= 30.0 * (1 + 1e-9)


def test_simulation_is_reproducible():
    network, arrivals = small_case(1)
    first = simulate(network, arrivals, "OTFS")
    again = simulate(network, arrivals, "OTFS")
    assert [o.finish for o in first.outcomes] == [o.finish for o in again.outcomes]


def test_a_lone_job_runs_at_its_planned_rate():
    network = random_network(6, mbps(10), seed=4)
    job = object_attribute_job("solo", "n0", frames=60)
    result = simulate(network, [Arrival(5.0, job)], "OTFA")
    (outcome,) = result.outcomes
    assert outcome.start == 5.0 and outcome.waiting == 0.0
    assert outcome.finish - outcome.start == pytest.approx(60 / outcome.throughput)


def test_jobs_wait_when_the_only_node_is_busy():
    box = Resources(cpu=8, memory=8e9)
    network = Network(
        [EdgeNode("big", 4e11, box), EdgeNode("cam", 1e10, Resources(cpu=0, memory=0))],
        [Link("big", "cam", mbps(10))],
    )
    arrivals = [Arrival(0.0, object_attribute_job(f"j{i}", "cam", frames=30)) for i in range(2)]
    for scheduler in SCHEDULERS:
        first, second = simulate(network, arrivals, scheduler).outcomes
        assert first.waiting == 0.0
        assert second.start == pytest.approx(first.finish)


def test_bad_simulation_inputs_raise():
    network, arrivals = small_case()
    with pytest.raises(SimulationError, match="at least one job"):
        simulate(network, [], "OTFA")
    with pytest.raises(ValueError, match="scheduler must be one of"):
        simulate(network, arrivals, "FIFO")
    with pytest.raises(SimulationError, match="unique"):
        simulate(network, arrivals + arrivals[:1], "OTFA")
    with pytest.raises(ValueError, match="sharing"):
        simulate(network, arrivals, "OTFA", options=RoundOptions(sharing="max"))
    with pytest.raises(ValueError, match="rate"):
        poisson_arrivals(network, 3, rate=0, seed=0)


def test_random_network_is_connected_with_average_degree_3():
    for size in (10, 40):
        network = random_network(size, mbps(5), seed=size)
        assert nx.is_connected(network.graph)
        assert len(network.links) == round(1.5 * size)
        assert np.all(network.bandwidth >= 0.5 * mbps(5))
        assert np.all(network.bandwidth <= 1.5 * mbps(5))
    again = random_network(40, mbps(5), seed=40)
    assert [(link.u, link.v, link.bandwidth) for link in again.links] == [
        (link.u, link.v, link.bandwidth) for link in random_network(40, mbps(5), seed=40).links
    ]


def test_candidate_routes_are_loop_free_and_shortest_first():
    network = random_network(15, mbps(5), seed=7)
    routes = network.candidate_routes(0, 9, 3)
    hops = [len(route.links) for route in routes]
    assert hops == sorted(hops)
    assert hops[0] == nx.shortest_path_length(network.graph, 0, 9)
    for route in routes:
        assert len(set(route.nodes)) == len(route.nodes)
        assert route.nodes[0] == 0 and route.nodes[-1] == 9


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Link("a", "b", -1.0), "bandwidth must be > 0"),
        (lambda: Link("a", "a", 1.0), "two distinct nodes"),
        (lambda: Resources(cpu=-1, memory=0), "non-negative"),
        (lambda: EdgeNode("a", 0.0, Resources(cpu=1, memory=1)), "compute"),
        (lambda: random_network(1, 1.0, seed=0), "node_count"),
        (lambda: random_network(5, -1.0, seed=0), "mean_bandwidth"),
        (lambda: random_network(5, 1.0, seed=0, degree=9), "degree"),
        (lambda: Network([], []), "at least one node"),
    ],
)
def test_bad_topologies_raise(build, message):
    with pytest.raises(TopologyError, match=message):
        build()


def test_links_to_unknown_nodes_raise():
    box = Resources(cpu=1, memory=1)
    with pytest.raises(TopologyError, match="unknown node 'z'"):
        Network([EdgeNode("a", 1.0, box)], [Link("a", "z", 1.0)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otfa_round_never_plans_a_lower_mean_throughput_than_otfs(seed):
    """OTFA starts what OTFS would and adopts its joint re-plan only when that helps, so
    after the same round on the same cluster its mean planned throughput is never lower."""
    network = random_network(12, mbps(1.0), seed)
    jobs = [object_attribute_job(f"j{i}", f"n{(3 * i + seed) % 12}") for i in range(8)]
    options = RoundOptions()
    base = ClusterState(network)
    one_by_one_round(base, jobs[:3], _greedy, _lp_router(options), options.min_throughput)
    after = {}
    for scheduler in ("OTFA", "OTFS"):
        state = ClusterState(network, list(base.running.values()))
        run_round(scheduler, state, jobs[3:], options)
        after[scheduler] = np.mean([run.throughput for run in state.running.values()])
    assert after["OTFA"] >= after["OTFS"] - 1e-9
