"""The coordinator actor: tracks which nodes are alive from their retained status.

It reuses the node lifecycle (nodes/base.py); later steps add the orchestrator and
the schedulers of this package to it.
"""

from __future__ import annotations

import logging

from edgebus.messages import Status
from edgebus.nodes.base import Node

log = logging.getLogger("edgebus.coordinator")


class CoordinatorNode(Node):
    role = "coordinator"
    capabilities = ("membership",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.members: dict[str, Status] = {}

    async def main(self) -> None:
        statuses = await self.bus.subscribe(self.topics.statuses(), qos=1)
        self.ready.set()
        async for delivery in statuses:
            status = delivery.message
            if not isinstance(status, Status):
                continue
            previous = self.members.get(status.node)
            self.members[status.node] = status
            if previous is None or previous.state != status.state:
                log.info("node %s (%s) is %s", status.node, status.role, status.state)
            self.counters["nodes_online"] = sum(
                1 for s in self.members.values() if s.state == "online"
            )
