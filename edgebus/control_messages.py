"""The control plane's messages: QoS requests and decisions, model switches and the
model bundles behind them, scheduling policies and drift alerts, between the coordinator
and the nodes. Registered with the wire format like every message; messages.py
re-exports them, so `messages.ModelSwitch` reads as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgebus.message_wire import Message, now_ts, register


@register
@dataclass(slots=True)
class QosRequest(Message):
    TYPE_CODE: ClassVar[int] = 6
    TYPE_NAME: ClassVar[str] = "qos_request"
    requester: str
    accuracy: float
    bandwidth_bps: float
    edge_cpu: float = 1.0
    edge_memory_mb: float = 0.0
    image_quality: float | None = None
    ts: float = field(default_factory=now_ts)


# How far in the future a model switch's timestamp may be: clock skew between the
# coordinator and a node, no more. A forged retained switch with a far-future time would
# otherwise pin every node that follows it.
MAX_SWITCH_SKEW_S = 60.0


@register
@dataclass(slots=True)
class ModelSwitch(Message):
    TYPE_CODE: ClassVar[int] = 7
    TYPE_NAME: ClassVar[str] = "model_switch"
    model_id: str
    version: int
    sha256: str
    configuration: str  # CO, ECO or ECCD
    effective_frame: int
    effective_ts: float = 0.0
    ts: float = field(default_factory=now_ts)
    # The coordinator that decided the switch: nodes follow only their configured one.
    coordinator: str = ""


@register
@dataclass(slots=True)
class SchedulingPolicy(Message):
    TYPE_CODE: ClassVar[int] = 8
    TYPE_NAME: ClassVar[str] = "scheduling_policy"
    node: str
    version: int
    tasks: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    next_hop: str = ""
    route: list[str] = field(default_factory=list)
    bandwidth_caps_bps: dict[str, float] = field(default_factory=dict)
    ts: float = field(default_factory=now_ts)


@register
@dataclass(slots=True)
class ModelFetch(Message):
    """Asks the coordinator for the bytes of one model of the QoS pool."""

    TYPE_CODE: ClassVar[int] = 16
    TYPE_NAME: ClassVar[str] = "model_fetch"
    model_id: str


@register
@dataclass(slots=True)
class ModelBundle(Message):
    """A deployable model: named files (ONNX) and the sha256 of them all
    (codecs/model_bundle.py), checked by every node before it switches."""

    TYPE_CODE: ClassVar[int] = 17
    TYPE_NAME: ClassVar[str] = "model_bundle"
    model_id: str
    version: int
    sha256: str
    configuration: str
    latent_dim: int
    files: dict[str, bytes]
    meta: dict[str, Any] = field(default_factory=dict)


@register
@dataclass(slots=True)
class ModelSwitchAck(Message):
    """A node now encodes or decodes with this model (from frame_id on, -1 if it has none)."""

    TYPE_CODE: ClassVar[int] = 18
    TYPE_NAME: ClassVar[str] = "model_switch_ack"
    node: str
    model_id: str
    version: int
    frame_id: int = -1
    ts: float = field(default_factory=now_ts)


@register
@dataclass(slots=True)
class QosDecision(Message):
    """The orchestrator's answer to a QoS request: the model it chose and why."""

    TYPE_CODE: ClassVar[int] = 19
    TYPE_NAME: ClassVar[str] = "qos_decision"
    model_id: str
    version: int
    configuration: str
    latent_dim: int
    estimated_accuracy: float
    meets_target: bool
    switched: bool
    reasons: list[str] = field(default_factory=list)
    ts: float = field(default_factory=now_ts)


@register
@dataclass(slots=True)
class DriftAlert(Message):
    """A stream's reconstruction error (paper Eq. 2) crossed its threshold."""

    TYPE_CODE: ClassVar[int] = 20
    TYPE_NAME: ClassVar[str] = "drift_alert"
    stream: str
    model_id: str
    error: float
    threshold: float
    ts: float = field(default_factory=now_ts)
