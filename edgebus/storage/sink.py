"""The cloud's sync sink: stores every node's batches in the global store and acks them.

Batches waiting in the queue are stored together in one transaction (much faster than
one commit per batch). The ack carries the highest seq stored with no gap below it,
so a lost or reordered batch holds the watermark back until the node resends it.

Streams are keyed by (node, store): a node whose local store was replaced sends a new
stream from seq 1, stored beside the old one. A batch must come from the node its topic
names (the topic is what a broker's ACL checks); a row the global store cannot take is
quarantined with its reason, and the watermark moves past it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from edgebus.aio import cancel_and_wait
from edgebus.broker.bus import Bus, BusClosed, OutgoingQueueFull, Subscription
from edgebus.messages import SyncAck, SyncBatch
from edgebus.storage.counters import SinkStats
from edgebus.storage.errors import StorageError
from edgebus.storage.global_store import GlobalStore, Progress, Quarantined, Rows, StreamKey
from edgebus.storage.row_check import row_problem
from edgebus.storage.wire import BadBatch, block_rows, unpack
from edgebus.topics import TopicError, parse

log = logging.getLogger("edgebus.storage.sink")

MAX_GROUP_ROWS = 20_000


class SyncSink:
    def __init__(self, bus: Bus, store: GlobalStore) -> None:
        self.bus = bus
        self.store = store
        self.stats = SinkStats()
        self.progress: dict[StreamKey, Progress] = {}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sync-sink")
        self._queue: asyncio.Queue[SyncBatch] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self._last_error = ""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.store.open)
        self._subscription = await self.bus.subscribe(self.bus.topics.syncs(), qos=1)
        self._tasks = [
            asyncio.create_task(self._receive(self._subscription), name="sync-sink-receive"),
            asyncio.create_task(self._store_loop(), name="sync-sink-store"),
        ]

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The long-running tasks start() began, for the node to supervise."""
        return tuple(self._tasks)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._subscription is not None:
            await self._subscription.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
        self._executor.shutdown(wait=True)

    async def _receive(self, subscription: Subscription) -> None:
        async for delivery in subscription:
            batch = delivery.message
            if not isinstance(batch, SyncBatch):
                self.stats.unexpected_messages += 1
                continue
            try:
                sender = parse(delivery.topic).node
            except TopicError:
                sender = None
            if sender != batch.node:
                self.stats.batches_rejected += 1
                log.warning(
                    "rejected sync batch for node %s on topic %s: a node syncs only its own rows",
                    batch.node, delivery.topic,
                )  # fmt: skip
                continue
            self._queue.put_nowait(batch)

    async def _store_loop(self) -> None:
        while True:
            group = [await self._queue.get()]
            rows = block_rows(group[0].rows)
            while not self._queue.empty() and rows < MAX_GROUP_ROWS:
                batch = self._queue.get_nowait()
                group.append(batch)
                rows += block_rows(batch.rows)
            await self._store_group(group)

    async def _progress(self, key: StreamKey) -> Progress:
        known = self.progress.get(key)
        if known is None:
            loop = asyncio.get_running_loop()
            seq = await loop.run_in_executor(self._executor, self.store.progress, *key)
            known = self.progress[key] = Progress(seq)
        return known

    @staticmethod
    def _screen(rows: Rows, quarantined: list[Quarantined]) -> Rows:
        """The rows the global store can take; the others go to quarantine."""
        kept: Rows = {}
        for kind, items in rows.items():
            for row in items:
                problem = row_problem(kind, row)
                if problem is None:
                    kept.setdefault(kind, []).append(row)
                else:
                    quarantined.append(Quarantined(kind, problem, row))
        return kept

    async def _store_group(self, group: list[SyncBatch]) -> None:
        loop = asyncio.get_running_loop()
        valid: list[tuple[SyncBatch, Rows]] = []
        quarantined: list[Quarantined] = []
        for batch in group:
            try:
                rows = unpack(batch.node, batch.store, batch.first_seq, batch.last_seq, batch.rows)
            except BadBatch as exc:
                self.stats.batches_rejected += 1
                log.warning("rejected sync batch: %s", exc)
                continue
            valid.append((batch, self._screen(rows, quarantined)))
        if not valid:
            return
        try:
            progress = await self._advance(valid)
            advanced = {key: p.contiguous for key, p in progress.items()}
            refused = await loop.run_in_executor(
                self._executor, self.store.store, [rows for _, rows in valid], advanced,
                quarantined,
            )  # fmt: skip
        except StorageError as exc:
            # Not acked: every node resends after its ack timeout, once the store is back.
            self.stats.store_errors += 1
            if str(exc) != self._last_error:
                log.error("%s", exc)
                self._last_error = str(exc)
            await asyncio.sleep(0.5)
            return
        if self._last_error:
            log.warning("global store writable again")
            self._last_error = ""
        self.progress.update(progress)
        self.stats.batches_stored += len(valid)
        self.stats.rows_quarantined += refused
        self.stats.rows_stored += sum(block_rows(b.rows) for b, _ in valid) - refused
        for (node, store), stream in progress.items():
            await self._ack(node, store, stream.contiguous)

    async def _advance(self, valid: list[tuple[SyncBatch, Rows]]) -> dict[StreamKey, Progress]:
        progress: dict[StreamKey, Progress] = {}
        for batch, _ in valid:
            key = (batch.node, batch.store)
            current = progress.get(key) or await self._progress(key)
            progress[key] = current.with_range(batch.first_seq, batch.last_seq)
        return progress

    async def _ack(self, node: str, store: str, seq: int) -> None:
        try:
            ack = SyncAck(node, seq, store=store)
            await self.bus.publish(self.bus.topics.sync_ack(node), ack, qos=1)
            self.stats.acks_sent += 1
        except (OutgoingQueueFull, BusClosed) as exc:
            log.debug("ack to %s not sent: %s", node, exc)
