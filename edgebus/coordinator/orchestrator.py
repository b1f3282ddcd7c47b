"""The QoS orchestrator on the bus: QoS request -> Algorithm 2 -> retained model switch.

- `qos/request` (plain publish) and the coordinator's `request/<id>/qos` service (which also
  answers with a `QosDecision`: the model and why) both go through `decide`.
- A change of model publishes a retained `ModelSwitch {model_id, version, sha256,
  configuration, effective_ts}`; `effective_frame = -1` means "your next frame boundary
  at or after effective_ts", since each camera numbers its own frames.
- `request/<id>/model` serves `ModelFetch` with the model's `ModelBundle`.
- Every frame carries its model_id, so receivers never depend on when the switch arrives.
- `model/drift` alerts (nodes/drift_monitor.py) are recorded as events and handed to
  `on_drift`, where a deployment hooks its retraining (e.g. `edgebus models train`).
- The retained switch is the coordinator's to keep: a switch on the topic that is not
  the one it published (forged, or left by another coordinator) is logged, recorded and
  replaced by its own at once; a restarted coordinator adopts its earlier switch; and
  after a reconnect it publishes its switch again (a crashed broker forgot it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from edgebus.broker.bus import Bus, Subscription
from edgebus.clock import Clock
from edgebus.messages import (
    MAX_SWITCH_SKEW_S,
    DriftAlert,
    ErrorReply,
    Message,
    ModelBundle,
    ModelFetch,
    ModelSwitch,
    QosDecision,
    QosRequest,
    to_dict,
)
from edgebus.qos.model_store import ModelPool
from edgebus.qos.qos_model import (
    RAW,
    Decision,
    Device,
    LinearQosEstimator,
    Policy,
    QosTarget,
    decide,
)
from edgebus.storage.records import EventRecord
from edgebus.topics import Topics

# How many of its own latest switches the coordinator recognises when they come back.
RECENT_SWITCHES = 8

log = logging.getLogger("edgebus.orchestrator")

Recorder = Callable[..., None]
DriftHandler = Callable[[DriftAlert], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Active:
    decision: Decision
    switch: ModelSwitch


def target_of(request: QosRequest, frame_rate: float) -> QosTarget:
    return QosTarget(
        accuracy=request.accuracy,
        bandwidth_bps=request.bandwidth_bps,
        device=Device(request.edge_cpu, request.edge_memory_mb),
        image_quality_db=request.image_quality,
        frame_rate=frame_rate,
    )


def decide_for_pool(
    pool: ModelPool,
    request: QosRequest,
    frame_rate: float = 2.0,
    estimator: LinearQosEstimator | None = None,
) -> Decision:
    """Algorithm 2 on a pool, without a bus (the CLI's --dry-run and the orchestrator)."""
    policy = Policy(raw_bytes_per_frame=pool.raw_bytes_per_frame, rule=pool.rule)
    return decide(
        target_of(request, frame_rate), pool.pool_models(), estimator or LinearQosEstimator(),
        policy, pool.cloud_accuracy,
    )  # fmt: skip


class Orchestrator:
    def __init__(
        self,
        bus: Bus,
        topics: Topics,
        node_id: str,
        pool: ModelPool,
        clock: Clock,
        record: Recorder | None = None,
        frame_rate: float = 2.0,
        lead_s: float = 0.0,
        on_drift: DriftHandler | None = None,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.node_id = node_id
        self.pool = pool
        self.clock = clock
        self.record = record or (lambda *_a, **_k: None)
        self.frame_rate = frame_rate
        self.lead_s = lead_s
        self.policy = Policy(raw_bytes_per_frame=pool.raw_bytes_per_frame, rule=pool.rule)
        self.estimator = LinearQosEstimator()
        self.models = pool.pool_models()
        self.active: Active | None = None
        self.decisions = 0
        self.on_drift = on_drift
        self.drift_alerts: list[DriftAlert] = []
        # What the retained model/switch topic must hold: this coordinator's last switch.
        self.published: ModelSwitch | None = None
        # Its recent switches: one still in flight when a newer one is published comes
        # back afterwards, and is no forgery (treating it as one restored the newest,
        # whose echo then met the next, without end).
        self._recent: deque[ModelSwitch] = deque(maxlen=RECENT_SWITCHES)
        self.foreign_switches = 0

    async def start(self) -> Subscription:
        """Serve fetches and QoS requests; returns the `qos/request` subscription to drain."""
        await self.bus.serve(self.topics.request(self.node_id, "model"), self._serve_fetch)
        await self.bus.serve(self.topics.request(self.node_id, "qos"), self._serve_qos)
        for configuration in ("ECO", "ECCD"):
            qmap = self.pool.qos_map(configuration)
            detail = {"configuration": configuration, **qmap.to_json()}
            self.record(EventRecord(kind="qos_map", detail=detail, ts=self.clock.time()))
        return await self.bus.subscribe(self.topics.qos_request(), qos=1)

    async def run(self, requests: Subscription) -> None:
        async for delivery in requests:
            if isinstance(delivery.message, QosRequest):
                try:
                    await self.handle(delivery.message)
                except LookupError as exc:  # e.g. ECCD asked of a pool without ECCD models
                    log.error("QoS request from %s not served: %s",
                              delivery.message.requester, exc)  # fmt: skip

    async def watch_drift(self) -> asyncio.Task[None]:
        """Record every drift alert and pass it to `on_drift`."""
        alerts = await self.bus.subscribe(self.topics.model_drift(), qos=1)

        async def watch() -> None:
            async for delivery in alerts:
                alert = delivery.message
                if not isinstance(alert, DriftAlert):
                    continue
                self.drift_alerts.append(alert)
                self.record(EventRecord(kind="drift_alert", detail=to_dict(alert), ts=alert.ts))
                log.warning("drift on %s with %s (error %.4g > %.4g)", alert.stream,
                            alert.model_id, alert.error, alert.threshold)  # fmt: skip
                if self.on_drift is not None:
                    await self.on_drift(alert)

        return asyncio.create_task(watch(), name="drift-watch")

    async def guard_switches(self) -> asyncio.Task[None]:
        """Keep the retained switch this coordinator's own (see the module notes)."""
        switches = await self.bus.subscribe(self.topics.model_switch(), qos=1)
        self.bus.on_reconnect.append(self._publish_again)
        return asyncio.create_task(self._guard(switches), name="switch-guard")

    async def _guard(self, switches: Subscription) -> None:
        async for delivery in switches:
            switch = delivery.message
            if not isinstance(switch, ModelSwitch) or self._is_ours(switch):
                continue
            self.foreign_switches += 1
            log.warning(
                "model switch to %s from %r (stamped %.0f s from now) is not this "
                "coordinator's; restoring %s", switch.model_id, switch.coordinator,
                switch.ts - self.clock.time(),
                self.published.model_id if self.published else "no switch",
            )  # fmt: skip
            self.record(
                EventRecord(
                    kind="foreign_model_switch", detail=to_dict(switch), ts=self.clock.time()
                )
            )
            await self._restore()

    def _publishing(self, switch: ModelSwitch) -> ModelSwitch:
        self.published = switch
        self._recent.append(switch)
        return switch

    def _is_ours(self, switch: ModelSwitch) -> bool:
        if self.published is not None:
            return switch in self._recent
        # A restarted coordinator finds its own earlier switch retained and keeps it.
        mine = switch.coordinator == self.node_id
        if mine and switch.ts <= self.clock.time() + MAX_SWITCH_SKEW_S:
            self._publishing(switch)
            return True
        return False

    async def _restore(self) -> None:
        if self.published is None:
            # Nothing of ours to put back: clear the retained topic.
            await self.bus.publish(self.topics.model_switch(), b"", qos=1, retain=True)
            return
        now = self.clock.time()
        restored = self._publishing(replace(self.published, ts=now, effective_ts=now))
        await self.bus.publish(self.topics.model_switch(), restored, qos=1, retain=True)

    async def _publish_again(self, session_present: bool) -> None:
        if self.published is not None:
            await self.bus.publish(self.topics.model_switch(), self.published, qos=1, retain=True)

    def choose(self, request: QosRequest) -> Decision:
        return decide(
            target_of(request, self.frame_rate), self.models, self.estimator, self.policy,
            self.pool.cloud_accuracy,
        )  # fmt: skip

    async def handle(self, request: QosRequest) -> QosDecision:
        decision = self.choose(request)
        self.decisions += 1
        switched = self.active is None or self.active.decision.model_id != decision.model_id
        if switched:
            switch = self._switch_for(decision)
            self.active = Active(decision, switch)
            self._publishing(switch)
            await self.bus.publish(self.topics.model_switch(), switch, qos=1, retain=True)
            log.info("QoS %s -> %s (%s)", request.requester, decision.model_id, decision.reasons[0])
        assert self.active is not None
        answer = QosDecision(
            decision.model_id, self.active.switch.version, decision.configuration, decision.d,
            decision.estimated_accuracy, decision.meets_target, switched, list(decision.reasons),
            ts=self.clock.time(),
        )  # fmt: skip
        self.record(EventRecord(kind="qos_decision", detail=to_dict(answer), ts=answer.ts))
        return answer

    def _switch_for(self, decision: Decision) -> ModelSwitch:
        now = self.clock.time()
        if decision.model_id == RAW:
            return ModelSwitch(RAW, 0, "", "CO", -1, now + self.lead_s, ts=now,
                               coordinator=self.node_id)  # fmt: skip
        stored = self.pool.get(decision.model_id)
        return ModelSwitch(
            stored.model_id, stored.version, stored.sha256, stored.configuration, -1,
            now + self.lead_s, ts=now, coordinator=self.node_id,
        )  # fmt: skip

    async def _serve_fetch(self, request: Message) -> Message:
        if not isinstance(request, ModelFetch):
            return ErrorReply(f"expected model_fetch, got {request.TYPE_NAME}")
        bundle: ModelBundle = self.pool.bundle(request.model_id)
        return bundle

    async def _serve_qos(self, request: Message) -> Message:
        if not isinstance(request, QosRequest):
            return ErrorReply(f"expected qos_request, got {request.TYPE_NAME}")
        return await self.handle(request)
