"""The sync agent every node runs: its outbox publisher and its unsynced-rows service.

It publishes the local rows after the last acknowledged seq, in batches of at most
`batch_rows`, over QoS 1 to `sync/<node>`: when a full batch is waiting, when
`interval_s` has passed with anything waiting, or on drain(). Up to `window` batches
may await their ack. Rows count as synced only when an ack says so; without progress
for `ack_timeout_s` it resends from the last ack. The ack watermark is stored locally,
so a restarted node resumes where the global store stopped.

An ack counts only if it names this store's identity, and never past the highest seq
this agent has actually sent: a forged or stale ack cannot mark unsent rows synced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgebus.aio import cancel_and_wait
from edgebus.broker.bus import Bus, OutgoingQueueFull, Subscription
from edgebus.messages import Message, StoreQuery, StoreRows, SyncAck, SyncBatch
from edgebus.storage.counters import SyncStats
from edgebus.storage.errors import StorageError
from edgebus.storage.local import LocalStore
from edgebus.storage.models import ROW_MODELS

log = logging.getLogger("edgebus.storage.sync")

QUERY_SERVICE = "store"
DAY_S = 86_400.0


@dataclass(slots=True)
class SyncOptions:
    batch_rows: int = 500
    interval_s: float = 10.0
    ack_timeout_s: float = 5.0
    window: int = 8
    retention_days: float = 7.0
    retention_interval_s: float = 3600.0


class SyncAgent:
    def __init__(self, bus: Bus, store: LocalStore, options: SyncOptions | None = None) -> None:
        self.bus = bus
        self.store = store
        self.options = options or SyncOptions()
        self.node = store.node
        self.stats = SyncStats()
        self.sent_upto = 0
        # The highest seq published since start: acks are capped here, not at the last
        # committed row, which may never have left this node.
        self.highest_sent = 0
        # Called with (acked seq, monotonic time) on every ack that moves the watermark.
        self.on_ack: list[Callable[[int, float], None]] = []
        self._wake = asyncio.Event()
        self._committed_seen = 0  # the newest commit the sender was told of
        self._acked = asyncio.Event()
        self._draining = False
        self._progress_at = time.monotonic()
        self._last_send = 0.0
        self._resend_upto = 0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def acked(self) -> int:
        return self.store.acked_seq

    @property
    def backlog(self) -> int:
        """Committed rows the global store has not acknowledged yet."""
        return self.store.last_seq - self.acked

    async def start(self) -> None:
        self.sent_upto = self.acked
        self._committed_seen = self.store.last_seq
        self.store.on_commit.append(self._committed)
        self.bus.on_reconnect.append(self._reconnected)
        acks = await self.bus.subscribe(self.bus.topics.sync_ack(self.node), qos=1)
        await self.bus.serve(self.bus.topics.request(self.node, QUERY_SERVICE), self._answer)
        self._tasks = [
            asyncio.create_task(self._receive_acks(acks), name=f"sync-acks-{self.node}"),
            asyncio.create_task(self._send_loop(), name=f"sync-send-{self.node}"),
            asyncio.create_task(self._retention_loop(), name=f"sync-retention-{self.node}"),
        ]

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The long-running tasks start() began, for the node to supervise."""
        return tuple(self._tasks)

    def _committed(self, seq: int) -> None:
        """Wake the sender when a commit makes a batch due, or makes rows wait where none
        did (its sleep then becomes the interval's remainder); not on every commit of a busy
        node, which would wake it for nothing several times a second."""
        started_waiting = self._committed_seen <= self.sent_upto
        self._committed_seen = seq
        if started_waiting or self._due(time.monotonic()):
            self._wake.set()

    async def _reconnected(self, session_present: bool) -> None:
        """The batches queued in the bus go out now: their acks get a whole timeout from
        here, as an outage must not count against them (the sender does not poll)."""
        self._progress_at = time.monotonic()
        self._wake.set()

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.bus.on_reconnect.remove(self._reconnected)
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def drain(self, timeout_s: float) -> bool:
        """Commit pending rows and wait until the global store acknowledged all of them."""
        with contextlib.suppress(StorageError):
            await self.store.flush()
        self._draining = True
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                self._acked.clear()  # before the check, so an ack in between is not missed
                if self.backlog <= 0:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "%s: %d row(s) not acknowledged by the global store after %g s; "
                        "they stay in the local store and are sent on the next start",
                        self.node,
                        self.backlog,
                        timeout_s,
                    )
                    return False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._acked.wait()
        finally:
            self._draining = False
        return True

    # -- outbox --------------------------------------------------------------------------

    def _window_full(self) -> bool:
        return self.sent_upto - self.acked >= self.options.window * self.options.batch_rows

    def _due(self, now: float) -> bool:
        waiting = self.store.last_seq - self.sent_upto
        if waiting <= 0:
            return False
        if self._window_full():
            return False
        return (
            waiting >= self.options.batch_rows
            or self._draining
            or self.sent_upto < self._resend_upto
            or now - self._last_send >= self.options.interval_s
        )

    async def _send_loop(self) -> None:
        while True:
            now = time.monotonic()
            if not self.bus.connected:
                # Batches already queued in the bus go out on reconnect; resending now
                # would only queue duplicates.
                self._progress_at = now
            elif (
                self.sent_upto > self.acked and now - self._progress_at > self.options.ack_timeout_s
            ):
                self.stats.resends += 1
                log.info(
                    "%s: no sync ack for %g s; resending from seq %d",
                    self.node,
                    self.options.ack_timeout_s,
                    self.acked + 1,
                )
                # What was sent goes out again now, not at the next interval.
                self._resend_upto = max(self._resend_upto, self.sent_upto)
                self.sent_upto = self.acked
                self._progress_at = now
            if self._due(now):
                try:
                    await self._send_batch(now)
                except StorageError as exc:
                    log.error("%s: cannot read rows to sync: %s", self.node, exc)
                    await asyncio.sleep(1.0)
                except OutgoingQueueFull:
                    await asyncio.sleep(0.2)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sleep_for(now)):
                    await self._wake.wait()

    def _sleep_for(self, now: float) -> float | None:
        """Until waiting rows fall due by the interval or an ack is overdue; None when
        neither can happen: a commit, an ack, a drain or a reconnect wakes the sender."""
        waits = []
        # A full window waits for an ack, which wakes the sender: no interval then.
        if self.store.last_seq > self.sent_upto and not self._window_full():
            waits.append(self.options.interval_s - (now - self._last_send))
        if self.sent_upto > self.acked:
            waits.append(self.options.ack_timeout_s - (now - self._progress_at))
        return max(0.005, min(waits)) if waits else None

    async def _send_batch(self, now: float) -> None:
        blocks, count = await self.store.read_after(self.sent_upto, self.options.batch_rows)
        if not count:
            return
        # Seqs are gapless, so the batch is exactly the next `count` of them.
        first, last = self.sent_upto + 1, self.sent_upto + count
        if self.sent_upto == self.acked:
            self._progress_at = now
        batch = SyncBatch(self.node, first, last, blocks, store=self.store.store_id)
        await self.bus.publish(self.bus.topics.sync(self.node), batch, qos=1)
        self.highest_sent = max(self.highest_sent, last)
        self.sent_upto = max(self.sent_upto, last)
        self._last_send = now
        self.stats.batches_sent += 1
        self.stats.rows_sent += count

    async def _receive_acks(self, acks: Subscription) -> None:
        async for delivery in acks:
            ack = delivery.message
            if not isinstance(ack, SyncAck) or ack.node != self.node:
                continue
            if ack.store != self.store.store_id:
                self.stats.acks_for_other_stores += 1
                continue
            if ack.highest_contiguous_seq < self.acked and self.sent_upto > self.acked:
                self._report_regression(ack.highest_contiguous_seq)
            if ack.highest_contiguous_seq <= self.acked:
                continue
            # Never past what this agent sent: a forged or stale watermark cannot mark rows
            # synced that never left this node.
            seq = min(ack.highest_contiguous_seq, self.highest_sent)
            if seq <= self.acked:
                self.stats.acks_beyond_sent += 1
                continue
            await self.store.mark_synced(seq)
            now = time.monotonic()
            self._progress_at = now
            self.sent_upto = max(self.sent_upto, seq)
            self.stats.acks += 1
            for callback in self.on_ack:
                callback(seq, now)
            self._acked.set()
            self._wake.set()

    def _report_regression(self, seq: int) -> None:
        # A replaced or restored global store acks below an earlier ack while newer rows
        # are in flight, batch after batch; a single late duplicate ack is no sign of it.
        self.stats.ack_regressions += 1
        if self.stats.ack_regressions == 3:
            log.error(
                "%s: the global store acknowledges only up to seq %d, but acknowledged "
                "up to %d before: was it replaced? New rows are stored, but acks will "
                "stall until rows %d..%d are back in it",
                self.node,
                seq,
                self.acked,
                seq + 1,
                self.acked,
            )

    # -- unsynced rows on request ----------------------------------------------------------

    async def _answer(self, request: Message) -> Message:
        if not isinstance(request, StoreQuery):
            raise ValueError(f"expected a store_query, got {request.TYPE_NAME}")
        if request.table not in ROW_MODELS:
            raise ValueError(
                f"unknown table {request.table!r}; expected one of {', '.join(ROW_MODELS)}"
            )
        limit = max(1, min(request.limit, 50_000))
        rows = await self.store.unsynced(request.table, request.since_ts, limit + 1)
        return StoreRows(self.node, request.table, self.acked, rows[:limit], len(rows) > limit)

    # -- retention -----------------------------------------------------------------------

    async def _retention_loop(self) -> None:
        while True:
            cutoff = time.time() - self.options.retention_days * DAY_S
            try:
                removed = await self.store.prune(cutoff)
            except StorageError as exc:
                log.error("%s: retention skipped: %s", self.node, exc)
            else:
                if removed:
                    log.info(
                        "%s: pruned %d synced row(s) older than %g days",
                        self.node,
                        removed,
                        self.options.retention_days,
                    )
            await asyncio.sleep(self.options.retention_interval_s)
