"""How an edge ends each frame it took: one record, committed, then told.

Every verdict becomes exactly one row in the edge's store (a result, or a dropped frame
with its reason), committed before anything goes on the bus: a crash after the result
went out can never leave the result without its row. Then the ledger remembers the
answer (a camera that asks again gets the same one), the result or the drop is
published, and the camera is told the frame's outcome on `outcome/<camera>`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edgebus.actor.lifecycle import Node
from edgebus.broker.bus import BusClosed, OutgoingQueueFull, PublishRefused
from edgebus.broker.tracing import traced
from edgebus.messages import (
    OUTCOME_DROPPED,
    OUTCOME_RESULT,
    FrameDropped,
    FrameOutcome,
    Result,
    answered_in_time,
)
from edgebus.nodes.assembler import PendingFrame
from edgebus.nodes.counters import EdgeCounters
from edgebus.nodes.decoding import Classified
from edgebus.nodes.frame_ledger import FrameKey, FrameLedger
from edgebus.storage.errors import StorageError
from edgebus.storage.models import DROPPED, RECEIVED
from edgebus.storage.records import FrameRecord

log = logging.getLogger("edgebus.edge")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the edge decided about one frame: classified, or dropped with the reason."""

    frame: PendingFrame
    classified: Classified | None
    reason: str = ""

    @property
    def outcome(self) -> str:
        return OUTCOME_RESULT if self.classified is not None else OUTCOME_DROPPED


def no_data_reason(frame: PendingFrame) -> str:
    """Why a frame with no chunk is dropped, as its end marker tells it. A camera that had
    coded no unit, or fitted none on its link, by the deadline sends its marker with no
    chunk: nothing was lost on the way, so the reason must not say "arrived". A question
    about a frame (attempt >= 1) says what the first try sent, if the camera knows."""
    end = frame.end
    if end is not None and end.chunks_sent == 0 and end.attempt == 0:
        return "no chunk sent: the camera had none coded, or none fitted its link, by the deadline"
    sent = end.chunks_sent if end is not None else "?"
    return f"no chunk arrived ({sent} sent)"


class EdgeOutcomes:
    def __init__(self, node: Node, ledger: FrameLedger, counters: EdgeCounters) -> None:
        self.node = node
        self.ledger = ledger
        self.counters = counters
        self.latencies_ms: list[float] = []
        self.concluded: set[FrameKey] = set()  # of the batch being decided

    async def conclude(self, verdicts: list[Verdict]) -> None:
        node = self.node
        now = node.clock.time()
        results: list[Result] = []
        for verdict in verdicts:
            if verdict.classified is not None:
                results.append(self._record_result(verdict.frame, verdict.classified, now))
            else:
                self._record_drop(verdict.frame, verdict.reason, now)
        if node.storage is not None:
            try:
                await node.storage.store.flush()
            except StorageError as exc:
                # The rows wait in memory and are written when the disk allows.
                log.error("%s: outcomes not yet stored: %s", node.node_id, exc)
        for verdict in verdicts:
            self.ledger.decide(verdict.frame.key, verdict.outcome, verdict.reason, now)
            self.concluded.add(verdict.frame.key)
        for result in results:
            await self.publish(node.topics.result(node.node_id), result)
        for verdict in verdicts:
            frame = verdict.frame
            if verdict.classified is None:
                dropped = FrameDropped(
                    frame.camera, frame.frame_id, node.node_id, verdict.reason,
                    frame.capture_ts, ts=now, incarnation=frame.incarnation,
                )  # fmt: skip
                await self.publish(node.topics.dropped(frame.camera), dropped)
            await self.tell_camera(frame.key, verdict.outcome, verdict.reason)

    def _record_result(self, frame: PendingFrame, verdict: Classified, now: float) -> Result:
        node = self.node
        latency_ms = (now - frame.capture_ts) * 1000.0 if frame.capture_ts else 0.0
        end = frame.end
        deadline_met = end is not None and answered_in_time(now, end.deadline_ts)
        result = Result(
            node=node.node_id,
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
            incarnation=frame.incarnation,
            names=verdict.names,
        )
        node.record(
            self._frame_record(
                frame, RECEIVED, now, features_received=verdict.units_used,
                deadline_met=deadline_met,
            )
        )  # fmt: skip
        node.record_result(result)
        self.counters.frames_done += 1
        self.counters.bytes_received += frame.bytes_received
        self.counters.units_received += verdict.units_used
        self.counters.deadline(deadline_met)
        self.latencies_ms.append(latency_ms)
        return result

    def _record_drop(self, frame: PendingFrame, reason: str, now: float) -> None:
        node = self.node
        self.counters.drop_records += 1
        log.info("frame %s/%d dropped: %s", frame.camera, frame.frame_id, reason)
        node.record(self._frame_record(frame, DROPPED, now, reason=reason, deadline_met=False))

    def _frame_record(
        self, frame: PendingFrame, direction: str, now: float, *, deadline_met: bool,
        features_received: int = 0, reason: str = "",
    ) -> FrameRecord:  # fmt: skip
        """The frame's row as this edge decided it: what its end marker said was sent,
        what arrived here."""
        end = frame.end
        return FrameRecord(
            camera=frame.camera,
            incarnation=frame.incarnation,
            frame_id=frame.frame_id,
            direction=direction,
            edge=self.node.node_id,
            reason=reason,
            capture_ts=frame.capture_ts,
            deadline_ts=end.deadline_ts if end else 0.0,
            codec=frame.codec,
            model_id=frame.model_id,
            bytes_sent=end.bytes_sent if end else 0,
            bytes_received=frame.bytes_received,
            features_received=features_received,
            deadline_met=deadline_met,
            ts=now,
        )

    async def tell_camera(self, key: FrameKey, outcome: str, reason: str) -> None:
        node = self.node
        camera, incarnation, frame_id = key
        told = FrameOutcome(camera, incarnation, frame_id, node.node_id, outcome, reason[:256],
                            ts=node.clock.time())  # fmt: skip
        await self.publish(node.topics.outcome(camera), told)

    async def publish(self, topic: str, message: Result | FrameDropped | FrameOutcome) -> None:
        trace = traced(message.camera, message.incarnation, message.frame_id)
        try:
            await self.node.bus.publish(topic, message, qos=1, properties=trace)
        except (OutgoingQueueFull, BusClosed, PublishRefused) as exc:
            # The record is stored; a camera that misses this asks again.
            self.counters.outcomes_unpublished += 1
            log.debug("not published to %s: %s", topic, exc)
