"""Cloud node: collects every edge's results (the global store's sink in later steps)."""

from __future__ import annotations

from edgebus.messages import Result
from edgebus.nodes.base import Node


class CloudNode(Node):
    role = "cloud"
    capabilities = ("results:collect",)

    async def main(self) -> None:
        results = await self.bus.subscribe(self.topics.results(), qos=1)
        self.ready.set()
        async for delivery in results:
            if isinstance(delivery.message, Result):
                self.counters["results_seen"] += 1
                self.counters["bytes_reported"] += delivery.message.bytes_received
