"""A camera's frames awaiting their outcome, until each has exactly one record.

The camera is the only node that knows every frame it captured, so it sees each one
through to a record in some store:

- A frame sent to an edge is answered on `outcome/<camera>` once the edge has stored its
  result or its dropped record. Without an answer the camera sends the frame's end
  marker again (attempt 1, 2, ... with backoff); the edge answers from its ledger, or
  decides a frame it never saw as dropped. Broker crashes, lost sessions and lost end
  markers therefore end in a record, not in silence.
- The camera writes the dropped record itself only where no edge will: the frame never
  left (no edge assigned, the send failed), the edge refused it, the edge it went to
  has been offline for `edge_lost_s`, or no answer came within `give_up_s` while that
  edge (any edge, for a frame addressed to none) said nothing at all for as long. An edge
  that keeps answering other frames is slow, not gone: the camera keeps asking, up to
  `patience_s`, because its answer may still be on the way and a drop recorded here
  would then be a second record.
- The camera keeps the set of frames sent and not yet answered in its local store
  (`open_frames`). A restarted camera asks again about exactly those of its earlier
  runs: the answers close whatever an earlier run left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from edgebus.aio import cancel_and_wait
from edgebus.broker.bus import Bus, BusError, Subscription
from edgebus.broker.tracing import traced
from edgebus.clock import Clock, sleep_unless_woken
from edgebus.messages import (
    OUTCOME_REFUSED,
    EndOfFrame,
    FrameDropped,
    FrameOutcome,
    Status,
)
from edgebus.topics import Topics

log = logging.getLogger("edgebus.frame_outcomes")

MAX_RETRY_GAP_S = 8.0
# The sweep's shortest sleep: questions and drops are timed to a quarter second.
SWEEP_S = 0.25
# After a reconnect, questions and answers of the outage are likely lost; ask again once
# the other nodes have had this long to subscribe again.
AFTER_RECONNECT_S = 1.0
# How long a camera waits for the answer of an edge that answers other frames meanwhile.
PATIENCE_S = 300.0
SETTLE_S = 10.0


@dataclass(slots=True)
class Awaiting:
    marker: EndOfFrame
    sent_mono: float
    next_ask_mono: float
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class OutcomeTimings:
    first_ask_s: float  # after this long without an answer, ask again
    edge_lost_s: float  # the addressed edge offline this long: its frames are dropped
    give_up_s: float  # no answer this long, and the edge silent as long: record the drop
    # No answer this long although the edge answers others: record the drop. Below the
    # edge ledger's memory (FrameLedger.horizon_s), so the edge still knows its answer.
    patience_s: float = PATIENCE_S

    @property
    def settle_s(self) -> float:
        """How long a stopping camera waits for the answers still due: long enough for a
        busy edge to catch up, short enough to stop well within a supervisor's SIGKILL
        bound (`up` allows 30 s, including the store's final sync)."""
        return max(self.first_ask_s + 1.0, min(SETTLE_S, self.give_up_s / 3))

    @property
    def soonest_need_s(self) -> float:
        """The least time a frame sent (or an edge going offline) takes to need a question or
        a drop: how long the sweep may sleep without missing one."""
        return min(self.first_ask_s, self.give_up_s, self.patience_s, self.edge_lost_s)

    @classmethod
    def for_period(cls, period_s: float, give_up_s: float) -> OutcomeTimings:
        # An answer takes the frame's deadline (one period), the edge's grace for a lost
        # end marker (two) and a classification; past that the question was lost.
        wait = 4 * period_s + 1.0
        give_up = max(give_up_s, 2 * wait)
        return cls(wait, wait, give_up, max(PATIENCE_S, give_up))


class OutcomeTracker:
    def __init__(
        self,
        bus: Bus,
        topics: Topics,
        camera: str,
        incarnation: int,
        clock: Clock,
        timings: OutcomeTimings,
        on_drop: Callable[[FrameDropped], None],
        on_open: Callable[[EndOfFrame], None] = lambda _marker: None,
        on_closed: Callable[[int, int], None] = lambda _incarnation, _frame: None,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.camera = camera
        self.incarnation = incarnation
        self.clock = clock
        self.timings = timings
        self.on_drop = on_drop
        self.on_open = on_open
        self.on_closed = on_closed
        self.pending: dict[tuple[int, int], Awaiting] = {}
        self.answered = 0
        self.asked_again = 0
        # Frames this camera recorded as dropped itself, lately: an answer for one of them
        # after all means two records, which is counted and logged, never hidden.
        self._dropped_here: deque[tuple[int, int]] = deque(maxlen=10_000)
        self.answers_after_drop = 0
        self._offline_since: dict[str, float] = {}
        # Edges this camera addressed frames to, whose status it follows (not every node's:
        # each heartbeat republishes a status, and N cameras hearing N nodes is N² work).
        self._watched: set[str] = set()
        self._new_edges: asyncio.Queue[str] = asyncio.Queue()
        # When each edge last answered this camera ("" = any edge).
        self._last_heard: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._reschedule = asyncio.Event()  # questions came due sooner than the sweep sleeps
        self._tasks: list[asyncio.Task[None]] = []
        bus.on_reconnect.append(self._after_reconnect)

    async def start(self) -> None:
        outcomes = await self.bus.subscribe(self.topics.outcome(self.camera), qos=1)
        self._tasks = [
            asyncio.create_task(self._receive(outcomes), name=f"{self.camera}-outcomes"),
            asyncio.create_task(self._watch_edges(), name=f"{self.camera}-edges"),
            asyncio.create_task(self._sweep(), name=f"{self.camera}-ask-again"),
        ]

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The long-running tasks start() began, for the node to supervise."""
        return tuple(self._tasks)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, suppress=(Exception,))
        if self.pending:
            log.warning(
                "%s: %d frame(s) still await their outcome; the next start of this camera "
                "asks for them again",
                self.camera,
                len(self.pending),
            )

    async def settle(self, timeout_s: float) -> bool:
        """Wait (asking again as needed) until every frame has its outcome, up to a bound.

        Frames already asked about are asked once more right away: their next question
        may be due only after the bound."""
        now = self.clock.monotonic()
        for awaiting in list(self.pending.values()):
            if awaiting.attempts:
                await self._ask(awaiting, now)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.pending:
                    self._changed.clear()
                    await self._changed.wait()
        return not self.pending

    # -- frames --------------------------------------------------------------------------

    def sent(self, marker: EndOfFrame) -> None:
        """A frame's end marker went out: wait for its outcome."""
        now = self.clock.monotonic()
        key = (marker.incarnation, marker.frame_id)
        self.pending[key] = Awaiting(marker, now, now + self.timings.first_ask_s)
        self._watch(marker.edge)
        self.on_open(marker)

    def ask_again(self, markers: list[EndOfFrame]) -> None:
        """Frames of earlier runs that may lack an outcome: ask for each now."""
        now = self.clock.monotonic()
        for marker in markers:
            key = (marker.incarnation, marker.frame_id)
            self.pending.setdefault(key, Awaiting(marker, now, now))
            self._watch(marker.edge)
        self._reschedule.set()

    async def drop_now(self, frame_id: int, capture_ts: float, reason: str, edge: str = "") -> None:
        """A frame that never reached an edge: the camera's own dropped record."""
        await self._drop(frame_id, self.incarnation, capture_ts, edge, reason)

    async def _after_reconnect(self, session_present: bool) -> None:
        soon = self.clock.monotonic() + AFTER_RECONNECT_S
        for awaiting in self.pending.values():
            awaiting.next_ask_mono = min(awaiting.next_ask_mono, soon)
        self._reschedule.set()

    # -- answers -------------------------------------------------------------------------

    async def _receive(self, outcomes: Subscription) -> None:
        async for delivery in outcomes:
            told = delivery.message
            if not isinstance(told, FrameOutcome) or told.camera != self.camera:
                continue
            key = (told.incarnation, told.frame_id)
            heard = self.clock.monotonic()
            self._last_heard[told.node] = self._last_heard[""] = heard
            awaiting = self.pending.pop(key, None)
            if awaiting is None:
                if told.outcome != OUTCOME_REFUSED and key in self._dropped_here:
                    self.answers_after_drop += 1
                    log.warning("%s: frame %d/%d got a %s from %s after this camera recorded "
                                "it dropped", self.camera, told.incarnation, told.frame_id,
                                told.outcome, told.node)  # fmt: skip
                continue  # answered already, or not ours: a repeated or forged answer
            self.answered += 1
            self._changed.set()
            self.on_closed(*key)
            if told.outcome == OUTCOME_REFUSED:
                # The edge kept no record of a frame it refused: this is the record.
                marker = awaiting.marker
                await self._drop(marker.frame_id, marker.incarnation, marker.capture_ts,
                                 told.node, f"refused by {told.node}: {told.reason}")  # fmt: skip

    def _watch(self, edge: str) -> None:
        """Follow the status of an edge frames are addressed to ("" = any edge: none)."""
        if edge and edge not in self._watched:
            self._watched.add(edge)
            self._new_edges.put_nowait(edge)

    async def _watch_edges(self) -> None:
        """One status subscription per addressed edge; a reader that fails fails this task
        (supervised by the node), never silently."""
        async with asyncio.TaskGroup() as readers:
            while True:
                edge = await self._new_edges.get()
                statuses = await self.bus.subscribe(self.topics.status(edge), qos=1)
                readers.create_task(self._follow(statuses), name=f"{self.camera}-sees-{edge}")

    async def _follow(self, statuses: Subscription) -> None:
        async for delivery in statuses:
            status = delivery.message
            if not isinstance(status, Status) or status.role != "edge":
                continue
            if status.state == "offline":
                self._offline_since.setdefault(status.node, self.clock.monotonic())
            else:
                self._offline_since.pop(status.node, None)

    async def _sweep(self) -> None:
        """Sleeps until check() has something to do, not polling; a restart's or reconnect's
        questions, due sooner than it sleeps, wake it."""
        while True:
            self._reschedule.clear()
            await sleep_unless_woken(self.clock, self.nap(), self._reschedule)
            await self.check()

    def nap(self) -> float:
        """How long the sweep may sleep: until the first question or drop due, but no longer
        than a frame sent (or an edge going offline) meanwhile takes to need one, and at
        least SWEEP_S."""
        now = self.clock.monotonic()
        return max(min(self._next_due() - now, self.timings.soonest_need_s), SWEEP_S)

    def _next_due(self) -> float:
        """When check() will first ask again about, or drop, a frame now awaiting its outcome
        (answers heard meanwhile only make that later)."""
        timings, due = self.timings, math.inf
        for awaiting in self.pending.values():
            edge = awaiting.marker.edge
            heard = self._last_heard.get(edge, -math.inf)
            due = min(due, awaiting.next_ask_mono, awaiting.sent_mono + timings.patience_s,
                      max(awaiting.sent_mono, heard) + timings.give_up_s)  # fmt: skip
            offline_since = self._offline_since.get(edge) if edge else None
            if offline_since is not None:
                due = min(due, offline_since + timings.edge_lost_s)
        return due

    async def check(self) -> None:
        """Ask again where an answer is overdue; drop what no edge will answer."""
        now = self.clock.monotonic()
        for key, awaiting in list(self.pending.items()):
            marker = awaiting.marker
            edge = marker.edge
            offline_since = self._offline_since.get(edge) if edge else None
            if offline_since is not None and now - offline_since >= self.timings.edge_lost_s:
                reason = f"edge {edge} went offline before answering"
            elif self._waited_enough(awaiting, now):
                waited = now - awaiting.sent_mono
                reason = (
                    f"no outcome from {edge or 'any edge'} within {waited:.0f} s "
                    f"({awaiting.attempts} repeated question(s))"
                )
            else:
                if now >= awaiting.next_ask_mono:
                    await self._ask(awaiting, now)
                continue
            if self.pending.pop(key, None) is not None:
                self.on_closed(*key)
                await self._drop(marker.frame_id, marker.incarnation, marker.capture_ts, edge,
                                 reason)  # fmt: skip

    def _waited_enough(self, awaiting: Awaiting, now: float) -> bool:
        waited = now - awaiting.sent_mono
        if waited >= self.timings.patience_s:
            return True
        if waited < self.timings.give_up_s:
            return False
        heard = self._last_heard.get(awaiting.marker.edge, -float("inf"))
        return now - heard >= self.timings.give_up_s

    async def _ask(self, awaiting: Awaiting, now: float) -> None:
        awaiting.attempts += 1
        awaiting.next_ask_mono = now + min(MAX_RETRY_GAP_S, 2.0 ** (awaiting.attempts - 1))
        # A question about the frame, not its data again: by now the data is past its
        # deadline, as the frame's separate chunks would have expired.
        marker = replace(awaiting.marker, attempt=awaiting.attempts, last_chunk=b"")
        self.asked_again += 1
        try:
            topic = self.topics.frame_end(self.camera, marker.frame_id)
            trace = traced(self.camera, marker.incarnation, marker.frame_id)
            await self.bus.publish(topic, marker, qos=1, properties=trace)
        except BusError as exc:
            log.debug("%s: frame %d not asked again: %s", self.camera, marker.frame_id, exc)

    async def _drop(
        self, frame_id: int, incarnation: int, capture_ts: float, edge: str, reason: str
    ) -> None:
        record = FrameDropped(self.camera, frame_id, edge, reason[:256], capture_ts,
                              ts=self.clock.time(), incarnation=incarnation)  # fmt: skip
        self._dropped_here.append((incarnation, frame_id))
        self.on_drop(record)
        self._changed.set()
        with contextlib.suppress(BusError):
            trace = traced(self.camera, incarnation, frame_id)
            await self.bus.publish(
                self.topics.dropped(self.camera), record, qos=1, properties=trace
            )
