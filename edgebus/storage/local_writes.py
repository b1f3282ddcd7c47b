"""How a local store commits: on its one worker thread, never on the event loop.

Each commit stamps the next seqs in order inside the transaction, so seqs are gapless
and a failed commit assigns none. A row the database refuses despite row_check is
quarantined and the rest are written one transaction each; a failing disk stops the
write where it is and hands back what was committed and what still waits.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import Connection, Engine, Executable, bindparam, delete, insert
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from edgebus.storage.counters import StoreStats
from edgebus.storage.engine import upsert_ignore
from edgebus.storage.errors import StorageError, classify, first_line
from edgebus.storage.models import ROW_MODELS, OpenFrame, QuarantinedRow, table_of

# Built once: constructing a statement costs more than a small batch's executemany.
# Public for the camera-floor benchmark, which must run exactly these.
INSERTS = {kind: insert(table_of(model)) for kind, model in ROW_MODELS.items()}
CLOSE_FRAMES = delete(table_of(OpenFrame)).where(
    table_of(OpenFrame).c.incarnation == bindparam("closed_incarnation"),
    table_of(OpenFrame).c.frame_id == bindparam("closed_frame_id"),
)

log = logging.getLogger("edgebus.storage")

# (table, row) as add() took it; once committed the row also holds node, store and seq.
Row = tuple[str, dict[str, Any]]
# (table, why, row, seq): a row refused before (seq 0) or after it got a seq.
Refused = tuple[str, str, dict[str, Any], int]
# (opened, frame): an open-frame change, applied with the commit that records its outcome.
OpenChange = tuple[bool, dict[str, Any]]


class PartialWrite(StorageError):
    """Rows written one by one until the disk failed: what was committed, what was not."""

    def __init__(self, error: StorageError, stamped: list[Row], remaining: list[Row]) -> None:
        super().__init__(str(error))
        self.error = error
        self.stamped = stamped
        self.remaining = remaining


def as_text(row: dict[str, Any]) -> str:
    # NaN and infinities are exactly what gets rows quarantined: keep them readable.
    return json.dumps(row, default=repr, allow_nan=True, sort_keys=True)


class RowWriter:
    """The commit side of a LocalStore; runs only on the store's worker thread."""

    def __init__(self, node: str, where: str, stats: StoreStats) -> None:
        self.node = node
        self.where = where
        self.stats = stats
        self.engine: Engine | None = None
        self.store_id = ""
        self.last_seq = 0
        self._open_statement: Executable | None = None  # its dialect's upsert, on first use

    def write(
        self, batch: list[Row], refused: list[Refused], opened: list[OpenChange]
    ) -> tuple[int, list[Row]]:
        """Commit the batch, seqs stamped in order, with the open-frame changes in the same
        transaction: a frame is closed exactly when the row that records its outcome is
        written, so a crash can neither close a frame without its record nor leave one
        open whose record is stored."""
        assert self.engine is not None
        try:
            with self.engine.begin() as connection:
                seq, stamped = self._insert(connection, batch, self.last_seq)
                self._insert_quarantined(connection, refused)
                self._apply_open_changes(connection, opened)
        except OperationalError as exc:
            raise classify(exc, self.where) from None
        except SQLAlchemyError:
            last, stamped = self._write_one_by_one(batch, refused)
            # After the rows: a crash in between leaves frames open, and asking again
            # about a frame only gets its recorded answer.
            try:
                with self.engine.begin() as connection:
                    self._apply_open_changes(connection, opened)
            except SQLAlchemyError as exc:
                raise PartialWrite(classify(exc, self.where), stamped, []) from None
            return last, stamped
        self.last_seq = seq
        self.stats.rows_written += len(batch)
        return seq, stamped

    def _apply_open_changes(self, connection: Connection, changes: list[OpenChange]) -> None:
        """The batch's open-frame changes as at most two executemany statements built once
        (see net_open_changes): a camera's commit then costs one or two statements, not
        one per frame, and a frame answered before the commit is never inserted."""
        assert self.engine is not None
        if self._open_statement is None:
            keys = ("incarnation", "frame_id")
            self._open_statement = upsert_ignore(self.engine, table_of(OpenFrame), keys)
        closes, opens = net_open_changes(changes)
        if closes:
            closed = [{"closed_incarnation": f["incarnation"],
                       "closed_frame_id": f["frame_id"]} for f in closes]  # fmt: skip
            connection.execute(CLOSE_FRAMES, closed)
        if opens:
            connection.execute(self._open_statement, opens)

    def _insert(self, connection: Connection, batch: list[Row], seq: int) -> tuple[int, list[Row]]:
        by_kind: dict[str, list[dict[str, Any]]] = {}
        stamped: list[Row] = []
        for kind, row in batch:
            seq += 1
            full = {**row, "node": self.node, "store": self.store_id, "seq": seq}
            by_kind.setdefault(kind, []).append(full)
            stamped.append((kind, full))
        for kind, rows in by_kind.items():
            connection.execute(INSERTS[kind], rows)
        return seq, stamped

    def _insert_quarantined(self, connection: Connection, refused: list[Refused]) -> None:
        if refused:
            connection.execute(
                insert(table_of(QuarantinedRow)),
                [
                    {"node": self.node, "store": self.store_id, "seq": seq, "table_name": kind,
                     "reason": reason[:512], "row": as_text(row), "ts": time.time()}
                    for kind, reason, row, seq in refused
                ],
            )  # fmt: skip

    def _write_one_by_one(self, batch: list[Row], refused: list[Refused]) -> tuple[int, list[Row]]:
        assert self.engine is not None
        stamped: list[Row] = []
        quarantined = list(refused)
        for index, (kind, row) in enumerate(batch):
            try:
                with self.engine.begin() as connection:
                    seq, rows = self._insert(connection, [(kind, row)], self.last_seq)
            except OperationalError as exc:
                # The disk, not the row: what is left waits in memory for the next flush.
                self._store_quarantined(quarantined)
                raise PartialWrite(classify(exc, self.where), stamped, batch[index:]) from None
            except SQLAlchemyError as exc:
                reason = f"{kind}: {first_line(exc)}"
                self.stats.rows_quarantined += 1
                log.error("%s: row quarantined: %s", self.where, reason)
                quarantined.append((kind, reason, row, 0))
                continue
            self.last_seq = seq
            self.stats.rows_written += 1
            stamped += rows
        self._store_quarantined(quarantined)
        return self.last_seq, stamped

    def _store_quarantined(self, refused: list[Refused]) -> None:
        assert self.engine is not None
        try:
            with self.engine.begin() as connection:
                self._insert_quarantined(connection, refused)
        except SQLAlchemyError as exc:
            log.error("%s: %d quarantined row(s) lost: %s", self.where, len(refused), exc)


def net_open_changes(
    changes: list[OpenChange],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The batch's open-frame changes as (frames to close, then frames to open): every
    frame closed anywhere in the batch, then each frame opened after its last close, as
    that first open names it (a later duplicate is ignored, as the upsert would).

    This leaves the table as applying the changes one by one would, and a frame opened
    and then closed within one batch (its outcome came before the commit, the usual case
    for a camera) costs only the close, not an insert that the close undoes."""
    closes: dict[tuple[int, int], dict[str, Any]] = {}
    opening: dict[tuple[int, int], dict[str, Any]] = {}
    for opened, frame in changes:
        key = (frame["incarnation"], frame["frame_id"])
        if opened:
            opening.setdefault(key, frame)
        else:
            closes[key] = frame
            opening.pop(key, None)
    return list(closes.values()), list(opening.values())
