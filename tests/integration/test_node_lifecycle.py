"""The node lifecycle: online once listening, heartbeats, and a clean offline even on failure."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from edgebus.actor.lifecycle import Node, bus_for
from edgebus.config import Settings
from edgebus.messages import Heartbeat, Status

pytestmark = pytest.mark.integration


class FailingNode(Node):
    role = "edge"

    async def main(self) -> None:
        self.ready.set()
        await asyncio.sleep(0.3)
        raise RuntimeError("model file vanished")


async def test_a_failing_node_still_goes_offline(mosquitto_url, tmp_path):
    settings = Settings(
        broker=mosquitto_url,
        site="life",
        node_id="doomed",
        heartbeat_s=0.1,
        data_dir=str(tmp_path),
        # No cloud here: with storage on, shutdown would wait out the sync drain.
        store_enabled=False,
    )
    watcher = bus_for(dataclasses.replace(settings, node_id="watcher"))
    await watcher.start(5)
    statuses = await watcher.subscribe(watcher.topics.status("doomed"))
    beats = await watcher.subscribe(watcher.topics.heartbeat("doomed"))
    with pytest.raises(RuntimeError, match="model file vanished"):
        await FailingNode(settings).run(connect_timeout=5)
    states = []
    while True:
        try:
            delivery = await statuses.get(2)
        except TimeoutError:
            break
        assert isinstance(delivery.message, Status)
        states.append(delivery.message.state)
    assert states[0] == "online" and states[-1] == "offline"
    assert isinstance((await beats.get(2)).message, Heartbeat)
    await watcher.close()
