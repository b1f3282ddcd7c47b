"""What a camera keeps in its local store about its frames: the frames it sent (and which
of them are still open, awaiting their outcome), the frames it dropped itself, and its
offload decisions.

The open-frame marks outlive a run: a camera that crashed, or stopped before every outcome
came in, finds its earlier runs' open frames at the next start and asks about them again,
so no frame is left without a record.
"""

from __future__ import annotations

import logging

from edgebus.config import Settings
from edgebus.messages import EndOfFrame, FrameDropped, to_dict
from edgebus.nodes.counters import CameraCounters
from edgebus.nodes.frame_coding import FrameCoding
from edgebus.nodes.frame_job import SentFrame
from edgebus.nodes.frame_outcomes import OutcomeTracker
from edgebus.nodes.offload_gate import WeakAnswer
from edgebus.nodes.sources import CapturedFrame
from edgebus.storage.models import DROPPED, SENT
from edgebus.storage.records import EventRecord, FrameRecord, StoreRecord
from edgebus.storage.runtime import NodeStorage

# The camera's own logger: these lines are the camera's, wherever the code lives.
log = logging.getLogger("edgebus.camera")


class CameraRecords:
    """One camera run's rows and marks; a no-op on rows when the node keeps no store."""

    def __init__(
        self, settings: Settings, incarnation: int, storage: NodeStorage | None,
        counters: CameraCounters,
    ) -> None:  # fmt: skip
        self.camera = settings.node_id
        self.incarnation = incarnation
        self.width = settings.frame_width
        self.height = settings.frame_height
        # A frame's deadline in its rows: the next capture, one period after its own.
        self.period_s = settings.frame_period_ms / 1000.0
        self.storage = storage
        self.counters = counters

    def _add(self, record: StoreRecord) -> None:
        if self.storage is not None:
            self.storage.record(record)

    # -- open frames ----------------------------------------------------------------------

    def mark_open(self, marker: EndOfFrame) -> None:
        if self.storage is not None:
            self.storage.store.mark_open({
                "incarnation": marker.incarnation, "frame_id": marker.frame_id,
                "edge": marker.edge, "capture_ts": marker.capture_ts,
                "deadline_ts": marker.deadline_ts, "codec": marker.codec,
                "model_id": marker.model_id, "bytes_sent": marker.bytes_sent,
            })  # fmt: skip

    def mark_closed(self, incarnation: int, frame_id: int) -> None:
        if self.storage is not None:
            self.storage.store.mark_closed(incarnation, frame_id)

    async def ask_about_earlier_runs(self, outcomes: OutcomeTracker) -> None:
        """Frames an earlier run of this camera sent and never heard back about (it
        crashed, or stopped first): ask again, so none is left without a record."""
        if self.storage is None:
            return
        earlier = [f for f in await self.storage.store.open_frames()
                   if f["incarnation"] != self.incarnation]  # fmt: skip
        markers = [
            EndOfFrame(
                camera=self.camera,
                frame_id=f["frame_id"],
                chunks_sent=0,
                total_chunks=0,
                bytes_sent=f["bytes_sent"],
                codec=f["codec"],
                model_id=f["model_id"],
                capture_ts=f["capture_ts"],
                deadline_ts=f["deadline_ts"],
                width=self.width,
                height=self.height,
                edge=f["edge"],
                incarnation=f["incarnation"],
                attempt=1,
            )
            for f in earlier
        ]
        if markers:
            log.info("%s: asking again about %d frame(s) of earlier runs", self.camera,
                     len(markers))  # fmt: skip
            outcomes.ask_again(markers)

    # -- rows -----------------------------------------------------------------------------

    def dropped(self, dropped: FrameDropped) -> None:
        """A frame no edge will decide: the camera records its drop itself."""
        self.counters.drop_records += 1
        log.info("frame %d dropped: %s", dropped.frame_id, dropped.reason)
        self._add(
            FrameRecord(
                camera=self.camera,
                incarnation=dropped.incarnation,
                frame_id=dropped.frame_id,
                direction=DROPPED,
                edge=dropped.edge,
                reason=dropped.reason,
                capture_ts=dropped.capture_ts,
                deadline_ts=dropped.capture_ts + self.period_s,
                codec="",
                model_id="",
                deadline_met=False,
                ts=dropped.ts,
            )
        )
        self._add(EventRecord(kind="frame_dropped", detail=to_dict(dropped), ts=dropped.ts))

    def sent(self, sent: SentFrame, coding: FrameCoding, edge: str) -> None:
        """A frame that went out, whole or truncated at its deadline."""
        self._add(
            FrameRecord(
                camera=self.camera,
                incarnation=self.incarnation,
                frame_id=sent.frame_id,
                direction=SENT,
                edge=edge,
                capture_ts=sent.capture_ts,
                deadline_ts=sent.capture_ts + self.period_s,
                codec=coding.codec,
                model_id=coding.model_id,
                bytes_sent=sent.payload_bytes,
                features_received=0,
                deadline_met=sent.overruns == 0,
            )
        )

    def decision(self, frame: CapturedFrame, weak: WeakAnswer) -> None:
        """The offload gate's decision on a frame, with what the weak model saw."""
        decision = weak.decision
        self.counters.offload_decisions += 1
        if decision.offload:
            self.counters.frames_offloaded += 1
        else:
            self.counters.frames_weak_only += 1
        if decision.wanted and not decision.offload:
            self.counters.offloads_denied_no_token += 1
        self._add(
            EventRecord(
                kind="offload_decision",
                detail={
                    "camera": self.camera,
                    "frame_id": frame.frame_id,
                    "metric": weak.metric,
                    "gap": weak.gap,
                    "wanted": decision.wanted,
                    "offload": decision.offload,
                    "level_before": decision.level_before,
                    "level_after": decision.level_after,
                    "bucket_npm": list(weak.bucket),
                },
                ts=frame.capture_ts,
            )
        )
