"""The delivery invariant, checked from the stores themselves (`edgebus audit`).

Two promises are checked:

- **Every frame is accounted for.** Each frame a camera captured, (camera, incarnation,
  frame_id), has exactly one outcome record: a `results` row or a `frames` row with
  direction "dropped" and a reason, written by whichever node decided it. A frame with
  none is *silently lost*, unless its camera still holds it open in its local store
  (`open_frames`: sent, the answer not yet heard): such a frame is *awaiting*, and the
  camera's next start asks about it again. With more than one record a frame is
  *duplicated*. A frame counts as captured when its camera recorded it (a sent or
  dropped row, or its own weak-model result) or when any node recorded an outcome.
- **Every row arrives once.** Each local store's rows, keyed by (node, store, seq), are
  in the global store. A row missing there above the store's acknowledged watermark is
  *unsynced* (on its way); at or below it, it is *lost*. The global store cannot hold a
  row twice: the key is its primary key.

Records are read from the global store and from every local store given, so a check
right after a crash counts rows that are stored but not yet synced.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from edgebus.storage.engine import make_engine, safe_url
from edgebus.storage.errors import StorageError, classify
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.models import (
    DROPPED,
    ROW_MODELS,
    SCHEMA_VERSION,
    Frame,
    OpenFrame,
    QuarantinedRow,
    ResultRow,
    SchemaInfo,
    StoreIdentity,
    SyncState,
)

RowKey = tuple[str, str, int]  # (node, store, seq)
FrameKey = tuple[str, int, int]  # (camera, incarnation, frame_id)


@dataclass(slots=True)
class StreamAudit:
    """One local store's rows against the global store."""

    node: str
    store: str
    local_rows: int = 0
    global_rows: int = 0
    acked_seq: int = 0
    unsynced: int = 0
    lost: int = 0
    quarantined: int = 0


@dataclass(slots=True)
class CameraAudit:
    camera: str
    captured: int = 0
    results: int = 0
    dropped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    lost: list[FrameKey] = field(default_factory=list)
    duplicated: list[FrameKey] = field(default_factory=list)
    # No record yet, but held open by the camera: asked about again at its next start.
    awaiting: list[FrameKey] = field(default_factory=list)


@dataclass(slots=True)
class AuditReport:
    streams: list[StreamAudit]
    cameras: list[CameraAudit]
    global_quarantined: int = 0

    @property
    def frames_lost(self) -> int:
        return sum(len(c.lost) for c in self.cameras)

    @property
    def frames_awaiting(self) -> int:
        return sum(len(c.awaiting) for c in self.cameras)

    @property
    def frames_duplicated(self) -> int:
        return sum(len(c.duplicated) for c in self.cameras)

    @property
    def rows_lost(self) -> int:
        return sum(s.lost for s in self.streams)

    @property
    def ok(self) -> bool:
        return not (self.frames_lost or self.frames_duplicated or self.rows_lost)

    def summary(self) -> str:
        captured = sum(c.captured for c in self.cameras)
        results = sum(c.results for c in self.cameras)
        dropped = sum(c.dropped for c in self.cameras)
        unsynced = sum(s.unsynced for s in self.streams)
        quarantined = sum(s.quarantined for s in self.streams) + self.global_quarantined
        return (
            f"audit: captured={captured}, results={results}, dropped={dropped}, "
            f"awaiting={self.frames_awaiting}, silently_lost={self.frames_lost}, "
            f"duplicated={self.frames_duplicated}, "
            f"rows_unsynced={unsynced}, rows_lost={self.rows_lost}, "
            f"rows_quarantined={quarantined}"
        )


@dataclass(slots=True)
class _Records:
    """The frame-level rows of one store: who captured what, and every outcome."""

    captured: set[FrameKey] = field(default_factory=set)
    outcomes: dict[RowKey, tuple[FrameKey, str]] = field(default_factory=dict)
    open: set[FrameKey] = field(default_factory=set)

    def merge(self, other: _Records) -> None:
        self.captured |= other.captured
        self.outcomes.update(other.outcomes)
        self.open |= other.open


def reason_class(reason: str) -> str:
    """A drop reason without its numbers and details, for counting alike ones together."""
    head = re.split(r"[:(]", reason, maxsplit=1)[0].strip()
    return re.sub(r"\d+(\.\d+)?", "#", head) or "unknown"


def _frame_records(engine: Engine, where: str) -> _Records:
    records = _Records()
    try:
        with engine.connect() as connection:
            frames = connection.execute(
                select(
                    Frame.node,
                    Frame.store,
                    Frame.seq,
                    Frame.camera,
                    Frame.incarnation,
                    Frame.frame_id,
                    Frame.direction,
                    Frame.reason,
                )
            ).all()
            results = connection.execute(
                select(
                    ResultRow.node,
                    ResultRow.store,
                    ResultRow.seq,
                    ResultRow.camera,
                    ResultRow.incarnation,
                    ResultRow.frame_id,
                )
            ).all()
    except SQLAlchemyError as exc:
        raise classify(exc, where) from None
    for node, store, seq, camera, incarnation, frame_id, direction, reason in frames:
        key = (camera, int(incarnation), int(frame_id))
        if node == camera:
            records.captured.add(key)
        if direction == DROPPED:
            records.outcomes[(node, store, int(seq))] = (key, reason or "unknown")
    for node, store, seq, camera, incarnation, frame_id in results:
        key = (camera, int(incarnation), int(frame_id))
        if node == camera:
            records.captured.add(key)  # the camera's own weak-model answer
        records.outcomes[(node, store, int(seq))] = (key, "")
    return records


def _row_keys(engine: Engine, where: str) -> set[RowKey]:
    keys: set[RowKey] = set()
    try:
        with engine.connect() as connection:
            for model in ROW_MODELS.values():
                rows = connection.execute(select(model.node, model.store, model.seq)).all()
                keys.update((n, s, int(q)) for n, s, q in rows)
    except SQLAlchemyError as exc:
        raise classify(exc, where) from None
    return keys


def _count_quarantined(engine: Engine) -> int:
    with engine.connect() as connection:
        return len(connection.execute(select(QuarantinedRow.id)).all())


@dataclass(slots=True)
class _LocalStore:
    node: str
    store: str
    acked_seq: int
    rows: set[RowKey]
    records: _Records
    quarantined: int


def _read_local(path: Path) -> _LocalStore:
    where = f"local store {path}"
    if not path.is_file():
        raise StorageError(f"{where}: no such file")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            versions = connection.scalars(select(SchemaInfo.version)).all()
            if versions != [SCHEMA_VERSION]:
                raise StorageError(
                    f"{where}: schema version {versions or 'none'}, this build reads "
                    f"{SCHEMA_VERSION}"
                )
            identity = connection.execute(select(StoreIdentity.store, StoreIdentity.node)).first()
            if identity is None:
                raise StorageError(f"{where}: has no store identity")
            store, node = identity
            acked = connection.scalar(select(SyncState.acked_seq).where(SyncState.node == node))
            records = _frame_records(engine, where)
            opened = connection.execute(select(OpenFrame.incarnation, OpenFrame.frame_id)).all()
            records.open = {(node, int(incarnation), int(frame)) for incarnation, frame in opened}
        return _LocalStore(
            node, store, int(acked or 0), _row_keys(engine, where), records,
            _count_quarantined(engine),
        )  # fmt: skip
    except SQLAlchemyError as exc:
        raise classify(exc, where) from None
    finally:
        engine.dispose()


def audit(local_paths: list[Path], global_url: str) -> AuditReport:
    """Check both promises over the given local stores and the global store."""
    store = GlobalStore(global_url)
    where = f"global store {safe_url(global_url)}"
    try:
        store.open()
        global_rows = _row_keys(store.engine, where)
        records = _frame_records(store.engine, where)
        global_quarantined = _count_quarantined(store.engine)
    finally:
        store.close()
    streams: list[StreamAudit] = []
    for path in sorted(local_paths):
        local = _read_local(path)
        records.merge(local.records)
        stream = StreamAudit(local.node, local.store, len(local.rows), acked_seq=local.acked_seq,
                             quarantined=local.quarantined)  # fmt: skip
        stream.global_rows = sum(1 for key in global_rows if key[:2] == (local.node, local.store))
        for _, _, seq in local.rows - global_rows:
            if seq <= local.acked_seq:
                stream.lost += 1
            else:
                stream.unsynced += 1
        streams.append(stream)
    return AuditReport(streams, _cameras(records), global_quarantined)


def _cameras(records: _Records) -> list[CameraAudit]:
    outcomes: dict[FrameKey, list[str]] = {}
    for key, reason in records.outcomes.values():
        outcomes.setdefault(key, []).append(reason)
    cameras: dict[str, CameraAudit] = {}
    for key in records.captured | set(outcomes):
        camera = cameras.setdefault(key[0], CameraAudit(key[0]))
        camera.captured += 1
        found = outcomes.get(key, [])
        if not found:
            (camera.awaiting if key in records.open else camera.lost).append(key)
        elif len(found) > 1:
            camera.duplicated.append(key)
        for reason in found:
            if reason:
                camera.dropped += 1
                camera.reasons[reason_class(reason)] += 1
            else:
                camera.results += 1
    for camera in cameras.values():
        camera.lost.sort()
        camera.duplicated.sort()
        camera.awaiting.sort()
    return sorted(cameras.values(), key=lambda c: c.camera)


def local_store_paths(data_dir: Path) -> list[Path]:
    """Every node's local store under a data directory (`<data_dir>/stores/*.sqlite3`)."""
    return sorted((data_dir / "stores").glob("*.sqlite3"))
