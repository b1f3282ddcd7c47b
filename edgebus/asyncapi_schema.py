"""JSON schemas of the bus messages for the AsyncAPI document (asyncapi.py), generated
from the message dataclasses and the decoder's own field rules.

A schema describes a message as decoded: the object `messages.to_dict` makes of it, which
is what `edgebus sub --json` prints (with the topic added) and the JSON view republishes.
On the wire the same fields travel as a positional msgpack array (message_wire.py); the
`x-edgebus-wire` extension of each message gives their order.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Union, get_args, get_origin

from edgebus.message_limits import field_specs, max_payload
from edgebus.message_wire import (
    JSON_CONTENT_TYPE,
    MAGIC,
    SCHEMA_VERSION,
    WIRE_CONTENT_TYPE,
    Message,
)
from edgebus.messages import OUTCOMES, FrameOutcome

# Value sets the code defines for a field: {(message type, field): allowed values}.
ENUMS: dict[tuple[type[Message], str], tuple[str, ...]] = {(FrameOutcome, "outcome"): OUTCOMES}

# How `to_dict` shows a top-level bytes field; bytes nested in a list or map are left to
# json.dumps(default=str) by `sub --json`, which prints Python's repr (b'...').
HEX_BYTES: dict[str, Any] = {
    "type": "object",
    "description": "bytes, as to_dict shows them: lowercase hex",
    "properties": {"hex": {"type": "string", "pattern": "^([0-9a-f]{2})*$"}},
    "required": ["hex"],
    "additionalProperties": False,
}
NESTED_BYTES: dict[str, Any] = {
    "type": "string",
    "description": "bytes inside a list or map; `sub --json` prints Python's repr (b'...')",
}

_INT_RANGE = re.compile(r"^an integer in \[(-?\d+), (-?\d+)\]$")
_NUMBER_RANGE = re.compile(r"^a number in \[([^,\]]+), ([^,\]]+)\]$")
_STRING_MAX = re.compile(r"^a string of <= (\d+) characters$")
_ITEMS_MAX = re.compile(r"^a (?:list|map) of <= (\d+) ")
_SCALARS = (bool, int, float, str, bytes)


def type_schema(annotation: Any, top: bool = True) -> dict[str, Any]:
    """The JSON schema of a field type as decoded and shown by to_dict."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [type_schema(arg, top) for arg in get_args(annotation)]
        simple = all(set(o) == {"type"} and isinstance(o["type"], str) for o in options)
        if simple:
            return {"type": [o["type"] for o in options]}
        return {"oneOf": options}
    if annotation is type(None):
        return {"type": "null"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is str:
        return {"type": "string"}
    if annotation is bytes:
        return dict(HEX_BYTES) if top else dict(NESTED_BYTES)
    if origin is list:
        (item,) = get_args(annotation)
        return {"type": "array", "items": type_schema(item, top=False)}
    if origin is dict:
        key, value = get_args(annotation)
        if key is not str:
            raise TypeError(f"unsupported map key type {key!r}")
        return {"type": "object", "additionalProperties": type_schema(value, top=False)}
    if annotation is Any:
        return {"description": "any JSON value (free-form: finite numbers, bounded sizes)"}
    raise TypeError(f"no JSON schema for message field type {annotation!r}")


def _bounds(expected: str) -> dict[str, Any]:
    """JSON-schema bounds from the decoder's rule for a field (message_limits.py)."""
    if match := _INT_RANGE.match(expected):
        return {"minimum": int(match[1]), "maximum": int(match[2])}
    if match := _NUMBER_RANGE.match(expected):
        return {"minimum": float(match[1]), "maximum": float(match[2])}
    if match := _STRING_MAX.match(expected):
        return {"maxLength": int(match[1])}
    if match := _ITEMS_MAX.match(expected):
        return {"maxItems" if expected.startswith("a list") else "maxProperties": int(match[1])}
    return {}


def _default(f: dataclasses.Field[Any]) -> tuple[bool, Any]:
    """(has a default to show, the default): constants and empty containers only; a
    timestamp that defaults to the time of building has none to show."""
    if isinstance(f.default, bytes):
        return True, {"hex": f.default.hex()}  # as to_dict shows bytes
    if f.default is not dataclasses.MISSING:
        return True, f.default
    if f.default_factory in (list, dict):
        return True, f.default_factory()
    return False, None


def payload_schema(cls: type[Message]) -> dict[str, Any]:
    """The decoded form of one message type, as to_dict makes it."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    properties: dict[str, Any] = {
        "type": {"const": cls.TYPE_NAME, "description": "the message type (to_dict adds it)"}
    }
    required = ["type"]
    for spec in field_specs(cls):
        schema = type_schema(hints[spec.name])
        schema.update(_bounds(spec.expected))
        if (cls, spec.name) in ENUMS:
            schema["enum"] = list(ENUMS[cls, spec.name])
        has_default, default = _default(fields[spec.name])
        if has_default:
            schema["default"] = default
        if hints[spec.name] not in _SCALARS:  # a scalar's bounds say it all
            schema["description"] = (
                f"{schema['description']}; " if "description" in schema else ""
            ) + f"the decoder accepts {spec.expected}"
        properties[spec.name] = schema
        if spec.required:
            required.append(spec.name)
    return {"type": "object", "properties": properties, "required": required}


def json_view_schema(cls: type[Message]) -> dict[str, Any]:
    """The JSON view of a message: its decoded form plus the topic it came on."""
    return {
        "allOf": [
            {"$ref": f"#/components/schemas/{cls.TYPE_NAME}"},
            {
                "type": "object",
                "properties": {
                    "topic": {"type": "string", "description": "the original (msgpack) topic"}
                },
                "required": ["topic"],
            },
        ]
    }


def _summary(cls: type[Message]) -> str:
    doc = cls.__doc__ or ""
    if not doc or doc.startswith(f"{cls.__name__}("):  # the docstring @dataclass makes
        return f"{cls.__name__} message"
    return " ".join(doc.split("\n\n")[0].split())


def wire_message(cls: type[Message]) -> dict[str, Any]:
    """The AsyncAPI message object of one type as it travels on the bus."""
    specs = field_specs(cls)
    return {
        "name": cls.TYPE_NAME,
        "title": cls.__name__,
        "summary": _summary(cls),
        "contentType": WIRE_CONTENT_TYPE,
        "description": (
            f"On the wire: 0x{MAGIC:02X}, {SCHEMA_VERSION}, {cls.TYPE_CODE} (magic, schema "
            "version, type code), then a msgpack array of the fields in the order of "
            "x-edgebus-wire.fields. The payload schema is the decoded form "
            "(`edgebus sub --json`)."
        ),
        "payload": {"$ref": f"#/components/schemas/{cls.TYPE_NAME}"},
        "x-edgebus-wire": {
            "typeCode": cls.TYPE_CODE,
            "fields": [spec.name for spec in specs],
            "maxPayloadBytes": max_payload(cls),
        },
    }


def json_message(cls: type[Message]) -> dict[str, Any]:
    """The AsyncAPI message object of one type's JSON view."""
    return {
        "name": f"{cls.TYPE_NAME}_json",
        "title": f"{cls.__name__} (JSON view)",
        "summary": _summary(cls),
        "contentType": JSON_CONTENT_TYPE,
        "description": (
            "One JSON object, as `edgebus sub --json` prints it: the topic the message "
            "came on, its type and its fields."
        ),
        "payload": {"$ref": f"#/components/schemas/{cls.TYPE_NAME}_json"},
    }
