"""The JSON view on three brokers: chosen topics come back as JSON with field names, in the
form `sub --json` prints, retained where the source is, and nothing else gets through."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid

import pytest

from edgebus.actor.connect import bus_for
from edgebus.broker.transport import MQTT5, MessageProperties
from edgebus.config import Settings
from edgebus.message_wire import JSON_CONTENT_TYPE
from edgebus.messages import Result, Status, to_json
from edgebus.nodes.json_view import JsonViewNode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def result(frame_id: int) -> Result:
    return Result("edge-1", "cam-1", frame_id, [3, 1], [0.9, 0.05], 1200, 10, 42.0)


@pytest.fixture
async def view(broker_url, request):
    protocol = "3.1.1" if request.node.callspec.params["broker_url"] == "embedded" else "auto"
    base = Settings(broker=broker_url, site=f"s{uuid.uuid4().hex[:6]}", protocol=protocol,
                    store_enabled=False)  # fmt: skip
    node = JsonViewNode(dataclasses.replace(base, node_id="json-view"))
    task = asyncio.create_task(node.run(connect_timeout=10))
    await asyncio.wait_for(node.ready.wait(), 15)
    publisher = bus_for(dataclasses.replace(base, node_id="pub"))
    watcher = bus_for(dataclasses.replace(base, node_id="watch"))
    await publisher.start(timeout=10)
    await watcher.start(timeout=10)
    # The view republishes its own online status too; the tests count from here.
    await asyncio.sleep(0.3)
    node.counters.republished = 0
    yield node, publisher, watcher
    await publisher.close(flush_timeout=1)
    await watcher.close(flush_timeout=0)
    node.stop()
    await asyncio.wait_for(task, 15)


async def test_results_come_back_as_the_json_sub_prints(view):
    node, publisher, watcher = view
    twins = await watcher.subscribe(watcher.topics.json_view(watcher.topics.results()), raw=True)
    trace = MessageProperties(user=(("trace-id", "0123456789abcdef0123456789abcdef"),))
    sent = [result(i) for i in range(5)]
    for message in sent:
        await publisher.publish(publisher.topics.result("edge-1"), message, qos=1,
                                properties=trace)  # fmt: skip
    got = [await twins.get(10) for _ in sent]
    source = publisher.topics.result("edge-1")
    assert [g.payload.decode() for g in got] == [to_json(source, m) for m in sent]
    first = json.loads(got[0].payload)
    assert first["type"] == "result" and first["frame_id"] == 0 and first["topic"] == source
    assert all(g.topic == watcher.topics.json_view(source) for g in got)
    if watcher.protocol_version == MQTT5:
        assert got[0].properties.content_type == JSON_CONTENT_TYPE and got[0].properties.utf8
        assert got[0].properties.user_property("trace-id") == "0123456789abcdef0123456789abcdef"
    assert node.counters.republished == 5


async def test_a_retained_status_is_retained_in_the_view_and_cleared_with_it(view):
    node, publisher, watcher = view
    topic = publisher.topics.status("edge-9")
    await publisher.publish(topic, Status("edge-9", "edge", "online", "1"), qos=1, retain=True)
    await asyncio.sleep(0.5)
    late = await watcher.subscribe(watcher.topics.json_view(topic), raw=True)
    twin = await late.get(10)
    assert json.loads(twin.payload)["state"] == "online" and twin.retain
    await publisher.publish(topic, b"", qos=1, retain=True)  # the source is cleared
    await asyncio.sleep(0.5)
    later = await watcher.subscribe(watcher.topics.json_view(topic), raw=True, qos=1)
    await late.get(10)  # the clearing itself reaches live subscribers, empty
    with pytest.raises(TimeoutError):
        await later.get(1.0)
    assert node.counters.cleared == 1


async def test_foreign_payloads_and_other_topics_never_get_through(view):
    node, publisher, watcher = view
    everything = await watcher.subscribe(watcher.topics.json_views(), raw=True)
    view_status = watcher.topics.json_view(watcher.topics.status(node.node_id))
    await publisher.publish(publisher.topics.result("edge-1"), b"\x00not msgpack", qos=1)
    await publisher.publish(publisher.topics.frame_end("cam-1", 1), b"\xeb\x01", qos=1)
    await publisher.publish(publisher.topics.json_view(publisher.topics.result("e")),
                            b'{"loop": true}', qos=1)  # fmt: skip
    await publisher.publish(publisher.topics.result("edge-1"), result(7), qos=1)
    got = [d async for d in _until_quiet(everything) if d.topic != view_status]
    # Only the real result came back (the loop's input is there once, as published).
    views = [d for d in got if d.payload != b'{"loop": true}']
    assert [json.loads(d.payload)["frame_id"] for d in views] == [7]
    assert node.counters.skipped_foreign == 1 and node.counters.republished == 1


async def _until_quiet(subscription, quiet_s: float = 1.5):  # type: ignore[no-untyped-def]
    while True:
        try:
            yield await subscription.get(quiet_s)
        except TimeoutError:
            return


def test_a_view_of_nothing_or_of_an_unknown_kind_is_refused():
    settings = Settings(broker="memory://none", node_id="v", store_enabled=False)
    with pytest.raises(ValueError, match="no kind"):
        JsonViewNode(settings, ())
    with pytest.raises(ValueError, match="frames"):
        JsonViewNode(settings, ("frames",))
