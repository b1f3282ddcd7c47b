"""MQTT 5 where it helps, on a stock Mosquitto: every client library sends and reads the
properties; frame chunks expire at their deadline; a frame's trace id goes from its end
marker to its result; an MQTT 3.1.1 connection sends the same messages without them."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from edgebus.aio import cancel_and_wait
from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions, Delivery, Subscription
from edgebus.broker.tracing import TRACE_ID, frame_trace_id
from edgebus.broker.transport import MQTT5, MQTT311, MessageProperties
from edgebus.config import Settings
from edgebus.message_wire import WIRE_CONTENT_TYPE
from edgebus.messages import EndOfFrame, FrameChunk, Result, Status
from tests.integration.one_camera import one_camera

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def make_bus(url: str, name: str, **options) -> Bus:  # type: ignore[no-untyped-def]
    node = f"{name}-{uuid.uuid4().hex[:6]}"
    return Bus(parse_broker_url(url), BusOptions(site="t", node_id=node, **options))


@pytest.mark.parametrize("client", ["gmqtt", "paho", "aiomqtt"])
async def test_each_client_sends_and_reads_the_properties(mosquitto_url, client):
    sent = MessageProperties(expiry_s=30, content_type="text/plain", utf8=True,
                             user=((TRACE_ID, "abc"), ("site", "a")))  # fmt: skip
    async with (
        make_bus(mosquitto_url, "a", client=client) as a,
        make_bus(mosquitto_url, "b", client=client) as b,
    ):
        assert a.protocol_version == MQTT5
        raw = await b.subscribe("t/props/#", qos=1, raw=True)
        typed = await b.subscribe(b.topics.status("n"), qos=1)
        await a.publish("t/props/x", b"hello", qos=1, properties=sent)
        await a.publish(a.topics.status("n"), Status("n", "edge", "online", "1"), qos=1)
        got = await raw.get(10)
        status = await typed.get(10)
    assert got.properties.content_type == "text/plain" and got.properties.utf8
    assert got.properties.user_property(TRACE_ID) == "abc"
    assert got.properties.user_property("site") == "a"
    assert got.properties.expiry_s is not None and 28 <= got.properties.expiry_s <= 30
    # An edgebus message says what it is.
    assert status.properties.content_type == WIRE_CONTENT_TYPE


async def test_the_broker_discards_a_message_once_it_expires(persistent_mosquitto):
    url = persistent_mosquitto.url
    keep = {"clean_start": False, "session_expiry_s": 300}
    async with make_bus(url, "late", **keep) as late:
        name = late.options.node_id
        await late.subscribe("t/expiring/#", qos=1, raw=True)
    async with make_bus(url, "pub") as publisher:
        await publisher.publish("t/expiring/short", b"s", qos=1,
                                properties=MessageProperties(expiry_s=1))  # fmt: skip
        await publisher.publish("t/expiring/long", b"l", qos=1,
                                properties=MessageProperties(expiry_s=60))  # fmt: skip
    await asyncio.sleep(2.5)
    again = Bus(parse_broker_url(url), BusOptions(site="t", node_id=name, **keep))
    async with again:
        subscription = await again.subscribe("t/expiring/#", qos=1, raw=True)
        first = await subscription.get(10)
        with pytest.raises(TimeoutError):
            await subscription.get(1.5)
    assert first.topic == "t/expiring/long"


async def test_a_frame_carries_its_trace_id_from_end_marker_to_result(mosquitto_url):
    # A paced link (1 MB/s, far above what a frame needs): unpaced, a 64 px frame's one
    # chunk rides in its end marker, and this test checks the chunks' properties too.
    base = Settings(broker=mosquitto_url, site="t", store_enabled=False, frame_period_ms=250,
                    link="1000000")  # fmt: skip
    seen: list[Delivery] = []

    async def watch(frames: Subscription) -> None:
        async for delivery in frames:
            seen.append(delivery)

    async with make_bus(mosquitto_url, "watch") as watcher:
        watching = asyncio.create_task(watch(await watcher.subscribe(watcher.topics.frames())))
        async with one_camera(base, "tr", max_frames=4) as results:
            got = [await results.get(20) for _ in range(3)]
        await asyncio.sleep(0.3)
        await cancel_and_wait([watching])
    markers = {d.message.frame_id: d for d in seen if isinstance(d.message, EndOfFrame)}
    chunks = [d for d in seen if isinstance(d.message, FrameChunk)]
    assert chunks and markers
    for chunk in chunks:  # lean: only the expiry, never past the deadline's second
        assert chunk.properties == MessageProperties(expiry_s=1)
    for delivery in got:
        result = delivery.message
        assert isinstance(result, Result)
        trace = frame_trace_id(result.camera, result.incarnation, result.frame_id)
        assert delivery.properties.user_property(TRACE_ID) == trace
        assert delivery.properties.content_type == WIRE_CONTENT_TYPE
        marker = markers[result.frame_id]
        assert marker.properties.user_property(TRACE_ID) == trace


async def test_mqtt_311_sends_the_same_messages_without_properties(mosquitto_url):
    base = Settings(broker=mosquitto_url, site="t", store_enabled=False, frame_period_ms=250,
                    protocol="3.1.1")  # fmt: skip
    async with one_camera(dataclasses.replace(base), "v3", max_frames=3) as results:
        first = await results.get(20)
    assert isinstance(first.message, Result)
    # The observer in one_camera follows the settings: 3.1.1 too, so no properties arrive.
    assert first.properties == MessageProperties()
    async with make_bus(mosquitto_url, "v3", protocol="3.1.1") as bus:
        assert bus.protocol_version == MQTT311
