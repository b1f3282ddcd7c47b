"""The in-process broker behind memory:// URLs keeps the MQTT behaviour the actors rely
on: retained messages, QoS downgrade, shared groups, persistent sessions, wills, a
broker that goes away and a client id taken over."""

from __future__ import annotations

import uuid

import pytest

from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions
from edgebus.broker.memory import MemoryBroker
from edgebus.broker.transport import ConnectFailed, Will

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def broker():
    memory = MemoryBroker(f"unit-{uuid.uuid4().hex[:8]}").start()
    yield memory
    memory.stop()


def bus(broker: MemoryBroker, node: str, **options: object) -> Bus:
    return Bus(parse_broker_url(broker.url), BusOptions(site="m", node_id=node, **options))


async def test_retained_messages_replay_on_subscribe_and_an_empty_one_clears(broker):
    a = bus(broker, "a")
    await a.start(2)
    await a.publish("t/kept", b"v1", qos=1, retain=True)
    await a.publish("t/gone", b"x", qos=1, retain=True)
    await a.publish("t/gone", b"", qos=1, retain=True)
    await a.flush()
    sub = await a.subscribe("t/#", qos=1, raw=True)
    first = await sub.get(2)
    assert (first.topic, first.payload, first.retain) == ("t/kept", b"v1", True)
    with pytest.raises(TimeoutError):
        await sub.get(0.2)
    await a.close()


async def test_delivery_takes_the_lower_qos_and_a_shared_group_takes_turns(broker):
    pub, one, two = bus(broker, "pub"), bus(broker, "one"), bus(broker, "two")
    for b in (pub, one, two):
        await b.start(2)
    low = await one.subscribe("q/x", qos=0, raw=True)
    shared = [await b.subscribe("$share/g/s/+", qos=1, raw=True) for b in (one, two)]
    await pub.publish("q/x", b"1", qos=1)
    assert (await low.get(2)).qos == 0
    for i in range(4):
        await pub.publish(f"s/{i}", b"s", qos=1)
    got = [[], []]
    for index, subscription in enumerate(shared):
        while True:
            try:
                got[index].append((await subscription.get(0.2)).topic)
            except TimeoutError:
                break
    assert sorted(got[0] + got[1]) == [f"s/{i}" for i in range(4)]
    assert len(got[0]) == len(got[1]) == 2  # each message to one member, in turn
    for b in (pub, one, two):
        await b.close()


async def test_a_persistent_session_gets_what_was_sent_while_it_was_away(broker):
    options = {"clean_start": False, "session_expiry_s": 60}
    away = bus(broker, "away", **options)
    await away.start(2)
    await away.subscribe("p/#", qos=1, raw=True)
    await away.close()
    sender = bus(broker, "sender")
    await sender.start(2)
    await sender.publish("p/1", b"queued", qos=1)
    await sender.publish("p/2", b"lost at qos 0", qos=0)
    await sender.flush()
    back = bus(broker, "away", **options)
    resumed = await back.subscribe("p/#", qos=1, raw=True)
    await back.start(2)
    delivery = await resumed.get(2)
    assert (delivery.topic, delivery.payload) == ("p/1", b"queued")
    with pytest.raises(TimeoutError):
        await resumed.get(0.2)
    await back.close()
    await sender.close()


async def test_a_dropped_client_leaves_its_will_and_a_stopped_broker_refuses(broker):
    watcher = bus(broker, "watcher")
    await watcher.start(2)
    wills = await watcher.subscribe("status/+", qos=1, raw=True)
    doomed = bus(broker, "doomed", will=Will("status/doomed", b"offline", qos=1, retain=True))
    await doomed.start(2)
    broker.drop("doomed")
    will = await wills.get(2)
    assert (will.topic, will.payload) == ("status/doomed", b"offline")
    await doomed.close(flush_timeout=0)
    broker.stop()
    late = bus(broker, "late", reconnect_min_s=0.01, reconnect_max_s=0.05)
    with pytest.raises(ConnectFailed, match="no such broker"):
        await late.start(0.3)
    await late.close(flush_timeout=0)
    await watcher.close(flush_timeout=0)
    broker.start()


async def test_a_second_connection_with_the_same_client_id_takes_the_session_over(broker):
    first = bus(broker, "same")
    await first.start(2)
    second = bus(broker, "same")
    await second.start(2)
    assert not first.connected  # dropped by the broker
    # Closed before its backoff reconnects it (which would take the session back, as a
    # real broker lets it).
    await first.close(flush_timeout=0)
    sub = await second.subscribe("o/#", qos=1, raw=True)
    other = bus(broker, "other")
    await other.start(2)
    await other.publish("o/1", b"to the newer one", qos=1)
    assert (await sub.get(2)).payload == b"to the newer one"
    for b in (second, other):
        await b.close(flush_timeout=0)
