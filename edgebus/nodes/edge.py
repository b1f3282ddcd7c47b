"""Edge node: assembles each frame's chunks, decodes what arrived, classifies, publishes.

A frame is decided at its end marker, on completion, or after a grace timeout when the
marker was lost (`assembler.py`). Decoding and the strong classifier run in one worker
thread, so the event loop keeps receiving other cameras' chunks meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgebus.broker.bus import Delivery
from edgebus.clock import Clock
from edgebus.codecs.classifier import Classifier
from edgebus.config import Settings
from edgebus.messages import EndOfFrame, FrameChunk, Result, SchedulingPolicy
from edgebus.nodes.assembler import FrameAssembler, PendingFrame
from edgebus.nodes.base import Node
from edgebus.nodes.decoding import Classified, FrameClassifier
from edgebus.nodes.model_follower import UnknownModel
from edgebus.nodes.qos_stream import CODEC as QOS_CODEC
from edgebus.nodes.qos_stream import QosClassifier
from edgebus.nodes.stream_policy import EdgeStreams

log = logging.getLogger("edgebus.edge")

# A result counts as on time when it is out within this long after its frame's deadline
# (the next capture): the time to decode and classify what arrived.
RESULT_SLACK_S = 0.1
MAX_BATCH = 32


class EdgeNode(Node):
    role = "edge"
    capabilities = (
        "codec:pnc", "codec:pjpeg", "codec:webp", "codec:raw", "codec:dense_ae", "model:strong",
    )  # fmt: skip

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        shared_group: str | None = None,
        grace_s: float | None = None,
        classifier: Classifier | None = None,
    ) -> None:
        super().__init__(settings, clock)
        period_s = settings.frame_period_ms / 1000.0
        self.assembler = FrameAssembler(grace_s if grace_s is not None else 2 * period_s)
        self.frames = FrameClassifier(classifier or Classifier("strong"), settings.frame_width)
        self.shared_group = shared_group
        self.latencies_ms: list[float] = []
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"{self.node_id}-classify")
        self._decided: asyncio.Queue[PendingFrame] = asyncio.Queue()
        # Frames of the QoS pool's models; it follows every model switch, so the edge
        # holds (and acknowledges) each model before the first frame that needs it.
        self.qos = QosClassifier(
            self.bus, self.topics, self.node_id, settings.coordinator_id, self.clock
        )

        # Under the coordinator's policy (step 7) the edge takes only its cameras' streams.
        self.streams = EdgeStreams(
            self.bus, self.topics, self._on_delivery, linger_s=4 * period_s + 1.0
        )
        self.capacity_fps = settings.edge_capacity_fps

    async def start_services(self) -> None:
        await self.qos.start()
        if not self.capacity_fps:
            self.capacity_fps = await asyncio.to_thread(self._measure_capacity)

    async def stop_services(self) -> None:
        await self.qos.stop()

    def _measure_capacity(self, batch: int = 8, repeats: int = 3) -> float:
        """Frames/s the strong classifier sustains on this machine now (median of repeats)."""
        size = self.frames.classifier.image_size
        images = np.zeros((batch, size, size, 3), dtype=np.uint8)
        self.frames.classifier.logits(images)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            self.frames.classifier.logits(images)
            times.append(time.perf_counter() - started)
        return batch / max(float(np.median(times)), 1e-6)

    def resources(self) -> dict[str, float]:
        resources = super().resources()
        resources["capacity_fps"] = self.capacity_fps
        resources["downlink_bps"] = self.settings.edge_downlink_bps
        return resources

    def models_loaded(self) -> list[str]:
        return ["strong", *sorted(self.qos.follower.cache)]

    async def main(self) -> None:
        expiry = asyncio.create_task(self._expire_loop())
        classifier = asyncio.create_task(self._classify_loop())
        try:
            if self.settings.scheduled:
                await self._follow_policy()
            else:
                pattern = (
                    self.topics.shared_frames(self.shared_group)
                    if self.shared_group
                    else self.topics.frames()
                )
                frames = await self.bus.subscribe(pattern, qos=1)
                self.ready.set()
                async for delivery in frames:
                    self._on_delivery(delivery)
        finally:
            expiry.cancel()
            classifier.cancel()
            await self.streams.close()
            self._worker.shutdown(wait=False, cancel_futures=True)

    async def _follow_policy(self) -> None:
        policies = await self.bus.subscribe(self.topics.sched_policy(self.node_id), qos=1)
        self.ready.set()
        async for delivery in policies:
            policy = delivery.message
            if isinstance(policy, SchedulingPolicy) and await self.streams.apply(policy):
                self.counters["policy_changes"] += 1

    def _on_delivery(self, delivery: Delivery) -> None:
        message = delivery.message
        now = self.clock.monotonic()
        if isinstance(message, FrameChunk | EndOfFrame) and message.edge not in (
            "", self.node_id
        ):  # fmt: skip
            # Addressed to another edge: a handover in progress, or a shared stream.
            self.counters["frames_for_other_edges"] += isinstance(message, EndOfFrame)
            return
        if isinstance(message, FrameChunk):
            finished = self.assembler.add_chunk(message, now)
        elif isinstance(message, EndOfFrame):
            finished = self.assembler.end(message, now)
        else:
            self.counters["unexpected_messages"] += 1
            return
        for frame in finished:
            self._decided.put_nowait(frame)

    async def _expire_loop(self) -> None:
        while True:
            await self.clock.sleep(min(0.1, self.assembler.grace_s / 4))
            for frame in self.assembler.expire(self.clock.monotonic()):
                self._decided.put_nowait(frame)

    async def _classify_loop(self) -> None:
        """Classify decided frames in batches: whatever piled up while the last batch ran
        goes through the classifier together, so a burst of end markers (cameras that
        capture in step) costs one model call, not one each."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._decided.get()]
            while not self._decided.empty() and len(batch) < MAX_BATCH:
                batch.append(self._decided.get_nowait())
            images = [f for f in batch if f.codec != QOS_CODEC]
            for frame in batch:
                if frame.codec == QOS_CODEC:
                    await self._classify_qos(frame)
            if not images:
                continue
            verdicts = await loop.run_in_executor(self._worker, self.frames.classify_batch, images)
            for frame, verdict in zip(images, verdicts, strict=True):
                if isinstance(verdict, str):
                    self.counters["undecodable_frames"] += 1
                    log.warning("frame %s/%d not classified: %s", frame.camera, frame.frame_id,
                                verdict)  # fmt: skip
                    continue
                await self._publish(frame, verdict)

    async def _classify_qos(self, frame: PendingFrame) -> None:
        """A pool-model frame: classified only by the model it names, else rejected."""
        try:
            model = await self.qos.model(frame.model_id)
        except UnknownModel as exc:
            self.counters["frames_rejected_unknown_model"] += 1
            log.error("frame %s/%d rejected: %s", frame.camera, frame.frame_id, exc)
            self.record("events", kind="frame_rejected", ts=self.clock.time(),
                        detail={"camera": frame.camera, "frame_id": frame.frame_id,
                                "model_id": frame.model_id, "reason": str(exc)})  # fmt: skip
            return
        data = b"".join(frame.ordered_chunks())
        loop = asyncio.get_running_loop()
        verdict = await loop.run_in_executor(self._worker, QosClassifier.classify, model, data)
        if isinstance(verdict, str):
            self.counters["undecodable_frames"] += 1
            log.warning("frame %s/%d not classified: %s", frame.camera, frame.frame_id, verdict)
            return
        await self._publish(frame, Classified(verdict.top_k, verdict.scores, 1))

    async def _publish(self, frame: PendingFrame, verdict: Classified) -> None:
        now = self.clock.time()
        latency_ms = (now - frame.capture_ts) * 1000.0 if frame.capture_ts else 0.0
        end = frame.end
        deadline_met = end is not None and now <= end.deadline_ts + RESULT_SLACK_S
        result = Result(
            node=self.node_id,
            camera=frame.camera,
            frame_id=frame.frame_id,
            top_k=verdict.top_k,
            scores=verdict.scores,
            bytes_received=frame.bytes_received,
            chunks_received=len(frame.ordered_chunks()),
            latency_ms=latency_ms,
            offloaded=True,
            deadline_met=deadline_met,
            ts=now,
            units_received=verdict.units_used,
            codec=frame.codec,
            label=end.label if end is not None else -1,
            model_id=frame.model_id,
        )
        await self.bus.publish(self.topics.result(self.node_id), result, qos=1)
        self.record(
            "frames",
            camera=frame.camera,
            frame_id=frame.frame_id,
            direction="received",
            capture_ts=frame.capture_ts,
            deadline_ts=end.deadline_ts if end else 0.0,
            codec=frame.codec,
            model_id=frame.model_id,
            bytes_sent=end.bytes_sent if end else 0,
            bytes_received=frame.bytes_received,
            features_received=verdict.units_used,
            deadline_met=deadline_met,
            ts=now,
        )
        self.record_result(result)
        self.counters["frames_done"] += 1
        self.counters["bytes_received"] += frame.bytes_received
        self.counters["units_received"] += verdict.units_used
        self.counters["deadline_hits" if deadline_met else "deadline_misses"] += 1
        self.latencies_ms.append(latency_ms)
        self.counters["latency_ms_sum"] += latency_ms

    def stats(self) -> dict[str, float]:
        stats = super().stats()
        stats["late_chunks"] = float(self.assembler.stats.late)
        stats["duplicate_chunks"] = float(self.assembler.stats.duplicates)
        stats["expired_frames"] = float(self.assembler.stats.expired)
        return stats
