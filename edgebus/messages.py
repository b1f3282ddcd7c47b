"""Typed bus messages and their one versioned binary wire format.

Wire format (schema version 1)::

    byte 0   magic 0xEB
    byte 1   schema version
    byte 2   message type code
    rest     msgpack array of the dataclass fields, in declaration order

A positional array keeps frame chunks small (no field names on the wire). New
fields are only ever appended with a default, so a newer sender can talk to an
older receiver of the same schema version; a breaking change bumps the version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from edgebus.message_limits import FieldSpec, field_specs, max_payload

MAGIC = 0xEB
SCHEMA_VERSION = 1
HEADER_SIZE = 3


class DecodeError(ValueError):
    """A payload that is not a valid edgebus message."""


def _now() -> float:
    return time.time()


@dataclass(slots=True)
class Message:
    """Base of every bus message. Subclasses set TYPE_CODE and TYPE_NAME."""

    TYPE_CODE: ClassVar[int] = 0
    TYPE_NAME: ClassVar[str] = ""


@dataclass(slots=True)
class Status(Message):
    """Retained liveness of a node; the broker publishes the offline copy as the LWT."""

    TYPE_CODE: ClassVar[int] = 1
    TYPE_NAME: ClassVar[str] = "status"
    node: str
    role: str
    state: str  # "online" or "offline"
    version: str = ""
    capabilities: list[str] = field(default_factory=list)
    ts: float = field(default_factory=_now)
    # The node's monitor: CPU cores and free share, memory, capacity, ...
    resources: dict[str, float] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)  # models loaded
    links_bps: dict[str, float] = field(default_factory=dict)  # peer -> measured bytes/s
    # Why an offline node stopped, when it failed rather than being stopped.
    reason: str = ""


@dataclass(slots=True)
class Heartbeat(Message):
    TYPE_CODE: ClassVar[int] = 2
    TYPE_NAME: ClassVar[str] = "heartbeat"
    node: str
    role: str
    seq: int
    stats: dict[str, float] = field(default_factory=dict)
    ts: float = field(default_factory=_now)


@dataclass(slots=True)
class FrameChunk(Message):
    """One unit (or block of units) of an encoded frame, most important first."""

    TYPE_CODE: ClassVar[int] = 3
    TYPE_NAME: ClassVar[str] = "frame_chunk"
    camera: str
    frame_id: int
    chunk_index: int
    codec: str
    model_id: str
    capture_ts: float
    data: bytes
    edge: str = ""  # the edge the camera addressed the frame to; "" = any edge
    # The camera's run (random, new at every start): frame ids restart at 0 with it, so a
    # frame is (camera, incarnation, frame_id) everywhere, on the wire and in the stores.
    incarnation: int = 0


@dataclass(slots=True)
class EndOfFrame(Message):
    """Sent after the last chunk of a frame, at completion or at the deadline."""

    TYPE_CODE: ClassVar[int] = 4
    TYPE_NAME: ClassVar[str] = "end_of_frame"
    camera: str
    frame_id: int
    chunks_sent: int
    total_chunks: int
    bytes_sent: int
    codec: str
    model_id: str
    capture_ts: float
    deadline_ts: float
    width: int = 0
    height: int = 0
    # How many codec units the chunks carried (a chunk may hold several, or part of one).
    units_sent: int = 0
    # Ground truth for evaluation only (synthetic and folder sources know it); -1 = unknown.
    label: int = -1
    edge: str = ""  # the edge the camera addressed the frame to; "" = any edge
    incarnation: int = 0
    # 0 on the first send; a camera that saw no outcome for the frame sends the marker
    # again with attempt 1, 2, ... and the edge answers with the outcome it recorded.
    attempt: int = 0


# A result is on time when it is out within this long after its frame's deadline (the
# next capture): the time to decode and classify what arrived.
RESULT_SLACK_S = 0.1


def answered_in_time(answered_ts: float, deadline_ts: float) -> bool:
    """`Result.deadline_met`, the one definition: the answer (the edge's, or a camera's
    own weak-model answer) came out by the frame's deadline plus RESULT_SLACK_S. A
    frame row's `deadline_met` is the sender's: every chunk crossed the link in time."""
    return answered_ts <= deadline_ts + RESULT_SLACK_S


@dataclass(slots=True)
class Result(Message):
    TYPE_CODE: ClassVar[int] = 5
    TYPE_NAME: ClassVar[str] = "result"
    node: str
    camera: str
    frame_id: int
    top_k: list[int]
    scores: list[float]
    bytes_received: int
    chunks_received: int
    latency_ms: float
    offloaded: bool = True
    deadline_met: bool = True
    ts: float = field(default_factory=_now)
    units_received: int = 0
    codec: str = ""
    label: int = -1  # copied from the end marker, for scoring only
    model_id: str = ""  # the model the frame was decoded with (its chunks name it)
    incarnation: int = 0


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
    ts: float = field(default_factory=_now)


# How far in the future a model switch's timestamp may be: clock skew between the
# coordinator and a node, no more. A forged retained switch with a far-future time would
# otherwise pin every node that follows it.
MAX_SWITCH_SKEW_S = 60.0


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
    ts: float = field(default_factory=_now)
    # The coordinator that decided the switch: nodes follow only their configured one.
    coordinator: str = ""


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
    ts: float = field(default_factory=_now)


@dataclass(slots=True)
class SyncBatch(Message):
    """A batch of local-store rows, identified by the node's monotonic sequence numbers."""

    TYPE_CODE: ClassVar[int] = 9
    TYPE_NAME: ClassVar[str] = "sync_batch"
    node: str
    first_seq: int
    last_seq: int
    rows: list[dict[str, Any]]
    ts: float = field(default_factory=_now)
    # The local store's identity: a replaced store is a new stream of seqs, never a
    # rewrite of the old one.
    store: str = ""


@dataclass(slots=True)
class SyncAck(Message):
    TYPE_CODE: ClassVar[int] = 10
    TYPE_NAME: ClassVar[str] = "sync_ack"
    node: str
    highest_contiguous_seq: int
    ts: float = field(default_factory=_now)
    store: str = ""  # the store whose seqs the watermark counts


@dataclass(slots=True)
class DeadLetter(Message):
    """A payload that failed to decode, republished with the reason for inspection."""

    TYPE_CODE: ClassVar[int] = 11
    TYPE_NAME: ClassVar[str] = "dead_letter"
    source_topic: str
    reason: str
    payload: bytes
    reporter: str = ""
    ts: float = field(default_factory=_now)


@dataclass(slots=True)
class RequestEnvelope(Message):
    """Request/reply over MQTT 3.1.1, which has no response-topic property."""

    TYPE_CODE: ClassVar[int] = 12
    TYPE_NAME: ClassVar[str] = "request_envelope"
    response_topic: str
    correlation: bytes
    body: bytes


@dataclass(slots=True)
class ErrorReply(Message):
    """A request handler's failure, returned to the requester instead of silence."""

    TYPE_CODE: ClassVar[int] = 13
    TYPE_NAME: ClassVar[str] = "error_reply"
    error: str


@dataclass(slots=True)
class StoreQuery(Message):
    """Asks a node for rows of one table that the global store has not acknowledged yet."""

    TYPE_CODE: ClassVar[int] = 14
    TYPE_NAME: ClassVar[str] = "store_query"
    table: str
    since_ts: float = 0.0
    limit: int = 10_000


@dataclass(slots=True)
class StoreRows(Message):
    """A node's answer to StoreQuery: rows above its ack watermark (acked_seq), oldest first."""

    TYPE_CODE: ClassVar[int] = 15
    TYPE_NAME: ClassVar[str] = "store_rows"
    node: str
    table: str
    acked_seq: int
    rows: list[dict[str, Any]]
    truncated: bool = False


@dataclass(slots=True)
class ModelFetch(Message):
    """Asks the coordinator for the bytes of one model of the QoS pool."""

    TYPE_CODE: ClassVar[int] = 16
    TYPE_NAME: ClassVar[str] = "model_fetch"
    model_id: str


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


@dataclass(slots=True)
class ModelSwitchAck(Message):
    """A node now encodes or decodes with this model (from frame_id on, -1 if it has none)."""

    TYPE_CODE: ClassVar[int] = 18
    TYPE_NAME: ClassVar[str] = "model_switch_ack"
    node: str
    model_id: str
    version: int
    frame_id: int = -1
    ts: float = field(default_factory=_now)


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
    ts: float = field(default_factory=_now)


@dataclass(slots=True)
class DriftAlert(Message):
    """A stream's reconstruction error (paper Eq. 2) crossed its threshold."""

    TYPE_CODE: ClassVar[int] = 20
    TYPE_NAME: ClassVar[str] = "drift_alert"
    stream: str
    model_id: str
    error: float
    threshold: float
    ts: float = field(default_factory=_now)


@dataclass(slots=True)
class FrameDropped(Message):
    """A frame its camera sent that got no result in time (its edge died, or none was
    assigned): the explicit record that stands in for the missing result."""

    TYPE_CODE: ClassVar[int] = 21
    TYPE_NAME: ClassVar[str] = "frame_dropped"
    camera: str
    frame_id: int
    edge: str  # the edge the frame was sent to ("" when none was assigned)
    reason: str
    capture_ts: float
    ts: float = field(default_factory=_now)
    incarnation: int = 0


# FrameOutcome.outcome values: the first two are recorded by the deciding node; a refused
# frame is recorded by its camera (the edge could not accept it into its own record).
OUTCOME_RESULT = "result"
OUTCOME_DROPPED = "dropped"
OUTCOME_REFUSED = "refused"
OUTCOMES = (OUTCOME_RESULT, OUTCOME_DROPPED, OUTCOME_REFUSED)


@dataclass(slots=True)
class FrameOutcome(Message):
    """What became of one frame, told to its camera (`outcome/<camera>`) once the record
    of it is stored: the camera stops asking, and records refusals itself."""

    TYPE_CODE: ClassVar[int] = 22
    TYPE_NAME: ClassVar[str] = "frame_outcome"
    camera: str
    incarnation: int
    frame_id: int
    node: str  # the node that decided it
    outcome: str  # one of OUTCOMES
    reason: str = ""
    ts: float = field(default_factory=_now)


MESSAGE_TYPES: tuple[type[Message], ...] = (
    Status,
    Heartbeat,
    FrameChunk,
    EndOfFrame,
    Result,
    QosRequest,
    ModelSwitch,
    SchedulingPolicy,
    SyncBatch,
    SyncAck,
    DeadLetter,
    RequestEnvelope,
    ErrorReply,
    StoreQuery,
    StoreRows,
    ModelFetch,
    ModelBundle,
    ModelSwitchAck,
    QosDecision,
    DriftAlert,
    FrameDropped,
    FrameOutcome,
)
BY_CODE: dict[int, type[Message]] = {cls.TYPE_CODE: cls for cls in MESSAGE_TYPES}
BY_NAME: dict[str, type[Message]] = {cls.TYPE_NAME: cls for cls in MESSAGE_TYPES}


_SPECS: dict[type[Message], tuple[FieldSpec, ...]] = {
    cls: field_specs(cls) for cls in MESSAGE_TYPES
}


def encode(message: Message) -> bytes:
    """Encode a message with the current schema version."""
    cls = type(message)
    if cls not in _SPECS:
        raise TypeError(f"{cls.__name__} is not a registered edgebus message type")
    values = [getattr(message, spec.name) for spec in _SPECS[cls]]
    return bytes((MAGIC, SCHEMA_VERSION, cls.TYPE_CODE)) + msgpack.packb(values, use_bin_type=True)


def is_edgebus_payload(payload: bytes) -> bool:
    return len(payload) >= HEADER_SIZE and payload[0] == MAGIC


def decode(payload: bytes) -> Message:
    """Decode and validate a payload; any defect raises DecodeError, never anything else."""
    if len(payload) < HEADER_SIZE:
        raise DecodeError(f"payload of {len(payload)} bytes is shorter than the 3-byte header")
    if payload[0] != MAGIC:
        raise DecodeError(f"bad magic byte 0x{payload[0]:02x}, expected 0x{MAGIC:02x}")
    if payload[1] != SCHEMA_VERSION:
        raise DecodeError(
            f"unsupported schema version {payload[1]}, this build reads {SCHEMA_VERSION}"
        )
    cls = BY_CODE.get(payload[2])
    if cls is None:
        raise DecodeError(f"unknown message type code {payload[2]}")
    if len(payload) > max_payload(cls):
        raise DecodeError(
            f"{cls.TYPE_NAME}: payload of {len(payload)} bytes exceeds {max_payload(cls)}"
        )
    try:
        values = msgpack.unpackb(
            payload[HEADER_SIZE:], raw=False, use_list=True, strict_map_key=False
        )
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise DecodeError(f"{cls.TYPE_NAME}: body is not valid msgpack ({exc})") from None
    return _build(cls, values)


def _build(cls: type[Message], values: Any) -> Message:
    if not isinstance(values, list):
        raise DecodeError(f"{cls.TYPE_NAME}: body must be an array of fields")
    specs = _SPECS[cls]
    # Trailing fields from a newer sender of the same schema version are ignored by zip.
    return _validated(cls, dict(zip((spec.name for spec in specs), values, strict=False)))


def _validated(cls: type[Message], fields: dict[str, Any]) -> Message:
    for spec in _SPECS[cls]:
        if spec.name not in fields:
            if spec.required:
                raise DecodeError(f"{cls.TYPE_NAME}: missing required field '{spec.name}'")
            continue
        value = fields[spec.name]
        if not spec.check(value):
            raise DecodeError(
                f"{cls.TYPE_NAME}.{spec.name}: expected {spec.expected}, got {_describe(value)}"
            )
    return cls(**fields)


def _describe(value: Any) -> str:
    """The offending value in a few words, for the dead-letter reason."""
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    if isinstance(value, str | bytes | list | dict):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__


def to_dict(message: Message) -> dict[str, Any]:
    """A JSON-friendly view: bytes become {"hex": ...} so nothing is lost."""
    out: dict[str, Any] = {"type": message.TYPE_NAME}
    for spec in _SPECS[type(message)]:
        value = getattr(message, spec.name)
        out[spec.name] = {"hex": value.hex()} if isinstance(value, bytes) else value
    return out


def from_dict(data: Any) -> Message:
    """Build a message from its JSON view (the inverse of to_dict); errors raise DecodeError."""
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise DecodeError(f'expected a JSON object with a "type" field, got a {kind}')
    type_name = data.get("type")
    cls = BY_NAME.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise DecodeError(f"'type' must be one of {', '.join(sorted(BY_NAME))}, got {type_name!r}")
    specs = {spec.name: spec for spec in _SPECS[cls]}
    unknown = sorted(set(data) - set(specs) - {"type"})
    if unknown:
        raise DecodeError(f"{cls.TYPE_NAME}: unknown field(s) {', '.join(unknown)}")
    fields = {name: value for name, value in data.items() if name != "type"}
    for name, value in fields.items():
        if specs[name].expected != "bytes":
            continue
        if isinstance(value, dict) and set(value) == {"hex"}:
            try:
                fields[name] = bytes.fromhex(value["hex"])
            except (TypeError, ValueError):
                raise DecodeError(f"{cls.TYPE_NAME}.{name}: bad hex string") from None
        elif isinstance(value, str):
            fields[name] = value.encode()
    return _validated(cls, fields)
