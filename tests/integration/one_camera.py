"""One edge and one camera in the test's own process, with an observer on the results
topic: what a test of a camera's data path needs, started and always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable

from edgebus.actor.lifecycle import bus_for
from edgebus.broker.subscription import Subscription
from edgebus.config import Settings
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.edge import EdgeNode
from edgebus.nodes.frame_job import SentFrame


@contextlib.asynccontextmanager
async def one_camera(
    base: Settings, suffix: str, max_frames: int,
    on_sent: Callable[[SentFrame], None] | None = None,
) -> AsyncIterator[Subscription]:  # fmt: skip
    """edge-<suffix> and cam-<suffix> on `base`; yields the results subscription once the
    edge is ready and the camera started, and stops all three on the way out."""
    edge = EdgeNode(dataclasses.replace(base, role="edge", node_id=f"edge-{suffix}"))
    camera = CameraNode(
        dataclasses.replace(base, role="camera", node_id=f"cam-{suffix}"),
        max_frames=max_frames, on_sent=on_sent,
    )  # fmt: skip
    observer = bus_for(dataclasses.replace(base, node_id=f"obs-{suffix}"))
    await observer.start(timeout=10)
    results = await observer.subscribe(observer.topics.results(), qos=1)
    edge_task = asyncio.create_task(edge.run(connect_timeout=10))
    camera_task: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(edge.ready.wait(), 30)
        camera_task = asyncio.create_task(camera.run(connect_timeout=10))
        yield results
    finally:
        camera.stop()
        edge.stop()
        await asyncio.gather(*(t for t in (camera_task, edge_task) if t), return_exceptions=True)
        await observer.close(flush_timeout=0)
