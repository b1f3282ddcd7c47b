"""The queries a local store answers, run on its worker thread: seq ranges for the sync,
a table's rows for tools, open frames for a restarted camera."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from edgebus.storage.errors import classify
from edgebus.storage.models import ROW_MODELS, OpenFrame, table_of
from edgebus.storage.unacked_rows import WIRE_NAMES
from edgebus.storage.wire import block

# No limit on a table's rows: SQLite takes a 64-bit LIMIT.
EVERY_ROW = 1 << 62


@dataclass(frozen=True, slots=True)
class StoreReader:
    engine: Engine
    node: str
    where: str  # names the store in errors

    def seq_range(self, after_seq: int, upto_seq: int) -> tuple[list[dict[str, Any]], int]:
        """Rows with seq in (after_seq, upto_seq] as wire blocks, and their count."""
        blocks: list[dict[str, Any]] = []
        count = 0
        try:
            with self.engine.connect() as connection:
                for kind, model in ROW_MODELS.items():
                    table = table_of(model)
                    query = select(*(table.c[name] for name in WIRE_NAMES[kind])).where(
                        model.node == self.node,
                        model.seq > after_seq,
                        model.seq <= upto_seq,
                    )
                    result = connection.execute(query)
                    values = [list(row) for row in result]
                    if values:
                        blocks.append(block(kind, list(result.keys()), values))
                        count += len(values)
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None
        return blocks, count

    def table_rows(
        self, kind: str, *, after_seq: int, since_ts: float = 0.0, limit: int = EVERY_ROW
    ) -> list[dict[str, Any]]:
        """Rows of one table with seq above after_seq written at or after since_ts."""
        model = ROW_MODELS[kind]
        query = (
            select(*table_of(model).columns)
            .where(model.node == self.node, model.seq > after_seq, model.ts >= since_ts)
            .order_by(model.seq)
            .limit(limit)
        )
        try:
            with self.engine.connect() as connection:
                return [dict(row) for row in connection.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None

    def open_frames(self) -> list[dict[str, Any]]:
        query = select(table_of(OpenFrame)).order_by(OpenFrame.capture_ts)
        try:
            with self.engine.connect() as connection:
                return [dict(row) for row in connection.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None

    def count(self, kind: str, since_ts: float = 0.0) -> int:
        model = ROW_MODELS[kind]
        with self.engine.connect() as connection:
            return int(
                connection.scalar(
                    select(func.count()).select_from(model).where(model.ts >= since_ts)
                )
                or 0
            )
