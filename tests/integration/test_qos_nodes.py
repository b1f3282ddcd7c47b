"""The QoS orchestrator's data path in the real nodes: a sensor camera (codec qos) and an
edge follow the coordinator's model switches; every frame is classified by the model that
encoded it, across live switches, and a frame naming a model nobody can serve is rejected."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time

import pytest

from edgebus.actor.lifecycle import bus_for
from edgebus.config import ConfigError, Settings
from edgebus.coordinator.node import CoordinatorNode
from edgebus.experiments.qos_live import request_plan
from edgebus.messages import EndOfFrame, FrameChunk, FrameDropped, Result
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.edge import EdgeNode
from edgebus.nodes.frame_job import SentFrame
from edgebus.nodes.model_follower import RAW
from edgebus.qos.model_store import SHIPPED_ACCELEROMETER_POOL, SHIPPED_FASHION_POOL

pytestmark = pytest.mark.integration

PERIOD_MS = 50
FRAMES = 120


@pytest.mark.parametrize(
    ("pool", "source"),
    [(SHIPPED_FASHION_POOL, "fashion-mnist"), (SHIPPED_ACCELEROMETER_POOL, "accelerometer")],
)
async def test_camera_and_edge_switch_models_at_frame_boundaries(
    actor_broker_url, request, pool, source
):
    if source == "fashion-mnist":
        request.getfixturevalue("fashion_mnist_dir")  # the sensor streams the real images
    base = Settings(
        broker=actor_broker_url, protocol="3.1.1", store_enabled=False,
        frame_period_ms=PERIOD_MS, qos_pool=str(pool),
    )  # fmt: skip
    coordinator = CoordinatorNode(dataclasses.replace(base, role="coordinator",
                                                      node_id="coordinator"))  # fmt: skip
    edge = EdgeNode(dataclasses.replace(base, role="edge", node_id="edge-q"))
    sent: list[SentFrame] = []
    camera = CameraNode(
        dataclasses.replace(base, role="camera", node_id="sensor-1", codec="qos",
                            source=source),
        max_frames=FRAMES, on_sent=sent.append,
    )  # fmt: skip
    driver = bus_for(dataclasses.replace(base, node_id="driver"))
    await driver.start(timeout=10)
    results_sub = await driver.subscribe(driver.topics.results(), qos=1)
    dropped_sub = await driver.subscribe(driver.topics.droppeds(), qos=1)
    results: dict[int, list[Result]] = {}
    dropped: dict[int, list[FrameDropped]] = {}

    async def collect() -> None:
        async for delivery in results_sub:
            message = delivery.message
            if isinstance(message, Result) and message.camera == "sensor-1":
                results.setdefault(message.frame_id, []).append(message)

    async def collect_dropped() -> None:
        async for delivery in dropped_sub:
            message = delivery.message
            if isinstance(message, FrameDropped) and message.camera == "sensor-1":
                dropped.setdefault(message.frame_id, []).append(message)

    collectors = [asyncio.create_task(collect()), asyncio.create_task(collect_dropped())]
    tasks = [asyncio.create_task(coordinator.run(connect_timeout=10))]
    await coordinator.ready.wait()
    assert coordinator.orchestrator is not None
    plan = request_plan(coordinator.orchestrator)
    tasks.append(asyncio.create_task(edge.run(connect_timeout=10)))
    await edge.ready.wait()
    tasks.append(asyncio.create_task(camera.run(connect_timeout=10)))

    # A QoS request every 0.4 s, each naming a model other than the last one's.
    for model_id in itertools.islice(itertools.cycle(sorted(plan)), 12):
        await driver.publish(driver.topics.qos_request(), plan[model_id][0], qos=1)
        await asyncio.sleep(0.4)
    loop = asyncio.get_running_loop()
    until = loop.time() + FRAMES * PERIOD_MS / 1000 + 10
    while loop.time() < until and len(results) + len(dropped) < FRAMES:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)

    # A frame that names a model the coordinator cannot serve: rejected, never decoded.
    topics = driver.topics
    now = time.time()
    bogus = FrameChunk("sensor-x", 0, 0, "dense_ae", "accelerometer-eco-d999", now, b"\0" * 8)
    await driver.publish(topics.frame_chunk("sensor-x", 0, 0), bogus, qos=1)
    await driver.publish(
        topics.frame_end("sensor-x", 0),
        EndOfFrame("sensor-x", 0, 1, 1, 8, "dense_ae", "accelerometer-eco-d999", now, now + 1),
        qos=1,
    )
    for _ in range(100):
        if edge.counters.frames_rejected_unknown_model:
            break
        await asyncio.sleep(0.05)

    camera.stop()
    edge.stop()
    coordinator.stop()
    await asyncio.gather(*tasks)
    for collector in collectors:
        collector.cancel()
    await driver.close(flush_timeout=0)

    assert len(sent) == FRAMES
    used = {frame.model_id for frame in sent}
    assert len(used) >= 3, used  # several switches landed mid-stream
    correct = 0
    for frame in sent:
        got = results.get(frame.frame_id, [])
        # One record each: a result, or (rarely, on a loaded machine) a drop with its reason.
        outcomes = len(got) + len(dropped.get(frame.frame_id, []))
        assert outcomes == 1, f"frame {frame.frame_id}: {len(got)} results, {dropped}"
        if not got:
            continue
        # Decoded with exactly the model that encoded it, switches notwithstanding.
        assert got[0].model_id == frame.model_id
        correct += got[0].top_k[0] == frame.label
    assert len(results) >= 0.95 * FRAMES, dropped
    assert correct / len(results) > 0.6  # the shipped pools' models score 0.80-0.96
    # Models change only between frames, in the order the switches arrived.
    changes = sum(a.model_id != b.model_id for a, b in itertools.pairwise(sent))
    assert changes >= 2
    assert edge.counters.frames_rejected_unknown_model == 1
    assert "sensor-x" not in {r.camera for rs in results.values() for r in rs}
    # Frames before the first switch, and CO decisions, go raw and are still classified.
    assert RAW in used


def test_qos_codec_needs_a_flat_source_and_back():
    with pytest.raises(ConfigError, match="codec qos needs a flat source"):
        CameraNode(Settings(node_id="c1", codec="qos"))
    with pytest.raises(ConfigError, match="source accelerometer streams data vectors"):
        CameraNode(Settings(node_id="c2", source="accelerometer"))
    with pytest.raises(ConfigError, match="offload needs an image codec"):
        CameraNode(Settings(node_id="c3", codec="qos", source="shapes28", offload="mdp"))
