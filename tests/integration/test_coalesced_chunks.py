"""Without an emulated link a camera sends the units its encoder has ready as one chunk,
and the edge still decodes every feature of every frame. A paced link keeps one unit per
chunk (the deadline's grain)."""

from __future__ import annotations

import pytest

from edgebus.config import Settings
from edgebus.messages import Result
from edgebus.nodes.frame_sender import SentFrame
from tests.integration.one_camera import one_camera

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FRAMES = 8


async def results_of(base: Settings, suffix: str) -> tuple[list[SentFrame], dict[int, Result]]:
    sent: list[SentFrame] = []
    by_frame: dict[int, Result] = {}
    async with one_camera(base, suffix, max_frames=FRAMES, on_sent=sent.append) as results:
        while len(by_frame) < FRAMES:
            message = (await results.get(30)).message
            if isinstance(message, Result) and message.camera == f"cam-{suffix}":
                by_frame[message.frame_id] = message
    return sent, by_frame


async def test_ready_units_go_as_one_chunk_without_a_link(actor_broker_url, tmp_path):
    base = Settings(
        broker=actor_broker_url, site="coalesce", heartbeat_s=0.5, frame_period_ms=300,
        data_dir=str(tmp_path), store_enabled=False, link="off",
    )  # fmt: skip
    sent, by_frame = await results_of(base, "c")
    assert len(sent) == FRAMES
    # Whole frames in fewer chunks than units (how few depends on how far the encoder is
    # ahead when sending starts; tests/test_frame_sender.py pins the rule itself).
    assert all(frame.units_sent == frame.units_total > 1 for frame in sent)
    for result in by_frame.values():
        assert result.chunks_received == next(
            f.chunks_sent for f in sent if f.frame_id == result.frame_id
        )
    assert sum(r.chunks_received for r in by_frame.values()) < sum(f.units_total for f in sent)


async def test_a_paced_link_keeps_one_unit_per_chunk(actor_broker_url, tmp_path):
    base = Settings(
        broker=actor_broker_url, site="paced", heartbeat_s=0.5, frame_period_ms=300,
        data_dir=str(tmp_path), store_enabled=False, link="none",
    )  # fmt: skip
    sent, _ = await results_of(base, "p")
    assert len(sent) == FRAMES
    assert all(frame.chunks_sent == frame.units_sent for frame in sent)
