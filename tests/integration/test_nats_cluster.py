"""The fleet on a two-member NATS cluster through NATS's MQTT listener (MQTT 3.1.1, no
shared subscriptions), with its nodes spread over both members: frames captured at a
camera on one member are classified by an edge on the other. One member is SIGKILLed and
restarted mid-stream; afterwards every frame and row is accounted for."""

from __future__ import annotations

import asyncio

import pytest

from edgebus.bench.nats import NatsCluster, nats_binary
from edgebus.bench.process_fleet import Fleet, logged, wait_for
from tests.conftest import missing_service

pytestmark = pytest.mark.integration

ONLINE = " online at "
# node -> the member it connects to: every kind of traffic crosses the cluster's routes.
PLACEMENT = {"cloud": 0, "coordinator": 1, "edge-1": 0, "camera-1": 1, "camera-2": 0}
ROLES = {"cloud": "cloud", "coordinator": "coordinator", "edge-1": "edge"}


@pytest.mark.timeout(300)
async def test_fleet_across_a_nats_cluster_survives_a_member_restart(tmp_path):
    if nats_binary() is None:
        missing_service("the nats-server binary is needed for the cluster test")
    cluster = NatsCluster(size=2).start()
    fleet = Fleet(cluster.members[0].url, tmp_path, env={"EDGEBUS_PROTOCOL": "3.1.1"})
    try:
        # JetStream elects its leaders first; a user's fleet starts on a cluster that serves.
        await asyncio.to_thread(cluster.wait_ready)
        for node, role in ROLES.items():
            fleet.start(role, node, broker=cluster.members[PLACEMENT[node]].url)
        await wait_for(lambda: all(logged(fleet, n, ONLINE) for n in ROLES), 90, "core online")
        for camera in ("camera-1", "camera-2"):
            fleet.start("camera", camera, broker=cluster.members[PLACEMENT[camera]].url)
        await wait_for(lambda: all(logged(fleet, n, ONLINE) for n in fleet.nodes), 90, "online")
        # Frames from camera-1 (member 2) reach edge-1 (member 1) and are classified.
        await wait_for(
            lambda: any(c.camera == "camera-1" and c.results > 5 for c in fleet.audit().cameras),
            60,
            "camera-1's frames classified across the cluster",
        )
        member = cluster.members[1]
        cluster.kill_member(member)
        await asyncio.sleep(5.0)
        cluster.start_member(member)
        print(f"cluster serving again {await asyncio.to_thread(cluster.wait_ready):.1f} s "
              "after the member's restart")  # fmt: skip
        # JetStream regains its quorum and the nodes on both members carry on.
        results_then = sum(c.results for c in fleet.audit().cameras)
        await wait_for(
            lambda: sum(c.results for c in fleet.audit().cameras) >= results_then + 20,
            90,
            "frames classified again after the member's restart",
        )
        codes = await fleet.stop_all()
        report = fleet.audit()
    finally:
        fleet.kill_all()
        logs = cluster.log_text()
        cluster.stop()
    context = f"{report.summary()}\n{fleet.all_logs()}\n{logs}"
    print(report.summary())
    assert all(code == 0 for code in codes.values()), f"{codes}\n{context}"
    assert report.ok and report.frames_awaiting == 0, context
    assert all(s.unsynced == 0 for s in report.streams), context
