"""What a node needs from storage, built from Settings: its local store and sync agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from edgebus.broker.bus import Bus
from edgebus.config import Settings
from edgebus.storage.errors import StorageError
from edgebus.storage.global_store import GlobalStore
from edgebus.storage.local import LocalStore
from edgebus.storage.records import StoreRecord, columns_of
from edgebus.storage.sink import SyncSink
from edgebus.storage.sync import SyncAgent, SyncOptions

log = logging.getLogger("edgebus.storage")


def local_store_path(settings: Settings, node_id: str | None = None) -> Path:
    return Path(settings.data_dir) / "stores" / f"{node_id or settings.node_id}.sqlite3"


def global_store_url(settings: Settings) -> str:
    if settings.global_store_url:
        return settings.global_store_url
    return f"sqlite:///{(Path(settings.data_dir) / 'global.sqlite3').resolve()}"


def sync_options(settings: Settings) -> SyncOptions:
    return SyncOptions(
        batch_rows=settings.sync_batch_rows,
        interval_s=settings.sync_interval_s,
        ack_timeout_s=settings.sync_ack_timeout_s,
        window=settings.sync_window,
        retention_days=settings.retention_days,
        retention_interval_s=settings.retention_interval_s,
    )


class NodeStorage:
    """A node's local store plus its sync agent, started and stopped with the node."""

    def __init__(self, settings: Settings, bus: Bus) -> None:
        self.store = LocalStore(
            local_store_path(settings),
            settings.node_id,
            flush_interval_s=settings.store_flush_ms / 1000.0,
            flush_rows=settings.sync_batch_rows,
        )
        self.agent = SyncAgent(bus, self.store, sync_options(settings))
        # Long enough for a few ack timeouts, so a final drain survives one lost batch.
        self.drain_timeout_s = max(10.0, 3 * settings.sync_ack_timeout_s)

    def record(self, record: StoreRecord) -> None:
        self.store.add(record.TABLE, **columns_of(record))

    async def start(self) -> None:
        await self.store.start()
        await self.agent.start()

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        return (*self.store.tasks, *self.agent.tasks)

    async def stop(self) -> None:
        """Commit, sync what the global store still lacks (bounded wait), close."""
        with contextlib.suppress(StorageError):
            await self.agent.drain(self.drain_timeout_s)
        await self.agent.stop()
        await self.store.close()

    def stats(self) -> dict[str, float]:
        return {
            "rows_stored": float(self.store.last_seq),
            "rows_unsynced": float(self.agent.backlog + self.store.pending),
            "store_errors": float(self.store.stats.write_errors),
        }


def global_sink(settings: Settings, bus: Bus) -> SyncSink:
    return SyncSink(bus, GlobalStore(global_store_url(settings)))
