"""Without an emulated link a camera sends the units its encoder has ready as one chunk,
and the edge still decodes every feature of every frame. A paced link keeps one unit per
chunk (the deadline's grain)."""

from __future__ import annotations

import pytest

from edgebus.config import Settings
from edgebus.messages import Result
from edgebus.nodes.frame_job import SentFrame
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


def settings(url: str, tmp_path, site: str, link: str) -> Settings:
    return Settings(
        broker=url, site=site, heartbeat_s=0.5, frame_period_ms=300,
        data_dir=str(tmp_path), store_enabled=False, link=link,
    )  # fmt: skip


async def test_coalesced_frames_decode_whole_at_the_edge(actor_broker_url, tmp_path):
    sent, by_frame = await results_of(settings(actor_broker_url, tmp_path, "coalesce", "off"), "c")
    assert len(sent) == FRAMES
    # How many chunks a frame takes depends on how far the encoder is ahead when sending
    # starts (tests/test_frame_sender.py pins the rule); every frame arrives whole.
    assert all(frame.units_sent == frame.units_total > 1 for frame in sent)
    for result in by_frame.values():
        frame = next(f for f in sent if f.frame_id == result.frame_id)
        assert result.chunks_received == frame.chunks_sent
        assert result.units_received == frame.units_total


async def test_a_paced_link_keeps_one_unit_per_chunk(actor_broker_url, tmp_path):
    sent, _ = await results_of(settings(actor_broker_url, tmp_path, "paced", "none"), "p")
    assert len(sent) == FRAMES
    assert all(frame.chunks_sent == frame.units_sent for frame in sent)
