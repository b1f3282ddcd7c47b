"""The coordinator actor: tracks which nodes are alive from their retained status and,
when a model pool exists (`qos_pool`), runs the QoS orchestrator (orchestrator.py); with
`schedule = "jstsh"` it maps cameras to edges and publishes their policies
(stream_scheduler.py).

It reuses the node lifecycle (actor/lifecycle.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from edgebus.actor.counters import Counts
from edgebus.actor.lifecycle import Node
from edgebus.aio import cancel_and_wait
from edgebus.broker.bus import Subscription
from edgebus.clock import Clock
from edgebus.config import Settings
from edgebus.coordinator.orchestrator import Orchestrator
from edgebus.coordinator.stream_scheduler import StreamScheduler
from edgebus.messages import (
    Heartbeat,
    ModelSwitch,
    QosRequest,
    SchedulingPolicy,
    Status,
    to_dict,
)
from edgebus.qos.model_store import POOL_OFF, ModelPool, PoolError, resolve_pool
from edgebus.storage.records import EventRecord

log = logging.getLogger("edgebus.coordinator")


@dataclass(slots=True)
class CoordinatorCounters(Counts):
    nodes_online: int = 0
    events_qos_request: int = 0
    events_model_switch: int = 0
    events_policy_change: int = 0


class CoordinatorNode(Node):
    role = "coordinator"
    capabilities = ("membership", "qos", "schedule")
    counters: CoordinatorCounters

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        super().__init__(settings, clock)
        self.counters = CoordinatorCounters()
        self.members: dict[str, Status] = {}
        self.orchestrator: Orchestrator | None = None
        self._drift_watch: asyncio.Task[None] | None = None
        self._switch_guard: asyncio.Task[None] | None = None
        self.scheduler: StreamScheduler | None = None
        if self.settings.schedule == "jstsh":
            self.scheduler = StreamScheduler(
                self.bus, self.topics, self.clock, self.settings.schedule_period_s,
                self.settings.heartbeat_s,
            )  # fmt: skip

    def pool_path(self) -> Path | None:
        # The configured pool, else one built under the data folder, else a shipped one
        # (Fashion-MNIST, or accelerometer windows where its images are not installed): a
        # plain `edgebus up` answers `edgebus qos set`. "off" turns the orchestrator off.
        if self.settings.qos_pool == POOL_OFF:
            return None
        return resolve_pool(self.settings.qos_pool, self.settings.data_dir)

    async def _start_orchestrator(self) -> asyncio.Task[None] | None:
        path = self.pool_path()
        if path is None:
            log.info("QoS orchestrator off (qos_pool = %r)", POOL_OFF)
            return None
        try:
            pool = await asyncio.to_thread(ModelPool.load, path)  # reads every model's card
        except PoolError as exc:
            log.warning("QoS orchestrator off: %s", exc)
            return None
        period_s = self.settings.frame_period_ms / 1000.0
        self.orchestrator = Orchestrator(
            self.bus, self.topics, self.node_id, pool, self.clock, self.record,
            frame_rate=1.0 / period_s,
        )  # fmt: skip
        requests = await self.orchestrator.start()
        self._drift_watch = await self.orchestrator.watch_drift()
        self._switch_guard = await self.orchestrator.guard_switches()
        log.info("QoS orchestrator on: %d models from %s", len(pool.models), pool.root)
        self.watch(self._drift_watch)
        self.watch(self._switch_guard)
        return self.supervise(self.orchestrator.run(requests), "orchestrator")

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
        recorders = [self.supervise(self._record_events(s), "events") for s in events]
        orchestrating = await self._start_orchestrator()
        if orchestrating is not None:
            recorders.append(orchestrating)
        if self.scheduler is not None:
            heartbeats = await self.bus.subscribe(self.topics.heartbeats(), qos=0)
            recorders.append(self.supervise(self._feed_heartbeats(heartbeats), "heartbeats"))
            recorders.append(self.supervise(self.scheduler.run(), "scheduler"))
        self.ready.set()
        try:
            await self._track(statuses)
        finally:
            # A task that failed has stopped the node already, with its reason.
            tasks = (*recorders, self._drift_watch, self._switch_guard)
            await cancel_and_wait(tasks, suppress=(Exception,))

    async def _record_events(self, subscription: Subscription) -> None:
        """QoS requests, model switches and policy changes go to the store as events."""
        async for delivery in subscription:
            message = delivery.message
            if isinstance(message, QosRequest):
                kind = "qos_request"
                self.counters.events_qos_request += 1
            elif isinstance(message, ModelSwitch):
                kind = "model_switch"
                self.counters.events_model_switch += 1
            elif isinstance(message, SchedulingPolicy):
                kind = "policy_change"
                self.counters.events_policy_change += 1
            else:
                continue
            self.record(EventRecord(kind=kind, detail=to_dict(message), ts=message.ts))

    async def _feed_heartbeats(self, heartbeats: Subscription) -> None:
        assert self.scheduler is not None
        async for delivery in heartbeats:
            if isinstance(delivery.message, Heartbeat):
                self.scheduler.on_heartbeat(delivery.message)

    async def _track(self, statuses: Subscription) -> None:
        async for delivery in statuses:
            status = delivery.message
            if not isinstance(status, Status):
                continue
            if self.scheduler is not None:
                self.scheduler.on_status(status)
            previous = self.members.get(status.node)
            self.members[status.node] = status
            if previous is None or previous.state != status.state:
                log.info("node %s (%s) is %s", status.node, status.role, status.state)
            self.counters.nodes_online = sum(
                1 for s in self.members.values() if s.state == "online"
            )
