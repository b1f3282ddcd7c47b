"""The cloud's sync sink: stores every node's batches in the global store and acks them.

Batches waiting in the queue are stored together in one transaction (much faster than
one commit per batch). The ack carries the highest seq stored with no gap below it,
so a lost or reordered batch holds the watermark back until the node resends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edgebus.aio import cancel_and_wait
from edgebus.broker.bus import Bus, BusClosed, OutgoingQueueFull, Subscription
from edgebus.messages import SyncAck, SyncBatch
from edgebus.storage.errors import StorageError
from edgebus.storage.global_store import GlobalStore, Progress
from edgebus.storage.wire import BadBatch, block_rows, unpack

log = logging.getLogger("edgebus.storage.sink")

MAX_GROUP_ROWS = 20_000


class SyncSink:
    def __init__(self, bus: Bus, store: GlobalStore) -> None:
        self.bus = bus
        self.store = store
        self.stats: Counter[str] = Counter()
        self.progress: dict[str, Progress] = {}
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

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
        self._executor.shutdown(wait=True)

    async def _receive(self, subscription: Subscription) -> None:
        async for delivery in subscription:
            if isinstance(delivery.message, SyncBatch):
                self._queue.put_nowait(delivery.message)
            else:
                self.stats["unexpected_messages"] += 1

    async def _store_loop(self) -> None:
        while True:
            group = [await self._queue.get()]
            rows = block_rows(group[0].rows)
            while not self._queue.empty() and rows < MAX_GROUP_ROWS:
                batch = self._queue.get_nowait()
                group.append(batch)
                rows += block_rows(batch.rows)
            await self._store_group(group)

    async def _progress(self, node: str) -> Progress:
        known = self.progress.get(node)
        if known is None:
            loop = asyncio.get_running_loop()
            seq = await loop.run_in_executor(self._executor, self.store.progress, node)
            known = self.progress[node] = Progress(seq)
        return known

    async def _store_group(self, group: list[SyncBatch]) -> None:
        loop = asyncio.get_running_loop()
        valid: list[tuple[SyncBatch, dict[str, list[dict[str, Any]]]]] = []
        for batch in group:
            try:
                valid.append(
                    (batch, unpack(batch.node, batch.first_seq, batch.last_seq, batch.rows))
                )
            except BadBatch as exc:
                self.stats["batches_rejected"] += 1
                log.warning("rejected sync batch: %s", exc)
        if not valid:
            return
        try:
            progress = await self._advance(valid)
            advanced = {n: p.contiguous for n, p in progress.items()}
            await loop.run_in_executor(
                self._executor, self.store.store, [rows for _, rows in valid], advanced
            )
        except BadBatch as exc:
            if len(valid) == 1:
                self.stats["batches_rejected"] += 1
                log.warning("rejected sync batch: %s", exc)
                return
            # One bad batch must not hold back the others: store them one by one.
            for batch, _ in valid:
                await self._store_group([batch])
            return
        except StorageError as exc:
            # Not acked: every node resends after its ack timeout, once the store is back.
            self.stats["store_errors"] += 1
            if str(exc) != self._last_error:
                log.error("%s", exc)
                self._last_error = str(exc)
            await asyncio.sleep(0.5)
            return
        if self._last_error:
            log.warning("global store writable again")
            self._last_error = ""
        self.progress.update(progress)
        self.stats["batches_stored"] += len(valid)
        self.stats["rows_stored"] += sum(block_rows(b.rows) for b, _ in valid)
        for node in progress:
            await self._ack(node, progress[node].contiguous)

    async def _advance(
        self, valid: list[tuple[SyncBatch, dict[str, list[dict[str, Any]]]]]
    ) -> dict[str, Progress]:
        progress: dict[str, Progress] = {}
        for batch, _ in valid:
            current = progress.get(batch.node) or await self._progress(batch.node)
            progress[batch.node] = current.with_range(batch.first_seq, batch.last_seq)
        return progress

    async def _ack(self, node: str, seq: int) -> None:
        try:
            await self.bus.publish(self.bus.topics.sync_ack(node), SyncAck(node, seq), qos=1)
            self.stats["acks_sent"] += 1
        except (OutgoingQueueFull, BusClosed) as exc:
            log.debug("ack to %s not sent: %s", node, exc)
