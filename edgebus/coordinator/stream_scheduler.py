"""The coordinator's live camera-to-edge mapping: JSTSH (thesis Ch. 5, Alg. 7) over what
the nodes' monitors publish, applied through retained per-node policies.

Inputs, all from the bus:
- each online edge's retained status: its measured classification capacity (frames/s)
  times its free CPU share, capped by the frames/s its downlink (bytes/s, 0 = unlimited)
  carries, is the device compute PS_i; its free memory is R_max;
- each online camera's retained status: its frame size and rate, and its link rate to each
  edge (a configured per-edge rate, else its uplink trace's mean);
- each node's zone (setting `zone`, e.g. its site behind a bridged broker): each zone is
  planned on its own, since a camera's frames reach only the edges of its zone.
An edge is gone when its status says offline (the broker publishes its LWT the moment a
killed edge's connection drops) or when it has been silent for three heartbeats (a hung
edge whose connection the broker still holds), whichever comes first.

The live pipeline is one stage per frame (decode + classify on the edge), so every stream's
re-ID load is zero and JSTSH reduces to its stage 1: detection placement, weighing upload
time against the compute already placed on each edge. A camera's bandwidth cap is its link
rate, or its proportional share of its edge's downlink when that is the tighter limit.

Policies are recomputed every `period_s`, and at once when a node joins or leaves or an
edge's capacity moves by more than `LOAD_CHANGE`. Plans are sticky: a camera whose edge
is still alive stays there unless JSTSH's fresh plan shortens the round (its makespan) by
more than `MOVE_GAIN`, because every move costs a handover. Only policies that change are
published (retained, QoS 1), each with a higher version.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from edgebus.broker.bus import Bus
from edgebus.clock import Clock
from edgebus.messages import Heartbeat, SchedulingPolicy, Status
from edgebus.scheduling.dcei import (
    DceiInputError,
    DceiProblem,
    Device,
    Stream,
    jstsh,
    round_cost,
)
from edgebus.topics import Topics

log = logging.getLogger("edgebus.stream_scheduler")

ANY_PEER = "*"  # a camera's rate to edges it has no specific rate for
LOAD_CHANGE = 0.3  # relative change of an edge's compute that triggers a new plan
MISSED_HEARTBEATS = 3
MOVE_GAIN = 0.1  # a fresh plan must cut the round's makespan by this much to move cameras
# Memory one deployed strong classifier takes on an edge (MB); re-ID is not deployed live.
MODEL_MEMORY_MB = 8.0
UNLIMITED_BPS = 1e12
# A node's zone travels in its status's capabilities ("zone:site-a"): cameras are mapped
# only to edges of their own zone, since bridged sites never carry frames between them.
ZONE_PREFIX = "zone:"


@dataclass(slots=True)
class Member:
    status: Status
    last_beat: float  # monotonic, at the latest status or heartbeat

    @property
    def online(self) -> bool:
        return self.status.state == "online"


@dataclass(frozen=True, slots=True)
class Plan:
    """Camera -> edge, each camera's bandwidth cap, and the estimated per-frame latency."""

    edge_of: dict[str, str]
    cap_of: dict[str, float]
    latency_s: dict[str, float] = field(default_factory=dict)


def zone_of(status: Status) -> str:
    """The zone a node declared (setting `zone`, e.g. its site), "" for none."""
    return next((c[len(ZONE_PREFIX) :] for c in status.capabilities
                 if c.startswith(ZONE_PREFIX)), "")  # fmt: skip


def _edge_compute(status: Status) -> float:
    """Frames/s the edge classifies now: its measured capacity times its free CPU share."""
    r = status.resources
    capacity = r.get("capacity_fps", 0.0)
    # Never zero: an edge that is busy right now still classifies, only slower.
    return max(capacity * max(r.get("cpu_free", 1.0), 0.05), 1e-3)


def _edge_service_rate(status: Status, frame_bytes: float) -> float:
    """Frames/s the edge can serve: classification, or its ingress if that is narrower.
    Serving the downlink like the classifier makes cameras that share a narrow downlink
    queue in JSTSH's round, so the plan spreads them instead of leaving it to the caps."""
    downlink = status.resources.get("downlink_bps", 0.0)
    rate = _edge_compute(status)
    if downlink > 0 and frame_bytes > 0:
        rate = min(rate, downlink / frame_bytes)
    return rate


def _camera_rate(status: Status, edge: str) -> float:
    links = status.links_bps
    return links.get(edge) or links.get(ANY_PEER) or UNLIMITED_BPS


def build_problem(edges: list[Status], cameras: list[Status]) -> DceiProblem:
    """The DCEI instance of the fleet as its monitors describe it."""
    sizes = [c.resources.get("frame_bytes", 0.0) for c in cameras]
    mean_frame = float(np.mean(sizes)) if sizes else 0.0
    devices = tuple(
        Device(
            s.node,
            _edge_service_rate(s, mean_frame),
            max(s.resources.get("memory_free_mb", 0.0), 0.0),
        )
        for s in edges
    )
    streams = tuple(Stream(s.node, 1.0, 0.0, 0.0) for s in cameras)
    upload = np.empty((len(edges), len(cameras)))
    for i, edge in enumerate(edges):
        for k, camera in enumerate(cameras):
            frame_bytes = camera.resources.get("frame_bytes", 0.0)
            upload[i, k] = frame_bytes / _camera_rate(camera, edge.node)
    rates = np.full((len(edges), len(edges)), UNLIMITED_BPS)
    return DceiProblem(devices, streams, upload, rates, MODEL_MEMORY_MB, MODEL_MEMORY_MB)


def _place_rest(problem: DceiProblem, detect: list[int | None]) -> tuple[int, ...]:
    """Complete a partial mapping: each unplaced camera, heaviest first, goes to the edge
    where the round of the cameras placed so far ends soonest (JSTSH's stage 1 step)."""
    placed = list(detect)
    for stream in problem.workload_order():
        if placed[stream] is not None:
            continue

        def cost(device: int, stream: int = stream) -> tuple[float, float]:
            placed[stream] = device
            return round_cost(problem, placed, placed)

        placed[stream] = min(range(problem.num_devices), key=cost)
    return tuple(int(device) for device in placed if device is not None)


def caps_for(plan_edges: dict[str, str], edges: dict[str, Status],
             cameras: dict[str, Status]) -> dict[str, float]:  # fmt: skip
    """Each camera's bandwidth: its link rate, or its share of the edge's downlink in
    proportion to its demand (frame bytes x frame rate) when the downlink is tighter."""
    caps: dict[str, float] = {}
    for edge_id, edge in edges.items():
        mine = [c for c, e in plan_edges.items() if e == edge_id]
        demand = {c: _demand(cameras[c]) for c in mine}
        downlink = edge.resources.get("downlink_bps", 0.0)
        total = sum(demand.values())
        for camera in mine:
            cap = _camera_rate(cameras[camera], edge_id)
            if downlink > 0 and total > 0:
                cap = min(cap, downlink * demand[camera] / total)
            caps[camera] = cap
    return caps


def _demand(camera: Status) -> float:
    r = camera.resources
    return max(r.get("frame_bytes", 0.0) * r.get("frame_rate", 0.0), 1e-9)


class StreamScheduler:
    def __init__(
        self, bus: Bus, topics: Topics, clock: Clock, period_s: float = 10.0,
        heartbeat_s: float = 5.0,
    ) -> None:  # fmt: skip
        self.bus = bus
        self.topics = topics
        self.clock = clock
        self.period_s = period_s
        self.heartbeat_s = heartbeat_s
        self.members: dict[str, Member] = {}
        self.plan: Plan | None = None
        self.published: dict[str, SchedulingPolicy] = {}
        self.version = 0
        self.plans = 0
        self._dirty = True
        self._compute_seen: dict[str, float] = {}

    # -- inputs -------------------------------------------------------------------------

    def on_status(self, status: Status) -> None:
        previous = self.members.get(status.node)
        self.members[status.node] = Member(status, self.clock.monotonic())
        was_online = previous is not None and previous.online
        if status.role in ("edge", "camera") and was_online != (status.state == "online"):
            self._dirty = True  # joined or left
        if status.role == "edge" and status.state == "online":
            compute = _edge_compute(status)
            seen = self._compute_seen.get(status.node)
            if seen is None or abs(compute - seen) > LOAD_CHANGE * seen:
                self._compute_seen[status.node] = compute
                self._dirty = self._dirty or seen is not None  # a load change

    def on_heartbeat(self, beat: Heartbeat) -> None:
        member = self.members.get(beat.node)
        if member is not None:
            member.last_beat = self.clock.monotonic()

    def _alive(self, role: str) -> dict[str, Status]:
        now = self.clock.monotonic()
        limit = MISSED_HEARTBEATS * self.heartbeat_s
        alive: dict[str, Status] = {}
        for node, member in sorted(self.members.items()):
            if member.status.role != role or not member.online:
                continue
            # An edge silent for two heartbeats is gone, even before its LWT arrives.
            if role == "edge" and now - member.last_beat > limit:
                continue
            alive[node] = member.status
        return alive

    def due(self) -> bool:
        """A plan is due: something changed, or an edge went silent."""
        if self._dirty:
            return True
        if self.plan is None:
            return False
        live = set(self._alive("edge"))
        return any(edge not in live for edge in self.plan.edge_of.values())

    # -- planning -----------------------------------------------------------------------

    @staticmethod
    def _plan_for(
        edges: dict[str, Status], cameras: dict[str, Status], current: Plan | None
    ) -> Plan | None:
        """The plan for these live nodes, each zone planned on its own (a camera's frames
        reach only the edges of its zone: its site's broker); pure, so it runs in a worker
        thread (JSTSH takes a quarter of a second at 64 cameras on 8 edges)."""
        merged = Plan({}, {})
        for zone in sorted({zone_of(s) for s in cameras.values()}):
            part = StreamScheduler._plan_zone(
                {n: s for n, s in edges.items() if zone_of(s) == zone},
                {n: s for n, s in cameras.items() if zone_of(s) == zone},
                current,
            )
            if part is None:
                return None
            merged.edge_of.update(part.edge_of)
            merged.cap_of.update(part.cap_of)
            merged.latency_s.update(part.latency_s)
        return merged

    @staticmethod
    def _plan_zone(
        edges: dict[str, Status], cameras: dict[str, Status], current: Plan | None
    ) -> Plan | None:
        if not edges or not cameras:
            return Plan({}, {})
        try:
            problem = build_problem(list(edges.values()), list(cameras.values()))
            detect = _sticky(problem, jstsh(problem).detect, current)
        except DceiInputError as exc:
            log.error("no stream plan: %s", exc)
            return None
        names = [d.name for d in problem.devices]
        edge_of = {s.name: names[i] for s, i in zip(problem.streams, detect, strict=True)}
        latency = {
            s.name: float(problem.upload_s[i, k] + problem.detect_s[i, k])
            for k, (s, i) in enumerate(zip(problem.streams, detect, strict=True))
        }
        return Plan(edge_of, caps_for(edge_of, edges, cameras), latency)

    def policies(self, plan: Plan) -> dict[str, SchedulingPolicy]:
        """One policy per known edge and camera; an edge or camera without a part in the
        plan gets an empty one, so a restarted node never acts on a stale retained copy."""
        now = self.clock.time()
        out: dict[str, SchedulingPolicy] = {}
        for node, member in self.members.items():
            role = member.status.role
            if role == "camera":
                edge = plan.edge_of.get(node, "")
                caps = {edge: plan.cap_of[node]} if edge else {}
                route = [node, edge] if edge else []
                tasks = ["capture", "encode"] if edge else []
                out[node] = SchedulingPolicy(node, 0, tasks, [node], edge, route, caps, now)
            elif role == "edge":
                mine = sorted(c for c, e in plan.edge_of.items() if e == node)
                caps = {c: plan.cap_of[c] for c in mine}
                tasks = [f"classify:{c}" for c in mine]
                out[node] = SchedulingPolicy(node, 0, tasks, mine, "", [], caps, now)
        return out

    async def replan(self) -> int:
        """Compute and publish what changed; returns how many policies went out."""
        self._dirty = False
        edges, cameras = self._alive("edge"), self._alive("camera")
        plan = await asyncio.to_thread(self._plan_for, edges, cameras, self.plan)
        if plan is None:
            return 0
        self.plan = plan
        self.plans += 1
        sent = 0
        for node, policy in self.policies(plan).items():
            previous = self.published.get(node)
            if previous is not None and _same(previous, policy):
                continue
            self.version += 1
            policy.version = self.version
            await self.bus.publish(self.topics.sched_policy(node), policy, qos=1, retain=True)
            self.published[node] = policy  # the coordinator records it as an event
            sent += 1
        if sent:
            mapping = ", ".join(f"{c}->{e}" for c, e in sorted(plan.edge_of.items()))
            log.info("stream plan: %s", mapping or "empty")
        return sent

    async def run(self) -> None:
        """Replan on changes (checked every 0.1 s) and every period."""
        last = -math.inf
        while True:
            now = self.clock.monotonic()
            if self.due() or now - last >= self.period_s:
                last = now
                await self.replan()
            await self.clock.sleep(0.1)


def _sticky(problem: DceiProblem, fresh: tuple[int, ...], plan: Plan | None) -> tuple[int, ...]:
    """JSTSH's placement, or the current plan's with the cameras that lost (or never had)
    an edge placed one by one where the round grows least, when moving the others would
    not shorten the round by MOVE_GAIN."""
    if plan is None:
        return fresh
    names = [d.name for d in problem.devices]
    current = [
        names.index(edge) if (edge := plan.edge_of.get(s.name)) in names else None
        for s in problem.streams
    ]
    kept = _place_rest(problem, current)
    if kept == fresh:
        return fresh
    # Re-ID is not placed live: every stream's (zero-load) re-ID stays local.
    fresh_makespan = round_cost(problem, fresh, fresh)[0]
    kept_makespan = round_cost(problem, kept, kept)[0]
    return fresh if fresh_makespan < (1 - MOVE_GAIN) * kept_makespan else kept


def _same(a: SchedulingPolicy, b: SchedulingPolicy) -> bool:
    caps_equal = a.bandwidth_caps_bps.keys() == b.bandwidth_caps_bps.keys() and all(
        math.isclose(a.bandwidth_caps_bps[k], b.bandwidth_caps_bps[k], rel_tol=0.05)
        for k in a.bandwidth_caps_bps
    )
    return (a.tasks, a.streams, a.next_hop, a.route) == (
        b.tasks, b.streams, b.next_hop, b.route
    ) and caps_equal  # fmt: skip
