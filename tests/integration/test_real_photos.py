"""A camera pointed at a folder of real photos, an edge with the ImageNet classifier: the
results on the bus name what is in each photo, in ImageNet's words."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from edgebus.actor.lifecycle import bus_for
from edgebus.config import Settings
from edgebus.launch_plan import up_defaults
from edgebus.messages import Result
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.edge import EdgeNode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CAT_CLASSES = {"Egyptian cat", "tabby, tabby cat", "tiger cat"}


async def test_results_name_what_is_in_each_photo(actor_broker_url, tmp_path):
    from edgebus.ml.photos import PHOTOS, write_photos

    written = write_photos(tmp_path / "photos")
    base = up_defaults(
        Settings(
            broker=actor_broker_url, protocol="3.1.1", site="photos", heartbeat_s=0.5,
            frame_period_ms=200, data_dir=str(tmp_path), store_enabled=False,
            source=f"folder:{tmp_path / 'photos'}",
        ),
        lambda key: key == "source",
    )  # fmt: skip
    assert base.classifier == "imagenet" and base.frame_width == 224
    edge = EdgeNode(dataclasses.replace(base, role="edge", node_id="edge-p"))
    camera = CameraNode(
        dataclasses.replace(base, role="camera", node_id="cam-p"), max_frames=len(written)
    )
    observer = bus_for(dataclasses.replace(base, node_id="obs-p"))
    await observer.start(timeout=10)
    results = await observer.subscribe(observer.topics.results(), qos=1)
    edge_task = asyncio.create_task(edge.run(connect_timeout=10))
    camera_task: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(edge.ready.wait(), 30)
        camera_task = asyncio.create_task(camera.run(connect_timeout=10))
        named: dict[int, Result] = {}
        while len(named) < len(written):
            message = (await results.get(30)).message
            if isinstance(message, Result):
                named[message.frame_id] = message
    finally:
        camera.stop()
        edge.stop()
        await asyncio.gather(*(t for t in (camera_task, edge_task) if t), return_exceptions=True)
        await observer.close(flush_timeout=0)
    # Frames go out in the folder's sorted order.
    by_photo = {sorted(PHOTOS)[frame_id]: result for frame_id, result in named.items()}
    top1 = {name: result.names[0] for name, result in by_photo.items()}
    assert top1["chelsea"] in CAT_CLASSES
    assert top1["coffee"] == "espresso" and top1["camera"] == "tripod"
    assert all(len(r.names) == len(r.top_k) == 5 for r in by_photo.values())
    # WebP at quality 20, the photo fleet's default (on time or not: a loaded machine may
    # be late, and the names are what this test is about).
    assert all(r.codec == "webp" and r.bytes_received < 4000 for r in by_photo.values())
