"""A camera playing Fashion-MNIST's test images: `up`'s Fashion-MNIST defaults, and the
offloading paper's system on real classifier outputs over the bus: the Fashion-MNIST weak
model on the camera with the DQN shipped for it, the strong one at the edge."""

from __future__ import annotations

import pytest

from edgebus.config import Settings
from edgebus.fashion_mnist import FASHION_CLASSES, read_fashion_mnist
from edgebus.launch_plan import up_defaults
from edgebus.messages import Result
from edgebus.nodes.frame_job import SentFrame
from tests.integration.one_camera import one_camera

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FRAMES = 40


def test_up_gives_a_fashion_fleet_what_it_left_unset():
    fleet = up_defaults(Settings(source="fashion-mnist"), lambda key: key == "source")
    assert (fleet.classifier, fleet.frame_width, fleet.frame_height) == ("fashion_strong", 28, 28)
    assert (fleet.codec, fleet.link, fleet.weak_classifier) == (
        "pnc:fashion_pnc28", "switching:0.7", "fashion_weak"
    )  # fmt: skip
    mine = up_defaults(
        Settings(source="fashion-mnist", codec="webp10", link="off"),
        lambda key: key in ("source", "codec", "link"),
    )
    assert (mine.classifier, mine.codec, mine.link) == ("fashion_strong", "webp10", "off")


async def test_fashion_camera_offloads_by_the_shipped_dqn(
    actor_broker_url, tmp_path, fashion_mnist_dir
):
    base = up_defaults(
        Settings(
            broker=actor_broker_url, protocol="3.1.1", site="fashion", heartbeat_s=0.5,
            frame_period_ms=100, data_dir=str(tmp_path), store_enabled=False,
            source="fashion-mnist", link="off", offload="dqn", offload_rate=0.1,
            offload_bucket=4,
        ),
        lambda key: key in ("source", "link"),
    )  # fmt: skip
    sent: list[SentFrame] = []
    by_frame: dict[int, Result] = {}
    async with one_camera(base, "f", max_frames=FRAMES, on_sent=sent.append) as results:
        while len(by_frame) < FRAMES:
            message = (await results.get(30)).message
            # The camera's weak answer, or the edge's for an offloaded frame.
            mine = isinstance(message, Result) and message.camera == "cam-f"
            if mine and (message.offloaded or message.frame_id not in by_frame):
                by_frame[message.frame_id] = message
    offloaded = [r for r in by_frame.values() if r.offloaded]
    # A full bucket of 4 tokens plus 0.1 per frame slot: at most 8 of 40 frames go up.
    assert 1 <= len(offloaded) <= 4 + 0.1 * FRAMES
    assert all(r.names[0] in FASHION_CLASSES for r in by_frame.values())
    assert sorted(frame.frame_id for frame in sent) == sorted(r.frame_id for r in offloaded)
    _, labels = read_fashion_mnist(fashion_mnist_dir, train=False)  # frame i is test image i
    correct = sum(r.top_k[0] == labels[i] for i, r in by_frame.items())
    # The weak model scores 84.8 % and the strong 91.7 % on the test set; 40 frames vary.
    assert correct / FRAMES >= 0.7, correct
