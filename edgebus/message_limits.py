"""What a decoded message may hold. Every payload comes from the network, so decoding
checks values, not only types: a NaN timestamp or a frame id of 10^12 is as hostile as a
wrong type. Integers stay within what JSON and a 64-bit database column hold exactly.
message_wire.py builds one validator per field of each message type from these rules."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

# Every payload comes from the network, so decoding checks values, not only types: a NaN
# timestamp or a frame id of 10^12 is as hostile as a wrong type. Integers stay within
# what JSON and a 64-bit database column hold exactly.
MAX_ID = 2**53 - 1
MAX_TS = 1e11  # epoch seconds; about the year 5100
MAX_NAME = 128  # node, camera and edge ids
MAX_TEXT = 4096  # any other string field
MAX_ITEMS = 100_000  # items in one list or map field
MAX_DEPTH = 8  # nesting inside free-form (Any) fields
MAX_PAYLOAD = 4 << 20  # bytes of one message
# Messages that carry models or many store rows.
BULK_PAYLOAD = 64 << 20
_BULK_TYPES = {"sync_batch", "store_rows", "model_bundle", "dead_letter"}
MAX_CHUNKS = 1_000_000
_COUNT = (0, MAX_CHUNKS)
_BYTES = (0, 2**31 - 1)
_SEQ = (0, MAX_ID)
_TIME = (0.0, MAX_TS)
# Bounds by field name, the same in every message that has the field.
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "frame_id": (0, MAX_ID),
    "incarnation": (0, MAX_ID),
    "attempt": (0, 1_000_000),
    "chunk_index": _COUNT,
    "chunks_sent": _COUNT,
    "total_chunks": _COUNT,
    "units_sent": _COUNT,
    "units_received": _COUNT,
    "chunks_received": _COUNT,
    "bytes_sent": _BYTES,
    "bytes_received": _BYTES,
    "width": (0, 65535),
    "height": (0, 65535),
    "label": (-1, 2**31 - 1),
    "seq": _SEQ,
    "first_seq": (1, MAX_ID),
    "last_seq": (1, MAX_ID),
    "highest_contiguous_seq": _SEQ,
    "acked_seq": _SEQ,
    "version": (-1, MAX_ID),
    "effective_frame": (-1, MAX_ID),
    "limit": (0, MAX_ID),
    "latent_dim": (0, 1 << 20),
}
_FLOAT_BOUNDS: dict[str, tuple[float, float]] = {
    "ts": _TIME,
    "capture_ts": _TIME,
    "deadline_ts": _TIME,
    "effective_ts": _TIME,
    "since_ts": _TIME,
}
# Fields whose bounds differ in one message type.
_OVERRIDES: dict[tuple[str, str], tuple[int, int]] = {
    ("model_switch_ack", "frame_id"): (-1, MAX_ID),  # -1: the node has no frame yet
}
_NAME_FIELDS = {"node", "camera", "edge", "requester", "reporter", "role", "stream"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    check: typing.Callable[[Any], bool]
    expected: str
    required: bool


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _sane_any(value: Any, depth: int = 0) -> bool:
    """Free-form data (store rows, model metadata): finite numbers, bounded sizes."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, str | bytes):
        return len(value) <= BULK_PAYLOAD
    if isinstance(value, list):
        return len(value) <= MAX_ITEMS and all(_sane_any(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return len(value) <= MAX_ITEMS and all(
            isinstance(k, str | int) and _sane_any(k, depth + 1) and _sane_any(v, depth + 1)
            for k, v in value.items()
        )
    return False


def _checker(
    annotation: Any, name: str = "", bounds: tuple[float, float] | None = None
) -> tuple[typing.Callable[[Any], bool], str]:
    """A cheap validator, types and value ranges, for the small set of field types we use."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        parts = [_checker(arg, name, bounds) for arg in get_args(annotation)]
        return (lambda v: any(check(v) for check, _ in parts)), " or ".join(n for _, n in parts)
    if annotation is type(None):
        return (lambda v: v is None), "null"
    if annotation is float:
        low, high = bounds or _FLOAT_BOUNDS.get(name, (-math.inf, math.inf))
        if math.isinf(low) and math.isinf(high):
            return _finite, "a finite number"
        return (lambda v: _finite(v) and low <= v <= high), f"a number in [{low:g}, {high:g}]"
    if annotation is int:
        low, high = bounds or _INT_BOUNDS.get(name, (-MAX_ID, MAX_ID))
        return (
            lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
        ), f"an integer in [{low}, {high}]"
    if annotation is bool:
        return (lambda v: isinstance(v, bool)), "boolean"
    if annotation is str:
        limit = MAX_NAME if name in _NAME_FIELDS else MAX_TEXT
        return (
            lambda v: isinstance(v, str) and len(v) <= limit
        ), f"a string of <= {limit} characters"
    if annotation is bytes:
        return (lambda v: isinstance(v, bytes)), "bytes"
    if origin is list:
        (item,) = get_args(annotation)
        item_check, item_name = _checker(item, name)
        return (
            lambda v: isinstance(v, list) and len(v) <= MAX_ITEMS and all(item_check(x) for x in v)
        ), f"a list of <= {MAX_ITEMS} {item_name}"
    if origin is dict:
        key, value = get_args(annotation)
        key_check, _ = _checker(key)
        value_check, value_name = _checker(value)
        return (
            lambda v: (
                isinstance(v, dict)
                and len(v) <= MAX_ITEMS
                and all(key_check(k) and value_check(x) for k, x in v.items())
            )
        ), f"a map of <= {MAX_ITEMS} {value_name}"
    if annotation is Any:
        return _sane_any, f"finite numbers and <= {MAX_ITEMS} items per level"
    raise TypeError(f"unsupported message field type {annotation!r}")


def field_specs(cls: type[Any]) -> tuple[FieldSpec, ...]:
    """One validator per field of a message dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        check, expected = _checker(hints[f.name], f.name, _OVERRIDES.get((cls.TYPE_NAME, f.name)))
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        specs.append(FieldSpec(f.name, check, expected, required))
    return tuple(specs)


def max_payload(cls: type[Any]) -> int:
    """The largest payload a message of this type may be."""
    return BULK_PAYLOAD if cls.TYPE_NAME in _BULK_TYPES else MAX_PAYLOAD
