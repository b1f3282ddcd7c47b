"""Nodes applying the coordinator's scheduling policy (DCEI on the bus).

- A camera follows its retained `sched/policy/<camera>`: `next_hop` names the edge its
  frames go to and `bandwidth_caps_bps[edge]` the rate it may use. Each edge is reached
  over its own emulated link (the camera's `link` trace, or a `peer_links` rate for that
  edge), capped by the allocation: the link emulator enforces the mapping's bandwidth.
- An edge follows `sched/policy/<edge>`: `streams` lists the cameras whose frames it
  subscribes to; the subscriptions change with the policy.
- Like every camera, one under a policy follows each frame to its outcome
  (`frame_outcomes.py`): a frame whose edge died, or that had no edge, gets an explicit
  `FrameDropped` record, published and stored, so no frame is silently lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edgebus.aio import cancel_and_wait
from edgebus.broker.bus import Bus, Delivery, Subscription
from edgebus.broker.link import BandwidthTrace, LinkEmulator
from edgebus.clock import Clock
from edgebus.config import parse_peer_links
from edgebus.messages import SchedulingPolicy
from edgebus.topics import Topics

log = logging.getLogger("edgebus.stream_policy")

# What a camera reports for edges it has no configured rate to: its uplink trace's mean.
ANY_PEER = "*"


class CameraRoute:
    """Which edge this camera's frames go to, over which emulated link."""

    def __init__(
        self, uplink: BandwidthTrace | None, peer_rates: dict[str, float], clock: Clock
    ) -> None:
        self.uplink = uplink
        self.peer_rates = peer_rates
        self.clock = clock
        self.edge: str | None = None
        self.cap: float | None = None
        self.version = -1
        self._links: dict[str, LinkEmulator] = {}

    def _trace_to(self, edge: str) -> BandwidthTrace | None:
        rate = self.peer_rates.get(edge)
        return BandwidthTrace.constant(rate, name=f"to {edge}") if rate else self.uplink

    def apply(self, policy: SchedulingPolicy) -> bool:
        """Adopt a policy; True when the edge or the cap changed."""
        if policy.version <= self.version:
            return False  # a stale retained copy
        self.version = policy.version
        edge = policy.next_hop or None
        cap = policy.bandwidth_caps_bps.get(edge or "")
        changed = (edge, cap) != (self.edge, self.cap)
        self.edge, self.cap = edge, cap
        if edge is not None:
            trace = self._trace_to(edge)
            if trace is not None and cap:
                trace = trace.capped(cap)
            elif trace is None and cap:
                trace = BandwidthTrace.constant(cap, name=f"to {edge}")
            if trace is not None:
                # One radio per edge: the emulator keeps its own busy time across policies.
                link = self._links.get(edge)
                if link is None:
                    self._links[edge] = LinkEmulator(trace, self.clock)
                else:
                    link.trace = trace
        return changed

    def link_to(self, edge: str | None) -> LinkEmulator | None:
        """The emulated link to an edge (None: unpaced, or no edge)."""
        return self._links.get(edge) if edge else None

    def rates(self) -> dict[str, float]:
        """Bytes/s to each edge this camera knows, for its retained status."""
        out = dict(self.peer_rates)
        if self.uplink is not None:
            out[ANY_PEER] = self.uplink.mean_rate()
        return out


class EdgeStreams:
    """The camera streams an edge subscribes to, following its policy."""

    def __init__(
        self, bus: Bus, topics: Topics, on_delivery: Callable[[Delivery], None],
        linger_s: float = 2.0, watch: Callable[[asyncio.Task[None]], object] | None = None,
    ) -> None:  # fmt: skip
        self.bus = bus
        self.topics = topics
        self.on_delivery = on_delivery
        # The node's supervision: a pump that dies of a bug stops the edge, loudly,
        # rather than leaving one camera's frames unread while the edge looks online.
        self.watch = watch
        # A camera handed to another edge may still be sending frames captured for this
        # one; its subscription stays this long so those frames still arrive here.
        self.linger_s = linger_s
        self.version = -1
        self.wanted: set[str] = set()
        self._streams: dict[str, tuple[Subscription, asyncio.Task[None]]] = {}
        self._leaving: dict[str, asyncio.Task[None]] = {}

    @property
    def cameras(self) -> list[str]:
        return sorted(self.wanted)

    async def apply(self, policy: SchedulingPolicy) -> bool:
        if policy.version <= self.version:
            return False
        self.version = policy.version
        self.wanted = set(policy.streams)
        for camera in set(self._streams) - self.wanted:
            if camera not in self._leaving:
                self._leaving[camera] = asyncio.create_task(self._leave(camera))
        for camera in sorted(self.wanted):
            leaving = self._leaving.pop(camera, None)
            if leaving is not None:
                leaving.cancel()  # handed back before it left: keep the subscription
            if camera not in self._streams:
                subscription = await self.bus.subscribe(self.topics.frames(camera), qos=1)
                pump = asyncio.create_task(self._pump(subscription), name=f"frames-{camera}")
                if self.watch is not None:
                    self.watch(pump)
                self._streams[camera] = (subscription, pump)
        log.info("streams now %s (policy v%d)", ", ".join(self.cameras) or "none", self.version)
        return True

    async def _leave(self, camera: str) -> None:
        await asyncio.sleep(self.linger_s)
        self._leaving.pop(camera, None)
        subscription, pump = self._streams.pop(camera)
        pump.cancel()
        await subscription.close()

    async def _pump(self, subscription: Subscription) -> None:
        async for delivery in subscription:
            self.on_delivery(delivery)

    async def close(self) -> None:
        for leaving in self._leaving.values():
            leaving.cancel()
        self._leaving.clear()
        for subscription, pump in self._streams.values():
            pump.cancel()
            await subscription.close()
        self._streams.clear()


class CameraSchedule:
    """A camera's side of the scheduling policy: the route its frames take and the policy
    it follows."""

    def __init__(
        self, bus: Bus, topics: Topics, camera: str, clock: Clock,
        uplink: BandwidthTrace | None, peer_links: str,
    ) -> None:  # fmt: skip
        self.bus = bus
        self.topics = topics
        self.camera = camera
        self.route = CameraRoute(uplink, parse_peer_links(peer_links), clock)
        self.policy_changes = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        policies = await self.bus.subscribe(self.topics.sched_policy(self.camera), qos=1)
        self._task = asyncio.create_task(self._follow(policies), name=f"{self.camera}-policy")

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The long-running task start() began, for the node to supervise."""
        return (self._task,) if self._task is not None else ()

    async def stop(self) -> None:
        await cancel_and_wait((self._task,), suppress=(Exception,))

    @property
    def edge(self) -> str | None:
        return self.route.edge

    async def _follow(self, policies: Subscription) -> None:
        async for delivery in policies:
            policy = delivery.message
            if isinstance(policy, SchedulingPolicy) and self.route.apply(policy):
                self.policy_changes += 1
                cap = self.route.cap
                log.info("%s now sends to %s%s", self.camera, self.route.edge or "no edge",
                         f" at <= {cap:,.0f} B/s" if cap else "")  # fmt: skip
