"""MQTT 5 properties that follow a frame from capture to result.

Every message about one frame (its end marker, its result or drop record, the outcome
told to its camera) carries the user property `trace-id`: 32 hex digits (a W3C trace id's
size) derived from the frame's identity, (camera, incarnation, frame_id). Derived, not
drawn at random, so any tool can compute it from a decoded message too, and a restarted
camera (a new incarnation) never reuses one. Frame chunks carry only their expiry: the
broker discards a chunk that is still queued when its frame's deadline has passed, and
each chunk stays as small as the emulated link assumes.
"""

from __future__ import annotations

import hashlib
import math

from edgebus.broker.transport import MessageProperties
from edgebus.message_wire import WIRE_CONTENT_TYPE

TRACE_ID = "trace-id"


def frame_trace_id(camera: str, incarnation: int, frame_id: int) -> str:
    digest = hashlib.sha256(f"{camera}/{incarnation}/{frame_id}".encode()).hexdigest()
    return digest[:32]


def traced(camera: str, incarnation: int, frame_id: int) -> MessageProperties:
    """The properties of a message about one frame: content type and trace id."""
    trace = frame_trace_id(camera, incarnation, frame_id)
    return MessageProperties(content_type=WIRE_CONTENT_TYPE, user=((TRACE_ID, trace),))


def chunk_properties(seconds_to_deadline: float) -> MessageProperties:
    """A frame chunk's expiry: whole seconds (MQTT's unit), at least one, rounded up so a
    chunk is never discarded before its deadline."""
    return MessageProperties(expiry_s=max(1, math.ceil(seconds_to_deadline)))
