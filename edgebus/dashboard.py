"""A live view of the fleet, built only from what nodes publish on the bus."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from rich.table import Table

from edgebus.broker.bus import Bus, Subscription
from edgebus.messages import FrameDropped, Heartbeat, Result, SchedulingPolicy, Status

NAME_WIDTH = 12  # "coordinator" fits; longer ids fold
# Results per camera that the rolling units and accuracy columns average over.
RECENT_RESULTS = 20

# Which counter is a role's "frames" and which its "bytes".
FRAME_COUNTER = {"camera": "frames_sent", "edge": "frames_done", "cloud": "results_seen"}
BYTE_COUNTER = {"camera": "bytes_sent", "edge": "bytes_received", "cloud": "bytes_reported"}


@dataclass(slots=True)
class NodeRow:
    node: str
    role: str = "?"
    state: str = "?"
    stats: dict[str, float] = field(default_factory=dict)
    stats_ts: float = 0.0
    first_ts: float = 0.0
    frames_per_s: float = 0.0
    bytes_per_s: float = 0.0
    last_result: str = ""
    assigned: str = ""  # a camera's edge under the scheduling policy
    # (units received, top-1 correct or None when the label is unknown), newest last
    recent: deque[tuple[int, bool | None]] = field(
        default_factory=lambda: deque(maxlen=RECENT_RESULTS)
    )
    # The same over the whole run, for the summary: results, units, scored, correct.
    run: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def add_result(self, units: int, hit: bool | None) -> None:
        self.recent.append((units, hit))
        self.run[0] += 1
        self.run[1] += units
        if hit is not None:
            self.run[2] += 1
            self.run[3] += int(hit)

    def recent_text(self) -> tuple[str, str]:
        """Mean units per frame and top-1 accuracy over the camera's recent results."""
        if not self.recent:
            return "-", "-"
        units = sum(u for u, _ in self.recent) / len(self.recent)
        scored = [hit for _, hit in self.recent if hit is not None]
        accuracy = f"{100 * sum(scored) / len(scored):.0f}%" if scored else "-"
        return f"{units:.1f}", accuracy

    def run_text(self) -> tuple[str, str]:
        """Mean units per frame and top-1 accuracy over every result of the run."""
        results, units, scored, correct = self.run
        if not results:
            return "-", "-"
        accuracy = f"{100 * correct / scored:.0f}%" if scored else "-"
        return f"{units / results:.1f}", accuracy

    def counter(self, name: str) -> float:
        return self.stats.get(name, 0.0)

    @property
    def frames(self) -> float:
        return self.counter(FRAME_COUNTER.get(self.role, ""))

    @property
    def bytes(self) -> float:
        return self.counter(BYTE_COUNTER.get(self.role, ""))

    def offload_text(self) -> str:
        """Frames offloaded of those decided, and the tokens left, for a camera under a
        token bucket."""
        decided = self.counter("offload_decisions")
        if not decided:
            return "-"
        tokens = self.stats.get("bucket_tokens")
        left = f" · {tokens:.1f} tk" if tokens is not None else ""
        return f"{int(self.counter('frames_offloaded'))}/{int(decided)}{left}"

    def deadline_text(self) -> str:
        hits, misses = self.counter("deadline_hits"), self.counter("deadline_misses")
        if hits + misses == 0:
            return "-"
        return f"{int(hits)}/{int(hits + misses)} ({100 * hits / (hits + misses):.0f}%)"


class FleetView:
    def __init__(self) -> None:
        self.rows: dict[str, NodeRow] = {}
        self.results = 0
        self.dropped = 0
        self.latency_ms_sum = 0.0
        self.edge_of: dict[str, str] = {}  # camera -> edge, from the scheduling policies
        self._failed: tuple[str, float, set[str]] | None = None  # edge, when, its cameras
        self.failover_s: float | None = None

    def mark_failed(self, edge: str, ts: float) -> None:
        """An edge was killed at `ts`: time how long its cameras wait for a new edge."""
        self._failed = (edge, ts, {c for c, e in self.edge_of.items() if e == edge})

    def on_policy(self, policy: SchedulingPolicy) -> None:
        if policy.streams != [policy.node]:
            return  # an edge's policy; a camera's own says where its stream goes
        self.edge_of[policy.node] = policy.next_hop
        if policy.next_hop:  # an offline camera's empty policy keeps its last edge shown
            self._row(policy.node).assigned = policy.next_hop
        if self._failed is not None and self.failover_s is None:
            edge, since, cameras = self._failed
            moved = all(self.edge_of.get(c, edge) not in (edge, "") for c in cameras)
            if moved and policy.ts >= since:
                self.failover_s = policy.ts - since

    def on_dropped(self, dropped: FrameDropped) -> None:
        self.dropped += 1
        self._row(dropped.camera).last_result = f"#{dropped.frame_id} dropped"

    def _row(self, node: str) -> NodeRow:
        row = self.rows.get(node)
        if row is None:
            row = self.rows[node] = NodeRow(node)
        return row

    def on_status(self, status: Status) -> None:
        row = self._row(status.node)
        row.role, row.state = status.role, status.state

    def on_heartbeat(self, beat: Heartbeat, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        row = self._row(beat.node)
        row.role = beat.role
        if row.state == "?":
            row.state = "online"
        if row.stats_ts:
            elapsed = max(1e-6, now - row.stats_ts)
            frames_key = FRAME_COUNTER.get(row.role, "")
            bytes_key = BYTE_COUNTER.get(row.role, "")
            row.frames_per_s = (beat.stats.get(frames_key, 0.0) - row.counter(frames_key)) / elapsed
            row.bytes_per_s = (beat.stats.get(bytes_key, 0.0) - row.counter(bytes_key)) / elapsed
        row.stats, row.stats_ts = dict(beat.stats), now
        row.first_ts = row.first_ts or now

    def average_rates(self, row: NodeRow, duration_s: float) -> tuple[float, float]:
        seconds = max(1e-6, duration_s)
        return row.frames / seconds, row.bytes / seconds

    def on_result(self, result: Result) -> None:
        self.results += 1
        self.latency_ms_sum += result.latency_ms
        # A classifier's name for the class where it has one ("espresso"), else its index;
        # the first of a WordNet lemma's synonyms is enough in a table cell.
        if result.names:
            top: str | int = result.names[0].split(",")[0]
        else:
            top = result.top_k[0] if result.top_k else "-"
        text = f"{result.camera}#{result.frame_id}→{top} {result.latency_ms:.0f}ms"
        self._row(result.node).last_result = text
        camera = self._row(result.camera)
        camera.last_result = text
        known = result.label >= 0 and bool(result.top_k)
        hit = result.top_k[0] == result.label if known else None
        camera.add_result(result.units_received, hit)

    def table(
        self, title: str = "edgebus fleet", duration_s: float | None = None,
        deadline_ms: float | None = None,
    ) -> Table:  # fmt: skip
        """Live rates and the recent results, or with duration_s the averages over the
        whole run. The title names the frames' deadline when deadline_ms is given."""
        if deadline_ms is not None:
            title = f"{title} · deadline {deadline_ms:g} ms per frame"
        over = f"last {RECENT_RESULTS}" if duration_s is None else "run"
        table = Table(title=title)
        numeric = {"frames/s", "bytes/s", "frames", "bytes"}
        for column in (
            "node",
            "role",
            "state",
            "frames/s",
            "bytes/s",
            "frames",
            "bytes",
            "deadline hits",
            "offloaded · bucket",
            "link B/s",
            f"units/frame ({over})",
            f"top-1 ({over})",
            "last result",
        ):
            table.add_column(
                column,
                justify="right" if column in numeric else "left",
                overflow="fold",
                # Node ids and roles are what a reader looks for: never folded mid-name.
                min_width=NAME_WIDTH if column in ("node", "role") else None,
            )
        for row in sorted(self.rows.values(), key=lambda r: (r.role, r.node)):
            frames_per_s, bytes_per_s = (
                (row.frames_per_s, row.bytes_per_s)
                if duration_s is None
                else self.average_rates(row, duration_s)
            )
            table.add_row(
                f"{row.node} → {row.assigned}" if row.assigned else row.node,
                row.role,
                row.state,
                f"{frames_per_s:.1f}",
                f"{bytes_per_s:,.0f}",
                f"{int(row.frames)}",
                f"{int(row.bytes):,}",
                row.deadline_text(),
                row.offload_text(),
                f"{row.counter('link_rate'):,.0f}" if "link_rate" in row.stats else "-",
                *(row.recent_text() if duration_s is None else row.run_text()),
                row.last_result,
            )
        return table

    def totals(self) -> dict[str, float]:
        def total(role: str, counter: str) -> float:
            return sum(r.counter(counter) for r in self.rows.values() if r.role == role)

        return {
            "frames_sent": total("camera", "frames_sent"),
            "frames_classified": total("edge", "frames_done"),
            "deadline_hits": total("edge", "deadline_hits"),
            "results_seen_by_cloud": total("cloud", "results_seen"),
            "frames_offloaded": total("camera", "frames_offloaded"),
            "camera_local_results": total("camera", "local_results"),
            "results_on_bus": float(self.results),
            "frames_dropped": float(self.dropped),
            **({"failover_s": self.failover_s} if self.failover_s is not None else {}),
            "mean_latency_ms": self.latency_ms_sum / self.results if self.results else 0.0,
        }


async def follow(bus: Bus, view: FleetView) -> None:
    """Feed the view from status, heartbeat and result topics until cancelled."""
    subscriptions = [
        await bus.subscribe(bus.topics.statuses(), qos=1),
        await bus.subscribe(bus.topics.heartbeats(), qos=0),
        await bus.subscribe(bus.topics.results(), qos=0),
        await bus.subscribe(bus.topics.droppeds(), qos=1),
        await bus.subscribe(bus.topics.sched_policies(), qos=1),
    ]

    async def pump(subscription: Subscription) -> None:
        async for delivery in subscription:
            message = delivery.message
            if isinstance(message, Status):
                view.on_status(message)
            elif isinstance(message, Heartbeat):
                view.on_heartbeat(message)
            elif isinstance(message, Result):
                view.on_result(message)
            elif isinstance(message, FrameDropped):
                view.on_dropped(message)
            elif isinstance(message, SchedulingPolicy):
                view.on_policy(message)

    await asyncio.gather(*(pump(s) for s in subscriptions))
