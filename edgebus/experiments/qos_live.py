"""Live model switching over a broker: an orchestrator, a sender and receivers, each node
with its `ModelFollower`, and QoS requests at random times that each move the model.

- The requests are drawn from a plan built before the run: a grid of (accuracy, bandwidth,
  image quality) requests is decided once by Algorithm 2 and grouped by the model it picks,
  so every change can target a model other than the current one (a draw that keeps the
  model would not measure a switch; with a pool where every request picks the same model
  the run refuses to start instead of spinning).
- A switch's latency is from the request's publication to the last node's ack.
- Every frame carries its model_id; receivers re-encode the frame's input with the model
  they decoded with and count a mismatch as `wrong_model` (nodes/latent_transfer.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebus.broker.address import parse_broker_url
from edgebus.broker.bus import Bus, BusOptions
from edgebus.broker.embedded import EmbeddedBroker
from edgebus.clock import RealClock
from edgebus.coordinator.orchestrator import Orchestrator
from edgebus.messages import ModelBundle, ModelSwitchAck, QosRequest
from edgebus.nodes.latent_transfer import (
    FrameModel,
    LatentReceiver,
    LatentSender,
    RawEncode,
    raw_uint8,
)
from edgebus.nodes.model_follower import ModelFollower
from edgebus.qos.model_store import ModelPool

Step = Callable[[str], None]
Loader = Callable[[ModelBundle], FrameModel]
RECEIVERS = ("edge", "cloud")


class PlanError(ValueError):
    """The pool cannot produce two different decisions, so no switch can be measured."""


@dataclass
class SwitchRow:
    index: int
    accuracy: float
    bandwidth_bps: float
    image_quality_db: float | None
    model_id: str
    latency_ms: float  # NaN: not every node acked within the timeout


@dataclass
class LiveResult:
    broker: str
    rows: list[SwitchRow]
    frames_sent: int
    frames_decoded: int  # summed over receivers
    wrong_model: int
    rejected: int
    fetches: int  # bundles moved over the bus, all nodes
    fetch_seconds: float  # the followers' up-front fetch (prefetch) or 0
    timeouts: int = 0
    counters: dict[str, int] = field(default_factory=dict)  # the followers', summed
    frames_by_model: dict[str, int] = field(default_factory=dict)  # as the sender encoded them

    def latencies(self) -> np.ndarray:
        values = np.array([r.latency_ms for r in self.rows], dtype=float)
        return values[~np.isnan(values)]


def request_plan(orchestrator: Orchestrator) -> dict[str, list[QosRequest]]:
    """Requests grouped by the model Algorithm 2 picks for them; bandwidths are fractions of
    what raw frames need at the orchestrator's frame rate."""
    models = orchestrator.models
    raw_bps = 8.0 * orchestrator.policy.raw_bytes_per_frame * orchestrator.frame_rate
    accuracies = sorted({round(m.accuracy, 3) for m in models} | {0.3, 0.99})
    fractions = (0.1, 0.25, 0.5, 0.75, 0.99, 1.5)  # 1.5: the link carries raw (CO)
    qualities: list[float | None] = [None, *sorted({round(m.psnr_db, 1) for m in models
                                                    if m.configuration == "ECCD"})]  # fmt: skip
    plan: dict[str, list[QosRequest]] = {}
    for accuracy in accuracies:
        for fraction in fractions:
            for quality in qualities:
                request = QosRequest("experiment", accuracy, raw_bps * fraction, 1.0, 0.0, quality)
                plan.setdefault(orchestrator.choose(request).model_id, []).append(request)
    if len(plan) < 2:
        raise PlanError(
            f"every QoS request picks {next(iter(plan), 'nothing')}: the pool needs models "
            "with different accuracies or sizes for a switching run"
        )
    return plan


def _bus(url: str, name: str) -> Bus:
    return Bus(
        parse_broker_url(url), BusOptions(site="qosx", node_id=f"{name}-{uuid.uuid4().hex[:6]}")
    )


async def live_switching(
    pool: ModelPool,
    truth: Callable[[int], np.ndarray],
    changes: int,
    seed: int,
    step: Step,
    loader: Loader,
    broker_url: str | None = None,
    prefetch: bool = False,
    frame_period_s: float = 0.05,
    gaps_s: tuple[float, float] = (0.05, 0.4),
    ack_timeout_s: float = 5.0,
    raw: RawEncode = raw_uint8,
) -> LiveResult:
    """`changes` QoS requests over the bus at `broker_url` (an embedded amqtt broker when
    None). Without `prefetch` a node fetches a model (one bundle) the first time a switch
    or a frame names it, and keeps it, cached by model_id and sha256."""
    broker = None if broker_url is not None else await EmbeddedBroker(port=0).start()
    url = broker.url if broker is not None else str(broker_url)
    names = ("coord", "cam", *RECEIVERS)
    buses = {n: _bus(url, n) for n in names}
    tasks: list[asyncio.Task[None]] = []
    followers: dict[str, ModelFollower[FrameModel]] = {}
    try:
        for b in buses.values():
            await b.start(5)
        topics = buses["coord"].topics
        coord_id = buses["coord"].node_id
        frame_rate = 1.0 / frame_period_s
        orchestrator = Orchestrator(buses["coord"], topics, coord_id, pool, RealClock(),
                                    frame_rate=frame_rate)  # fmt: skip
        plan = request_plan(orchestrator)
        requests = await orchestrator.start()
        tasks.append(asyncio.create_task(orchestrator.run(requests)))
        acks = await buses["coord"].subscribe(topics.model_acks(), qos=1)
        for n in ("cam", *RECEIVERS):
            followers[n] = ModelFollower(buses[n], topics, buses[n].node_id, coord_id, loader)
            await followers[n].start()
        fetch_start = time.perf_counter()
        if prefetch:
            await asyncio.gather(*(f.prefetch(sorted(pool.models)) for f in followers.values()))
        fetch_seconds = time.perf_counter() - fetch_start if prefetch else 0.0
        sender = LatentSender(buses["cam"], topics, "cam-1", followers["cam"], truth, raw)
        receivers = [LatentReceiver(n, followers[n], truth, raw) for n in RECEIVERS]
        for receiver, n in zip(receivers, RECEIVERS, strict=True):
            frames = await buses[n].subscribe(topics.frames(), qos=1)
            tasks.append(asyncio.create_task(receiver.run(frames)))
        stop = asyncio.Event()

        async def stream() -> None:
            frame_id = 0
            while not stop.is_set():
                await sender.send(frame_id)
                frame_id += 1
                await asyncio.sleep(frame_period_s)

        rng = np.random.default_rng(seed)
        node_ids = {buses[n].node_id for n in ("cam", *RECEIVERS)}
        rows: list[SwitchRow] = []
        current = ""
        timeouts = 0
        streamer: asyncio.Task[None] | None = None
        for index in range(changes):
            choices = sorted(m for m in plan if m != current)
            model_id = choices[int(rng.integers(len(choices)))]
            request = plan[model_id][int(rng.integers(len(plan[model_id])))]
            start = time.perf_counter()
            await buses["cam"].publish(topics.qos_request(), request, qos=1)
            acked_at = await _wait_acks(acks, model_id, node_ids, ack_timeout_s)
            if acked_at is None:
                timeouts += 1
            rows.append(SwitchRow(
                index, request.accuracy, request.bandwidth_bps, request.image_quality, model_id,
                float("nan") if acked_at is None else 1000 * (acked_at - start),
            ))  # fmt: skip
            current = model_id
            if streamer is None:  # frames start once the first model is in place
                streamer = asyncio.create_task(stream())
                tasks.append(streamer)
            await asyncio.sleep(float(rng.uniform(*gaps_s)))  # random times between changes
            if index % 10 == 9:
                step(f"live: {index + 1}/{changes} switches")
        stop.set()
        if streamer is not None:
            await streamer
        await _drain(sender, receivers)
        return LiveResult(
            _label(url, embedded=broker is not None),
            rows,
            sender.counters.frames_sent,
            sum(r.counters.frames_decoded for r in receivers),
            sum(r.counters.wrong_model for r in receivers),
            sum(r.counters.frames_rejected for r in receivers),
            sum(f.counters.fetches for f in followers.values()),
            fetch_seconds,
            timeouts,
            _counters(followers.values()),
            dict(Counter(sender.sent_with.values())),
        )
    finally:
        for task in tasks:
            task.cancel()
        for follower in followers.values():
            await follower.stop()
        for b in buses.values():
            await b.close(flush_timeout=1)
        if broker is not None:
            await broker.stop()


async def _wait_acks(
    acks, model_id: str, node_ids: set[str], timeout_s: float
) -> float | None:  # fmt: skip
    """perf_counter time of the last node's ack for `model_id`, or None on timeout."""
    pending = set(node_ids)
    deadline = time.perf_counter() + timeout_s
    while pending:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        try:
            ack = (await acks.get(left)).message
        except TimeoutError:
            return None
        if isinstance(ack, ModelSwitchAck) and ack.model_id == model_id:
            pending.discard(ack.node)
    return time.perf_counter()


async def _drain(sender: LatentSender, receivers: Sequence[LatentReceiver]) -> None:
    """Wait (up to 5 s) until every receiver has handled every frame sent."""
    sent = sender.counters.frames_sent
    for _ in range(250):
        if all(r.counters.frames_decoded + r.counters.frames_rejected >= sent
               for r in receivers):  # fmt: skip
            return
        await asyncio.sleep(0.02)


def _label(url: str, embedded: bool) -> str:
    """The broker as the report names it: host and port, never its credentials."""
    address = parse_broker_url(url)
    return f"{'embedded amqtt' if embedded else 'broker'} {address.host}:{address.port}"


def _counters(followers: Iterable[ModelFollower[Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for f in followers:
        for key, value in f.counters.as_stats().items():
            total[key] = total.get(key, 0) + int(value)
    return total
