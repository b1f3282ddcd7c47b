"""A source that fails mid-run stops the camera loudly, whichever thread reads it: the
frames before the failure each get their one result, the failed frame and any after it
are never published."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from edgebus.actor.lifecycle import bus_for
from edgebus.config import Settings
from edgebus.errors import NodeFailed
from edgebus.messages import FrameDropped, Result
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.edge import EdgeNode
from edgebus.nodes.offload_gate import ADMIT_ALL, Admission
from edgebus.nodes.sources import CapturedFrame, Frame, SyntheticSource

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FAILS_AT = 3


class UnpluggedAtFrame3:
    """Synthetic frames until frame 3, whose read fails as a camera unplugged would."""

    def __init__(self) -> None:
        self.inner = SyntheticSource(64, seed=1)
        self.reads: list[int] = []

    def frame(self, frame_id: int) -> Frame:
        self.reads.append(frame_id)
        if frame_id >= FAILS_AT:
            raise OSError("camera unplugged")
        return self.inner.frame(frame_id)

    def close(self) -> None:
        pass


class LooksAtEveryFrame:
    """A gate that needs the image on the loop, so the camera reads on its source thread."""

    async def admit(self, frame: CapturedFrame) -> Admission:
        assert frame.image.shape == (64, 64, 3)
        return ADMIT_ALL


@pytest.mark.parametrize("gate", ["default", "looks-at-frames"])
async def test_a_source_failing_mid_run_stops_the_camera_after_the_frames_before_it(
    actor_broker_url, tmp_path, gate
):
    base = Settings(broker=actor_broker_url, protocol="3.1.1", site="src", heartbeat_s=0.2,
                    data_dir=str(tmp_path), store_enabled=False, frame_period_ms=150)  # fmt: skip
    edge = EdgeNode(dataclasses.replace(base, role="edge", node_id="edge-s"))
    observer = bus_for(dataclasses.replace(base, node_id="observer"))
    await observer.start(timeout=10)
    results = await observer.subscribe(observer.topics.results(), qos=1)
    dropped = await observer.subscribe(observer.topics.droppeds(), qos=1)
    edge_task = asyncio.create_task(edge.run(connect_timeout=10))
    try:
        await asyncio.wait_for(edge.ready.wait(), 20)
        source = UnpluggedAtFrame3()
        camera = CameraNode(
            dataclasses.replace(base, role="camera", node_id="cam-s"), max_frames=10,
            source=source, gate=LooksAtEveryFrame() if gate != "default" else None,
        )  # fmt: skip
        with pytest.raises((NodeFailed, OSError), match="camera unplugged"):
            await asyncio.wait_for(camera.run(connect_timeout=10), 30)
        answered: dict[int, int] = {}
        for subscription in (results, dropped):
            while True:
                try:
                    message = (await subscription.get(1.5)).message
                except TimeoutError:
                    break
                assert isinstance(message, Result | FrameDropped)
                answered[message.frame_id] = answered.get(message.frame_id, 0) + 1
        assert answered == {0: 1, 1: 1, 2: 1}
        assert camera._read_on_encoder == (gate == "default")
        # Frame 0 once more first: the camera sizes a full frame at start.
        assert source.reads[: FAILS_AT + 2] == [0, 0, 1, 2, 3]
    finally:
        edge.stop()
        await asyncio.wait_for(edge_task, 20)
        await observer.close(flush_timeout=0)
