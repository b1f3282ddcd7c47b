"""Edge node: assembles each frame's chunks, decodes what arrived, classifies, publishes.

A frame is decided at its end marker, on completion, or after a grace timeout when the
marker was lost (`assembler.py`). Decoding and the strong classifier run in one worker
thread, so the event loop keeps receiving other cameras' chunks meanwhile.

Every frame the edge takes ends in exactly one record in its store: a result, or a
dropped row with the reason (no chunk sent or arrived, undecodable, unknown model, overload),
committed before the result goes out (`edge_outcomes.py`); a camera that asks again (its
end marker with attempt > 0) gets the same answer from the ledger (`frame_ledger.py`),
never a second decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from edgebus.actor.lifecycle import Node
from edgebus.aio import cancel_and_wait
from edgebus.broker.bus import Delivery
from edgebus.clock import Clock
from edgebus.codecs.classifier import Classifier
from edgebus.codecs.errors import ModelFileError
from edgebus.config import ConfigError, Settings
from edgebus.messages import (
    OUTCOME_DROPPED,
    OUTCOME_REFUSED,
    OUTCOME_RESULT,
    EndOfFrame,
    FrameChunk,
    SchedulingPolicy,
)
from edgebus.nodes.assembler import FrameAssembler, PendingFrame
from edgebus.nodes.counters import EdgeCounters
from edgebus.nodes.decoding import Classified, FrameClassifier
from edgebus.nodes.edge_outcomes import EdgeOutcomes, Verdict, no_data_reason
from edgebus.nodes.frame_ledger import Decision, FrameLedger
from edgebus.nodes.model_follower import UnknownModel
from edgebus.nodes.qos_models import CODEC as QOS_CODEC
from edgebus.nodes.qos_models import QosClassifier
from edgebus.nodes.stream_policy import EdgeStreams
from edgebus.storage.models import DROPPED
from edgebus.storage.records import EventRecord
from edgebus.topics import TopicError, parse

log = logging.getLogger("edgebus.edge")

MAX_BATCH = 32


def _sent_by(topic: str, camera: str) -> bool:
    try:
        return parse(topic).node == camera
    except TopicError:
        return False


class EdgeNode(Node):
    role = "edge"
    counters: EdgeCounters
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
        self.counters = EdgeCounters()
        period_s = settings.frame_period_ms / 1000.0
        self.ledger = FrameLedger()
        self.assembler = FrameAssembler(
            grace_s if grace_s is not None else 2 * period_s, self.ledger
        )
        try:
            chosen = classifier or Classifier(settings.classifier)
        except ModelFileError as exc:
            raise ConfigError(f"edge {settings.node_id}: {exc}") from None
        self.frames = FrameClassifier(chosen, settings.frame_width)
        self.shared_group = shared_group
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"{self.node_id}-classify")
        # Frames finished by the assembler, with when (monotonic): one that waits longer
        # than max_queue_s for the classifier is dropped as overload, so latency stays
        # bounded when more frames arrive than the classifier can take.
        self._decided: asyncio.Queue[tuple[PendingFrame, float]] = asyncio.Queue()
        self.max_queue_s = max(1.0, 2 * period_s)
        self._batch: list[tuple[PendingFrame, float]] = []  # being decided now
        self._assembling = asyncio.Event()  # wakes the expiry loop when frames arrive
        self.outcomes = EdgeOutcomes(self, self.ledger, self.counters)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        # Frames of the QoS pool's models; it follows every model switch, so the edge
        # holds (and acknowledges) each model before the first frame that needs it.
        self.qos = QosClassifier(
            self.bus, self.topics, self.node_id, settings.coordinator_id, self.clock
        )

        # Under the coordinator's policy the edge takes only its cameras' streams.
        self.streams = EdgeStreams(
            self.bus,
            self.topics,
            self._on_delivery,
            linger_s=4 * period_s + 1.0,
            watch=self.watch,
        )
        self.capacity_fps = settings.edge_capacity_fps

    async def start_services(self) -> None:
        await self.qos.start()
        if not self.capacity_fps:
            self.capacity_fps = await asyncio.to_thread(self._measure_capacity)

    def service_tasks(self) -> list[asyncio.Task[None]]:
        return list(self.qos.follower.tasks)

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
        # Answers to repeated questions must survive a restart: read them back first.
        await self._load_ledger()
        expiry = self.supervise(self._expire_loop(), "expiry")
        classifier = self.supervise(self._classify_loop(), "classify")
        self._tasks = [expiry, classifier]
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
            await cancel_and_wait(self._tasks, suppress=(Exception,))
            await self.streams.close()

    async def on_stop(self) -> None:
        """Decide what is assembled or queued before going offline: those frames' cameras
        wait for an outcome, and nobody else holds their chunks."""
        # The batch being decided when main() was cancelled, the queue, then the assembler.
        leftover = [item for item in self._batch if item[0].key not in self.outcomes.concluded]
        leftover += self._queued()
        leftover += [(frame, self.clock.monotonic()) for frame in self.assembler.finish_all()]
        if leftover:
            try:
                async with asyncio.timeout(5.0):
                    await self._decide(leftover)
            except TimeoutError:
                log.warning("%s: %d frame(s) left undecided at stop", self.node_id, len(leftover))
                for frame, _ in leftover:
                    self.ledger.abandon(frame.key)
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _queued(self) -> list[tuple[PendingFrame, float]]:
        items = []
        while not self._decided.empty():
            items.append(self._decided.get_nowait())
        return items

    async def _load_ledger(self) -> None:
        if self.storage is None:
            return
        since = self.clock.time() - self.ledger.horizon_s
        results, frames = await self.storage.store.rows_since(("results", "frames"), since)
        decisions = [
            ((r["camera"], r["incarnation"], r["frame_id"]), Decision(OUTCOME_RESULT, "", r["ts"]))
            for r in results
        ] + [
            ((f["camera"], f["incarnation"], f["frame_id"]),
             Decision(OUTCOME_DROPPED, f["reason"], f["ts"]))
            for f in frames
            if f["direction"] == DROPPED
        ]  # fmt: skip
        loaded = self.ledger.load(sorted(decisions, key=lambda item: item[1].decided_ts))
        if loaded:
            log.info("%s: %d recent frame outcome(s) read back from the store", self.node_id,
                     loaded)  # fmt: skip

    async def _follow_policy(self) -> None:
        policies = await self.bus.subscribe(self.topics.sched_policy(self.node_id), qos=1)
        self.ready.set()
        async for delivery in policies:
            policy = delivery.message
            if isinstance(policy, SchedulingPolicy) and await self.streams.apply(policy):
                self.counters.policy_changes += 1

    # -- receiving ------------------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        message = delivery.message
        if not isinstance(message, FrameChunk | EndOfFrame):
            self.counters.unexpected_messages += 1
            return
        if message.edge not in ("", self.node_id):
            # Addressed to another edge: a handover in progress, or a shared stream.
            self.counters.frames_for_other_edges += isinstance(message, EndOfFrame)
            return
        if not _sent_by(delivery.topic, message.camera):
            # The topic is what a broker's ACL checks; the payload's camera must match it.
            self._refused("forged", message, f"names camera {message.camera!r} on topic "
                          f"{delivery.topic}", answer=False)  # fmt: skip
            return
        key = (message.camera, message.incarnation, message.frame_id)
        decision = self.ledger.lookup(key)
        if decision is not None or self.ledger.is_deciding(key):
            self.assembler.stats.late += 1
            if isinstance(message, EndOfFrame) and decision is not None:
                self.counters.outcomes_repeated += 1
                self._spawn(self.outcomes.tell_camera(key, decision.outcome, decision.reason))
            return
        # A frame this edge has accepted parts of is its to decide: refusing its later
        # parts (late, behind a slow broker) would let the camera record it too.
        accepted = key in self.assembler
        reason = None if accepted else self.ledger.screen(key, message.capture_ts,
                                                          self.clock.time())  # fmt: skip
        if reason is not None:
            self._refused("refused", message, reason, answer=isinstance(message, EndOfFrame))
            return
        self.ledger.seen(key)
        self._assembling.set()
        now = self.clock.monotonic()
        if isinstance(message, FrameChunk):
            finished = self.assembler.add_chunk(message, now)
        else:
            finished = self.assembler.end(message, now)
        for frame in finished:
            self._decided.put_nowait((frame, now))

    def _refused(
        self, kind: Literal["forged", "refused"], message: FrameChunk | EndOfFrame, reason: str,
        answer: bool,
    ) -> None:  # fmt: skip
        if kind == "forged":
            self.counters.frames_forged += 1
            count = self.counters.frames_forged
        else:
            self.counters.frames_refused += 1
            count = self.counters.frames_refused
        what = f"{message.camera}/{message.incarnation}/{message.frame_id}"
        if count <= 10 or count % 1000 == 0:
            log.warning("%s: %s frame message %s (%d so far): %s", self.node_id, kind, what,
                        count, reason)  # fmt: skip
        if isinstance(message, EndOfFrame):
            detail = {"camera": message.camera[:64], "incarnation": message.incarnation,
                      "frame_id": message.frame_id, "reason": reason[:256]}  # fmt: skip
            self.record(EventRecord(kind=f"frame_{kind}", detail=detail, ts=self.clock.time()))
        if answer:
            key = (message.camera, message.incarnation, message.frame_id)
            self._spawn(self.outcomes.tell_camera(key, OUTCOME_REFUSED, reason))

    async def _expire_loop(self) -> None:
        """Sleeps until the oldest assembling frame runs out of grace, or while none is
        assembling until one starts; no polling."""
        while True:
            self._assembling.clear()
            due = self.assembler.next_expiry()
            if due is None:
                await self._assembling.wait()
                continue
            # At least a few ms: a frame that somehow stayed would otherwise spin the loop.
            await self.clock.sleep(max(due - self.clock.monotonic(), 0.005))
            now = self.clock.monotonic()
            for frame in self.assembler.expire(now):
                self._decided.put_nowait((frame, now))

    # -- deciding -------------------------------------------------------------------------

    async def _classify_loop(self) -> None:
        """Decide frames in batches: whatever piled up while the last batch ran goes
        through the classifier together, so a burst of end markers (cameras that capture
        in step) costs one model call, not one each."""
        while True:
            self._batch = batch = [await self._decided.get()]
            self.outcomes.concluded.clear()
            while not self._decided.empty() and len(batch) < MAX_BATCH:
                batch.append(self._decided.get_nowait())
            try:
                await self._decide(batch)
            except Exception as exc:
                # A bug must not stop classification while the edge looks alive: the batch
                # ends as dropped records with the reason, and the loop goes on.
                self.counters.decide_errors += 1
                log.exception("%s: deciding %d frame(s) failed", self.node_id, len(batch))
                undecided = [f for f, _ in batch if f.key not in self.outcomes.concluded]
                await self.outcomes.conclude(
                    [Verdict(f, None, f"edge error: {exc}"[:200]) for f in undecided]
                )
            self._batch = []

    async def _decide(self, batch: list[tuple[PendingFrame, float]]) -> None:
        now = self.clock.monotonic()
        verdicts: list[Verdict] = []
        images: list[PendingFrame] = []
        for frame, decided_at in batch:
            if not frame.chunks:
                verdicts.append(Verdict(frame, None, no_data_reason(frame)))
            elif now - decided_at > self.max_queue_s:
                self.counters.frames_overload += 1
                waited = now - decided_at
                verdicts.append(
                    Verdict(frame, None, f"overload: waited {waited:.2f} s for the classifier")
                )
            elif frame.codec == QOS_CODEC:
                verdicts.append(await self._classify_qos(frame))
            else:
                images.append(frame)
        if images:
            loop = asyncio.get_running_loop()
            outs = await loop.run_in_executor(self._worker, self.frames.classify_batch, images)
            for frame, verdict in zip(images, outs, strict=True):
                if isinstance(verdict, str):
                    self.counters.undecodable_frames += 1
                    verdicts.append(Verdict(frame, None, f"undecodable: {verdict}"[:200]))
                else:
                    verdicts.append(Verdict(frame, verdict))
        await self.outcomes.conclude(verdicts)

    async def _classify_qos(self, frame: PendingFrame) -> Verdict:
        """A pool-model frame: classified only by the model it names, else dropped."""
        try:
            model = await self.qos.model(frame.model_id)
        except UnknownModel as exc:
            self.counters.frames_rejected_unknown_model += 1
            log.error("frame %s/%d rejected: %s", frame.camera, frame.frame_id, exc)
            return Verdict(frame, None, f"unknown model: {exc}"[:200])
        data = b"".join(frame.ordered_chunks())
        loop = asyncio.get_running_loop()
        verdict = await loop.run_in_executor(self._worker, QosClassifier.classify, model, data)
        if isinstance(verdict, str):
            self.counters.undecodable_frames += 1
            return Verdict(frame, None, f"undecodable: {verdict}"[:200])
        return Verdict(frame, Classified(verdict.top_k, verdict.scores, 1))

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def stats(self) -> dict[str, float]:
        stats = super().stats()
        stats["late_chunks"] = float(self.assembler.stats.late)
        stats["duplicate_chunks"] = float(self.assembler.stats.duplicates)
        stats["expired_frames"] = float(self.assembler.stats.expired)
        return stats
