"""The Bus against real brokers: the embedded amqtt one and Mosquitto."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions, OutgoingQueueFull, RequestFailed, RequestTimeout
from edgebus.broker.transport import MQTT5, MQTT311, ConnectFailed
from edgebus.messages import DeadLetter, ErrorReply, QosRequest, Result, Status

pytestmark = pytest.mark.integration


def make_bus(url: str, name: str, site: str = "t", **options) -> Bus:
    return Bus(
        parse_broker_url(url),
        BusOptions(site=site, node_id=f"{name}-{uuid.uuid4().hex[:6]}", **options),
    )


async def test_typed_publish_subscribe_and_retained(broker_url):
    async with make_bus(broker_url, "a") as a, make_bus(broker_url, "b") as b:
        sub = await b.subscribe("t/msgs/#")
        for i in range(20):
            await a.publish(f"t/msgs/{i}", Status(f"n{i}", "edge", "online"), qos=1)
        got = [(await sub.get(5)).message.node for _ in range(20)]
        assert got == [f"n{i}" for i in range(20)]
        await a.publish("t/retained", Status("r", "edge", "online"), qos=1, retain=True)
        await a.flush()
        await asyncio.sleep(0.2)
        async with make_bus(broker_url, "late") as late:
            retained = await late.subscribe("t/retained")
            delivery = await retained.get(5)
            assert delivery.retain and delivery.message.node == "r"


async def test_malformed_payload_is_dead_lettered_and_consumer_survives(broker_url):
    async with make_bus(broker_url, "a") as a, make_bus(broker_url, "b") as b:
        watcher_bus = make_bus(broker_url, "w")
        await watcher_bus.start(5)
        letters = await watcher_bus.subscribe(b.topics.deadletter())
        sub = await b.subscribe("edgebus/v1/t/results/+")
        await a.publish("edgebus/v1/t/results/bad", b"\xeb\x01\x05garbage", qos=1)
        await a.publish("edgebus/v1/t/results/bad", b"not edgebus at all", qos=1)
        good = Result("edge", "cam", 1, [3], [1.0], 10, 1, 2.0)
        await a.publish("edgebus/v1/t/results/good", good, qos=1)
        assert (await sub.get(5)).message == good  # the consumer saw only the valid one
        first = (await letters.get(5)).message
        second = (await letters.get(5)).message
        assert isinstance(first, DeadLetter) and first.source_topic.endswith("results/bad")
        assert first.reporter == b.node_id
        assert second.payload == b"not edgebus at all"
        assert b.deadletters.counts["bad"] == 2
        await watcher_bus.close()


async def test_raw_subscription_sees_foreign_payloads(broker_url):
    async with make_bus(broker_url, "a") as a, make_bus(broker_url, "b") as b:
        sub = await b.subscribe("t/raw", raw=True)
        await a.publish("t/raw", b"hello", qos=1)
        delivery = await sub.get(5)
        assert delivery.message is None and delivery.payload == b"hello" and delivery.error


async def test_request_reply(broker_url):
    async with make_bus(broker_url, "client") as client, make_bus(broker_url, "server") as server:

        async def handler(request):
            if request.accuracy > 1:
                raise ValueError("accuracy above 1")
            return Status("server", "coordinator", f"ok {request.accuracy}")

        await server.serve("t/svc/qos", handler)
        reply = await client.request("t/svc/qos", QosRequest("cli", 0.8, 1e5), timeout=5)
        assert reply.state == "ok 0.8"
        with pytest.raises(RequestFailed, match="accuracy above 1"):
            await client.request("t/svc/qos", QosRequest("cli", 2.0, 1e5), timeout=5)
        with pytest.raises(RequestTimeout):
            await client.request("t/svc/nobody", QosRequest("cli", 0.5, 1e5), timeout=0.5)
        assert client.protocol_version in (MQTT5, MQTT311)


GHOST = """
import asyncio, sys
from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions
from edgebus.broker.transport import Will
from edgebus.messages import Status, encode

async def main():
    offline = encode(Status("ghost", "edge", "offline"))
    will = Will("t/status/ghost", offline, 1, True)
    bus = Bus(parse_broker_url(sys.argv[1]), BusOptions(site="t", node_id="ghost", will=will))
    await bus.start(5)
    await bus.publish("t/status/ghost", Status("ghost", "edge", "online"), qos=1, retain=True)
    await bus.flush()
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_last_will_marks_a_vanished_node_offline(mosquitto_url):
    import signal
    import subprocess
    import sys

    watcher = make_bus(mosquitto_url, "watch")
    await watcher.start(5)
    statuses = await watcher.subscribe("t/status/+")
    ghost = subprocess.Popen([sys.executable, "-c", GHOST, mosquitto_url])
    try:
        assert (await statuses.get(20)).message.state == "online"
        # A crash: the socket drops without DISCONNECT, and the broker sends the will.
        ghost.send_signal(signal.SIGKILL)
        assert (await statuses.get(10)).message.state == "offline"
    finally:
        ghost.kill()
        ghost.wait()
        await watcher.close()


@pytest.mark.parametrize("client", ["gmqtt", "paho", "aiomqtt"])
async def test_every_transport_works_behind_the_bus(mosquitto_url, client):
    async with (
        make_bus(mosquitto_url, "a", client=client) as a,
        make_bus(mosquitto_url, "b", client=client) as b,
    ):
        sub = await b.subscribe("t/x/#", qos=1)
        for i in range(50):
            await a.publish(f"t/x/{i}", Status(str(i), "edge", "online"), qos=i % 2)
        await a.flush()
        nodes = sorted([int((await sub.get(5)).message.node) for _ in range(50)])
        assert nodes == list(range(50))

        async def handler(request):
            return ErrorReply(f"echo {request.requester}")

        await b.serve("t/svc", handler)
        with pytest.raises(RequestFailed, match="echo me"):
            await a.request("t/svc", QosRequest("me", 0.5, 1.0), timeout=5)


async def test_refused_connection_is_one_line():
    from edgebus.broker.ports import free_port

    bus = make_bus(
        f"mqtt://127.0.0.1:{free_port()}", "x", reconnect_min_s=0.05, reconnect_max_s=0.1
    )
    with pytest.raises(ConnectFailed) as info:
        await bus.start(timeout=0.5)
    assert "connection refused" in str(info.value) and "\n" not in str(info.value)


async def test_queue_is_bounded_while_disconnected():
    from edgebus.broker.ports import free_port

    bus = make_bus(f"mqtt://127.0.0.1:{free_port()}", "q", queue_limit=5)
    bus.begin()  # connecting in the background, to a port nobody listens on
    for _ in range(5):
        await bus.publish("t/q", b"x", qos=1)
    with pytest.raises(OutgoingQueueFull, match="queue full"):
        await asyncio.wait_for(bus.publish("t/q", b"x", qos=1), 1)
    assert bus.stats.queue_full == 1
    await bus.close(flush_timeout=0)


@pytest.mark.parametrize("client", ["gmqtt", "paho", "aiomqtt"])
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_back_to_back_qos1_on_a_stock_mosquitto_all_arrive(mosquitto_url, client, protocol):
    # A stock Mosquitto grants 20 messages in flight (Receive Maximum on MQTT 5); the
    # 21st back-to-back publish used to raise gmqtt's "All ids has already used".
    total = 500
    async with (
        make_bus(mosquitto_url, "fast", client=client, protocol=protocol) as sender,
        make_bus(mosquitto_url, "sink", protocol=protocol) as receiver,
    ):
        sub = await receiver.subscribe("t/burst/#", qos=1)
        for i in range(total):
            await sender.publish(f"t/burst/{i}", Status(f"n{i}", "edge", "online"), qos=1)
        await asyncio.wait_for(sender.flush(), 30)
        assert sender.window <= 20
        got = [(await sub.get(10)).message.node for _ in range(total)]
        assert got == [f"n{i}" for i in range(total)]


async def test_a_persistent_session_backlog_waits_for_its_subscription(mosquitto_url):
    # A broker that kept a session delivers its queue right after CONNACK, before the
    # actor subscribes again in its new process; those messages must not be acked away.
    name = f"keeper-{uuid.uuid4().hex[:6]}"

    def keeper() -> Bus:
        return Bus(
            parse_broker_url(mosquitto_url),
            BusOptions(site="t", node_id=name, clean_start=False, session_expiry_s=600),
        )

    first = keeper()
    await first.start(timeout=10)
    await first.subscribe("t/queued/#", qos=1)
    await first.close()
    async with make_bus(mosquitto_url, "writer") as writer:
        for i in range(5):
            await writer.publish(f"t/queued/{i}", Status(f"q{i}", "edge", "online"), qos=1)
        await writer.flush()
    second = keeper()
    await second.start(timeout=10)
    try:
        assert second.session_present
        await asyncio.sleep(0.5)  # the backlog arrives before anything subscribes
        sub = await second.subscribe("t/queued/#", qos=1)
        got = [(await sub.get(5)).message.node for _ in range(5)]
        assert got == [f"q{i}" for i in range(5)]
    finally:
        await second.close()


@pytest.mark.timeout(120)
async def test_the_embedded_broker_serves_a_fleet_that_connects_at_once(embedded_broker):
    # amqtt 0.12 alone lost some of these clients: it iterated its subscription table
    # across awaits while others subscribed, and replayed every filter's retained
    # messages to each client that connected.
    url = embedded_broker.url
    async with make_bus(url, "holder") as holder:
        await holder.subscribe("t/retained/#")
        await holder.publish("t/retained/x", Status("r", "edge", "online"), qos=1, retain=True)
        await holder.flush()
        buses = [make_bus(url, f"n{i}") for i in range(32)]
        try:
            await asyncio.gather(*(bus.start(10) for bus in buses))
            subs = await asyncio.gather(*(bus.subscribe(f"t/own/{i}") for i, bus in
                                          enumerate(buses)))  # fmt: skip
            for i in range(len(buses)):
                await holder.publish(f"t/own/{i}", Status(f"n{i}", "edge", "online"), qos=1)
            got = await asyncio.gather(*(sub.get(10) for sub in subs))
            assert [d.message.node for d in got] == [f"n{i}" for i in range(len(buses))]
            # Nobody but the holder subscribed to t/retained/#: nothing of it arrived.
            assert all(bus.inbox.unclaimed == 0 for bus in buses)
        finally:
            await asyncio.gather(*(bus.close() for bus in buses), return_exceptions=True)


@pytest.mark.parametrize("client", ["gmqtt", "paho", "aiomqtt"])
async def test_qos0_publisher_waits_for_a_stalled_broker_without_buffering_unbounded(
    stock_mosquitto, client
):
    """A broker that stops reading (SIGSTOP) fills the socket: QoS 0 has no acks to pace
    it, so publish() must wait for the socket to drain instead of buffering everything,
    and carry on by itself once the broker reads again."""
    import os
    import signal

    from edgebus.broker.transport import WRITE_HIGH_WATER

    async with make_bus(stock_mosquitto.url, "flood", client=client) as bus:
        payload = b"x" * (64 << 10)
        pid = stock_mosquitto.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            stalled = False
            for _ in range(2_000):  # 128 MiB: far beyond any kernel socket buffer
                try:
                    await asyncio.wait_for(bus.publish("t/flood", payload), 0.5)
                except TimeoutError:
                    stalled = True
                    break
            assert stalled, "publish never waited although the broker read nothing"
            connection = bus._connection
            assert connection is not None
            assert connection.pending_bytes() <= WRITE_HIGH_WATER + 2 * len(payload)
            published = bus.stats.published
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.wait_for(bus.publish("t/flood", payload), 10)
        assert bus.stats.published == published + 1
