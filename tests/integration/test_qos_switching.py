"""Live model switching over a real broker: orchestrator -> retained switch -> followers,
frames decoded only with the model that encoded them, tampered bundles refused."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import itertools
import uuid

import numpy as np
import pytest

from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions
from edgebus.clock import RealClock
from edgebus.coordinator.orchestrator import Orchestrator
from edgebus.experiments.qos_live import PlanError, live_switching, request_plan
from edgebus.messages import (
    FrameChunk,
    ModelBundle,
    ModelSwitch,
    ModelSwitchAck,
    QosDecision,
    QosRequest,
)
from edgebus.nodes.latent_transfer import LatentReceiver, LatentSender
from edgebus.nodes.model_follower import ModelFollower
from edgebus.qos.compression_search import QosRule
from edgebus.qos.model_store import ModelPool, model_id_for

pytestmark = pytest.mark.integration

DIM = 64
SITE = "q"
SLOW = 600.0  # bit/s: under raw (64 B * 8 * 2 fps = 1024), over d = 16 (512)


class Projection:
    """A stand-in model: z = W x as float16, so another W gives other bytes."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = w

    def encode(self, x: np.ndarray) -> bytes:
        return (self.w @ x).astype("<f2").tobytes()


def load_projection(bundle: ModelBundle) -> Projection:
    return Projection(np.load(io.BytesIO(bundle.files["w.npy"])))


def make_pool(root) -> ModelPool:
    pool = ModelPool(root, "toy", DIM, 1, 0.95, QosRule(tolerance=0.0, step=0.05))
    rng = np.random.default_rng(0)
    for d, accuracy in ((4, 0.6), (8, 0.8), (16, 0.9)):
        buffer = io.BytesIO()
        np.save(buffer, rng.normal(size=(d, DIM)).astype(np.float32))
        pool.add(model_id_for("toy", "ECO", d), "ECO", d, accuracy, 20.0, 0.1,
                 {"w.npy": buffer.getvalue()})  # fmt: skip
    pool.save()
    return ModelPool.load(root)


def frame(frame_id: int) -> np.ndarray:
    return np.random.default_rng(frame_id).uniform(0, 1, DIM).astype(np.float32)


def bus(url: str, name: str) -> Bus:
    return Bus(
        parse_broker_url(url), BusOptions(site=SITE, node_id=f"{name}-{uuid.uuid4().hex[:6]}")
    )


class Fleet:
    def __init__(self, url: str, pool: ModelPool) -> None:
        self.buses = {name: bus(url, name) for name in ("coord", "cam", "edge")}
        self.coord_bus = self.buses["coord"]
        self.topics = self.coord_bus.topics
        self.orchestrator = Orchestrator(self.coord_bus, self.topics, self.coord_bus.node_id,
                                         pool, RealClock())  # fmt: skip
        self.followers = {
            name: ModelFollower(
                self.buses[name],
                self.topics,
                self.buses[name].node_id,
                self.coord_bus.node_id,
                load_projection,
            )
            for name in ("cam", "edge")
        }
        self.sender = LatentSender(self.buses["cam"], self.topics, "cam-1", self.followers["cam"],
                                   frame)  # fmt: skip
        self.receiver = LatentReceiver("edge", self.followers["edge"], truth=frame)
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Fleet:
        for b in self.buses.values():
            await b.start(5)
        self.acks = await self.coord_bus.subscribe(self.topics.model_acks(), qos=1)
        requests = await self.orchestrator.start()
        self.tasks.append(asyncio.create_task(self.orchestrator.run(requests)))
        for follower in self.followers.values():
            await follower.start()
        frames = await self.buses["edge"].subscribe(self.topics.frames(), qos=1)
        self.tasks.append(asyncio.create_task(self.receiver.run(frames)))
        return self

    async def __aexit__(self, *exc) -> None:
        for follower in self.followers.values():
            await follower.stop()
        for task in self.tasks:
            task.cancel()
        for b in self.buses.values():
            await b.close()

    async def qos(self, accuracy: float) -> QosDecision:
        request = QosRequest("test", accuracy, SLOW)
        service = self.topics.request(self.coord_bus.node_id, "qos")
        return await self.buses["cam"].request(service, request, timeout=5)

    async def wait_acks(self, model_id: str, nodes: int = 2) -> None:
        seen: set[str] = set()
        while len(seen) < nodes:
            ack = (await self.acks.get(5)).message
            if isinstance(ack, ModelSwitchAck) and ack.model_id == model_id:
                seen.add(ack.node)

    async def wait_frames(self, count: int) -> None:
        for _ in range(200):
            c = self.receiver.counters
            if c.frames_decoded + c.frames_rejected >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"receiver saw {self.receiver.counters}, expected {count}")


async def test_switch_mid_stream_decodes_every_frame_with_its_own_model(actor_broker_url, tmp_path):
    pool = make_pool(tmp_path / "pool")
    async with Fleet(actor_broker_url, pool) as fleet:
        first = await fleet.qos(0.55)
        assert (first.model_id, first.latent_dim, first.switched) == ("toy-eco-d4", 4, True)
        assert "smallest ECO latent" in first.reasons[0]
        await fleet.wait_acks("toy-eco-d4")
        for frame_id in range(10):
            await fleet.sender.send(frame_id)
        second = await fleet.qos(0.85)
        assert second.model_id == "toy-eco-d16"
        # Frames keep flowing while the switch propagates; each keeps its own model.
        for frame_id in range(10, 20):
            await fleet.sender.send(frame_id)
            await asyncio.sleep(0.01)
        await fleet.wait_acks("toy-eco-d16")
        for frame_id in range(20, 25):
            await fleet.sender.send(frame_id)
        await fleet.wait_frames(25)
        assert fleet.receiver.counters.wrong_model == 0
        assert fleet.receiver.counters.frames_decoded == 25
        assert fleet.receiver.decoded_with == fleet.sender.sent_with
        assert {fleet.sender.sent_with[i] for i in range(10)} == {"toy-eco-d4"}
        assert {fleet.sender.sent_with[i] for i in range(20, 25)} == {"toy-eco-d16"}
        same = await fleet.qos(0.85)
        assert not same.switched  # Algorithm 2 keeps the current model


async def test_tampered_bundle_is_refused_and_its_frames_rejected(actor_broker_url, tmp_path):
    pool = make_pool(tmp_path / "pool")
    honest = pool.bundle

    def tampered(model_id: str) -> ModelBundle:
        bundle = honest(model_id)
        if model_id != "toy-eco-d8":
            return bundle
        files = {name: data[:-1] + bytes([data[-1] ^ 1]) for name, data in bundle.files.items()}
        return dataclasses.replace(bundle, files=files)  # the sha256 still claims the original

    pool.bundle = tampered
    async with Fleet(actor_broker_url, pool) as fleet:
        await fleet.qos(0.55)
        await fleet.wait_acks("toy-eco-d4")
        decision = await fleet.qos(0.75)
        assert decision.model_id == "toy-eco-d8"
        for _ in range(100):
            if all(f.counters.checksum_rejected for f in fleet.followers.values()):
                break
            await asyncio.sleep(0.02)
        for follower in fleet.followers.values():
            assert follower.counters.checksum_rejected == 1
            assert follower.current.model_id == "toy-eco-d4"  # the old model stays
        assert await fleet.sender.send(0) == "toy-eco-d4"
        # A frame that names the refused model is rejected, never decoded with another one.
        forged = FrameChunk("cam-1", 1, 0, "dense_ae", "toy-eco-d8", 0.0, b"\x00" * 16)
        await fleet.buses["cam"].publish(fleet.topics.frame_chunk("cam-1", 1, 0), forged, qos=1)
        await fleet.wait_frames(2)
        assert fleet.receiver.counters.frames_rejected == 1
        assert fleet.receiver.counters.frames_decoded == 1
        assert fleet.receiver.counters.wrong_model == 0


async def test_corrupt_pool_file_is_caught_by_the_coordinator(actor_broker_url, tmp_path):
    pool = make_pool(tmp_path / "pool")
    (tmp_path / "pool" / "toy-eco-d16" / "w.npy").write_bytes(b"broken")
    async with Fleet(actor_broker_url, pool) as fleet:
        await fleet.qos(0.85)
        await asyncio.sleep(0.5)
        for follower in fleet.followers.values():
            assert follower.current is None  # nothing usable arrived
            assert follower.counters.fetches == 0


async def test_live_switching_run_never_decodes_with_the_wrong_model(broker_url, tmp_path):
    pool = make_pool(tmp_path / "pool")
    result = await live_switching(
        pool, frame, changes=10, seed=3, step=lambda _what: None, loader=load_projection,
        broker_url=broker_url, frame_period_s=0.02, gaps_s=(0.02, 0.1),
    )  # fmt: skip
    assert [r.model_id for r in result.rows] != [result.rows[0].model_id] * 10
    assert all(a.model_id != b.model_id for a, b in itertools.pairwise(result.rows))
    assert result.timeouts == 0 and len(result.latencies()) == 10
    assert len(result.frames_by_model) >= 3  # frames really crossed several switches
    assert result.frames_decoded == 2 * result.frames_sent > 0
    assert (result.wrong_model, result.rejected) == (0, 0)
    # Each follower fetched a model at most once (cached by model_id and sha256).
    assert result.fetches <= 3 * len(pool.models)


def test_request_plan_refuses_a_pool_that_cannot_switch(tmp_path):
    pool = ModelPool(tmp_path, "toy", DIM, 1, 0.95, QosRule(tolerance=0.0, step=0.05))
    pool.add(model_id_for("toy", "ECO", 4), "ECO", 4, 0.6, 20.0, 0.1, {"w.npy": b"x"})
    orchestrator = Orchestrator(None, None, "c", pool, RealClock())  # type: ignore[arg-type]
    # The raw override and d = 4 still give two decisions ...
    assert set(request_plan(orchestrator)) == {"raw", "toy-eco-d4"}
    # ... but a pool whose every request goes raw cannot be switched.
    orchestrator.policy = dataclasses.replace(orchestrator.policy, min_edge_cpu=2.0)
    with pytest.raises(PlanError, match="every QoS request picks raw"):
        request_plan(orchestrator)


async def test_the_switch_guard_settles_after_a_forged_switch_meets_its_own(
    actor_broker_url, tmp_path
):
    # Two of the coordinator's own switches in flight and a forged one among them: the
    # guard restores its switch once. It used to take the echo of its older switch for a
    # forgery too, restore again, meet that echo, and so on without end.
    pool = make_pool(tmp_path / "pool")
    async with Fleet(actor_broker_url, pool) as fleet:
        guard = await fleet.orchestrator.guard_switches()
        fleet.tasks.append(guard)
        watcher = bus(actor_broker_url, "watch")
        await watcher.start(5)
        try:
            seen = await watcher.subscribe(fleet.topics.model_switch(), qos=1)
            forged = ModelSwitch("toy-eco-d4", 1, "ab" * 32, "ECO", -1, coordinator="mallory")
            await asyncio.gather(
                fleet.orchestrator.handle(QosRequest("test", 0.55, SLOW)),
                fleet.orchestrator.handle(QosRequest("test", 0.85, SLOW)),
                watcher.publish(fleet.topics.model_switch(), forged, qos=1, retain=True),
            )
            await asyncio.sleep(2.0)
            switches = []
            with contextlib.suppress(TimeoutError):
                while True:
                    switches.append((await seen.get(0.2)).message)
        finally:
            await watcher.close()
        assert fleet.orchestrator.foreign_switches == 1
        # Two decisions, the forgery and one restoration: nothing more in 2 s.
        assert len(switches) <= 5, switches
        assert switches[-1] == fleet.orchestrator.published
