"""The local store's upkeep statements, run in its writer thread: saving the global
store's ack watermark and pruning acknowledged rows."""

from __future__ import annotations

from sqlalchemy import Engine, delete
from sqlalchemy.exc import SQLAlchemyError

from edgebus.storage.engine import upsert_ignore
from edgebus.storage.errors import classify
from edgebus.storage.models import ROW_MODELS, SyncState, table_of


def save_ack(engine: Engine, node: str, where: str, seq: int) -> None:
    statement = upsert_ignore(engine, table_of(SyncState), ("node",))
    try:
        with engine.begin() as connection:
            updated = connection.execute(
                table_of(SyncState).update().where(SyncState.node == node).values(acked_seq=seq)
            ).rowcount
            if not updated:
                connection.execute(statement, {"node": node, "acked_seq": seq})
    except SQLAlchemyError as exc:
        raise classify(exc, where) from None


def prune_rows(engine: Engine, node: str, where: str, older_than_ts: float, acked_seq: int) -> int:
    """Delete this node's rows at or below the watermark and older than the cutoff."""
    removed = 0
    try:
        with engine.begin() as connection:
            for model in ROW_MODELS.values():
                removed += connection.execute(
                    delete(model).where(
                        model.node == node, model.seq <= acked_seq, model.ts < older_than_ts
                    )
                ).rowcount
    except SQLAlchemyError as exc:
        raise classify(exc, where) from None
    return removed
