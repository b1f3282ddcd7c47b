"""PNC over a real broker: 2 cameras and 1 edge, every frame exactly one result, and the
units that arrive are what each camera's emulated link could carry by the deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from edgebus.actor.lifecycle import bus_for
from edgebus.broker.link import mqtt_publish_size
from edgebus.codecs import get_codec
from edgebus.config import Settings
from edgebus.messages import EndOfFrame, FrameChunk, FrameDropped, Result, encode
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.edge import EdgeNode
from edgebus.nodes.frame_job import SentFrame
from edgebus.nodes.sources import SyntheticSource
from edgebus.topics import Topics
from tests.integration.loop_stalls import watching_loop_stalls

PERIOD_MS = 250
FRAMES = 20
RATES = {"cam-fast": 6000.0, "cam-slow": 1500.0}
# A loop wake-up this late can cost a frame more than the replay's one unit of slack: a
# chunk is 25-40 ms of the fast camera's link, and the link forgives 20 ms of lateness.
STALL_S = 0.02


def _base(url: str, embedded: bool) -> Settings:
    # amqtt speaks 3.1.1 only; saying so skips the MQTT 5 attempt of "auto" (seconds).
    protocol = "3.1.1" if embedded else "auto"
    return Settings(broker=url, protocol=protocol, store_enabled=False, frame_period_ms=PERIOD_MS)


def _units_that_fit(camera: str, sent: SentFrame, rate: float) -> int:
    """Replays the sender's rule: whole chunks plus the end marker within the link budget."""
    topics = Topics("lab")
    image = SyntheticSource(64, seed=1).frame(sent.frame_id).image
    units = get_codec("pnc").encode(image).units
    marker = EndOfFrame(camera, sent.frame_id, 0xFFFF, 0xFFFF, 0xFFFFFF, "pnc", "pnc64",
                        sent.capture_ts, sent.capture_ts, 64, 64, 0xFFFF, 0)  # fmt: skip
    budget = rate * (PERIOD_MS / 1000 - sent.first_unit_s)
    used = mqtt_publish_size(topics.frame_end(camera, sent.frame_id), len(encode(marker)), 1)
    for index, unit in enumerate(units):
        chunk = FrameChunk(camera, sent.frame_id, index, "pnc", "pnc64", sent.capture_ts, unit)
        topic = topics.frame_chunk(camera, sent.frame_id, index)
        used += mqtt_publish_size(topic, len(encode(chunk)))
        if used > budget:
            return index
    return len(units)


async def _run_fleet(
    url: str, embedded: bool
) -> tuple[dict[tuple[str, int], list[Result | FrameDropped]], list[SentFrame]]:
    base = _base(url, embedded)
    edge = EdgeNode(dataclasses.replace(base, role="edge", node_id="edge-1"))
    observer = bus_for(dataclasses.replace(base, node_id="observer"))
    await observer.start(timeout=10)
    results: dict[tuple[str, int], list[Result | FrameDropped]] = {}
    sent: list[SentFrame] = []

    async def collect(pattern: str) -> None:
        async for delivery in await observer.subscribe(pattern, qos=1):
            if isinstance(delivery.message, Result | FrameDropped):
                key = (delivery.message.camera, delivery.message.frame_id)
                results.setdefault(key, []).append(delivery.message)

    collectors = [
        asyncio.create_task(collect(p))
        for p in (observer.topics.results(), observer.topics.droppeds())
    ]
    await asyncio.sleep(0.2)  # both subscriptions in place
    edge_task = asyncio.create_task(edge.run(connect_timeout=10))
    await edge.ready.wait()
    cameras = [
        CameraNode(
            dataclasses.replace(base, role="camera", node_id=name, link=str(rate)),
            max_frames=FRAMES,
            source=SyntheticSource(64, seed=1),
            on_sent=sent.append,
        )
        for name, rate in RATES.items()
    ]
    tasks = [asyncio.create_task(c.run(connect_timeout=10)) for c in cameras]
    loop = asyncio.get_running_loop()
    until = loop.time() + FRAMES * PERIOD_MS / 1000 + 10
    while loop.time() < until and len(results) < 2 * FRAMES:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a duplicate result would show up now
    for camera in cameras:
        camera.stop()
    await asyncio.gather(*tasks)
    edge.stop()
    await edge_task
    for collector in collectors:
        collector.cancel()
    await observer.close(flush_timeout=0)
    return results, sent


# Units sent by the deadline are wall-clock: with other tests loading both cores the event
# loop wakes late and frames rightly carry fewer units than the replay, so it runs alone.
# Even alone, a shared machine stalls the loop now and then; the frames a measured stall
# overlapped are held only to the link's upper bound.
@pytest.mark.serial
async def test_two_cameras_one_edge(broker_url, request):
    embedded = request.node.callspec.params["broker_url"] == "embedded"
    async with watching_loop_stalls(STALL_S) as stalls:
        results, sent = await _run_fleet(broker_url, embedded)
    assert len(sent) == 2 * FRAMES
    on_time: list[SentFrame] = []  # neither the encoder thread nor the loop stalled
    for frame in sent:
        got = results.get((frame.camera, frame.frame_id), [])
        assert len(got) == 1, f"{frame.camera}#{frame.frame_id}: {len(got)} outcomes"
        result = got[0]
        if frame.chunks_sent == 0:
            # Nothing fitted the link before the deadline: no data, so no guess either.
            assert isinstance(result, FrameDropped) and "no chunk sent" in result.reason
            continue
        assert isinstance(result, Result)
        assert result.units_received == frame.units_sent
        assert result.label == frame.label and result.codec == "pnc"
        assert frame.overruns == 0
        expected = _units_that_fit(frame.camera, frame, RATES[frame.camera])
        # One unit of slack: the sender starts at the first unit's hand-over, which the
        # replay only approximates from the measured first-unit time.
        assert frame.units_sent <= expected + 1, (frame, expected)
        if not stalls.overlaps(frame.capture_ts, frame.capture_ts + PERIOD_MS / 1000):
            assert frame.units_sent >= expected - 1, (frame, expected, stalls.spans)
            if frame.first_unit_s < 0.05:
                on_time.append(frame)
    # A frame whose first unit came late (the encoder thread stalled on a busy machine)
    # rightly carries fewer units; the replay above checks those. The link ordering is
    # asserted on the frames encoded and sent on time.
    fast = [f.units_sent for f in on_time if f.camera == "cam-fast"]
    slow = [f.units_sent for f in sent if f.camera == "cam-slow"]
    assert len(fast) >= FRAMES // 2, f"{len(fast)} fast frames on time; stalls {stalls.spans}"
    assert min(fast) > max(slow) >= 0


async def test_lost_end_marker_is_decided_by_the_grace_timeout(actor_broker_url):
    base = _base(actor_broker_url, embedded=True)
    edge = EdgeNode(dataclasses.replace(base, role="edge", node_id="edge-g"), grace_s=0.3)
    publisher = bus_for(dataclasses.replace(base, node_id="pub"))
    observer = bus_for(dataclasses.replace(base, node_id="obs"))
    await publisher.start(timeout=10)
    await observer.start(timeout=10)
    subscription = await observer.subscribe(observer.topics.results(), qos=1)
    edge_task = asyncio.create_task(edge.run(connect_timeout=10))
    await edge.ready.wait()
    units = get_codec("pnc").encode(SyntheticSource(64).frame(0).image).units
    topics = Topics("lab")
    for index, unit in enumerate(units[:3]):
        chunk = FrameChunk("cam-x", 0, index, "pnc", "pnc64", time.time(), unit)
        await publisher.publish(topics.frame_chunk("cam-x", 0, index), chunk, qos=1)
    # No end marker: the edge must still decide the frame, from its three units.
    delivery = await asyncio.wait_for(subscription.__anext__(), 5)
    result = delivery.message
    assert isinstance(result, Result)
    assert (result.camera, result.frame_id, result.units_received) == ("cam-x", 0, 3)
    assert not result.deadline_met and edge.assembler.stats.expired == 1
    edge.stop()
    await edge_task
    await publisher.close(flush_timeout=1)
    await observer.close(flush_timeout=0)
