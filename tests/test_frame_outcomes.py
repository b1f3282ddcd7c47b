"""The camera's side of the outcome protocol: when it asks again, and when it may record a
frame as dropped itself (only where no edge will record it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from edgebus.broker.bus import Delivery
from edgebus.broker.tracing import TRACE_ID, frame_trace_id
from edgebus.broker.transport import MessageProperties
from edgebus.messages import (
    OUTCOME_REFUSED,
    OUTCOME_RESULT,
    EndOfFrame,
    FrameDropped,
    FrameOutcome,
    Status,
)
from edgebus.nodes.frame_outcomes import OutcomeTimings, OutcomeTracker
from edgebus.topics import Topics
from tests.manual_clock import ManualClock

pytestmark = pytest.mark.timeout(30)


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, object]] = []
        self.trace_ids: list[str | None] = []
        self.on_reconnect: list[object] = []

    async def publish(
        self, topic: str, message: object, qos: int = 0, properties: MessageProperties | None = None
    ) -> None:
        self.published.append((topic, message))
        self.trace_ids.append(properties.user_property(TRACE_ID) if properties else None)


def marker(frame_id: int, edge: str = "edge-1") -> EndOfFrame:
    return EndOfFrame("cam", frame_id, 1, 1, 10, "pnc", "m", 999.0, 999.3, edge=edge,
                      incarnation=7)  # fmt: skip


def outcome(frame_id: int, kind: str = OUTCOME_RESULT, node: str = "edge-1") -> Delivery:
    told = FrameOutcome("cam", 7, frame_id, node, kind, "too late" if kind == "refused" else "")
    return Delivery("t", b"", told)


async def feed(deliveries: list[Delivery]) -> AsyncIterator[Delivery]:
    for delivery in deliveries:
        yield delivery


@pytest.fixture
def tracker() -> tuple[OutcomeTracker, ManualClock, RecordingBus, list[FrameDropped]]:
    clock = ManualClock()
    bus = RecordingBus()
    drops: list[FrameDropped] = []
    timings = OutcomeTimings(first_ask_s=2.0, edge_lost_s=2.0, give_up_s=30.0, patience_s=300.0)
    tracker = OutcomeTracker(bus, Topics("t"), "cam", 7, clock, timings, drops.append)  # type: ignore[arg-type]
    return tracker, clock, bus, drops


async def test_an_unanswered_frame_is_asked_about_again_with_backoff(tracker):
    outcomes, clock, bus, drops = tracker
    outcomes.sent(marker(1))
    await outcomes.check()
    assert bus.published == []
    for step in (2.0, 1.0, 2.0, 4.0):
        clock.now += step
        await outcomes.check()
    attempts = [m.attempt for _, m in bus.published]
    assert attempts == [1, 2, 3, 4] and not drops


async def test_asking_again_does_not_send_the_frames_data_again(tracker):
    outcomes, clock, bus, _drops = tracker
    outcomes.sent(replace(marker(1), last_chunk=b"features"))
    clock.now += 2.0
    await outcomes.check()
    ((_, asked),) = bus.published
    assert asked.attempt == 1 and asked.last_chunk == b"" and asked.chunks_sent == 1


async def test_an_answer_closes_the_frame_and_a_refusal_is_recorded_here(tracker):
    outcomes, _clock, _bus, drops = tracker
    outcomes.sent(marker(1))
    outcomes.sent(marker(2))
    await outcomes._receive(feed([outcome(1), outcome(2, OUTCOME_REFUSED)]))  # type: ignore[arg-type]
    assert not outcomes.pending
    assert [d.frame_id for d in drops] == [2] and "refused by edge-1" in drops[0].reason


async def test_a_silent_edge_costs_the_frame_after_give_up(tracker):
    outcomes, clock, bus, drops = tracker
    outcomes.sent(marker(1))
    clock.now += 29.0
    await outcomes.check()
    assert not drops
    clock.now += 1.0
    await outcomes.check()
    assert [d.frame_id for d in drops] == [1] and "no outcome from edge-1" in drops[0].reason
    # The questions and the drop record carry the frame's trace id (camera, incarnation 7).
    assert set(bus.trace_ids) == {frame_trace_id("cam", 7, 1)}


async def test_a_slow_edge_that_answers_other_frames_is_waited_for(tracker):
    # Its answer may still be on the way: a drop recorded here would be a second record.
    outcomes, clock, _bus, drops = tracker
    outcomes.sent(marker(1))
    for frame_id in range(2, 40):
        outcomes.sent(marker(frame_id))
        clock.now += 5.0
        await outcomes._receive(feed([outcome(frame_id)]))  # type: ignore[arg-type]
        await outcomes.check()
    assert not drops and 1 in {f for _, f in outcomes.pending}
    clock.now += 300.0  # patience runs out whatever the edge does
    await outcomes._receive(feed([outcome(99)]))  # type: ignore[arg-type]
    await outcomes.check()
    assert [d.frame_id for d in drops] == [1]


async def test_an_edge_that_went_offline_costs_its_open_frames(tracker):
    outcomes, clock, _bus, drops = tracker
    outcomes.sent(marker(1))
    outcomes.sent(marker(2, edge="edge-2"))
    offline = Delivery("t", b"", Status("edge-1", "edge", "offline"))
    await outcomes._follow(feed([offline]))  # type: ignore[arg-type]
    clock.now += 2.0
    await outcomes.check()
    assert [d.frame_id for d in drops] == [1] and "went offline" in drops[0].reason


async def test_the_camera_follows_only_the_edges_it_addressed(tracker):
    # Every heartbeat republishes a node's status: a camera that heard every node would do
    # N^2 work across a fleet. It subscribes to each addressed edge's status, once.
    outcomes, _clock, bus, _drops = tracker
    subscribed: list[str] = []

    async def subscribe(pattern: str, qos: int = 0) -> AsyncIterator[Delivery]:
        subscribed.append(pattern)
        return feed([])

    bus.subscribe = subscribe
    watching = asyncio.create_task(outcomes._watch_edges())
    try:
        for frame_id, edge in enumerate(["edge-1", "", "edge-2", "edge-1"]):
            outcomes.sent(marker(frame_id, edge=edge))
        outcomes.ask_again([marker(9, edge="edge-3")])
        for _ in range(20):
            await asyncio.sleep(0)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    topics = Topics("t")
    assert subscribed == [topics.status(e) for e in ("edge-1", "edge-2", "edge-3")]


async def test_the_sweep_sleeping_until_the_next_due_does_what_polling_does():
    """Asked-again questions and drops are the same whether check() runs every SWEEP_S or
    only when the sweep's nap() ends, through answers, a silent edge and one that goes
    offline; and the sweep wakes far less often."""

    def make() -> tuple[OutcomeTracker, ManualClock, RecordingBus, list[FrameDropped]]:
        clock, bus, drops = ManualClock(), RecordingBus(), []
        timings = OutcomeTimings(first_ask_s=3.0, edge_lost_s=3.0, give_up_s=12.0,
                                 patience_s=40.0)  # fmt: skip
        return (
            OutcomeTracker(bus, Topics("t"), "cam", 7, clock, timings, drops.append),
            clock,
            bus,
            drops,
        )  # type: ignore[arg-type]

    polled, napped = make(), make()
    checks = {"polled": 0, "napped": 0}
    wake_at = napped[1].now
    step = 0.05
    offline = Delivery("t", b"", Status("edge-2", "edge", "offline"))
    for tick in range(int(60 / step)):
        t = tick * step
        for outcomes, clock, _bus, _drops in (polled, napped):
            clock.now = 1000.0 + t
            frame_id = tick // 10
            # A frame every 0.5 s, with a pause from 5 to 8 s. The first ten are answered,
            # so nothing awaits an answer in the pause; then edge-1 answers two in three,
            # and edge-2 (offline at 20 s) none of its own.
            to_edge_2 = frame_id >= 14 and frame_id % 7 == 0
            if tick % 10 == 0 and t < 30 and not 5 <= t < 8:
                outcomes.sent(marker(frame_id, edge="edge-2" if to_edge_2 else "edge-1"))
            answered = frame_id < 10 or (frame_id % 3 and not to_edge_2)
            if tick % 10 == 2 and t < 30 and answered:
                await outcomes._receive(feed([outcome(frame_id)]))  # type: ignore[arg-type]
            if tick == int(20 / step):
                await outcomes._follow(feed([offline]))  # type: ignore[arg-type]
        if tick % 5 == 0:
            checks["polled"] += 1
            await polled[0].check()
        if napped[1].now >= wake_at - 1e-9:
            checks["napped"] += 1
            await napped[0].check()
            wake_at = napped[1].now + napped[0].nap()

    def asked(bus: RecordingBus) -> set[tuple[int, int]]:
        return {(m.frame_id, m.attempt) for _, m in bus.published if isinstance(m, EndOfFrame)}

    def dropped(drops: list[FrameDropped]) -> list[tuple[int, str]]:
        return sorted((d.frame_id, d.reason.split(" ")[0]) for d in drops)

    assert asked(polled[2]) == asked(napped[2]) and asked(polled[2])
    assert dropped(polled[3]) == dropped(napped[3])
    assert {reason for _, reason in dropped(polled[3])} == {"edge", "no"}  # offline and silent
    assert checks["napped"] * 3 < checks["polled"]
