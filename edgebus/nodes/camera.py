"""Camera node: captures a frame every period and sends it to the edge in chunks."""

from __future__ import annotations

import asyncio
import logging

from edgebus.broker.bus import OutgoingQueueFull
from edgebus.clock import Clock
from edgebus.config import Settings
from edgebus.messages import EndOfFrame, FrameChunk
from edgebus.nodes.base import Node
from edgebus.nodes.sources import SyntheticSource

log = logging.getLogger("edgebus.camera")

RAW_CODEC = "raw"
RAW_MODEL = "raw-uint8"


def split_chunks(data: bytes, chunk_bytes: int) -> list[bytes]:
    return [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]


class CameraNode(Node):
    role = "camera"
    capabilities = ("source:synthetic", "codec:raw")

    def __init__(
        self, settings: Settings, clock: Clock | None = None, max_frames: int | None = None
    ) -> None:
        super().__init__(settings, clock)
        self.source = SyntheticSource(
            settings.frame_width, settings.frame_height, seed=hash(settings.node_id) & 0xFFFF
        )
        self.max_frames = max_frames

    async def main(self) -> None:
        period_s = self.settings.frame_period_ms / 1000.0
        self.ready.set()
        next_capture = self.clock.monotonic()
        frame_id = 0
        while self.max_frames is None or frame_id < self.max_frames:
            capture_ts = self.clock.time()
            frame = self.source.frame(frame_id)
            await self.send_frame(
                frame_id,
                frame.image.tobytes(),
                capture_ts,
                capture_ts + period_s,
                frame.image.shape[1],
                frame.image.shape[0],
            )
            frame_id += 1
            next_capture += period_s
            delay = next_capture - self.clock.monotonic()
            if delay < 0:
                # Running late: skip the missed capture slots rather than bursting.
                self.counters["frames_skipped"] += int(-delay // period_s)
                next_capture = self.clock.monotonic() + period_s - (-delay % period_s)
                delay = next_capture - self.clock.monotonic()
            await self.clock.sleep(delay)
        await self.stopping.wait()

    async def send_frame(
        self,
        frame_id: int,
        data: bytes,
        capture_ts: float,
        deadline_ts: float,
        width: int,
        height: int,
    ) -> None:
        chunks = split_chunks(data, self.settings.chunk_bytes)
        sent = 0
        sent_bytes = 0
        try:
            for index, chunk in enumerate(chunks):
                if self.clock.time() >= deadline_ts:
                    break  # the next frame is due: what is not out by now is useless
                await self.bus.publish(
                    self.topics.frame_chunk(self.node_id, frame_id, index),
                    FrameChunk(
                        self.node_id, frame_id, index, RAW_CODEC, RAW_MODEL, capture_ts, chunk
                    ),
                    qos=0,
                )
                sent += 1
                sent_bytes += len(chunk)
                if index % 16 == 15:
                    await asyncio.sleep(0)
            await self.bus.publish(
                self.topics.frame_end(self.node_id, frame_id),
                EndOfFrame(
                    self.node_id,
                    frame_id,
                    sent,
                    len(chunks),
                    sent_bytes,
                    RAW_CODEC,
                    RAW_MODEL,
                    capture_ts,
                    deadline_ts,
                    width,
                    height,
                ),
                qos=1,
            )
        except OutgoingQueueFull as exc:
            self.counters["frames_dropped"] += 1
            log.debug("frame %d dropped: %s", frame_id, exc)
            return
        self.counters["frames_sent"] += 1
        self.counters["bytes_sent"] += sent_bytes
        self.record(
            "frames",
            camera=self.node_id,
            frame_id=frame_id,
            direction="sent",
            capture_ts=capture_ts,
            deadline_ts=deadline_ts,
            codec=RAW_CODEC,
            model_id=RAW_MODEL,
            bytes_sent=sent_bytes,
            features_received=0,
            deadline_met=sent == len(chunks),
        )
        if sent < len(chunks):
            self.counters["frames_truncated"] += 1
