"""The coordinator's live stream mapping and the nodes' side of its policies, without a
broker: problem building from statuses, caps, sticky plans, dead edges, handover."""

from __future__ import annotations

import numpy as np
import pytest

from edgebus.broker.link import BandwidthTrace
from edgebus.config import ConfigError, load_settings, parse_peer_links
from edgebus.coordinator.stream_scheduler import (
    StreamScheduler,
    build_problem,
    caps_for,
)
from edgebus.messages import Heartbeat, SchedulingPolicy, Status
from edgebus.nodes.stream_policy import ANY_PEER, CameraRoute
from edgebus.topics import Topics
from tests.manual_clock import ManualClock


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, SchedulingPolicy]] = []

    async def publish(self, topic, message, qos=0, retain=False) -> None:
        assert retain and qos == 1
        self.published.append((topic, message))


def edge(name: str, capacity: float = 100.0, downlink: float = 0.0, state="online") -> Status:
    resources = {"capacity_fps": capacity, "cpu_free": 1.0, "memory_free_mb": 4096.0,
                 "downlink_bps": downlink}  # fmt: skip
    return Status(name, "edge", state, resources=resources if state == "online" else {})


def camera(name: str, links: dict[str, float], frame_bytes: float = 2000.0) -> Status:
    resources = {"frame_bytes": frame_bytes, "frame_rate": 2.0}
    return Status(name, "camera", "online", resources=resources, links_bps=links)


def scheduler() -> tuple[StreamScheduler, RecordingBus, ManualClock]:
    bus, clock = RecordingBus(), ManualClock()
    return StreamScheduler(bus, Topics("lab"), clock, 10.0, 1.0), bus, clock  # type: ignore[arg-type]


def test_problem_from_statuses():
    edges = [edge("e1", capacity=50.0), edge("e2", capacity=200.0)]
    cams = [camera("c1", {"e1": 4000.0, ANY_PEER: 1000.0})]
    problem = build_problem(edges, cams)
    assert [d.compute for d in problem.devices] == [50.0, 200.0]
    np.testing.assert_allclose(problem.upload_s[:, 0], [2000 / 4000, 2000 / 1000])
    assert problem.streams[0].reid_load == 0  # the live pipeline has one stage


async def test_a_narrow_downlink_spreads_cameras_over_edges():
    """Four cameras a little nearer e1 than e2, both edges' downlinks carrying 2 frames/s:
    served like a classifier, the ingress makes JSTSH split them two and two; with roomy
    downlinks all four take the faster links to e1."""
    for downlink, expected in ((4000.0, ["e1", "e1", "e2", "e2"]), (1e6, ["e1"] * 4)):
        s, _, _ = scheduler()
        for e in ("e1", "e2"):
            s.on_status(edge(e, capacity=500.0, downlink=downlink))
        for c in ("c1", "c2", "c3", "c4"):
            s.on_status(camera(c, {"e1": 6000.0, "e2": 5000.0}))
        await s.replan()
        assert sorted(s.plan.edge_of.values()) == expected
    problem = build_problem([edge("e1", 500.0, 4000.0)], [camera("c1", {ANY_PEER: 6000.0})])
    assert problem.devices[0].compute == pytest.approx(2.0)  # 4000 B/s / 2000 B frames


def test_caps_share_a_tight_downlink_by_demand():
    edges = {"e1": edge("e1", downlink=3000.0)}
    cams = {"c1": camera("c1", {ANY_PEER: 6000.0}, 2000.0),
            "c2": camera("c2", {ANY_PEER: 6000.0}, 1000.0)}  # fmt: skip
    caps = caps_for({"c1": "e1", "c2": "e1"}, edges, cams)
    assert caps == pytest.approx({"c1": 2000.0, "c2": 1000.0})
    roomy = {"e1": edge("e1", downlink=1e6)}
    assert caps_for({"c1": "e1"}, roomy, cams) == {"c1": 6000.0}  # the link is the limit


async def test_near_edges_then_failover_and_stickiness():
    s, bus, _ = scheduler()
    for e in ("e1", "e2"):
        s.on_status(edge(e))
    s.on_status(camera("c1", {"e1": 6000.0, "e2": 1000.0}))
    s.on_status(camera("c2", {"e1": 1000.0, "e2": 6000.0}))
    assert s.due()
    await s.replan()
    assert s.plan is not None and s.plan.edge_of == {"c1": "e1", "c2": "e2"}
    policies = {m.node: m for _, m in bus.published}
    assert policies["c1"].next_hop == "e1" and policies["c1"].route == ["c1", "e1"]
    assert policies["e2"].streams == ["c2"] and policies["e2"].tasks == ["classify:c2"]
    versions = [m.version for _, m in bus.published]
    assert versions == sorted(set(versions))  # every policy a new, higher version
    # Nothing changed: nothing is republished.
    bus.published.clear()
    assert not s.due()
    assert await s.replan() == 0 and bus.published == []
    # e2 leaves (its LWT): c2 moves to e1 at once, e2 gets an empty policy.
    s.on_status(edge("e2", state="offline"))
    assert s.due()
    await s.replan()
    policies = {m.node: m for _, m in bus.published}
    assert policies["c2"].next_hop == "e1"
    assert policies["e2"].streams == []
    # e2 returns: c2 stays on e1 unless moving shortens the round by more than 10 %.
    s.on_status(edge("e2"))
    await s.replan()
    assert s.plan.edge_of["c2"] == "e2"  # 1000 B/s vs 6000 B/s: far more than 10 %
    s.on_status(camera("c3", {"e1": 6000.0, "e2": 5800.0}))
    await s.replan()
    first = s.plan.edge_of["c3"]
    s.on_status(camera("c3", {"e1": 5800.0, "e2": 6000.0}))
    s._dirty = True
    await s.replan()
    assert s.plan.edge_of["c3"] == first  # a 3 % gain does not pay for a handover


async def test_a_silent_edge_is_dropped_after_three_heartbeats():
    s, _, clock = scheduler()
    s.on_status(edge("e1"))
    s.on_status(edge("e2"))
    s.on_status(camera("c1", {"e2": 6000.0, ANY_PEER: 1000.0}))
    await s.replan()
    assert s.plan.edge_of == {"c1": "e2"}
    for _ in range(4):
        clock.now += 1.0
        s.on_heartbeat(Heartbeat("e1", "edge", 1))
    assert s.due()  # e2 has been silent for 4 s > 3 heartbeats
    await s.replan()
    assert s.plan.edge_of == {"c1": "e1"}


def test_peer_links_and_camera_route():
    assert parse_peer_links("edge-1=6000, edge-2=2400") == {"edge-1": 6000.0, "edge-2": 2400.0}
    with pytest.raises(ValueError, match="peer_links item 'edge-1=fast'"):
        parse_peer_links("edge-1=fast")
    with pytest.raises(ConfigError, match="peer_links: peer_links item 'e/1=5'"):
        load_settings(None, {"peer_links": "e/1=5"})
    route = CameraRoute(BandwidthTrace.preset("switching"), {"e2": 2400.0}, ManualClock())
    assert route.rates() == {"e2": 2400.0, ANY_PEER: pytest.approx(3750.0)}
    assert route.apply(SchedulingPolicy("c", 3, [], ["c"], "e1", ["c", "e1"], {"e1": 3000.0}))
    link = route.link_to("e1")
    assert link is not None and link.trace.rate_at(0.0) == 3000.0  # capped below 6000
    assert link.trace.rate_at(15.0) == 1500.0  # heavy jamming is under the cap already
    assert not route.apply(SchedulingPolicy("c", 2, [], ["c"], "e2", [], {}))  # stale
    assert route.apply(SchedulingPolicy("c", 4, [], ["c"], "e2", ["c", "e2"], {"e2": 9e9}))
    assert route.link_to("e2").trace.rate_at(0.0) == 2400.0
    assert route.link_to("e1") is link  # one radio per edge, kept for the handover


async def test_orphans_of_a_dead_edge_go_where_the_round_grows_least():
    """Two cameras per edge, each edge's downlink carrying 6 frames/s; when e3 dies its two
    cameras are placed one by one against the load already on e1 and e2: one each."""
    s, _, _ = scheduler()
    edges = ("e1", "e2", "e3")
    for e in edges:
        s.on_status(edge(e, capacity=500.0, downlink=12000.0))
    for i in range(6):
        near = edges[i % 3]
        s.on_status(camera(f"c{i}", {e: 6000.0 if e == near else 2400.0 for e in edges}))
    await s.replan()
    assert s.plan.edge_of == {f"c{i}": edges[i % 3] for i in range(6)}
    s.on_status(edge("e3", state="offline"))
    await s.replan()
    moved = sorted(s.plan.edge_of[c] for c in ("c2", "c5"))
    assert moved == ["e1", "e2"]
    assert all(s.plan.edge_of[f"c{i}"] == edges[i % 3] for i in (0, 1, 3, 4))  # kept


async def test_cameras_stay_on_edges_of_their_zone():
    """Bridged sites: a camera's frames never reach another site's edge, however much
    nearer or faster that edge looks, and a zone without an edge leaves its cameras out."""

    def zoned(status: Status, zone: str) -> Status:
        status.capabilities = [f"zone:{zone}"]
        return status

    s, _, _ = scheduler()
    s.on_status(zoned(edge("edge-a", capacity=10.0), "site-a"))
    s.on_status(zoned(edge("edge-b", capacity=1000.0), "site-b"))
    for name, zone in (("cam-a1", "site-a"), ("cam-a2", "site-a"), ("cam-b1", "site-b"),
                       ("cam-c1", "site-c")):  # fmt: skip
        s.on_status(zoned(camera(name, {"edge-b": 1e6, ANY_PEER: 1000.0}), zone))
    await s.replan()
    assert s.plan.edge_of == {"cam-a1": "edge-a", "cam-a2": "edge-a", "cam-b1": "edge-b"}
    policies = s.policies(s.plan)
    assert policies["cam-c1"].next_hop == ""  # no edge at its site: none assigned
    assert policies["edge-a"].streams == ["cam-a1", "cam-a2"]


def test_a_node_announces_its_zone():
    from edgebus.actor.lifecycle import Node
    from edgebus.config import Settings

    settings = Settings(broker="memory://zones", node_id="cam-a1", zone="site-a",
                        store_enabled=False)  # fmt: skip
    assert "zone:site-a" in Node(settings).status("online").capabilities
    assert (
        Node(Settings(broker="memory://zones", node_id="n", store_enabled=False)).declared() == []
    )
