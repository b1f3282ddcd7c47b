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
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from edgebus.storage.counters import StoreStats
from edgebus.storage.engine import ensure_schema, make_engine
from edgebus.storage.errors import StorageError, classify
from edgebus.storage.flush_schedule import FlushSchedule
from edgebus.storage.local_reads import StoreReader
from edgebus.storage.local_upkeep import prune_rows, save_ack
from edgebus.storage.local_writes import OpenChange, PartialWrite, Refused, Row, RowWriter
from edgebus.storage.models import (
    ROW_MODELS,
    StoreIdentity,
    SyncState,
    defaults,
    table_of,
)
from edgebus.storage.row_check import row_problem
from edgebus.storage.unacked_rows import UnackedRows

log = logging.getLogger("edgebus.storage")

T = TypeVar("T")

_DEFAULTS = {kind: defaults(kind) for kind in ROW_MODELS}


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
        self.acked_seq = 0
        self.saved_ack_seq = 0
        self.error: StorageError | None = None
        self.stats = StoreStats()
        self.writer = RowWriter(node, self.where, self.stats)
        self.on_commit: list[Callable[[int], None]] = []
        self._pending: list[Row] = []
        # Rows refused before they got a seq, waiting to be written to `quarantine`.
        self._quarantine: list[Refused] = []
        # Changes to the local-only open_frames table, applied in order with the next commit.
        self._open_changes: list[OpenChange] = []
        self._unacked = UnackedRows(max_cached)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"store-{node}")
        # Made at start: when the writer commits next (it sleeps while nothing waits).
        self._schedule: FlushSchedule | None = None
        self._writer: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    @property
    def last_seq(self) -> int:
        """The highest seq committed (or, after a restart, known from the file)."""
        return self.writer.last_seq

    @last_seq.setter
    def last_seq(self, seq: int) -> None:
        self.writer.last_seq = seq

    # -- lifecycle ---------------------------------------------------------------------

    def open_sync(self) -> None:
        """Open (creating if needed) and check the schema; raises a one-line StorageError."""
        if self.engine is not None:
            return
        self.engine = self.writer.engine = make_engine(
            f"sqlite:///{self.path}", self.busy_timeout_s
        )
        ensure_schema(self.engine, self.where)
        try:
            self.store_id = self.writer.store_id = self._identity()
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
        self._schedule = FlushSchedule(self.flush_interval_s)
        self._schedule.queued(full=False)  # rows added before the start
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name=f"store-{self.node}")

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The writer task, for the node to supervise (it absorbs its own errors)."""
        return (self._writer,) if self._writer is not None else ()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._schedule is not None:
            self._schedule.cancel()
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
            self.stats.rows_dropped += 1
            if self.stats.rows_dropped in (1, 1000) or self.stats.rows_dropped % 100_000 == 0:
                log.error(
                    "%s: %d rows wait in memory (%s); %d new row(s) dropped",
                    self.where,
                    len(self._pending),
                    self.error or "store unavailable",
                    self.stats.rows_dropped,
                )
            return
        self._pending.append((kind, row))
        self._nudge(full=len(self._pending) >= self.flush_rows)

    def _has_queued(self) -> bool:
        return bool(self._pending or self._quarantine or self._open_changes)

    def _nudge(self, full: bool) -> None:
        if self._schedule is not None:
            self._schedule.queued(full)

    def _quarantine_row(self, kind: str, row: dict[str, Any], reason: str, seq: int = 0) -> None:
        self.stats.rows_quarantined += 1
        count = self.stats.rows_quarantined
        if count <= 10 or count % 1000 == 0:
            log.error("%s: row quarantined (%d so far): %s", self.where, count, reason)
        self._quarantine.append((kind, reason, row, seq))
        self._nudge(full=True)

    def mark_open(self, frame: dict[str, Any]) -> None:
        """A frame sent and not yet answered (local only; see OpenFrame)."""
        self._open_changes.append((True, frame))
        self._nudge(full=False)

    def mark_closed(self, incarnation: int, frame_id: int) -> None:
        self._open_changes.append((False, {"incarnation": incarnation, "frame_id": frame_id}))
        self._nudge(full=False)

    async def open_frames(self) -> list[dict[str, Any]]:
        """Every frame marked open and not closed, oldest first (blocking read, off loop)."""

        return await self._run(self._reader().open_frames)

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
        if not self._has_queued():
            return self.last_seq
        batch, self._pending = self._pending, []
        refused, self._quarantine = self._quarantine, []
        opened, self._open_changes = self._open_changes, []
        try:
            last, stamped = await self._run(self.writer.write, batch, refused, opened)
        except PartialWrite as exc:
            if exc.stamped:
                self._unacked.add(exc.stamped)
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
            self._unacked.add(stamped)
        if self.error is not None:
            log.warning("%s: writing again after: %s", self.where, self.error)
            self.error = None
        for callback in self.on_commit:
            callback(last)
        return last

    def _report(self, exc: StorageError) -> None:
        self.stats.write_errors += 1
        if self.error is None or str(exc) != str(self.error):
            log.error("%s", exc)
        self.error = exc

    async def _write_loop(self) -> None:
        """Idle, the writer sleeps; the first queued row starts a batch that commits within
        flush_interval_s (sooner when it fills), so rows of one burst share one commit."""
        assert self._schedule is not None
        while True:
            await self._schedule.wait()
            try:
                await self.flush()
            except StorageError:
                # Reported once by flush(); back off so a full disk is not hammered.
                await asyncio.sleep(max(self.flush_interval_s, 0.5))
            except Exception:
                # A bug must not stop the writer while the node looks alive: the rows stay
                # queued in memory, the error is logged, and the next flush tries again.
                self.stats.write_errors += 1
                log.exception("%s: writing rows failed", self.where)
                await asyncio.sleep(max(self.flush_interval_s, 0.5))
            if self._has_queued():
                self._schedule.queued(full=False)  # a failed commit put its rows back

    # -- reading, acks and retention -----------------------------------------------------

    async def read_after(self, after_seq: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Rows with seq in (after_seq, after_seq + limit] as wire blocks, and their count.

        From the cache when it holds after_seq + 1 (no wait behind the writer thread),
        else from SQLite."""
        cached = self._unacked.read(after_seq, after_seq + limit, self.acked_seq)
        if cached is not None:
            return cached
        return await self._run(self._reader().seq_range, after_seq, after_seq + limit)

    def all_rows(self, kind: str) -> list[dict[str, Any]]:
        """Every row of one table (blocking; for tools and tests)."""
        return self._reader().table_rows(kind, after_seq=0)

    async def rows_since(
        self, kinds: tuple[str, ...], since_ts: float
    ) -> tuple[list[dict[str, Any]], ...]:
        """Every row of each table written at or after since_ts, synced or not."""
        reader = self._reader()
        return await self._run(
            lambda: tuple(reader.table_rows(k, after_seq=0, since_ts=since_ts) for k in kinds)
        )

    async def unsynced(self, kind: str, since_ts: float, limit: int) -> list[dict[str, Any]]:
        """Rows of one table that the global store has not acknowledged yet."""
        reader, after_seq = self._reader(), self.acked_seq
        return await self._run(
            lambda: reader.table_rows(kind, after_seq=after_seq, since_ts=since_ts, limit=limit)
        )

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
        save_ack(self.engine, self.node, self.where, seq)

    async def prune(self, older_than_ts: float) -> int:
        """Delete rows older than the cutoff that the global store has acknowledged."""
        # Only below the saved watermark: after a crash the seq counter restarts from the
        # saved watermark or the highest remaining row, so a pruned row above it would let
        # its seq be reused (and the new row be dropped as a duplicate globally).
        return await self._run(self._prune, older_than_ts, self.saved_ack_seq)

    def _prune(self, older_than_ts: float, acked_seq: int) -> int:
        assert self.engine is not None
        removed = prune_rows(self.engine, self.node, self.where, older_than_ts, acked_seq)
        self.stats.rows_pruned += removed
        return removed

    async def count(self, kind: str, since_ts: float = 0.0) -> int:
        return await self._run(self.count_rows, kind, since_ts)

    def count_rows(self, kind: str, since_ts: float = 0.0) -> int:
        return self._reader().count(kind, since_ts)

    def _reader(self) -> StoreReader:
        assert self.engine is not None, "the store is not open"
        return StoreReader(self.engine, self.node, self.where)
