"""The one versioned binary wire format of bus messages, and the registry of their types.

Wire format (schema version 1)::

    byte 0   magic 0xEB
    byte 1   schema version
    byte 2   message type code
    rest     msgpack array of the dataclass fields, in declaration order

A positional array keeps frame chunks small (no field names on the wire). New
fields are only ever appended with a default, so a newer sender can talk to an
older receiver of the same schema version; a breaking change bumps the version.

The message classes (messages.py, control_messages.py) register themselves here as they
are defined, so imports go one way: they import this module, never the reverse. Code that
decodes imports edgebus.messages, which loads both, so the registry is whole by then.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import msgpack

from edgebus.message_limits import FieldSpec, field_specs, max_payload

MAGIC = 0xEB
SCHEMA_VERSION = 1
HEADER_SIZE = 3
# The framing is edgebus's own (this 3-byte header before the msgpack body), so payloads
# are not plain application/msgpack: a vendor type says so, in the MQTT 5 content-type
# property of every message the Bus publishes and in the AsyncAPI document.
WIRE_CONTENT_TYPE = f"application/vnd.edgebus.v{SCHEMA_VERSION}+msgpack"
JSON_CONTENT_TYPE = "application/json"  # the JSON view (json_view.py)


class DecodeError(ValueError):
    """A payload that is not a valid edgebus message."""


@dataclass(slots=True)
class Message:
    """Base of every bus message. Subclasses set TYPE_CODE and TYPE_NAME."""

    TYPE_CODE: ClassVar[int] = 0
    TYPE_NAME: ClassVar[str] = ""


def now_ts() -> float:
    """The default `ts` of a message: when it was built."""
    return time.time()


M = TypeVar("M", bound=Message)

# The registered types by wire code and by name, and each one's field validators. Filled
# by @register while the message modules load, read-only after.
BY_CODE: dict[int, type[Message]] = {}
BY_NAME: dict[str, type[Message]] = {}
_SPECS: dict[type[Message], tuple[FieldSpec, ...]] = {}


def register(cls: type[M]) -> type[M]:
    """Class decorator (outermost, above @dataclass): make cls a wire message type. A
    code or name taken twice is a programming error, caught when the module loads."""
    if not cls.TYPE_CODE or not cls.TYPE_NAME:
        raise TypeError(f"{cls.__name__} sets no TYPE_CODE or TYPE_NAME")
    taken = BY_CODE.get(cls.TYPE_CODE) or BY_NAME.get(cls.TYPE_NAME)
    if taken is not None:
        raise TypeError(
            f"{cls.__name__}: code {cls.TYPE_CODE} or name {cls.TYPE_NAME!r} is taken by "
            f"{taken.__name__}"
        )
    # The validators are built now, while the class's module is loading, so that an
    # unsupported field type fails at import rather than at the first decode.
    _SPECS[cls] = field_specs(cls)
    BY_CODE[cls.TYPE_CODE] = cls
    BY_NAME[cls.TYPE_NAME] = cls
    return cls


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


def to_json(topic: str, message: Message) -> str:
    """The JSON form of a message as `edgebus sub --json` prints it and the JSON view
    republishes it: its topic, its type and every field by name."""
    return json.dumps({"topic": topic, **to_dict(message)}, default=str)


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
