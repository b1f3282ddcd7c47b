"""The schema shared by every local store and the global store.

Each row is keyed by (node, store, seq): `store` is the identity a local store gets when
it is created, and seq its monotonic sequence number, one counter across all tables, so
a store's rows form one gapless stream that the sync can acknowledge with a single
watermark. A node whose store was deleted or replaced starts a new stream; it never
overwrites the old one. Times are epoch seconds (float), as on the wire.

A frame is (camera, incarnation, frame_id): the camera draws a new incarnation at every
start, so frame ids that restart at 0 never collide.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.schema import ScalarElementColumnDefault

# Bump on any change to the tables below; a store of another version is refused at start-up.
SCHEMA_VERSION = 2


class Base(DeclarativeBase):
    pass


def table_of(model: type[Any]) -> Table:
    """A model's Table. SQLAlchemy types `__table__` as any FromClause; every model here
    is declared on one table."""
    return cast(Table, model.__table__)


class Keyed:
    """The columns every synced row has."""

    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    store: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[float] = mapped_column(Float, index=True)


# Frame.direction values.
SENT = "sent"  # the camera sent it to an edge
RECEIVED = "received"  # an edge classified it (its result is in `results`)
DROPPED = "dropped"  # it ends without a result; `reason` says why


class Frame(Keyed, Base):
    """A frame as its camera sent it, as an edge received it, or dropped (with a reason):
    a dropped row is the record that stands in for the frame's missing result."""

    __tablename__ = "frames"
    camera: Mapped[str] = mapped_column(String(64))
    incarnation: Mapped[int] = mapped_column(BigInteger, default=0)
    frame_id: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(16))
    # sent: the edge it was addressed to ("" = any); received, dropped: who decided it.
    edge: Mapped[str] = mapped_column(String(64), default="")
    capture_ts: Mapped[float] = mapped_column(Float)
    deadline_ts: Mapped[float] = mapped_column(Float)
    codec: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(64))
    bytes_sent: Mapped[int] = mapped_column(Integer, default=0)
    bytes_received: Mapped[int] = mapped_column(Integer, default=0)
    features_received: Mapped[int] = mapped_column(Integer, default=0)
    deadline_met: Mapped[bool | None] = mapped_column(default=None)
    reason: Mapped[str] = mapped_column(String(256), default="")


class ResultRow(Keyed, Base):
    __tablename__ = "results"
    camera: Mapped[str] = mapped_column(String(64))
    incarnation: Mapped[int] = mapped_column(BigInteger, default=0)
    frame_id: Mapped[int] = mapped_column(BigInteger)
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


class StoreIdentity(Base):
    """Local store only: the identity drawn when the store was created (one row)."""

    __tablename__ = "store_identity"
    store: Mapped[str] = mapped_column(String(36), primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    created_ts: Mapped[float] = mapped_column(Float)


class SyncState(Base):
    """Local store only: the highest seq the global store acknowledged (contiguously)."""

    __tablename__ = "sync_state"
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    acked_seq: Mapped[int] = mapped_column(BigInteger)


class SyncProgress(Base):
    """Global store only: per store, the highest seq stored with nothing missing below it."""

    __tablename__ = "sync_progress"
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    store: Mapped[str] = mapped_column(String(36), primary_key=True)
    contiguous_seq: Mapped[int] = mapped_column(BigInteger)


class OpenFrame(Base):
    """Local store only, never synced: a camera's frames sent and not yet answered. A
    restarted camera asks again about exactly these, and no others."""

    __tablename__ = "open_frames"
    incarnation: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    frame_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    edge: Mapped[str] = mapped_column(String(64))
    capture_ts: Mapped[float] = mapped_column(Float)
    deadline_ts: Mapped[float] = mapped_column(Float)
    codec: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(64))
    bytes_sent: Mapped[int] = mapped_column(Integer)


class QuarantinedRow(Base):
    """A row a store could not take (a NaN, a constraint): kept here as text, logged and
    counted, so it neither blocks the rows behind it nor vanishes. Never synced."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(String(64))
    store: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)  # 0 where the row never got a seq
    table_name: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(512))
    row: Mapped[str] = mapped_column(Text)
    ts: Mapped[float] = mapped_column(Float)


ROW_MODELS: dict[str, type[Keyed]] = {
    "frames": Frame,
    "results": ResultRow,
    "events": Event,
    "node_status": NodeStatus,
}


def columns(kind: str) -> tuple[str, ...]:
    return tuple(c.name for c in table_of(ROW_MODELS[kind]).columns)


def wire_columns(kind: str) -> tuple[str, ...]:
    """The columns a sync batch carries per row: the store id travels once, in its header."""
    return tuple(name for name in columns(kind) if name != "store")


def defaults(kind: str) -> dict[str, Any]:
    """Every column of a table with its scalar default (else None): rows written in one
    executemany must all carry the same keys."""
    out: dict[str, Any] = {}
    for column in table_of(ROW_MODELS[kind]).columns:
        default = column.default
        out[column.name] = default.arg if isinstance(default, ScalarElementColumnDefault) else None
    return out
