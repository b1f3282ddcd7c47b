"""The global store: every node's rows, upserted idempotently by (node, store, seq)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from edgebus.storage.engine import ensure_schema, make_engine, safe_url, upsert_ignore
from edgebus.storage.errors import GlobalStoreError, StorageError, classify, first_line
from edgebus.storage.models import ROW_MODELS, QuarantinedRow, SyncProgress, table_of

log = logging.getLogger("edgebus.storage.global")

StreamKey = tuple[str, str]  # (node, store)
Rows = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A row the global store will not take, kept as text with the reason."""

    kind: str
    reason: str
    row: dict[str, Any]

    def as_row(self) -> dict[str, Any]:
        return {
            "node": str(self.row.get("node", "")),
            "store": str(self.row.get("store", "")),
            "seq": int(self.row.get("seq") or 0),
            "table_name": self.kind,
            "reason": self.reason[:512],
            "row": json.dumps(self.row, default=repr, allow_nan=True, sort_keys=True),
            "ts": time.time(),
        }


@dataclass(slots=True)
class Progress:
    """What is stored for one node: everything up to `contiguous`, plus ranges above it."""

    contiguous: int
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def with_range(self, first: int, last: int) -> Progress:
        ranges = sorted([*self.ranges, (first, last)])
        contiguous = self.contiguous
        kept: list[tuple[int, int]] = []
        for low, high in ranges:
            if low <= contiguous + 1:
                contiguous = max(contiguous, high)
            else:
                kept.append((low, high))
        return Progress(contiguous, [r for r in kept if r[1] > contiguous])


class GlobalStore:
    """Blocking API; the sink calls it from its own thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = f"global store {safe_url(url)}"
        self.engine: Engine = make_engine(url)

    def open(self) -> None:
        try:
            ensure_schema(self.engine, self.where)
        except StorageError as exc:
            if self.engine.dialect.name == "postgresql":
                raise GlobalStoreError(f"{exc} (is PostgreSQL running and reachable?)") from None
            raise

    def close(self) -> None:
        self.engine.dispose()

    def progress(self, node: str, store: str) -> int:
        try:
            with self.engine.connect() as connection:
                value = connection.scalar(
                    select(SyncProgress.contiguous_seq).where(
                        SyncProgress.node == node, SyncProgress.store == store
                    )
                )
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None
        return int(value or 0)

    def store(
        self,
        groups: list[Rows],
        advanced: dict[StreamKey, int],
        quarantined: list[Quarantined] | None = None,
    ) -> int:
        """Upsert the grouped rows and the new watermarks in one transaction; returns how
        many rows had to be quarantined.

        A row the database refuses all the same is quarantined and the others are stored
        one by one: a bad row never holds the watermark (and every row behind it) back."""
        quarantined = list(quarantined or [])
        try:
            with self.engine.begin() as connection:
                for by_kind in groups:
                    for kind, rows in by_kind.items():
                        if rows:
                            connection.execute(upsert_ignore(self.engine, ROW_MODELS[kind]), rows)
                self._finish(connection, advanced, quarantined)
        except OperationalError as exc:
            raise classify(exc, self.where) from None
        except SQLAlchemyError:
            return self._store_one_by_one(groups, advanced, quarantined)
        return len(quarantined)

    def _store_one_by_one(
        self, groups: list[Rows], advanced: dict[StreamKey, int], quarantined: list[Quarantined]
    ) -> int:
        for by_kind in groups:
            for kind, rows in by_kind.items():
                for row in rows:
                    try:
                        with self.engine.begin() as connection:
                            connection.execute(upsert_ignore(self.engine, ROW_MODELS[kind]), [row])
                    except OperationalError as exc:
                        raise classify(exc, self.where) from None
                    except SQLAlchemyError as exc:
                        quarantined.append(Quarantined(kind, first_line(exc), row))
        try:
            with self.engine.begin() as connection:
                self._finish(connection, advanced, quarantined)
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None
        return len(quarantined)

    def _finish(
        self, connection: Any, advanced: dict[StreamKey, int], quarantined: list[Quarantined]
    ) -> None:
        if quarantined:
            for item in quarantined:
                log.error(
                    "%s: row %s/%s seq %s quarantined: %s", self.where, item.row.get("node"),
                    item.row.get("store"), item.row.get("seq"), item.reason,
                )  # fmt: skip
            connection.execute(
                table_of(QuarantinedRow).insert(),
                [item.as_row() for item in quarantined],
            )
        for (node, store), seq in advanced.items():
            updated = connection.execute(
                table_of(SyncProgress)
                .update()
                .where(SyncProgress.node == node, SyncProgress.store == store)
                .values(contiguous_seq=seq)
            ).rowcount
            if not updated:
                connection.execute(
                    upsert_ignore(self.engine, table_of(SyncProgress), ("node", "store")).values(
                        node=node, store=store, contiguous_seq=seq
                    )
                )

    def count(self, kind: str, nodes: list[str] | None = None, since_ts: float = 0.0) -> int:
        model = ROW_MODELS[kind]
        query = select(func.count()).select_from(model).where(model.ts >= since_ts)
        if nodes:
            query = query.where(model.node.in_(nodes))
        try:
            with self.engine.connect() as connection:
                return int(connection.scalar(query) or 0)
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None

    def rows(
        self, kind: str, nodes: list[str] | None = None, since_ts: float = 0.0
    ) -> list[dict[str, Any]]:
        model = ROW_MODELS[kind]
        query = (
            select(*table_of(model).columns)
            .where(model.ts >= since_ts)
            .order_by(model.ts, model.node, model.seq)
        )
        if nodes:
            query = query.where(model.node.in_(nodes))
        try:
            with self.engine.connect() as connection:
                return [dict(row) for row in connection.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None

    def nodes(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(
                connection.scalars(select(SyncProgress.node).distinct().order_by(SyncProgress.node))
            )

    def streams(self) -> dict[StreamKey, int]:
        """Every (node, store) stream the global store holds, with its watermark."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    select(SyncProgress.node, SyncProgress.store, SyncProgress.contiguous_seq)
                ).all()
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None
        return {(node, store): int(seq) for node, store, seq in rows}
