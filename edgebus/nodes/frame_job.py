"""What a frame carries through the camera's sender: the job the encoder fills, what
went out of it so far, and what the sender reports at the frame's end. Plain data; the
sending itself is frame_sender.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from edgebus.nodes.chunking import Chunk
from edgebus.nodes.frame_coding import FrameCoding
from edgebus.nodes.sources import CapturedFrame, Frame


class FrameReadFailed(Exception):
    """The source could not give a job's frame; nothing of the frame was published."""


@dataclass(slots=True)
class EncodeJob:
    """One frame on its way through the encoder; units arrive on `units` (None ends)."""

    frame: CapturedFrame
    coding: FrameCoding
    edge: str = ""  # under a scheduling policy, the edge assigned when it was captured
    # Set when the frame is still to be read: the encoder thread reads it first, and
    # `frame` gets its image and label with the first units handed over.
    read: Callable[[int], Frame] | None = None
    read_error: Exception | None = None
    units: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    unit_sizes: list[int] = field(default_factory=list)
    chunks_out: int = 0  # chunks handed to the bus so far
    first_ready_mono: float | None = None
    encoded: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class SentFrame:
    """What the sender did with one frame (for experiments and the store)."""

    camera: str
    frame_id: int
    label: int
    capture_ts: float
    first_unit_s: float  # capture -> first unit ready
    units_sent: int
    units_total: int
    chunks_sent: int
    payload_bytes: int  # codec bytes in the chunks sent
    wire_bytes: int  # what the link carried, MQTT framing and end marker included
    overruns: int  # chunks whose emulated arrival was after the deadline (must be 0)
    link_rate: float  # trace rate at the frame's capture, bytes/s (0 without a link)
    model_id: str = ""  # the model the frame was coded with, as its chunks name it


@dataclass(slots=True)
class SendTally:
    """What of a frame has gone out so far."""

    chunks: int = 0
    units: int = 0  # whole units the chunks sent hold
    payload_bytes: int = 0
    wire_bytes: int = 0
    overruns: int = 0

    def sent(self, chunk: Chunk) -> None:
        self.chunks += 1
        self.units = chunk.units_complete
        self.payload_bytes += len(chunk.data)


@dataclass(frozen=True, slots=True)
class SenderSetup:
    camera: str
    incarnation: int
    frame_width: int
    frame_height: int
    block_bytes: int  # 0: one codec unit per chunk, else byte blocks of this size
    whole_frames: bool
