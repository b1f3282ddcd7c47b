"""The frame sender's message count: units the encoder has ready go out as one chunk when
nothing paces the link, and the chunk that ends the frame rides in the end marker; over
an emulated link every unit is a chunk of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from edgebus.broker.bus_errors import OutgoingQueueFull
from edgebus.broker.link import BandwidthTrace, LinkEmulator
from edgebus.clock import RealClock
from edgebus.message_wire import decode
from edgebus.messages import EndOfFrame, FrameChunk
from edgebus.nodes.counters import CameraCounters
from edgebus.nodes.frame_coding import FrameCoding
from edgebus.nodes.frame_job import EncodeJob, FrameReadFailed, SenderSetup, SentFrame
from edgebus.nodes.frame_sender import HAND_OVER_S, FrameSender
from edgebus.nodes.sources import UNREAD, CapturedFrame, Frame
from edgebus.topics import Topics

pytestmark = pytest.mark.timeout(30)

UNITS = [b"\x00" * 40, b"\x01" * 30, b"\x02" * 20]


class RecordingBus:
    def __init__(self) -> None:
        self.sent: list[object] = []

    async def publish(self, topic, payload, qos=0, properties=None, **_):
        self.sent.append(decode(payload) if isinstance(payload, bytes) else payload)


def sender_and_job(
    link: LinkEmulator | None, units: Callable[[np.ndarray], Iterator[bytes]],
    counters: CameraCounters | None = None,
) -> tuple[RecordingBus, FrameSender, EncodeJob]:  # fmt: skip
    bus = RecordingBus()
    clock = RealClock()
    sender = FrameSender(
        bus, Topics("t"), clock, SenderSetup("cam", 1, 8, 8, 0, False),  # type: ignore[arg-type]
        lambda edge: link, counters or CameraCounters(),
    )  # fmt: skip
    now = clock.monotonic()
    frame = CapturedFrame(0, np.zeros((8, 8, 3), np.uint8), 1, time.time(), now, now + 5.0,
                          time.time() + 5.0)  # fmt: skip
    return bus, sender, EncodeJob(frame, FrameCoding("pnc", "m", units))


async def encode_and_send(sender: FrameSender, job: EncodeJob) -> tuple[SentFrame, EndOfFrame]:
    try:
        sender.encode(job)
        await asyncio.wait_for(job.encoded.wait(), 5)  # every unit is coded and handed over
        return await sender.send(job)
    finally:
        await sender.finish()


async def send_one(link: LinkEmulator | None) -> tuple[RecordingBus, SentFrame]:
    bus, sender, job = sender_and_job(link, lambda image: iter(UNITS))
    sent, _ = await encode_and_send(sender, job)
    return bus, sent


def frame_data(bus: RecordingBus) -> list[bytes]:
    """The frame's chunks in order, as the edge assembles them: those sent on their own,
    then the one the end marker carries."""
    chunks = [m.data for m in bus.sent if isinstance(m, FrameChunk)]
    marker = bus.sent[-1]
    assert isinstance(marker, EndOfFrame)
    return [*chunks, marker.last_chunk] if marker.last_chunk else chunks


async def test_a_frame_coded_at_once_leaves_as_one_message_without_a_link():
    bus, sent = await send_one(None)
    assert len(bus.sent) == 1  # no chunk of its own: it rides in the end marker
    marker = bus.sent[0]
    assert isinstance(marker, EndOfFrame) and marker.last_chunk == b"".join(UNITS)
    assert (marker.chunks_sent, marker.units_sent, marker.bytes_sent) == (1, 3, 90)
    assert (sent.units_sent, sent.units_total, sent.chunks_sent) == (3, 3, 1)


def hand_over(job: EncodeJob, units: list[bytes], ended: bool) -> None:
    """What the encoder thread hands the loop, without the thread: a test picks when."""
    for unit in units:
        job.unit_sizes.append(len(unit))
        job.units.put_nowait(unit)
    if ended:
        job.encoded.set()
        job.units.put_nowait(None)


async def wait_for_messages(bus: RecordingBus, count: int) -> None:
    async with asyncio.timeout(5):
        while len(bus.sent) < count:
            await asyncio.sleep(0.001)


async def test_units_coded_before_the_end_leave_at_once_and_only_the_last_rides_along():
    """Progressive sending is kept: the sender does not hold units back for the marker."""
    bus, sender, job = sender_and_job(None, lambda image: iter(()))
    hand_over(job, UNITS[:2], ended=False)
    sending = asyncio.create_task(sender.send(job))
    try:
        await wait_for_messages(bus, 1)
        assert [m.data for m in bus.sent if isinstance(m, FrameChunk)] == [b"".join(UNITS[:2])]
        hand_over(job, UNITS[2:], ended=True)
        sent, marker = await asyncio.wait_for(sending, 5)
    finally:
        sender.close()
    assert frame_data(bus) == [b"".join(UNITS[:2]), UNITS[2]]
    assert (marker.chunks_sent, marker.units_sent, sent.chunks_sent) == (2, 3, 2)


class RefusingBus(RecordingBus):
    """Takes chunks (QoS 0) and refuses QoS 1: the end marker finds the queue full."""

    async def publish(self, topic, payload, qos=0, properties=None, **_):
        if qos == 1:
            raise OutgoingQueueFull("outgoing queue full")
        await super().publish(topic, payload, qos, properties)


async def test_a_frame_whose_marker_is_refused_has_only_its_chunks_sent_alone_out():
    """What the camera decides from: nothing out, it records the drop itself; chunks out,
    it follows the frame to an edge's outcome. A chunk inside the refused marker is not out."""
    _, sender, job = sender_and_job(None, lambda image: iter(()))
    sender.bus = RefusingBus()  # type: ignore[assignment]
    hand_over(job, UNITS, ended=True)
    with pytest.raises(OutgoingQueueFull):
        await asyncio.wait_for(sender.send(job), 5)
    assert job.chunks_out == 0 and sender.bus.sent == []  # type: ignore[attr-defined]

    _, sender, job = sender_and_job(None, lambda image: iter(()))
    sender.bus = bus = RefusingBus()  # type: ignore[assignment]
    hand_over(job, UNITS[:2], ended=False)
    sending = asyncio.create_task(sender.send(job))
    await wait_for_messages(bus, 1)
    hand_over(job, UNITS[2:], ended=True)
    with pytest.raises(OutgoingQueueFull):
        await asyncio.wait_for(sending, 5)
    assert job.chunks_out == 1 and len(bus.sent) == 1


async def test_a_frame_that_ends_after_its_deadline_keeps_its_last_chunk():
    bus, sender, job = sender_and_job(None, lambda image: iter(()))
    job.frame = dataclasses.replace(job.frame, deadline_mono=job.frame.capture_mono - 1.0)
    hand_over(job, UNITS, ended=True)
    try:
        sent, marker = await asyncio.wait_for(sender.send(job), 5)
    finally:
        sender.close()
    assert bus.sent == [marker] and marker.last_chunk == b""
    assert (marker.chunks_sent, sent.units_sent) == (0, 0)


async def test_a_paced_link_sends_one_unit_per_chunk():
    link = LinkEmulator(BandwidthTrace.constant(1e6))
    bus, sent = await send_one(link)
    chunks = [m for m in bus.sent if isinstance(m, FrameChunk)]
    assert [c.data for c in chunks] == UNITS
    assert (sent.units_sent, sent.chunks_sent) == (3, 3)


async def test_a_slow_encoder_hands_its_first_units_over_while_still_coding():
    """Progressive sending: units coded early reach the sender long before the frame's
    last one, not at its end."""
    gap_s = 10 * HAND_OVER_S

    def slow_units(image: np.ndarray) -> Iterator[bytes]:
        for unit in UNITS:
            yield unit
            time.sleep(gap_s)

    _, sender, job = sender_and_job(None, slow_units)
    try:
        sender.encode(job)
        first = await asyncio.wait_for(job.units.get(), 5)
        received_first = time.monotonic()
        await asyncio.wait_for(job.encoded.wait(), 5)
        assert first == UNITS[0]
        # The encoder sleeps gap_s after each of the 3 units: the first one arrived at least
        # two gaps before the end.
        assert time.monotonic() - received_first >= 1.5 * gap_s
    finally:
        await sender.finish()


async def test_an_encoder_failure_ends_the_frame_with_what_was_coded():
    def failing_units(image: np.ndarray) -> Iterator[bytes]:
        yield UNITS[0]
        raise ValueError("broken model")

    counters = CameraCounters()
    bus, sender, job = sender_and_job(None, failing_units, counters)
    sent, marker = await encode_and_send(sender, job)
    assert counters.encode_errors == 1
    assert (sent.units_sent, sent.units_total) == (1, 1)
    assert frame_data(bus) == [UNITS[0]]
    assert isinstance(marker, EndOfFrame) and marker.units_sent == 1


def unread(job: EncodeJob, read: Callable[[int], Frame]) -> EncodeJob:
    """The job as the camera makes it when the encoder thread reads the frame."""
    job.frame = dataclasses.replace(job.frame, image=UNREAD, label=-1)
    job.read = read
    return job


async def test_the_encoder_thread_reads_the_frame_and_the_marker_carries_its_label():
    seen: list[tuple[int, str]] = []

    def units(image: np.ndarray) -> Iterator[bytes]:
        assert image.shape == (8, 8, 3)  # the frame read, not the placeholder
        return iter(UNITS)

    def read(frame_id: int) -> Frame:
        seen.append((frame_id, threading.current_thread().name))
        return Frame(frame_id, np.ones((8, 8, 3), np.uint8), label=7)

    bus, sender, job = sender_and_job(None, units)
    sent, marker = await encode_and_send(sender, unread(job, read))
    assert seen == [(0, seen[0][1])] and seen[0][1].startswith("cam-encode")
    assert job.frame.label == 7 and job.frame.image.shape == (8, 8, 3)
    assert sent.label == 7 and marker.label == 7 and sent.units_sent == 3
    assert frame_data(bus) == [b"".join(UNITS)]


async def test_a_failed_read_publishes_nothing_and_says_so():
    def read(frame_id: int) -> Frame:
        raise OSError("camera unplugged")

    coded: list[np.ndarray] = []
    bus, sender, job = sender_and_job(None, lambda image: coded.append(image) or iter(UNITS))
    job = unread(job, read)
    try:
        sender.encode(job)
        with pytest.raises(FrameReadFailed, match="frame 0: camera unplugged"):
            await asyncio.wait_for(sender.send(job), 5)
    finally:
        await sender.finish()
    assert bus.sent == [] and coded == []  # no chunk, no end marker, nothing encoded
