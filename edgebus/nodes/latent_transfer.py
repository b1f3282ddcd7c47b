"""A minimal sender/receiver pair that streams model-encoded frames over the bus with a
`ModelFollower` each: the live model-switching experiment and its tests run on these,
and a real camera/edge embeds the follower the same way (one call per frame).

Every frame is one `FrameChunk` whose `model_id` names the model that encoded it. The
receiver checks each decode independently of that label when it knows the frame's input
(`truth`): re-encoding the input with the model it used must give the received bytes, so
a frame decoded with any other model is counted as `wrong_model`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np

from edgebus.broker.bus import Bus, Subscription
from edgebus.clock import Clock, RealClock
from edgebus.codecs.dense_ae import raw_encode
from edgebus.messages import FrameChunk
from edgebus.nodes.counters import LatentReceiverCounters, LatentSenderCounters
from edgebus.nodes.model_follower import ModelFollower, UnknownModel
from edgebus.topics import Topics

log = logging.getLogger("edgebus.latent_transfer")

CODEC = "dense_ae"


class FrameModel(Protocol):
    def encode(self, x: np.ndarray) -> bytes: ...


RawEncode = Callable[[np.ndarray], bytes]


def raw_uint8(x: np.ndarray) -> bytes:
    """CO bytes of an image in [0, 1]: one byte per pixel."""
    return raw_encode(x, 1)


def raw_float16(x: np.ndarray) -> bytes:
    """CO bytes of a sensor window: little-endian float16 per value."""
    return raw_encode(x, 2)


class LatentSender:
    def __init__(
        self, bus: Bus, topics: Topics, camera_id: str, follower: ModelFollower[FrameModel],
        frames: Callable[[int], np.ndarray], raw: RawEncode = raw_uint8,
        clock: Clock | None = None,
    ) -> None:  # fmt: skip
        self.bus = bus
        self.topics = topics
        self.camera_id = camera_id
        self.follower = follower
        self.frames = frames
        self.raw = raw
        self.clock = clock or RealClock()
        self.counters = LatentSenderCounters()
        self.sent_with: dict[int, str] = {}

    async def send(self, frame_id: int) -> str | None:
        """Encode and publish one frame with the model current at this frame boundary."""
        now = self.clock.time()
        loaded = self.follower.at_frame_boundary(now)
        if loaded is None:
            self.counters.frames_skipped_no_model += 1
            return None
        x = self.frames(frame_id)
        data = self.raw(x) if loaded.model is None else loaded.model.encode(x)
        chunk = FrameChunk(self.camera_id, frame_id, 0, CODEC, loaded.model_id, now, data)
        await self.bus.publish(self.topics.frame_chunk(self.camera_id, frame_id, 0), chunk, qos=1)
        self.sent_with[frame_id] = loaded.model_id
        self.counters.frames_sent += 1
        self.counters.bytes_sent += len(data)
        return loaded.model_id

    async def run(self, count: int, period_s: float) -> None:
        for frame_id in range(count):
            await self.send(frame_id)
            await self.clock.sleep(period_s)


class LatentReceiver:
    def __init__(
        self, node_id: str, follower: ModelFollower[FrameModel],
        truth: Callable[[int], np.ndarray] | None = None, raw: RawEncode = raw_uint8,
    ) -> None:  # fmt: skip
        self.node_id = node_id
        self.follower = follower
        self.truth = truth
        self.raw = raw
        self.counters = LatentReceiverCounters()
        self.decoded_with: dict[int, str] = {}
        self.done = asyncio.Event()

    async def run(self, frames: Subscription, expect: int | None = None) -> None:
        async for delivery in frames:
            chunk = delivery.message
            if isinstance(chunk, FrameChunk):
                await self.receive(chunk)
                if expect is not None and self._handled() >= expect:
                    self.done.set()

    def _handled(self) -> int:
        return self.counters.frames_decoded + self.counters.frames_rejected

    async def receive(self, chunk: FrameChunk) -> None:
        try:
            loaded = await self.follower.model_for(chunk.model_id)
        except UnknownModel as exc:
            self.counters.frames_rejected += 1
            log.error("%s: frame %d of %s rejected: %s", self.node_id, chunk.frame_id,
                      chunk.camera, exc)  # fmt: skip
            return
        self.counters.frames_decoded += 1
        self.decoded_with[chunk.frame_id] = loaded.model_id
        if self.truth is not None:
            x = self.truth(chunk.frame_id)
            expected = self.raw(x) if loaded.model is None else loaded.model.encode(x)
            if expected != chunk.data:
                self.counters.wrong_model += 1
