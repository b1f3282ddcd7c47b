"""A camera's source, whichever thread reads it: one that fails mid-run stops the camera
loudly (the frames before the failure each get their one result, the failed frame and any
after it are never published), and one slower than the period skips capture slots
instead of queueing frames."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

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


@contextlib.asynccontextmanager
async def running_edge(base: Settings) -> AsyncIterator[EdgeNode]:
    edge = EdgeNode(dataclasses.replace(base, role="edge", node_id="edge-s"))
    task = asyncio.create_task(edge.run(connect_timeout=10))
    try:
        await asyncio.wait_for(edge.ready.wait(), 20)
        yield edge
    finally:
        edge.stop()
        await asyncio.wait_for(task, 20)


@pytest.mark.parametrize("gate", ["default", "looks-at-frames"])
async def test_a_source_failing_mid_run_stops_the_camera_after_the_frames_before_it(
    actor_broker_url, tmp_path, gate
):
    base = Settings(broker=actor_broker_url, protocol="3.1.1", site="src", heartbeat_s=0.2,
                    data_dir=str(tmp_path), store_enabled=False, frame_period_ms=150)  # fmt: skip
    observer = bus_for(dataclasses.replace(base, node_id="observer"))
    await observer.start(timeout=10)
    results = await observer.subscribe(observer.topics.results(), qos=1)
    dropped = await observer.subscribe(observer.topics.droppeds(), qos=1)
    try:
        async with running_edge(base):
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
        await observer.close(flush_timeout=0)


class SlowerThanThePeriod:
    """Every read takes 2.5 periods, as a source too slow for the camera's rate would."""

    def __init__(self, period_s: float) -> None:
        self.inner = SyntheticSource(64, seed=1)
        self.read_s = 2.5 * period_s
        self.reads = 0

    def frame(self, frame_id: int) -> Frame:
        self.reads += 1
        time.sleep(self.read_s)
        return self.inner.frame(frame_id)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("gate", ["default", "looks-at-frames"])
async def test_a_source_slower_than_the_period_skips_capture_slots_instead_of_queueing(
    actor_broker_url, tmp_path, gate
):
    period_s = 0.04
    base = Settings(broker=actor_broker_url, protocol="3.1.1", site="slow", heartbeat_s=0.2,
                    data_dir=str(tmp_path), store_enabled=False,
                    frame_period_ms=int(period_s * 1000))  # fmt: skip
    source = SlowerThanThePeriod(period_s)
    camera = CameraNode(
        dataclasses.replace(base, role="camera", node_id="cam-slow"), source=source,
        gate=LooksAtEveryFrame() if gate != "default" else None,
    )  # fmt: skip
    # An edge answers the frames, so the camera's stop does not wait out their questions.
    async with running_edge(base):
        task = asyncio.create_task(camera.run(connect_timeout=10))
        try:
            await asyncio.wait_for(camera.ready.wait(), 20)
            await asyncio.sleep(1.0)
            # Never more than the frame being read and the one waiting behind it.
            assert camera._jobs.qsize() <= 2
            assert camera.counters.frames_skipped >= 10  # about 1.5 of every 2.5 slots
        finally:
            camera.stop()
            await asyncio.wait_for(task, 20)
