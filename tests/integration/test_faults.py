"""The fault matrix: a fleet of real processes on a stock Mosquitto, one fault each, and
the audit of the stores afterwards. Every frame ends with exactly one record (a result
or a dropped row with its reason) and every local row is in the global store once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from edgebus.bench.process_fleet import Fleet, logged, wait_for
from edgebus.storage.audit import AuditReport

pytestmark = pytest.mark.integration

CORE = ("cloud", "coordinator", "edge-1")
CAMERAS = ("camera-1", "camera-2")
ONLINE = " online at "


async def start_fleet(fleet: Fleet) -> None:
    fleet.start("cloud", "cloud")
    fleet.start("coordinator", "coordinator")
    fleet.start("edge", "edge-1")
    await wait_for(lambda: all(logged(fleet, n, ONLINE) for n in CORE), 90, "the core online")
    for camera in CAMERAS:
        fleet.start("camera", camera)
    await wait_for(lambda: all(logged(fleet, c, ONLINE) for c in CAMERAS), 90, "cameras online")


async def restart(fleet: Fleet, role: str, node_id: str, down_s: float = 1.0) -> None:
    fleet.kill(node_id)
    await asyncio.sleep(down_s)
    fleet.start(role, node_id)
    await wait_for(lambda: logged(fleet, node_id, ONLINE), 90, f"{node_id} back online")


async def inject(fault: str, fleet: Fleet, broker) -> None:  # type: ignore[no-untyped-def]
    if fault == "camera-sigkill":
        await restart(fleet, "camera", "camera-1")
    elif fault == "edge-sigkill":
        await restart(fleet, "edge", "edge-1")
    elif fault == "cloud-sigkill":  # the cloud hosts the global store's sync sink
        await restart(fleet, "cloud", "cloud")
    elif fault == "coordinator-sigkill":
        await restart(fleet, "coordinator", "coordinator")
    elif fault == "broker-sigkill":
        broker.kill()  # a stock Mosquitto keeps nothing: every session and queue is gone
        await asyncio.sleep(10.0)
        broker.start()
    elif fault == "broker-stop":
        broker.stop()
        await asyncio.sleep(3.0)
        broker.start()
    elif fault == "replaced-store":
        assert await fleet.stop("camera-1") == 0
        (fleet.data_dir / "stores" / "camera-1.sqlite3").unlink()
        for suffix in ("-wal", "-shm"):
            (fleet.data_dir / "stores" / f"camera-1.sqlite3{suffix}").unlink(missing_ok=True)
        fleet.start("camera", "camera-1")
        await wait_for(lambda: fleet.log_text("camera-1").count(ONLINE) >= 1, 90, "camera back")
    else:
        raise AssertionError(fault)


def drop_reasons(report: AuditReport) -> str:
    reasons: Counter[str] = Counter()
    for camera in report.cameras:
        reasons.update(camera.reasons)
    return ", ".join(f"{reason} {n}" for reason, n in reasons.most_common()) or "none"


FAULTS = [
    "camera-sigkill",
    "edge-sigkill",
    "cloud-sigkill",
    "coordinator-sigkill",
    "broker-sigkill",
    "broker-stop",
    "replaced-store",
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", FAULTS)
async def test_after_the_fault_every_frame_and_row_is_accounted_for(
    fault, stock_mosquitto, tmp_path
):
    fleet = Fleet(stock_mosquitto.url, tmp_path)
    try:
        await start_fleet(fleet)
        await asyncio.sleep(3.0)  # frames flowing
        await inject(fault, fleet, stock_mosquitto)
        await asyncio.sleep(3.0)  # and flowing again
        codes = await fleet.stop_all()
        report = fleet.audit()
    finally:
        fleet.kill_all()
    context = f"{report.summary()}\n{fleet.all_logs()}"
    print(f"{fault}: {report.summary()}; drop reasons: {drop_reasons(report)}")  # -rP shows it
    assert all(code == 0 for code in codes.values()), f"{codes}\n{context}"
    assert report.ok and report.frames_awaiting == 0, context
    assert all(s.unsynced == 0 for s in report.streams), context
    captured = sum(c.captured for c in report.cameras)
    results = sum(c.results for c in report.cameras)
    # 2 cameras at 300 ms for at least 6 s of running time: about 40 frames, most answered.
    # A broker killed for 10 s restarts empty: when the cameras reconnect before the edge
    # has subscribed again, the frames they queued meanwhile arrive as end markers whose
    # QoS 0 chunks nobody received, and end as `no chunk arrived` drops (seen: 68 of 109).
    # The frames before and after the outage are still classified.
    least = 20 if fault == "broker-sigkill" else captured // 2
    assert captured >= 30 and results >= least, context
    if fault == "replaced-store":
        camera_streams = [s for s in report.streams if s.node == "camera-1"]
        assert len(camera_streams) == 1  # the old file is gone; its rows are in the global
