"""A node's local store: SQLite in WAL mode, written in batches off the event loop.

Rows are appended in memory by `add()` (never blocking the loop) and committed by a
writer task in a one-thread executor. The writer gives each row the next per-store
sequence number inside the commit, so seqs are gapless and ordered by commit: a failed
commit (disk full, lock) assigns nothing and the rows wait in memory for the next try.

A row the store cannot take (a NaN, a missing value) is quarantined instead: kept as
text in the `quarantine` table, logged and counted, without a seq, so it never blocks
the rows behind it. The store draws its identity when it is created; every row carries
it, so the global store keeps a replaced store's rows apart from the old one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from edgebus.storage.engine import ensure_schema, make_engine, upsert_ignore
from edgebus.storage.errors import StorageError, classify, first_line
from edgebus.storage.models import (
    ROW_MODELS,
    OpenFrame,
    QuarantinedRow,
    StoreIdentity,
    SyncState,
    defaults,
    table_of,
    wire_columns,
)
from edgebus.storage.row_check import row_problem
from edgebus.storage.wire import block

log = logging.getLogger("edgebus.storage")

T = TypeVar("T")

_NAMES = {kind: wire_columns(kind) for kind in ROW_MODELS}
_DEFAULTS = {kind: defaults(kind) for kind in ROW_MODELS}
Row = tuple[str, dict[str, Any]]


class PartialWrite(StorageError):
    """Rows written one by one until the disk failed: what was committed, what was not."""

    def __init__(self, error: StorageError, stamped: list[Row], remaining: list[Row]) -> None:
        super().__init__(str(error))
        self.error = error
        self.stamped = stamped
        self.remaining = remaining


def _as_text(row: dict[str, Any]) -> str:
    # NaN and infinities are exactly what gets rows quarantined: keep them readable.
    return json.dumps(row, default=repr, allow_nan=True, sort_keys=True)


class LocalStore:
    def __init__(
        self,
        path: Path,
        node: str,
        flush_interval_s: float = 0.05,
        flush_rows: int = 500,
        max_pending: int = 200_000,
        busy_timeout_s: float = 5.0,
        max_cached: int = 100_000,
    ) -> None:
        self.path = Path(path)
        self.node = node
        self.where = f"local store {self.path}"
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self.max_pending = max_pending
        self.busy_timeout_s = busy_timeout_s
        self.engine: Engine | None = None
        self.store_id = ""  # drawn when the store file is created
        self.last_seq = 0
        self.acked_seq = 0
        self.saved_ack_seq = 0
        self.error: StorageError | None = None
        self.stats: Counter[str] = Counter()
        self.on_commit: list[Callable[[int], None]] = []
        self._pending: list[Row] = []
        # Rows refused before they got a seq, waiting to be written to `quarantine`.
        self._quarantine: list[tuple[str, str, dict[str, Any], int]] = []
        # Changes to the local-only open_frames table, applied in order with the next commit.
        self._open_changes: list[tuple[bool, dict[str, Any]]] = []
        # Committed rows not yet acknowledged, seqs _recent_base.. in order: the sync agent
        # reads batches from here instead of from SQLite (which it falls back to after a
        # restart, or once more than max_cached rows await their ack).
        self.max_cached = max_cached
        self._recent: list[tuple[str, dict[str, Any]]] = []
        self._recent_base = 1
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"store-{node}")
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    def open_sync(self) -> None:
        """Open (creating if needed) and check the schema; raises a one-line StorageError."""
        if self.engine is not None:
            return
        self.engine = make_engine(f"sqlite:///{self.path}", self.busy_timeout_s)
        ensure_schema(self.engine, self.where)
        try:
            self.store_id = self._identity()
            with self.engine.connect() as connection:
                highest = [
                    connection.scalar(select(func.max(model.seq)).where(model.node == self.node))
                    or 0
                    for model in ROW_MODELS.values()
                ]
                acked = connection.scalar(
                    select(SyncState.acked_seq).where(SyncState.node == self.node)
                )
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None
        self.acked_seq = self.saved_ack_seq = acked or 0
        # Pruned rows were synced, so the ack watermark bounds the counter from below.
        self.last_seq = max([self.acked_seq, *highest])

    def _identity(self) -> str:
        """This store's identity, drawn once, in the same transaction that first needs it."""
        assert self.engine is not None
        with self.engine.begin() as connection:
            known = connection.scalars(select(StoreIdentity.store)).all()
            if known:
                return str(known[0])
            store_id = uuid.uuid4().hex
            connection.execute(
                insert(table_of(StoreIdentity)),
                {"store": store_id, "node": self.node, "created_ts": time.time()},
            )
            log.info("%s: new store %s for node %s", self.where, store_id, self.node)
            return store_id

    async def start(self) -> None:
        await self._run(self.open_sync)
        self._wake = asyncio.Event()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name=f"store-{self.node}")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        with contextlib.suppress(StorageError):
            await self.flush()
        if self._saver is not None:
            await self._saver
        if self._pending:
            log.error(
                "%s: %d row(s) could not be written before closing", self.where, len(self._pending)
            )
        if self.engine is not None:
            await self._run(self.engine.dispose)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- writing -----------------------------------------------------------------------

    def add(self, kind: str, /, **row: Any) -> None:
        """Queue one row of table `kind`; it is committed within flush_interval_s.

        `kind` is positional-only: the events table has a column of that name."""
        if kind not in ROW_MODELS:
            raise ValueError(f"unknown table {kind!r}; expected one of {', '.join(ROW_MODELS)}")
        unknown = row.keys() - _DEFAULTS[kind].keys()
        if unknown:
            raise ValueError(f"table {kind!r} has no column(s) {', '.join(sorted(unknown))}")
        row = {**_DEFAULTS[kind], **row}
        if row["ts"] is None:
            row["ts"] = time.time()
        problem = row_problem(kind, row)
        if problem is not None:
            self._quarantine_row(kind, row, problem)
            return
        if len(self._pending) >= self.max_pending:
            self.stats["rows_dropped"] += 1
            if self.stats["rows_dropped"] in (1, 1000) or self.stats["rows_dropped"] % 100_000 == 0:
                log.error(
                    "%s: %d rows wait in memory (%s); %d new row(s) dropped",
                    self.where,
                    len(self._pending),
                    self.error or "store unavailable",
                    self.stats["rows_dropped"],
                )
            return
        self._pending.append((kind, row))
        if self._wake is not None and len(self._pending) >= self.flush_rows:
            self._wake.set()

    def _quarantine_row(self, kind: str, row: dict[str, Any], reason: str, seq: int = 0) -> None:
        self.stats["rows_quarantined"] += 1
        count = self.stats["rows_quarantined"]
        if count <= 10 or count % 1000 == 0:
            log.error("%s: row quarantined (%d so far): %s", self.where, count, reason)
        self._quarantine.append((kind, reason, row, seq))
        if self._wake is not None:
            self._wake.set()

    def mark_open(self, frame: dict[str, Any]) -> None:
        """A frame sent and not yet answered (local only; see OpenFrame)."""
        self._open_changes.append((True, frame))

    def mark_closed(self, incarnation: int, frame_id: int) -> None:
        self._open_changes.append((False, {"incarnation": incarnation, "frame_id": frame_id}))

    async def open_frames(self) -> list[dict[str, Any]]:
        """Every frame marked open and not closed, oldest first (blocking read, off loop)."""

        def read() -> list[dict[str, Any]]:
            assert self.engine is not None
            query = select(table_of(OpenFrame)).order_by(OpenFrame.capture_ts)
            try:
                with self.engine.connect() as connection:
                    return [dict(row) for row in connection.execute(query).mappings()]
            except SQLAlchemyError as exc:
                raise classify(exc, self.where) from None

        return await self._run(read)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Commit what is queued now; returns the last committed seq. Raises StorageError.

        Flushes run one at a time, so a caller also waits for a commit already under way
        (a drain must not see an empty queue while the writer still holds the rows)."""
        async with self._flush_lock:
            return await self._flush()

    async def _flush(self) -> int:
        if not self._pending and not self._quarantine and not self._open_changes:
            return self.last_seq
        batch, self._pending = self._pending, []
        refused, self._quarantine = self._quarantine, []
        opened, self._open_changes = self._open_changes, []
        try:
            last, stamped = await self._run(self._write, batch, refused, opened)
        except PartialWrite as exc:
            if exc.stamped:
                self._cache(exc.stamped)
            self._pending = exc.remaining + self._pending
            self._open_changes = opened + self._open_changes
            self._report(exc.error)
            raise exc.error from None
        except Exception as exc:
            # Everything taken waits, oldest first, ahead of anything added meanwhile (a
            # bug included).
            self._pending = batch + self._pending
            self._quarantine = refused + self._quarantine
            self._open_changes = opened + self._open_changes
            if isinstance(exc, StorageError):
                self._report(exc)
            raise
        if stamped:
            self._cache(stamped)
        if self.error is not None:
            log.warning("%s: writing again after: %s", self.where, self.error)
            self.error = None
        for callback in self.on_commit:
            callback(last)
        return last

    def _report(self, exc: StorageError) -> None:
        self.stats["write_errors"] += 1
        if self.error is None or str(exc) != str(self.error):
            log.error("%s", exc)
        self.error = exc

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except StorageError:
                # Reported once by flush(); back off so a full disk is not hammered.
                await asyncio.sleep(max(self.flush_interval_s, 0.5))
            except Exception:
                # A bug must not stop the writer while the node looks alive: the rows stay
                # queued in memory, the error is logged, and the next flush tries again.
                self.stats["write_errors"] += 1
                log.exception("%s: writing rows failed", self.where)
                await asyncio.sleep(max(self.flush_interval_s, 0.5))

    def _write(
        self,
        batch: list[Row],
        refused: list[tuple[str, str, dict[str, Any], int]],
        opened: list[tuple[bool, dict[str, Any]]],
    ) -> tuple[int, list[Row]]:
        """Commit the batch, seqs stamped in order, with the open-frame changes in the same
        transaction: a frame is closed exactly when the row that records its outcome is
        written, so a crash can neither close a frame without its record nor leave one
        open whose record is stored. A row the database refuses despite row_check is
        quarantined and the rest are written one transaction each."""
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
        self.stats["rows_written"] += len(batch)
        return seq, stamped

    def _apply_open_changes(
        self, connection: Connection, changes: list[tuple[bool, dict[str, Any]]]
    ) -> None:
        assert self.engine is not None
        table = table_of(OpenFrame)
        keys = ("incarnation", "frame_id")
        for opened, frame in changes:
            if opened:
                connection.execute(upsert_ignore(self.engine, table, keys), [frame])
            else:
                connection.execute(
                    delete(table).where(
                        table.c.incarnation == frame["incarnation"],
                        table.c.frame_id == frame["frame_id"],
                    )
                )

    def _insert(self, connection: Connection, batch: list[Row], seq: int) -> tuple[int, list[Row]]:
        by_kind: dict[str, list[dict[str, Any]]] = {}
        stamped: list[Row] = []
        for kind, row in batch:
            seq += 1
            full = {**row, "node": self.node, "store": self.store_id, "seq": seq}
            by_kind.setdefault(kind, []).append(full)
            stamped.append((kind, full))
        for kind, rows in by_kind.items():
            connection.execute(insert(table_of(ROW_MODELS[kind])), rows)
        return seq, stamped

    def _insert_quarantined(
        self, connection: Connection, refused: list[tuple[str, str, dict[str, Any], int]]
    ) -> None:
        if refused:
            connection.execute(
                insert(table_of(QuarantinedRow)),
                [
                    {"node": self.node, "store": self.store_id, "seq": seq, "table_name": kind,
                     "reason": reason[:512], "row": _as_text(row), "ts": time.time()}
                    for kind, reason, row, seq in refused
                ],
            )  # fmt: skip

    def _write_one_by_one(
        self, batch: list[Row], refused: list[tuple[str, str, dict[str, Any], int]]
    ) -> tuple[int, list[Row]]:
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
                self.stats["rows_quarantined"] += 1
                log.error("%s: row quarantined: %s", self.where, reason)
                quarantined.append((kind, reason, row, 0))
                continue
            self.last_seq = seq
            self.stats["rows_written"] += 1
            stamped += rows
        self._store_quarantined(quarantined)
        return self.last_seq, stamped

    def _store_quarantined(self, refused: list[tuple[str, str, dict[str, Any], int]]) -> None:
        assert self.engine is not None
        try:
            with self.engine.begin() as connection:
                self._insert_quarantined(connection, refused)
        except SQLAlchemyError as exc:
            log.error("%s: %d quarantined row(s) lost: %s", self.where, len(refused), exc)

    def _cache(self, stamped: list[tuple[str, dict[str, Any]]]) -> None:
        # Loop thread only. The cache must stay gapless: if commits were cached out of
        # order, start it afresh and let older seqs come from SQLite.
        first = stamped[0][1]["seq"]
        if not self._recent or first != self._recent_base + len(self._recent):
            self._recent = []
            self._recent_base = first
        self._recent += stamped
        if len(self._recent) > self.max_cached:
            dropped = len(self._recent) - self.max_cached // 2
            del self._recent[:dropped]
            self._recent_base += dropped

    # -- reading, acks and retention -----------------------------------------------------

    async def read_after(self, after_seq: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Rows with seq in (after_seq, after_seq + limit] as wire blocks, and their count.

        From the cache when it holds after_seq + 1 (no wait behind the writer thread),
        else from SQLite."""
        cached = self._read_cache(after_seq, after_seq + limit)
        if cached is not None:
            return cached
        return await self._run(self._read_db, after_seq, after_seq + limit)

    def _read_cache(self, after_seq: int, upto_seq: int) -> tuple[list[dict[str, Any]], int] | None:
        # Acknowledged rows are never sent again.
        done = (
            min(self.acked_seq, self._recent_base + len(self._recent) - 1) - self._recent_base + 1
        )
        if done > 0:
            del self._recent[:done]
            self._recent_base += done
        if self._recent and self._recent_base <= after_seq + 1:
            start = after_seq + 1 - self._recent_base
            if start < len(self._recent):
                return self._blocks(self._recent[start : start + upto_seq - after_seq])
        return None

    @staticmethod
    def _blocks(rows: list[tuple[str, dict[str, Any]]]) -> tuple[list[dict[str, Any]], int]:
        grouped: dict[str, list[list[Any]]] = {}
        for kind, row in rows:
            grouped.setdefault(kind, []).append([row[name] for name in _NAMES[kind]])
        return [block(k, list(_NAMES[k]), v) for k, v in grouped.items()], len(rows)

    def _read_db(self, after_seq: int, upto_seq: int) -> tuple[list[dict[str, Any]], int]:
        assert self.engine is not None
        blocks: list[dict[str, Any]] = []
        count = 0
        try:
            with self.engine.connect() as connection:
                for kind, model in ROW_MODELS.items():
                    table = table_of(model)
                    query = select(*(table.c[name] for name in _NAMES[kind])).where(
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

    def all_rows(self, kind: str) -> list[dict[str, Any]]:
        """Every row of one table (blocking; for tools and tests)."""
        return self._unsynced(kind, 0.0, 1 << 62, after_seq=0)

    async def rows_since(
        self, kinds: tuple[str, ...], since_ts: float
    ) -> tuple[list[dict[str, Any]], ...]:
        """Every row of each table written at or after since_ts, synced or not."""
        return await self._run(
            lambda: tuple(self._unsynced(k, since_ts, 1 << 62, after_seq=0) for k in kinds)
        )

    async def unsynced(self, kind: str, since_ts: float, limit: int) -> list[dict[str, Any]]:
        """Rows of one table that the global store has not acknowledged yet."""
        return await self._run(self._unsynced, kind, since_ts, limit)

    def _unsynced(
        self, kind: str, since_ts: float, limit: int, after_seq: int | None = None
    ) -> list[dict[str, Any]]:
        assert self.engine is not None
        model = ROW_MODELS[kind]
        after = self.acked_seq if after_seq is None else after_seq
        query = (
            select(*table_of(model).columns)
            .where(model.node == self.node, model.seq > after, model.ts >= since_ts)
            .order_by(model.seq)
            .limit(limit)
        )
        try:
            with self.engine.connect() as connection:
                return [dict(row) for row in connection.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None

    async def mark_synced(self, seq: int) -> None:
        """Record the global store's ack; only acknowledged rows count as synced."""
        if seq <= self.acked_seq:
            return
        self.acked_seq = seq
        # Saved in the background, latest value only: a watermark saved late only means
        # a few rows are resent after a crash, and the global store ignores duplicates.
        if self._saver is None or self._saver.done():
            self._saver = asyncio.create_task(self._save_acks())

    async def _save_acks(self) -> None:
        saved = -1
        while saved != self.acked_seq:
            saved = self.acked_seq
            try:
                await self._run(self._save_ack, saved)
            except StorageError as exc:
                self._report(exc)
                return
            self.saved_ack_seq = saved

    def _save_ack(self, seq: int) -> None:
        assert self.engine is not None
        statement = upsert_ignore(self.engine, table_of(SyncState), ("node",))
        try:
            with self.engine.begin() as connection:
                updated = connection.execute(
                    table_of(SyncState)
                    .update()
                    .where(SyncState.node == self.node)
                    .values(acked_seq=seq)
                ).rowcount
                if not updated:
                    connection.execute(statement, {"node": self.node, "acked_seq": seq})
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None

    async def prune(self, older_than_ts: float) -> int:
        """Delete rows older than the cutoff that the global store has acknowledged."""
        # Only below the saved watermark: after a crash the seq counter restarts from the
        # saved watermark or the highest remaining row, so a pruned row above it would let
        # its seq be reused (and the new row be dropped as a duplicate globally).
        return await self._run(self._prune, older_than_ts, self.saved_ack_seq)

    def _prune(self, older_than_ts: float, acked_seq: int) -> int:
        assert self.engine is not None
        removed = 0
        try:
            with self.engine.begin() as connection:
                for model in ROW_MODELS.values():
                    removed += connection.execute(
                        delete(model).where(
                            model.node == self.node,
                            model.seq <= acked_seq,
                            model.ts < older_than_ts,
                        )
                    ).rowcount
        except SQLAlchemyError as exc:
            raise classify(exc, self.where) from None
        self.stats["rows_pruned"] += removed
        return removed

    async def count(self, kind: str, since_ts: float = 0.0) -> int:
        return await self._run(self.count_rows, kind, since_ts)

    def count_rows(self, kind: str, since_ts: float = 0.0) -> int:
        assert self.engine is not None
        model = ROW_MODELS[kind]
        with self.engine.connect() as connection:
            return int(
                connection.scalar(
                    select(func.count()).select_from(model).where(model.ts >= since_ts)
                )
                or 0
            )
