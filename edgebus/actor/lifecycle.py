"""Node lifecycle shared by every role: connect, announce, heartbeat, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from edgebus import __version__
from edgebus.actor.connect import bus_for
from edgebus.actor.counters import Counts
from edgebus.actor.monitor import ResourceMonitor
from edgebus.aio import cancel_and_wait, failure
from edgebus.broker.bus import BusError
from edgebus.broker.transport import Will
from edgebus.clock import Clock, RealClock
from edgebus.config import Settings
from edgebus.errors import NodeFailed
from edgebus.messages import Heartbeat, Result, Status, encode
from edgebus.storage.records import ResultRecord, StatusRecord, StoreRecord
from edgebus.storage.runtime import NodeStorage
from edgebus.topics import Topics

if TYPE_CHECKING:
    from edgebus.actor.metrics import MetricsEndpoint

log = logging.getLogger("edgebus.node")


class Node:
    """An actor on the bus. Subclasses implement `main()` and may extend `stats()`."""

    role: ClassVar[str] = ""
    capabilities: ClassVar[tuple[str, ...]] = ()
    # Nodes that must not miss QoS 1 traffic while they restart keep a broker session.
    persistent_session: ClassVar[bool] = True

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or RealClock()
        self.node_id = settings.node_id
        self.counters = Counts()  # each role sets its own
        self.topics = Topics(settings.site)
        # The broker publishes this retained copy if we vanish without saying goodbye.
        offline = Status(self.node_id, self.role, "offline", __version__, self.declared())
        will = Will(self.topics.status(self.node_id), encode(offline), qos=1, retain=True)
        self.bus = bus_for(settings, will=will, persistent=self.persistent_session)
        # A broker that crashed forgot every retained status: say ours again at once.
        self.bus.on_reconnect.append(self._announce_again)
        self._online = False
        self._heartbeat_seq = 0
        self.monitor = ResourceMonitor()
        # Every node keeps its own record, synced to the global store (storage/).
        self.storage = NodeStorage(settings, self.bus) if settings.store_enabled else None
        self.stopping = asyncio.Event()
        # Set once the node's subscriptions are in place, so a launcher can start
        # producers only after their consumers listen.
        self.ready = asyncio.Event()
        # Why the node stopped on its own: a supervised task failed (see supervise()).
        self.failure: str | None = None
        # Prometheus /metrics while running, when metrics_port is set (actor/metrics.py).
        self.metrics: MetricsEndpoint | None = None

    def supervise(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run one of the node's tasks so that it cannot die quietly: if it fails, the node
        logs why, stops, and goes offline with the reason (and `run` raises NodeFailed).
        A node that looks online while its classifier or sender is dead is the worst case."""
        return self.watch(asyncio.create_task(coroutine, name=f"{self.node_id}-{name}"))

    def watch(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """Supervise a task a component of this node started (see supervise())."""
        task.add_done_callback(self._task_ended)
        return task

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if self.failure is None:
            self.failure = f"{task.get_name()} failed: {type(exc).__name__}: {exc}"[:300]
            log.error("%s; stopping %s", self.failure, self.node_id, exc_info=exc)
        self.stopping.set()

    async def main(self) -> None:
        """The role's work; runs until cancelled. Sets `ready` once it listens."""
        self.ready.set()
        await self.stopping.wait()

    async def on_stop(self) -> None:
        """Finish in-flight work before the offline status goes out."""

    async def start_services(self) -> None:
        """Role services that must run before the node's own storage starts syncing."""

    async def stop_services(self) -> None:
        """Stop what start_services started, after the node's final sync."""

    def service_tasks(self) -> list[asyncio.Task[None]]:
        """The long-running tasks of what start_services started: supervised like the
        node's own, so a dead outcome tracker or model follower stops the node loudly."""
        return []

    def record(self, record: StoreRecord) -> None:
        """Append a row to the local store (a no-op when storage is disabled)."""
        if self.storage is not None:
            self.storage.record(record)

    def record_result(self, result: Result) -> None:
        """A result this node published, as its `results` row."""
        self.record(ResultRecord.of(result))

    def stats(self) -> dict[str, float]:
        stats = self.counters.as_stats()
        if self.storage is not None:
            stats.update(self.storage.stats())
        return stats

    def resources(self) -> dict[str, float]:
        """What the monitor reports; roles add their own measurements."""
        return self.monitor.snapshot()

    def declared(self) -> list[str]:
        """The capabilities the status announces: the role's, and the node's zone (its
        site), by which the coordinator keeps cameras on edges they can reach."""
        zone = [f"zone:{self.settings.zone}"] if self.settings.zone else []
        return [*self.capabilities, *zone]

    def models_loaded(self) -> list[str]:
        return []

    def link_rates(self) -> dict[str, float]:
        """Bytes/s to each peer this node knows a rate for."""
        return {}

    def status(self, state: str) -> Status:
        online = state == "online"
        return Status(
            self.node_id,
            self.role,
            state,
            __version__,
            self.declared(),
            ts=self.clock.time(),
            resources=self.resources() if online else {},
            models=self.models_loaded() if online else [],
            links_bps=self.link_rates() if online else {},
        )

    async def _start_metrics(self) -> MetricsEndpoint | None:
        if self.settings.metrics_port <= 0:
            return None
        # Imported here: prometheus_client costs a node that serves no metrics ~12 MB.
        from edgebus.actor.metrics import start_metrics

        return await start_metrics(self)

    async def _stop_metrics(self) -> None:
        if self.metrics is not None:  # then actor.metrics is imported already
            from edgebus.actor.metrics import stop_metrics

            await stop_metrics(self.metrics)

    async def run(self, connect_timeout: float | None = None) -> None:
        """Connect, work until stop() (or SIGINT/SIGTERM in the CLI), then shut down."""
        await self.bus.start(timeout=connect_timeout)
        try:
            self.metrics = await self._start_metrics()
            await self.start_services()
            if self.storage is not None:
                await self.storage.start()
                for task in self.storage.tasks:
                    self.watch(task)
            for task in self.service_tasks():
                self.watch(task)
        except BaseException:
            await self.stop_services()
            await self._stop_metrics()
            await self.bus.close(flush_timeout=0)
            raise
        work = asyncio.create_task(self.main(), name=f"{self.node_id}-main")
        stop = asyncio.create_task(self.stopping.wait())
        heartbeat: asyncio.Task[None] | None = None
        try:
            # "online" means listening: a producer that waits for a consumer's online
            # status cannot publish into a subscription that does not exist yet.
            ready = asyncio.create_task(self.ready.wait())
            await asyncio.wait({ready, work, stop}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if self.ready.is_set():
                self._online = True
                self.record(StatusRecord(role=self.role, state="online", stats={}))
                await self.bus.publish(
                    self.topics.status(self.node_id), self.status("online"), qos=1, retain=True
                )
                log.info("%s %s online at %s", self.role, self.node_id, self.bus.address.url)
                heartbeat = self.supervise(self._heartbeat(), "heartbeat")
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if (failed := failure(work)) is not None:
                raise failed
        finally:
            # main()'s own failure was raised above; the shutdown below must still run.
            await cancel_and_wait((work, stop, heartbeat), suppress=(Exception,))
            await self.on_stop()
            self.record(StatusRecord(role=self.role, state="offline", stats=self.stats()))
            if self.storage is not None:
                await self.storage.stop()
            await self.stop_services()
            await self._publish_heartbeat()
            offline = self.status("offline")
            offline.reason = self.failure or ""
            with contextlib.suppress(BusError):
                await self.bus.publish(
                    self.topics.status(self.node_id), offline, qos=1, retain=True
                )
            await self.bus.close(flush_timeout=5)
            await self._stop_metrics()
            log.info("%s %s stopped", self.role, self.node_id)
        if self.failure is not None:
            raise NodeFailed(f"{self.role} {self.node_id}: {self.failure}")

    def stop(self) -> None:
        self.stopping.set()

    async def _announce_again(self, session_present: bool) -> None:
        if self._online and not self.stopping.is_set():
            await self.bus.publish(
                self.topics.status(self.node_id), self.status("online"), qos=1, retain=True
            )

    async def _heartbeat(self) -> None:
        while True:
            await self.clock.sleep(self.settings.heartbeat_s)
            await self._publish_heartbeat()
            # The retained status carries the monitor's figures; schedulers read them. A
            # role hook that fails here fails the heartbeat, which stops the node loudly.
            with contextlib.suppress(BusError):
                await self.bus.publish(
                    self.topics.status(self.node_id), self.status("online"), qos=1, retain=True
                )
            self.record(StatusRecord(role=self.role, state="online", stats=self.stats()))

    async def _publish_heartbeat(self) -> None:
        self._heartbeat_seq += 1
        beat = Heartbeat(
            self.node_id, self.role, self._heartbeat_seq, self.stats(), ts=self.clock.time()
        )
        with contextlib.suppress(BusError):
            await self.bus.publish(self.topics.heartbeat(self.node_id), beat, qos=0)
