"""Well-typed but hostile values: decoding refuses them with a reason that names the field."""

from __future__ import annotations

import math

import msgpack
import pytest

from edgebus import message_limits, messages
from edgebus.messages import (
    DecodeError,
    EndOfFrame,
    FrameChunk,
    Heartbeat,
    ModelBundle,
    Result,
    Status,
    SyncBatch,
    decode,
    encode,
    from_dict,
    to_dict,
)


def end_marker(**changes: object) -> EndOfFrame:
    marker = EndOfFrame("cam", 4, 3, 10, 3000, "pnc", "m1", 10.0, 10.5, 64, 64)
    for name, value in changes.items():
        setattr(marker, name, value)
    return marker


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (end_marker(capture_ts=math.nan), "capture_ts"),
        (end_marker(capture_ts=math.inf), "capture_ts"),
        (end_marker(deadline_ts=-5.0), "deadline_ts"),
        (end_marker(capture_ts=1e300), "capture_ts"),
        (end_marker(frame_id=-1), "frame_id"),
        (end_marker(frame_id=2**60), "frame_id"),
        (end_marker(chunks_sent=-3), "chunks_sent"),
        (end_marker(camera="c" * 1000), "camera"),
        (end_marker(codec="x" * 100_000), "codec"),
        (FrameChunk("cam", 1, 2**40, "pnc", "m", 1.0, b""), "chunk_index"),
        (Result("e", "cam", 1, [1] * 200_000, [0.5], 1, 1, 1.0), "top_k"),
        (Result("e", "cam", 1, [1], [math.nan], 1, 1, 1.0), "scores"),
        (Result("e", "cam", 1, [1], [0.5], 1, 1, math.inf), "latency_ms"),
        (Heartbeat("n", "r", 1, {"frames": math.nan}), "stats"),
        (Status("n", "edge", "online", resources={"cpu": -math.inf}), "resources"),
        (SyncBatch("n", 1, 1, [{"values": [[math.nan]]}], store="s"), "rows"),
        (SyncBatch("n", 0, 1, [], store="s"), "first_seq"),
        (messages.SyncAck("n", -1, store="s"), "highest_contiguous_seq"),
        (ModelBundle("m", 1, "x", "ECO", 2, {}, {"deep": [[[[[[[[[[1]]]]]]]]]]}), "meta"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_out_of_range_values_are_refused_with_the_field_named(message, field):
    with pytest.raises(DecodeError, match=rf"\.{field}: expected"):
        decode(encode(message))
    # The JSON view (`edgebus pub`) goes through the same checks.
    with pytest.raises(DecodeError, match=rf"\.{field}: expected"):
        from_dict(to_dict(message))


def test_an_oversized_payload_is_refused_before_it_is_unpacked():
    body = msgpack.packb(["cam", 1, 0, "pnc", "m", 1.0, b"\0" * (message_limits.MAX_PAYLOAD + 1)])
    payload = bytes((messages.MAGIC, messages.SCHEMA_VERSION, FrameChunk.TYPE_CODE)) + body
    with pytest.raises(DecodeError, match="exceeds"):
        decode(payload)


def test_bulk_messages_may_be_larger():
    bundle = ModelBundle("m", 1, "ab" * 32, "ECO", 2, {"encoder.onnx": b"\0" * (8 << 20)})
    assert decode(encode(bundle)) == bundle


def test_in_range_edges_still_decode():
    marker = end_marker(frame_id=message_limits.MAX_ID, capture_ts=0.0, label=-1)
    assert decode(encode(marker)) == marker
    ack = messages.ModelSwitchAck("edge-1", "m", 1, -1, ts=1.0)  # -1: no frame yet
    assert decode(encode(ack)) == ack
