"""Typed bus messages: one dataclass per kind of message on the bus, each registered
with the wire format (message_wire.py), and the rules that go with them: when a result is
on time, what became of a frame. The control plane's messages live in control_messages.py;
both they and the wire format's encode, decode and the rest are re-exported here, so
`from edgebus.messages import ...` and `messages.X` find every name in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgebus.control_messages import MAX_SWITCH_SKEW_S as MAX_SWITCH_SKEW_S
from edgebus.control_messages import DriftAlert as DriftAlert
from edgebus.control_messages import ModelBundle as ModelBundle
from edgebus.control_messages import ModelFetch as ModelFetch
from edgebus.control_messages import ModelSwitch as ModelSwitch
from edgebus.control_messages import ModelSwitchAck as ModelSwitchAck
from edgebus.control_messages import QosDecision as QosDecision
from edgebus.control_messages import QosRequest as QosRequest
from edgebus.control_messages import SchedulingPolicy as SchedulingPolicy
from edgebus.message_wire import BY_CODE, Message, now_ts, register
from edgebus.message_wire import MAGIC as MAGIC
from edgebus.message_wire import SCHEMA_VERSION as SCHEMA_VERSION
from edgebus.message_wire import DecodeError as DecodeError
from edgebus.message_wire import decode as decode
from edgebus.message_wire import encode as encode
from edgebus.message_wire import from_dict as from_dict
from edgebus.message_wire import to_dict as to_dict
from edgebus.message_wire import to_json as to_json


@register
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
    ts: float = field(default_factory=now_ts)
    # The node's monitor: CPU cores and free share, memory, capacity, ...
    resources: dict[str, float] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)  # models loaded
    links_bps: dict[str, float] = field(default_factory=dict)  # peer -> measured bytes/s
    # Why an offline node stopped, when it failed rather than being stopped.
    reason: str = ""


@register
@dataclass(slots=True)
class Heartbeat(Message):
    TYPE_CODE: ClassVar[int] = 2
    TYPE_NAME: ClassVar[str] = "heartbeat"
    node: str
    role: str
    seq: int
    stats: dict[str, float] = field(default_factory=dict)
    ts: float = field(default_factory=now_ts)


@register
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


@register
@dataclass(slots=True)
class EndOfFrame(Message):
    """Sent after the last chunk of a frame, at completion or at the deadline; it may
    carry that last chunk itself (`last_chunk`)."""

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
    # The frame's last chunk (index chunks_sent - 1) when it was ready with the frame's
    # end and no emulated link paces the frame: it rides here, so a 64 px frame is one
    # message, not a chunk and a marker. Empty when every chunk went on its own, and in
    # a marker sent again (a question about the frame, not its data).
    last_chunk: bytes = b""


# A result is on time when it is out within this long after its frame's deadline (the
# next capture): the time to decode and classify what arrived.
RESULT_SLACK_S = 0.1


def answered_in_time(answered_ts: float, deadline_ts: float) -> bool:
    """`Result.deadline_met`, the one definition: the answer (the edge's, or a camera's
    own weak-model answer) came out by the frame's deadline plus RESULT_SLACK_S. A
    frame row's `deadline_met` is the sender's: every chunk crossed the link in time."""
    return answered_ts <= deadline_ts + RESULT_SLACK_S


@register
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
    ts: float = field(default_factory=now_ts)
    units_received: int = 0
    codec: str = ""
    label: int = -1  # copied from the end marker, for scoring only
    model_id: str = ""  # the model the frame was decoded with (its chunks name it)
    incarnation: int = 0
    # The classifier's names of top_k (an ImageNet edge's "espresso"); empty where the
    # model names none (the QoS pool's).
    names: list[str] = field(default_factory=list)


@register
@dataclass(slots=True)
class SyncBatch(Message):
    """A batch of local-store rows, identified by the node's monotonic sequence numbers."""

    TYPE_CODE: ClassVar[int] = 9
    TYPE_NAME: ClassVar[str] = "sync_batch"
    node: str
    first_seq: int
    last_seq: int
    rows: list[dict[str, Any]]
    ts: float = field(default_factory=now_ts)
    # The local store's identity: a replaced store is a new stream of seqs, never a
    # rewrite of the old one.
    store: str = ""


@register
@dataclass(slots=True)
class SyncAck(Message):
    TYPE_CODE: ClassVar[int] = 10
    TYPE_NAME: ClassVar[str] = "sync_ack"
    node: str
    highest_contiguous_seq: int
    ts: float = field(default_factory=now_ts)
    store: str = ""  # the store whose seqs the watermark counts


@register
@dataclass(slots=True)
class DeadLetter(Message):
    """A payload that failed to decode, republished with the reason for inspection."""

    TYPE_CODE: ClassVar[int] = 11
    TYPE_NAME: ClassVar[str] = "dead_letter"
    source_topic: str
    reason: str
    payload: bytes
    reporter: str = ""
    ts: float = field(default_factory=now_ts)


@register
@dataclass(slots=True)
class RequestEnvelope(Message):
    """Request/reply over MQTT 3.1.1, which has no response-topic property."""

    TYPE_CODE: ClassVar[int] = 12
    TYPE_NAME: ClassVar[str] = "request_envelope"
    response_topic: str
    correlation: bytes
    body: bytes


@register
@dataclass(slots=True)
class ErrorReply(Message):
    """A request handler's failure, returned to the requester instead of silence."""

    TYPE_CODE: ClassVar[int] = 13
    TYPE_NAME: ClassVar[str] = "error_reply"
    error: str


@register
@dataclass(slots=True)
class StoreQuery(Message):
    """Asks a node for rows of one table that the global store has not acknowledged yet."""

    TYPE_CODE: ClassVar[int] = 14
    TYPE_NAME: ClassVar[str] = "store_query"
    table: str
    since_ts: float = 0.0
    limit: int = 10_000


@register
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


@register
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
    ts: float = field(default_factory=now_ts)
    incarnation: int = 0


# FrameOutcome.outcome values: the first two are recorded by the deciding node; a refused
# frame is recorded by its camera (the edge could not accept it into its own record).
OUTCOME_RESULT = "result"
OUTCOME_DROPPED = "dropped"
OUTCOME_REFUSED = "refused"
OUTCOMES = (OUTCOME_RESULT, OUTCOME_DROPPED, OUTCOME_REFUSED)


@register
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
    ts: float = field(default_factory=now_ts)


# Every registered type, this module's and control_messages.py's, in wire-code order.
MESSAGE_TYPES: tuple[type[Message], ...] = tuple(
    sorted(BY_CODE.values(), key=lambda c: c.TYPE_CODE)
)
