import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebus import messages
from edgebus.messages import (
    MESSAGE_TYPES,
    DecodeError,
    EndOfFrame,
    FrameChunk,
    QosRequest,
    Result,
    Status,
    SyncBatch,
    decode,
    encode,
    from_dict,
    to_dict,
)

EXAMPLES = [
    Status("n1", "edge", "online", "0.1.0", ["codec:raw"], ts=1.5),
    messages.Heartbeat("n1", "edge", 3, {"frames": 2.0}, ts=2.0),
    FrameChunk("cam", 4, 0, "pnc", "m1", 10.0, b"\x00\x01\xff"),
    EndOfFrame("cam", 4, 3, 10, 3000, "pnc", "m1", 10.0, 10.5, 64, 64),
    Result("edge", "cam", 4, [1, 2, 3], [0.5, 0.3, 0.2], 3000, 3, 12.5, True, False, ts=3.0),
    QosRequest("cli", 0.9, 2e5, 0.5, 512.0, None, ts=4.0),
    QosRequest("cli", 0.9, 2e5, image_quality=30.0, ts=4.0),
    messages.ModelSwitch("ae-32", 2, "ab" * 32, "ECO", 100, 0.0, ts=5.0),
    messages.SchedulingPolicy("edge-1", 1, ["t1"], ["cam-1"], "edge-2", ["a", "b"], {"f": 1e6}),
    SyncBatch("n", 1, 2, [{"seq": 1, "x": 1.5}, {"seq": 2, "x": None}], ts=6.0),
    messages.SyncAck("n", 2, ts=7.0),
    messages.DeadLetter("t", "why", b"raw", "me", ts=8.0),
    messages.RequestEnvelope("reply/t", b"id", b"body"),
    messages.ErrorReply("boom"),
    messages.StoreQuery("results", 1.5, 100),
    messages.StoreRows("n", "results", 3, [{"seq": 4, "camera": "c"}], False),
    messages.ModelFetch("shapes28-eco-d25"),
    messages.ModelBundle("m", 2, "ab" * 32, "ECO", 25, {"encoder.onnx": b"\x08\x01"}, {"d": 25}),
    messages.ModelSwitchAck("edge-1", "m", 2, 17, ts=3.0),
    messages.QosDecision("m", 2, "ECO", 25, 0.84, True, True, ["smallest d"], ts=4.0),
    messages.DriftAlert("cam-1", "m", 0.05, 0.03, ts=5.0),
    messages.FrameDropped("cam-1", 7, "edge-2", "edge edge-2 went offline", 1.0, ts=6.0),
    messages.FrameOutcome("cam-1", 12345, 7, "edge-2", "result", "", ts=6.5),
]


def test_every_type_has_an_example():
    assert {type(m) for m in EXAMPLES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.TYPE_NAME)
def test_round_trip(message):
    payload = encode(message)
    assert payload[:2] == bytes((messages.MAGIC, messages.SCHEMA_VERSION))
    assert decode(payload) == message
    assert from_dict(to_dict(message)) == message


def test_frame_chunk_overhead_is_small():
    chunk = FrameChunk("cam-1", 123456, 9, "pnc", "pnc-m10", 1.7e9, b"x" * 1000)
    assert len(encode(chunk)) - 1000 < 50


def test_trailing_fields_from_a_newer_sender_are_ignored():
    payload = encode(Status("n", "edge", "online"))
    values = msgpack.unpackb(payload[3:])
    newer = payload[:3] + msgpack.packb([*values, "future field"], use_bin_type=True)
    assert decode(newer).node == "n"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "shorter"),
        (b"\x00\x01\x01\x90", "magic"),
        (b"\xeb\x09\x01\x90", "schema version"),
        (b"\xeb\x01\xee\x90", "unknown message type"),
        (b"\xeb\x01\x01\xc1", "msgpack"),
        (b"\xeb\x01\x01" + msgpack.packb({"a": 1}), "array"),
        (b"\xeb\x01\x01" + msgpack.packb(["n"]), "missing required field 'role'"),
        (b"\xeb\x01\x01" + msgpack.packb([1, "edge", "online"]), "status.node: expected a string"),
    ],
)
def test_defects_are_named(payload, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(payload)


def test_from_dict_errors_name_the_problem():
    with pytest.raises(DecodeError, match="'type' must be one of"):
        from_dict({"type": "nope"})
    with pytest.raises(DecodeError, match="unknown field"):
        from_dict({"type": "status", "node": "n", "role": "r", "state": "s", "bogus": 1})
    with pytest.raises(DecodeError, match="expected a finite number"):
        from_dict({"type": "qos_request", "requester": "x", "accuracy": "high", "bandwidth_bps": 1})


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=256))
def test_fuzz_decoder_only_raises_decode_error(payload):
    try:
        message = decode(payload)
    except DecodeError:
        return
    assert encode(message)  # anything accepted is a well-formed message


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(EXAMPLES), st.data())
def test_fuzz_mutated_valid_payloads(message, data):
    payload = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(payload) - 1))
        payload[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    try:
        decoded = decode(bytes(payload[:cut]))
    except DecodeError:
        return
    assert type(decoded) in MESSAGE_TYPES
