"""ENTS (thesis Ch. 3): the motivating example of Fig. 3.2, allocation and the coordinator's
entry point."""

from __future__ import annotations

import numpy as np
import pytest

from edgebus.research.ents import (
    InfeasibleJobError,
    Job,
    JobError,
    RoundOptions,
    Task,
    allocate_greedy,
    jrba,
    place_balanced,
    place_least_requested,
    route_shortest,
    schedule_round,
)
from edgebus.research.ents_model import placed_flows
from edgebus.research.ents_state import plan_run
from edgebus.research.ents_workload import object_attribute_job
from edgebus.research.topology import (
    EdgeNode,
    Link,
    Network,
    Resources,
    random_network,
)

ONE_TASK = Resources(cpu=1, memory=1)


def motivating_network() -> Network:
    """Fig. 3.2 as the text implies it: the camera at e4 (compute 20, room for one task), e1
    (compute 200) one link of bandwidth 10 away, and a second e4-e2-e1 path of bandwidth 6
    through a relay e2 that hosts nothing."""
    nodes = [
        EdgeNode("e1", 200, Resources(cpu=10, memory=10)),
        EdgeNode("e2", 10, Resources(cpu=0.5, memory=0.5)),
        EdgeNode("e4", 20, ONE_TASK),
    ]
    links = [Link("e4", "e1", 10), Link("e4", "e2", 6), Link("e2", "e1", 6)]
    return Network(nodes, links)


def motivating_job() -> Job:
    """Total workload 55 with input 5 from e4: task a (5) feeds b (30) with 2 and c (20)
    with 1 per frame."""
    tasks = (Task("a", 5, ONE_TASK), Task("b", 30, ONE_TASK), Task("c", 20, ONE_TASK))
    return Job("fig32", tasks, {("a", "b"): 2, ("a", "c"): 1}, "e4", input_bytes=5, frame_rate=None)


def throughput_of(network, job, node_of, route) -> float:
    flows = placed_flows(job, node_of, network.node_index(job.source))
    routing = route(network, flows, network.bandwidth)
    return plan_run(job, node_of, flows, routing, network).throughput


def test_fig32_whole_job_on_e1_gives_2():
    network, job = motivating_network(), motivating_job()
    node_of = place_least_requested(job, network, network.capacity.copy())
    assert [network.nodes[i].name for i in node_of] == ["e1", "e1", "e1"]
    assert place_balanced(job, network, network.capacity.copy()).tolist() == node_of.tolist()
    # 1 / max(5/10, 55/200)
    assert throughput_of(network, job, node_of, route_shortest) == pytest.approx(2.0)


def test_fig32_greedy_puts_a_on_the_camera_node():
    network, job = motivating_network(), motivating_job()
    node_of = allocate_greedy(job, network, network.capacity.copy(), network.bandwidth)
    assert [network.nodes[i].name for i in node_of] == ["e4", "e1", "e1"]


def test_fig32_task_a_on_e4_with_equal_sharing_gives_2_5():
    network, job = motivating_network(), motivating_job()
    node_of = allocate_greedy(job, network, network.capacity.copy(), network.bandwidth)

    def equal(net, flows, capacity):
        return route_shortest(net, flows, capacity, "equal")

    assert throughput_of(network, job, node_of, equal) == pytest.approx(2.5)


def test_fig32_proportional_sharing_gives_10_over_3():
    network, job = motivating_network(), motivating_job()
    node_of = allocate_greedy(job, network, network.capacity.copy(), network.bandwidth)

    def proportional(net, flows, capacity):
        return route_shortest(net, flows, capacity, "proportional")

    assert throughput_of(network, job, node_of, proportional) == pytest.approx(10 / 3)


@pytest.mark.parametrize("sharing", ["proportional", "fair"])
def test_fig32_lp_routing_over_two_paths_gives_4(sharing):
    network, job = motivating_network(), motivating_job()
    node_of = allocate_greedy(job, network, network.capacity.copy(), network.bandwidth)

    def lp(net, flows, capacity):
        return jrba(net, flows, capacity, k_paths=2, sharing=sharing)

    assert throughput_of(network, job, node_of, lp) == pytest.approx(4.0)
    flows = placed_flows(job, node_of, network.node_index("e4"))
    routing = jrba(network, flows, network.bandwidth, k_paths=2, sharing=sharing)
    routes = {flows[i].dst_task: r.nodes for i, r in enumerate(routing.routes)}
    e1, e2, e4 = (network.node_index(n) for n in ("e1", "e2", "e4"))
    assert routes == {1: (e4, e1), 2: (e4, e2, e1)}
    # LP relaxation: 3 bytes over 10 + 6 of capacity
    assert routing.lp_bound == pytest.approx(3 / 16, rel=1e-6)


def test_greedy_respects_available_resources():
    network = random_network(12, 1e5, seed=3)
    available = network.capacity.copy()
    for index in range(12):
        job = object_attribute_job(f"j{index}", network.nodes[index].name)
        node_of = allocate_greedy(job, network, available, network.bandwidth)
        if node_of is None:
            continue
        np.subtract.at(available, node_of, job.demands)
        assert np.all(available >= -1e-9 * network.capacity)
    # the network is full now: the next job is refused, not squeezed in
    assert (
        allocate_greedy(
            object_attribute_job("late", "n0"), network, available * 0, network.bandwidth
        )
        is None
    )


def test_whole_job_baselines_refuse_when_no_node_has_room():
    network = random_network(6, 1e5, seed=1)
    job = object_attribute_job("j", "n0")
    assert place_least_requested(job, network, network.capacity * 0.1) is None
    assert place_balanced(job, network, network.capacity * 0.1) is None


def test_infeasible_task_raises():
    network = motivating_network()
    huge = Job("huge", (Task("x", 1, Resources(cpu=100, memory=1)),), {}, "e4", 1.0)
    with pytest.raises(InfeasibleJobError, match="task x"):
        allocate_greedy(huge, network, network.capacity.copy(), network.bandwidth)
    with pytest.raises(InfeasibleJobError, match="whole job"):
        place_least_requested(huge, network, network.capacity.copy())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Job("j", (), {}, "e4", 1.0), "at least one task"),
        (lambda: Job("j", (Task("a", 1, ONE_TASK),) * 2, {}, "e4", 1.0), "unique"),
        (lambda: Job("j", (Task("a", 1, ONE_TASK),), {("a", "z"): 1}, "e4", 1.0), "unknown"),
        (lambda: Job("j", (Task("a", 1, ONE_TASK),), {}, "e4", -1.0), "input_bytes"),
        (lambda: Task("a", -5, ONE_TASK), "workload"),
        (
            lambda: Job(
                "j",
                (Task("a", 1, ONE_TASK), Task("b", 1, ONE_TASK)),
                {("a", "b"): 1, ("b", "a"): 1},
                "e4",
                1.0,
            ),
            "cycle",
        ),
    ],
)
def test_bad_jobs_raise(build, message):
    with pytest.raises(JobError, match=message):
        build()


def test_unknown_source_node_raises():
    network = motivating_network()
    job = Job("j", (Task("a", 1, ONE_TASK),), {}, "nowhere", 1.0)
    with pytest.raises(ValueError, match="unknown node 'nowhere'"):
        allocate_greedy(job, network, network.capacity.copy(), network.bandwidth)


def test_schedule_round_plans_tasks_routes_and_bandwidth():
    network = random_network(12, 5e5, seed=2)
    jobs = [object_attribute_job(f"j{i}", f"n{i}") for i in range(3)]
    everyone = RoundOptions(admission="all")  # Alg. 4 as printed: start all that fit
    first = schedule_round(network, jobs, options=everyone)
    assert set(first.started) == {"j0", "j1", "j2"} and first.waiting == ()
    later = schedule_round(
        network, [object_attribute_job("j3", "n3")], running=first.jobs, options=everyone
    )
    assert {plan.job.name for plan in later.jobs} == {"j0", "j1", "j2", "j3"}
    # The default admits what OTFS would on the residual bandwidth: here j1 waits.
    cautious = schedule_round(network, jobs)
    assert set(cautious.started) | set(cautious.waiting) == {"j0", "j1", "j2"}
    assert "j0" in cautious.started and cautious.waiting
    usage = {}
    for plan in later.jobs:
        assert set(plan.placement) == {task.name for task in plan.job.tasks}
        for flow in plan.flows:
            assert flow.route[0] == flow.src_node and flow.route[-1] == flow.dst_node
            assert flow.bandwidth > 0
            for a, b in zip(flow.route, flow.route[1:], strict=False):
                key = frozenset((a, b))
                usage[key] = usage.get(key, 0.0) + flow.bandwidth
    for link in network.links:
        assert usage.get(frozenset((link.u, link.v)), 0.0) <= link.bandwidth * (1 + 1e-9)
    directive = later.for_node("n3")
    assert ("j3", "decode") in directive.tasks
    for flow, hop in directive.forwards:
        assert flow.route[flow.route.index("n3") + 1] == hop


def test_schedule_round_rejects_duplicate_names_and_bad_options():
    network = random_network(6, 5e5, seed=2)
    job = object_attribute_job("j", "n0")
    with pytest.raises(JobError, match="unique"):
        schedule_round(network, [job, object_attribute_job("j", "n1")])
    with pytest.raises(JobError, match="min_throughput"):
        RoundOptions(min_throughput=0)
    with pytest.raises(JobError, match="k_paths"):
        schedule_round(network, [job], k_paths=0)
    with pytest.raises(JobError, match="admission must be"):
        RoundOptions(admission="some")  # type: ignore[arg-type]


def test_bad_cluster_state_raises():
    network, job = motivating_network(), motivating_job()
    with pytest.raises(JobError, match="available resources must have shape"):
        allocate_greedy(job, network, network.capacity[:2], network.bandwidth)
    with pytest.raises(JobError, match="non-negative bytes/s"):
        allocate_greedy(job, network, network.capacity.copy(), -network.bandwidth)
    with pytest.raises(JobError, match="available resources must have shape"):
        place_balanced(job, network, network.capacity.T)


def test_the_scheduler_runs_without_torch():
    import subprocess
    import sys

    probe = (
        "import sys, edgebus.research.ents, "
        "edgebus.research.ents_workload; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
