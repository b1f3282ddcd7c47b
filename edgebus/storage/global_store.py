"""The global store: every node's rows, upserted idempotently by (node, seq)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from edgebus.storage.engine import ensure_schema, make_engine, safe_url, upsert_ignore
from edgebus.storage.errors import GlobalStoreError, StorageError, classify, first_line
from edgebus.storage.models import ROW_MODELS, SyncProgress
from edgebus.storage.wire import BadBatch


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

    def progress(self, node: str) -> int:
        try:
            with self.engine.connect() as connection:
                value = connection.scalar(
                    select(SyncProgress.contiguous_seq).where(SyncProgress.node == node)
                )
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None
        return int(value or 0)

    def store(
        self, groups: list[dict[str, list[dict[str, Any]]]], advanced: dict[str, int]
    ) -> None:
        """Upsert the grouped rows and the new watermarks in one transaction."""
        try:
            with self.engine.begin() as connection:
                for by_kind in groups:
                    for kind, rows in by_kind.items():
                        connection.execute(upsert_ignore(self.engine, ROW_MODELS[kind]), rows)
                for node, seq in advanced.items():
                    updated = connection.execute(
                        SyncProgress.__table__.update()
                        .where(SyncProgress.node == node)
                        .values(contiguous_seq=seq)
                    ).rowcount
                    if not updated:
                        connection.execute(
                            upsert_ignore(self.engine, SyncProgress.__table__, ("node",)).values(
                                node=node, contiguous_seq=seq
                            )
                        )
        except OperationalError as exc:
            raise classify(exc, self.where) from None
        except SQLAlchemyError as exc:
            raise BadBatch(f"{self.where} refused the rows: {first_line(exc)}") from None

    def count(self, kind: str, nodes: list[str] | None = None, since_ts: float = 0.0) -> int:
        model = ROW_MODELS[kind]
        query = select(func.count()).select_from(model).where(model.ts >= since_ts)  # type: ignore[attr-defined]
        if nodes:
            query = query.where(model.node.in_(nodes))  # type: ignore[attr-defined]
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
            select(model.__table__)  # type: ignore[attr-defined]
            .where(model.ts >= since_ts)  # type: ignore[attr-defined]
            .order_by(model.ts, model.node, model.seq)  # type: ignore[attr-defined]
        )
        if nodes:
            query = query.where(model.node.in_(nodes))  # type: ignore[attr-defined]
        try:
            with self.engine.connect() as connection:
                return [dict(row) for row in connection.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None

    def nodes(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.scalars(select(SyncProgress.node).order_by(SyncProgress.node)))
