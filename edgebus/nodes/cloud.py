"""Cloud node: collects every edge's results and hosts the global store's sync sink."""

from __future__ import annotations

import asyncio

from edgebus.actor.lifecycle import Node
from edgebus.clock import Clock
from edgebus.config import Settings
from edgebus.messages import Result
from edgebus.nodes.counters import CloudCounters
from edgebus.storage.runtime import global_sink
from edgebus.storage.sink import SyncSink


class CloudNode(Node):
    role = "cloud"
    capabilities = ("results:collect", "store:global")

    sink: SyncSink | None = None
    counters: CloudCounters

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        super().__init__(settings, clock)
        self.counters = CloudCounters()

    async def start_services(self) -> None:
        if self.settings.store_enabled:
            self.sink = global_sink(self.settings, self.bus)
            await self.sink.start()

    def service_tasks(self) -> list[asyncio.Task[None]]:
        return list(self.sink.tasks) if self.sink is not None else []

    async def stop_services(self) -> None:
        if self.sink is not None:
            await self.sink.stop()
            self.sink = None

    def stats(self) -> dict[str, float]:
        stats = super().stats()
        if self.sink is not None:
            stats["global_rows_stored"] = float(self.sink.stats.rows_stored)
        return stats

    async def main(self) -> None:
        results = await self.bus.subscribe(self.topics.results(), qos=1)
        self.ready.set()
        async for delivery in results:
            if isinstance(delivery.message, Result):
                self.counters.results_seen += 1
                self.counters.bytes_reported += delivery.message.bytes_received
