"""The schema shared by every local store and the global store.

Each row is keyed by (node, seq): seq is the owning node's monotonic sequence number,
one counter across all tables, so a node's rows form one gapless stream that the sync
can acknowledge with a single watermark. Times are epoch seconds (float), as on the wire.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Bump on any change to the tables below; a store of another version is refused at start-up.
SCHEMA_VERSION = 1


class Base(DeclarativeBase):
    pass


class Keyed:
    """The columns every synced row has."""

    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[float] = mapped_column(Float, index=True)


class Frame(Keyed, Base):
    """A frame as its camera sent it (direction "sent") or an edge received it ("received")."""

    __tablename__ = "frames"
    camera: Mapped[str] = mapped_column(String(64))
    frame_id: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(16))
    capture_ts: Mapped[float] = mapped_column(Float)
    deadline_ts: Mapped[float] = mapped_column(Float)
    codec: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(64))
    bytes_sent: Mapped[int] = mapped_column(Integer, default=0)
    bytes_received: Mapped[int] = mapped_column(Integer, default=0)
    features_received: Mapped[int] = mapped_column(Integer, default=0)
    deadline_met: Mapped[bool | None] = mapped_column(default=None)


class ResultRow(Keyed, Base):
    __tablename__ = "results"
    camera: Mapped[str] = mapped_column(String(64))
    frame_id: Mapped[int] = mapped_column(Integer)
    top_k: Mapped[list[int]] = mapped_column(JSON)
    scores: Mapped[list[float]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    offloaded: Mapped[bool] = mapped_column()
    deadline_met: Mapped[bool] = mapped_column()


class Event(Keyed, Base):
    """QoS requests, model switches and policy changes a node saw or made."""

    __tablename__ = "events"
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class NodeStatus(Keyed, Base):
    __tablename__ = "node_status"
    role: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    stats: Mapped[dict[str, float]] = mapped_column(JSON)


class SchemaInfo(Base):
    __tablename__ = "edgebus_schema"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class SyncState(Base):
    """Local store only: the highest seq the global store acknowledged (contiguously)."""

    __tablename__ = "sync_state"
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    acked_seq: Mapped[int] = mapped_column(Integer)


class SyncProgress(Base):
    """Global store only: per node, the highest seq stored with nothing missing below it."""

    __tablename__ = "sync_progress"
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    contiguous_seq: Mapped[int] = mapped_column(Integer)


ROW_MODELS: dict[str, type[Keyed]] = {
    "frames": Frame,
    "results": ResultRow,
    "events": Event,
    "node_status": NodeStatus,
}


def columns(kind: str) -> tuple[str, ...]:
    return tuple(c.name for c in ROW_MODELS[kind].__table__.columns)  # type: ignore[attr-defined]


def defaults(kind: str) -> dict[str, Any]:
    """Every column of a table with its scalar default (else None): rows written in one
    executemany must all carry the same keys."""
    out: dict[str, Any] = {}
    for column in ROW_MODELS[kind].__table__.columns:  # type: ignore[attr-defined]
        default = column.default
        out[column.name] = default.arg if default is not None and default.is_scalar else None
    return out
