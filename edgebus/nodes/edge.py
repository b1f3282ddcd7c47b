"""Edge node: assembles each frame's chunks, classifies, and publishes the result."""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from edgebus.clock import Clock
from edgebus.config import Settings
from edgebus.messages import EndOfFrame, FrameChunk, Result
from edgebus.nodes.assembler import FrameAssembler, PendingFrame
from edgebus.nodes.base import Node
from edgebus.nodes.camera import RAW_CODEC
from edgebus.nodes.sources import PaletteClassifier

log = logging.getLogger("edgebus.edge")


class EdgeNode(Node):
    role = "edge"
    capabilities = ("codec:raw", "model:palette")

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        shared_group: str | None = None,
        grace_s: float | None = None,
    ) -> None:
        super().__init__(settings, clock)
        period_s = settings.frame_period_ms / 1000.0
        self.assembler = FrameAssembler(grace_s if grace_s is not None else 2 * period_s)
        self.classifier = PaletteClassifier()
        self.shared_group = shared_group
        self.latencies_ms: list[float] = []

    async def main(self) -> None:
        pattern = (
            self.topics.shared_frames(self.shared_group)
            if self.shared_group
            else self.topics.frames()
        )
        frames = await self.bus.subscribe(pattern, qos=1)
        self.ready.set()
        expiry = asyncio.create_task(self._expire_loop())
        try:
            async for delivery in frames:
                message = delivery.message
                now = self.clock.monotonic()
                if isinstance(message, FrameChunk):
                    finished = self.assembler.add_chunk(message, now)
                elif isinstance(message, EndOfFrame):
                    finished = self.assembler.end(message, now)
                else:
                    self.counters["unexpected_messages"] += 1
                    continue
                for frame in finished:
                    await self._classify(frame)
        finally:
            expiry.cancel()

    async def _expire_loop(self) -> None:
        while True:
            await self.clock.sleep(min(0.1, self.assembler.grace_s / 4))
            for frame in self.assembler.expire(self.clock.monotonic()):
                await self._classify(frame)

    def _image(self, frame: PendingFrame) -> np.ndarray:
        end = frame.end
        width = end.width if end else self.settings.frame_width
        height = end.height if end else self.settings.frame_height
        data = b"".join(frame.ordered_chunks())
        needed = width * height * 3
        # Missing bytes are zero-filled: the classifier decides from what arrived.
        buffer = np.zeros(needed, dtype=np.uint8)
        usable = min(len(data), needed)
        buffer[:usable] = np.frombuffer(data[:usable], dtype=np.uint8)
        return buffer.reshape(height, width, 3)

    async def _classify(self, frame: PendingFrame) -> None:
        if frame.codec not in (RAW_CODEC, ""):
            self.counters["unsupported_codec"] += 1
            log.warning(
                "frame %s/%d uses codec %r, which this edge cannot decode",
                frame.camera,
                frame.frame_id,
                frame.codec,
            )
            return
        top_k, scores = self.classifier.top_k(self._image(frame))
        now = self.clock.time()
        latency_ms = (now - frame.capture_ts) * 1000.0 if frame.capture_ts else 0.0
        deadline_met = frame.end is not None and now <= frame.end.deadline_ts
        result = Result(
            node=self.node_id,
            camera=frame.camera,
            frame_id=frame.frame_id,
            top_k=top_k,
            scores=scores,
            bytes_received=frame.bytes_received,
            chunks_received=len(frame.chunks),
            latency_ms=latency_ms,
            offloaded=True,
            deadline_met=deadline_met,
            ts=now,
        )
        await self.bus.publish(self.topics.result(self.node_id), result, qos=1)
        self.record(
            "frames",
            camera=frame.camera,
            frame_id=frame.frame_id,
            direction="received",
            capture_ts=frame.capture_ts,
            deadline_ts=frame.end.deadline_ts if frame.end else 0.0,
            codec=frame.codec,
            model_id=frame.model_id,
            bytes_sent=frame.end.bytes_sent if frame.end else 0,
            bytes_received=frame.bytes_received,
            features_received=len(frame.chunks),
            deadline_met=deadline_met,
            ts=now,
        )
        self.record(
            "results",
            camera=frame.camera,
            frame_id=frame.frame_id,
            top_k=top_k,
            scores=scores,
            latency_ms=latency_ms,
            offloaded=True,
            deadline_met=deadline_met,
            ts=now,
        )
        self.counters["frames_done"] += 1
        self.counters["bytes_received"] += frame.bytes_received
        self.counters["deadline_hits" if deadline_met else "deadline_misses"] += 1
        self.latencies_ms.append(latency_ms)
        self.counters["latency_ms_sum"] += latency_ms

    def stats(self) -> dict[str, float]:
        stats = super().stats()
        stats["late_chunks"] = float(self.assembler.stats.late)
        stats["duplicate_chunks"] = float(self.assembler.stats.duplicates)
        stats["expired_frames"] = float(self.assembler.stats.expired)
        return stats
