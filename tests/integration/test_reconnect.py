"""Stop the broker while a publisher runs; every QoS 1 message queued meanwhile arrives."""

from __future__ import annotations

import asyncio

import pytest

from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions

pytestmark = pytest.mark.integration


async def test_qos1_messages_survive_a_broker_restart(persistent_mosquitto):
    address = parse_broker_url(persistent_mosquitto.url)
    fast = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.3}
    # A persistent session lets the restarted broker queue messages for the subscriber
    # until it is back, the way a deployment keeps edge subscriptions across restarts.
    subscriber = Bus(
        address,
        BusOptions(node_id="reconnect-sub", clean_start=False, session_expiry_s=3600, **fast),
    )
    publisher = Bus(address, BusOptions(node_id="reconnect-pub", **fast))
    await subscriber.start(5)
    await publisher.start(5)
    received: set[int] = set()
    subscription = await subscriber.subscribe("t/seq", qos=1, raw=True)

    async def collect() -> None:
        async for delivery in subscription:
            received.add(int(delivery.payload))

    collector = asyncio.create_task(collect())
    total = 600
    sent_while_down = 0
    loop = asyncio.get_running_loop()
    for seq in range(total):
        if seq == 200:
            await loop.run_in_executor(None, persistent_mosquitto.stop)
        if 200 <= seq < 400 and not publisher.connected:
            sent_while_down += 1
        if seq == 400:
            assert not publisher.connected
            await loop.run_in_executor(None, persistent_mosquitto.start)
        await publisher.publish("t/seq", str(seq).encode(), qos=1)
        await asyncio.sleep(0.002)
    assert sent_while_down == 200  # those went to the bounded outgoing queue
    await asyncio.wait_for(publisher.flush(), 20)
    for _ in range(200):
        if len(received) == total:
            break
        await asyncio.sleep(0.05)
    missing = sorted(set(range(total)) - received)
    assert not missing, f"{len(missing)} lost: {missing[:5]}..{missing[-5:]}"
    assert publisher.stats.reconnects >= 1 and subscriber.stats.reconnects >= 1
    collector.cancel()
    await publisher.close()
    await subscriber.close()
