"""The node lifecycle: online once listening, heartbeats, and a clean offline even on failure."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from edgebus.actor.lifecycle import Node, bus_for
from edgebus.config import Settings
from edgebus.errors import NodeFailed
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


class NodeWithADyingTask(Node):
    role = "edge"

    async def main(self) -> None:
        async def classify() -> None:
            await asyncio.sleep(0.3)
            raise ZeroDivisionError("batch of zero frames")

        self.supervise(classify(), "classify")
        self.ready.set()
        await self.stopping.wait()


async def test_a_node_whose_task_dies_goes_offline_with_the_reason(actor_broker_url, tmp_path):
    # Without supervision the task would die quietly and the node look alive forever.
    settings = Settings(
        broker=actor_broker_url, protocol="3.1.1", site="life", node_id="edge-x",
        heartbeat_s=0.1, data_dir=str(tmp_path), store_enabled=False,
    )  # fmt: skip
    watcher = bus_for(dataclasses.replace(settings, node_id="watcher"))
    await watcher.start(5)
    statuses = await watcher.subscribe(watcher.topics.status("edge-x"))
    with pytest.raises(NodeFailed, match="edge-x-classify failed: ZeroDivisionError"):
        await asyncio.wait_for(NodeWithADyingTask(settings).run(connect_timeout=5), 10)
    last = None
    with contextlib.suppress(TimeoutError):
        while True:
            last = (await statuses.get(1)).message
    await watcher.close()
    assert isinstance(last, Status) and last.state == "offline"
    assert last.reason == "edge-x-classify failed: ZeroDivisionError: batch of zero frames"


async def test_a_dead_service_task_stops_the_node_with_the_reason(actor_broker_url, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    """A component's own task (here the camera's outcome tracker, which asks edges again
    about unanswered frames) is supervised like the node's: its death stops the camera."""
    from edgebus.nodes.camera import CameraNode
    from edgebus.nodes.frame_outcomes import OutcomeTracker

    async def broken_sweep(self: OutcomeTracker) -> None:
        await asyncio.sleep(0.2)
        raise KeyError("frame 7")

    monkeypatch.setattr(OutcomeTracker, "_sweep", broken_sweep)
    settings = Settings(
        broker=actor_broker_url, protocol="3.1.1", site="life", node_id="cam-x", role="camera",
        heartbeat_s=0.1, data_dir=str(tmp_path), store_enabled=False, frame_period_ms=100,
    )  # fmt: skip
    with pytest.raises(NodeFailed, match="cam-x-ask-again failed: KeyError"):
        camera = CameraNode(settings, max_frames=0)  # no frames: nothing to settle at stop
        await asyncio.wait_for(camera.run(connect_timeout=5), 20)
