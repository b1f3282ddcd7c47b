"""The coordinator actor: tracks which nodes are alive from their retained status.

It reuses the node lifecycle (nodes/base.py); later steps add the orchestrator and
the schedulers of this package to it.
"""

from __future__ import annotations

import asyncio
import logging

from edgebus.broker.bus import Subscription
from edgebus.messages import ModelSwitch, QosRequest, SchedulingPolicy, Status, to_dict
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
        events = [
            await self.bus.subscribe(pattern, qos=1)
            for pattern in (
                self.topics.qos_request(),
                self.topics.model_switch(),
                self.topics.sched_policies(),
            )
        ]
        recorders = [asyncio.create_task(self._record_events(s)) for s in events]
        self.ready.set()
        try:
            await self._track(statuses)
        finally:
            for task in recorders:
                task.cancel()

    async def _record_events(self, subscription: Subscription) -> None:
        """QoS requests, model switches and policy changes go to the store as events."""
        kinds = {QosRequest: "qos_request", ModelSwitch: "model_switch"}
        async for delivery in subscription:
            message = delivery.message
            if isinstance(message, QosRequest | ModelSwitch | SchedulingPolicy):
                kind = kinds.get(type(message), "policy_change")
                self.record("events", kind=kind, detail=to_dict(message), ts=message.ts)
                self.counters[f"events_{kind}"] += 1

    async def _track(self, statuses: Subscription) -> None:
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
