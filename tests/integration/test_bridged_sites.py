"""Two sites, each with its own stock Mosquitto bridged to a cloud Mosquitto by the
configuration `edgebus broker-config` writes; cameras and an edge at each site, the cloud
node (the global store) and the coordinator in the cloud. Site A's uplink is cut for 30 s
like a pulled cable: the site keeps classifying, site B is untouched, and once the link is
back the global store catches up; afterwards every frame and row is accounted for."""

from __future__ import annotations

import asyncio
import time

import pytest

from edgebus.bench.mosquitto import mosquitto_binary
from edgebus.bench.process_fleet import Fleet, logged, wait_for
from edgebus.bench.sites import BridgedSites
from edgebus.storage.audit import AuditReport
from tests.conftest import missing_service
from tests.integration.test_faults import drop_reasons

pytestmark = pytest.mark.integration

ONLINE = " online at "
SITES = {"site-a": ("edge-a", "camera-a1"), "site-b": ("edge-b", "camera-b1")}
CUT_S = 30.0


def site_rows(report: AuditReport, nodes: tuple[str, ...]) -> tuple[int, int]:
    """(local rows, of which in the global store) of the nodes' stores."""
    streams = [s for s in report.streams if s.node in nodes]
    return sum(s.local_rows for s in streams), sum(s.global_rows for s in streams)


def results_of(report: AuditReport, camera: str) -> int:
    return sum(c.results for c in report.cameras if c.camera == camera)


async def start_bridged_fleet(fleet: Fleet, sites: BridgedSites, scheduled: bool) -> None:
    """Scheduled: the coordinator in the cloud maps cameras to edges (JSTSH) and its
    policies come down the bridges; each node's zone keeps a camera on its own site."""
    schedule = ("--schedule", "jstsh") if scheduled else ()
    fleet.start("cloud", "cloud")
    fleet.start("coordinator", "coordinator", *schedule)

    def site_flags(name: str) -> tuple[str, ...]:
        return ("--scheduled", "--zone", name) if scheduled else ()

    for name, (edge, _) in SITES.items():
        fleet.start("edge", edge, *site_flags(name), broker=sites.sites[name].url)
    await wait_for(lambda: all(logged(fleet, n, ONLINE) for n in fleet.nodes), 90, "core online")
    for name, (_, camera) in SITES.items():
        fleet.start("camera", camera, *site_flags(name), broker=sites.sites[name].url)
    await wait_for(lambda: all(logged(fleet, n, ONLINE) for n in fleet.nodes), 90, "cameras")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scheduled", [False, True], ids=["unscheduled", "scheduled"])
async def test_a_site_cut_off_for_30_s_keeps_working_and_catches_up(tmp_path, scheduled):
    if mosquitto_binary() is None:
        missing_service("the mosquitto binary is needed for bridged site brokers")
    sites = await BridgedSites(tuple(SITES)).start()
    fleet = Fleet(sites.cloud.url, tmp_path)
    site_a = SITES["site-a"]
    try:
        await start_bridged_fleet(fleet, sites, scheduled)

        # Before the cut, site A classifies (scheduled: once the coordinator's policy came
        # down the bridge) and its rows reach the global store through the bridge.
        def site_a_running() -> bool:
            report = fleet.audit()
            return results_of(report, "camera-a1") > 0 and site_rows(report, site_a)[1] > 0

        await wait_for(site_a_running, 90, "site A classifying and synced")
        before = fleet.audit()
        sites.cut("site-a")
        await asyncio.sleep(CUT_S)
        during = fleet.audit()
        sites.restore("site-a")
        restored_at = time.monotonic()
        # Cut off, site A still classified its camera's frames locally...
        assert results_of(during, "camera-a1") >= results_of(before, "camera-a1") + 20
        # ...while its new rows waited at the site: the cut was real.
        local, synced = site_rows(during, site_a)
        assert local - synced >= 20, (local, synced)
        # Site B never noticed.
        b_before, b_during = (site_rows(r, SITES["site-b"])[1] for r in (before, during))
        assert b_during >= b_before + 20
        # Catch-up: every row site A held when the link came back is in the global store.
        backlog = {s.node + s.store: s.local_rows for s in during.streams if s.node in site_a}

        def caught_up() -> bool:
            now = {s.node + s.store: s.global_rows for s in fleet.audit().streams}
            return all(now.get(key, 0) >= rows for key, rows in backlog.items())

        await wait_for(caught_up, 90, "site A's backlog in the global store")
        print(f"catch-up after a {CUT_S:g} s cut: {time.monotonic() - restored_at:.1f} s")
        await asyncio.sleep(2.0)
        codes = await fleet.stop_all()
        report = fleet.audit()
    finally:
        fleet.kill_all()
        await sites.stop()
    context = f"{report.summary()}\n{fleet.all_logs()}"
    print(f"{report.summary()}; drop reasons: {drop_reasons(report)}")  # -rP shows it
    assert all(code == 0 for code in codes.values()), f"{codes}\n{context}"
    assert report.ok and report.frames_awaiting == 0, context
    assert all(s.unsynced == 0 for s in report.streams), context
    assert {c.camera for c in report.cameras} == {"camera-a1", "camera-b1"}
    if scheduled:  # the policies came down and kept each camera at its site
        assert "stream plan: camera-a1->edge-a, camera-b1->edge-b" in fleet.log_text("coordinator")
