"""The rows a node records, typed: one frozen dataclass per synced table.

A node builds a record by keyword and hands it to `Node.record`; a misspelt or missing
column is then a type error where the row is built, not a ValueError from the store at
run time. Each record's fields are its table's columns less the keys the store adds
(node, store, seq); tests/test_storage_records.py keeps the two in step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from edgebus.messages import Result


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameRecord:
    """A frame as its camera sent it, as an edge received it, or dropped (with a reason)."""

    TABLE: ClassVar[str] = "frames"
    camera: str
    incarnation: int
    frame_id: int
    direction: str  # models.SENT, RECEIVED or DROPPED
    edge: str = ""
    capture_ts: float
    deadline_ts: float
    codec: str
    model_id: str
    bytes_sent: int = 0
    bytes_received: int = 0
    features_received: int = 0
    deadline_met: bool | None = None
    reason: str = ""
    ts: float | None = None  # None: the time it is recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultRecord:
    TABLE: ClassVar[str] = "results"
    camera: str
    incarnation: int
    frame_id: int
    top_k: list[int]
    scores: list[float]
    latency_ms: float
    offloaded: bool
    deadline_met: bool
    ts: float | None = None

    @classmethod
    def of(cls, result: Result) -> ResultRecord:
        """A result a node published, as its row."""
        return cls(
            camera=result.camera,
            incarnation=result.incarnation,
            frame_id=result.frame_id,
            top_k=result.top_k,
            scores=result.scores,
            latency_ms=result.latency_ms,
            offloaded=result.offloaded,
            deadline_met=result.deadline_met,
            ts=result.ts,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """QoS requests, model switches, policy changes and frame events a node saw or made."""

    TABLE: ClassVar[str] = "events"
    kind: str
    detail: dict[str, Any]
    ts: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRecord:
    TABLE: ClassVar[str] = "node_status"
    role: str
    state: str
    stats: dict[str, float]
    ts: float | None = None


StoreRecord = FrameRecord | ResultRecord | EventRecord | StatusRecord
RECORD_TYPES: tuple[type[StoreRecord], ...] = (FrameRecord, ResultRecord, EventRecord, StatusRecord)


def columns_of(record: StoreRecord) -> dict[str, Any]:
    """The record's columns by name, as LocalStore.add takes them."""
    return {field.name: getattr(record, field.name) for field in dataclasses.fields(record)}
