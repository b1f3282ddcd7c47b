"""Well-typed but hostile messages against a running fleet on a stock Mosquitto: one
publish each. No actor stops, no row is lost, and every frame a camera captured still
ends with exactly one record (checked by the audit of the stores)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest

from edgebus import message_limits, messages
from edgebus.actor.lifecycle import Node, bus_for
from edgebus.broker.bus import Bus
from edgebus.config import Settings
from edgebus.coordinator.node import CoordinatorNode
from edgebus.messages import (
    DeadLetter,
    EndOfFrame,
    FrameChunk,
    ModelSwitch,
    QosDecision,
    QosRequest,
    SyncAck,
)
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.cloud import CloudNode
from edgebus.nodes.edge import EdgeNode
from edgebus.qos.model_store import SHIPPED_ACCELEROMETER_POOL
from edgebus.storage.audit import audit, local_store_paths

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PERIOD_MS = 250


@dataclass
class LiveFleet:
    settings: Settings
    coordinator: CoordinatorNode
    cloud: CloudNode
    edge: EdgeNode
    camera: CameraNode
    attacker: Bus
    tasks: list[asyncio.Task[None]]

    @property
    def nodes(self) -> list[Node]:
        return [self.coordinator, self.cloud, self.edge, self.camera]

    async def results_of_camera(self) -> int:
        return int(self.edge.counters.frames_done)

    async def stop(self) -> None:
        # The camera first, so its frames are decided; the cloud last, so every store syncs.
        for node in (self.camera, self.edge, self.coordinator, self.cloud):
            node.stop()
            await asyncio.wait_for(self.tasks[self.nodes.index(node)], 60)


def _settings(url: str, data_dir: Path, **extra: object) -> Settings:
    return Settings(
        broker=url, data_dir=str(data_dir), frame_period_ms=PERIOD_MS, heartbeat_s=1.0,
        sync_interval_s=0.5, sync_ack_timeout_s=1.0, store_flush_ms=20,
        edge_capacity_fps=200.0, **extra,
    )  # fmt: skip


async def _start(url: str, data_dir: Path, qos: bool = False) -> LiveFleet:
    extra: dict[str, object] = {"qos_pool": str(SHIPPED_ACCELEROMETER_POOL)} if qos else {}
    base = _settings(url, data_dir, **extra)

    def configured(role: str, node_id: str, **more: object) -> Settings:
        return dataclasses.replace(base, role=role, node_id=node_id, **more)

    camera_extra = {"codec": "qos", "source": "accelerometer"} if qos else {}
    fleet = LiveFleet(
        base,
        CoordinatorNode(configured("coordinator", "coordinator")),
        CloudNode(configured("cloud", "cloud")),
        EdgeNode(configured("edge", "edge-1")),
        CameraNode(configured("camera", "camera-1", **camera_extra)),
        bus_for(dataclasses.replace(base, node_id="mallory")),
        [],
    )
    await fleet.attacker.start(timeout=10)
    for node in fleet.nodes:
        fleet.tasks.append(asyncio.create_task(node.run(connect_timeout=10)))
        await asyncio.wait_for(node.ready.wait(), 30)
    await _until(lambda: fleet.edge.counters.frames_done >= 3, 30, "first results")
    return fleet


@pytest.fixture
async def fleet(mosquitto_url, tmp_path) -> AsyncIterator[LiveFleet]:
    started = await _start(mosquitto_url, tmp_path)
    try:
        yield started
    finally:
        for task in started.tasks:
            task.cancel()
        await asyncio.gather(*started.tasks, return_exceptions=True)
        await started.attacker.close(flush_timeout=0)


async def _until(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    until = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > until:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _more_results(fleet: LiveFleet, extra: int = 6) -> None:
    """Frames keep flowing after the attack: the edge keeps deciding them."""
    done = fleet.edge.counters.frames_done
    await _until(lambda: fleet.edge.counters.frames_done >= done + extra, 20, "more results")


def _audited(fleet: LiveFleet) -> None:
    data_dir = Path(fleet.settings.data_dir)
    report = audit(local_store_paths(data_dir), f"sqlite:///{data_dir}/global.sqlite3")
    assert report.ok and report.frames_awaiting == 0, report.summary()
    assert all(s.unsynced == 0 and s.quarantined == 0 for s in report.streams), report.summary()
    assert all(task.done() and task.exception() is None for task in fleet.tasks)


def _raw(cls: type[messages.Message], values: list[object]) -> bytes:
    """A payload as an attacker builds it: any values, in the right shape."""
    header = bytes((messages.MAGIC, messages.SCHEMA_VERSION, cls.TYPE_CODE))
    return header + msgpack.packb(values, use_bin_type=True)


async def test_nan_and_infinite_fields_go_to_the_deadletter_and_nothing_wedges(fleet):
    deadletters = await fleet.attacker.subscribe(fleet.attacker.topics.deadletter(), qos=0)
    topics = fleet.attacker.topics
    now = time.time()
    nan_marker = _raw(EndOfFrame, ["camera-1", 5, 1, 1, 10, "pnc", "pnc64", math.nan, now])
    await fleet.attacker.publish(topics.frame_end("camera-1", 5), nan_marker, qos=1)
    inf_chunk = _raw(FrameChunk, ["camera-1", 6, 0, "pnc", "pnc64", math.inf, b"\0"])
    await fleet.attacker.publish(topics.frame_chunk("camera-1", 6, 0), inf_chunk, qos=1)
    letter = (await deadletters.get(10)).message
    assert isinstance(letter, DeadLetter) and "capture_ts" in letter.reason
    await _more_results(fleet)
    assert fleet.edge.bus.deadletters.total >= 2
    assert fleet.edge.storage is not None and fleet.edge.storage.store.error is None
    await fleet.stop()
    _audited(fleet)


async def test_a_far_ahead_frame_id_does_not_shut_the_camera_out(fleet):
    topics = fleet.attacker.topics
    camera = fleet.camera
    for incarnation in (camera.incarnation, 7):  # the camera's real run, and another one
        forged = FrameChunk("camera-1", 10**12, 0, "pnc", "pnc64", time.time(), b"\0" * 8,
                            incarnation=incarnation)  # fmt: skip
        await fleet.attacker.publish(topics.frame_chunk("camera-1", 10**12, 0), forged, qos=1)
    await _until(lambda: fleet.edge.counters.frames_refused >= 1, 10, "the refusal")
    await _more_results(fleet)
    await fleet.stop()
    _audited(fleet)


async def test_late_parts_of_an_accepted_frame_are_decided_not_refused(fleet):
    # Behind a slow broker a frame's first chunk arrives just in time and its end marker
    # after the edge's accept age. The edge took the frame on: it decides it (one record)
    # instead of refusing the marker, which would let the camera record it as well.
    topics = fleet.attacker.topics
    outcomes = await fleet.attacker.subscribe(topics.outcome("camera-1"), qos=1)
    # The marker comes within the assembler's grace (two periods, 0.5 s here), so the
    # frame still waits for it, but past the accept age.
    captured = time.time() - fleet.edge.ledger.accept_age_s + 0.15
    chunk = FrameChunk("camera-1", 1, 0, "pnc", "pnc64", captured, b"\0" * 8, incarnation=99)
    await fleet.attacker.publish(topics.frame_chunk("camera-1", 1, 0), chunk, qos=1)
    await asyncio.sleep(0.3)
    marker = EndOfFrame("camera-1", 1, 1, 1, 8, "pnc", "pnc64", captured, captured + 0.25,
                        incarnation=99)  # fmt: skip
    await fleet.attacker.publish(topics.frame_end("camera-1", 1), marker, qos=1)
    while (told := (await outcomes.get(10)).message).incarnation != 99:
        pass
    assert told.outcome in ("result", "dropped"), told
    assert fleet.edge.counters.frames_refused == 0
    await fleet.stop()
    _audited(fleet)


async def test_a_chunk_on_another_cameras_topic_is_refused(fleet):
    topics = fleet.attacker.topics
    forged = FrameChunk("camera-1", 3, 0, "pnc", "pnc64", time.time(), b"\0" * 8,
                        incarnation=fleet.camera.incarnation)  # fmt: skip
    await fleet.attacker.publish(topics.frame_chunk("mallory", 3, 0), forged, qos=1)
    await _until(lambda: fleet.edge.counters.frames_forged >= 1, 10, "the refusal")
    await _more_results(fleet)
    await fleet.stop()
    _audited(fleet)


async def test_a_forged_sync_ack_marks_no_unsent_row_synced(fleet):
    storage = fleet.camera.storage
    assert storage is not None
    topics = fleet.attacker.topics
    for store in (storage.store.store_id, "", "another-store"):
        forged = SyncAck("camera-1", 10**9, store=store)
        await fleet.attacker.publish(topics.sync_ack("camera-1"), forged, qos=1)
    await asyncio.sleep(1.0)
    assert storage.store.acked_seq <= storage.agent.highest_sent < 10**9
    assert storage.agent.stats.acks_for_other_stores >= 2
    await _more_results(fleet)
    await fleet.stop()
    _audited(fleet)


async def test_an_oversized_payload_is_a_dead_letter(fleet):
    topics = fleet.attacker.topics
    huge = _raw(FrameChunk, ["camera-1", 9, 0, "pnc", "pnc64", time.time(),
                             b"\0" * (message_limits.MAX_PAYLOAD + 1)])  # fmt: skip
    before = fleet.edge.bus.deadletters.total
    await fleet.attacker.publish(topics.frame_chunk("camera-1", 9, 0), huge, qos=1)
    await _until(lambda: fleet.edge.bus.deadletters.total > before, 10, "the dead letter")
    await _more_results(fleet)
    await fleet.stop()
    _audited(fleet)


async def test_a_forged_retained_switch_is_ignored_and_replaced(mosquitto_url, tmp_path):
    fleet = await _start(mosquitto_url, tmp_path, qos=True)
    try:
        topics = fleet.attacker.topics
        service = topics.request("coordinator", "qos")
        request = QosRequest("operator", 0.5, 200.0)
        decision = await fleet.attacker.request(service, request, timeout=10)
        assert isinstance(decision, QosDecision)
        follower = fleet.camera.qos.follower if fleet.camera.qos is not None else None
        assert follower is not None
        await _until(lambda: follower.announced.get(decision.model_id) is not None, 10, "switch")
        other = "accelerometer-eco-d384" if decision.model_id != "accelerometer-eco-d384" else (
            "accelerometer-eco-d1")  # fmt: skip
        forged = ModelSwitch(other, 1, "ab" * 32, "ECO", -1, 0.0, ts=time.time() + 10**6,
                             coordinator="coordinator")  # fmt: skip
        await fleet.attacker.publish(topics.model_switch(), forged, qos=1, retain=True)
        orchestrator = fleet.coordinator.orchestrator
        assert orchestrator is not None
        await _until(lambda: orchestrator.foreign_switches >= 1, 10, "the coordinator noticing")
        await _until(lambda: follower.counters.switches_refused >= 1, 10, "the refusal")
        # The retained topic holds the coordinator's switch again, and a later QoS change
        # reaches the nodes.
        retained = await fleet.attacker.subscribe(topics.model_switch(), qos=1)
        held = (await retained.get(10)).message
        assert isinstance(held, ModelSwitch) and held.coordinator == "coordinator"
        assert held.model_id == decision.model_id and held.ts <= time.time() + 1
        switches = follower.counters.switches
        again = await fleet.attacker.request(service, QosRequest("operator", 0.9, 2e6), 10)
        assert isinstance(again, QosDecision) and again.switched
        await _until(lambda: follower.counters.switches > switches, 10, "the real switch")
        assert follower._next is not None or follower.current is not None
        latest = follower._next[0] if follower._next is not None else follower.current
        assert latest is not None and latest.model_id == again.model_id
        await _more_results(fleet, extra=3)
        await fleet.stop()
        _audited(fleet)
    finally:
        for task in fleet.tasks:
            task.cancel()
        await asyncio.gather(*fleet.tasks, return_exceptions=True)
        await fleet.attacker.close(flush_timeout=0)
