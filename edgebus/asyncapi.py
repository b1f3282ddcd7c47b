"""The bus as an AsyncAPI 3.0.0 document, generated from the code: channels from the
topic builders of topics.py (their addresses are what the builders return), messages and
their schemas from the registered message types (asyncapi_schema.py). What is written by
hand here is only what the code cannot say by itself: which messages each kind of topic
carries, who publishes them, and with what QoS and retain flag (ROUTES).

Every channel `edgebus json-view` may republish (Topics.json_viewable) has a JSON-view
twin under ``edgebus/v1/<site>/json/...`` (Topics.json_view), with the view's operation:
the same messages as `edgebus sub --json` prints them. `edgebus asyncapi` writes the document;
tests/test_asyncapi.py keeps docs/asyncapi.yaml equal to it.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from edgebus import topics as topics_module
from edgebus.asyncapi_schema import (
    json_message,
    json_view_schema,
    payload_schema,
    wire_message,
)
from edgebus.message_wire import HEADER_SIZE, MAGIC, SCHEMA_VERSION, WIRE_CONTENT_TYPE, Message
from edgebus.messages import (
    MESSAGE_TYPES,
    DeadLetter,
    DriftAlert,
    EndOfFrame,
    ErrorReply,
    FrameChunk,
    FrameDropped,
    FrameOutcome,
    Heartbeat,
    ModelBundle,
    ModelFetch,
    ModelSwitch,
    ModelSwitchAck,
    QosDecision,
    QosRequest,
    RequestEnvelope,
    Result,
    SchedulingPolicy,
    Status,
    StoreQuery,
    StoreRows,
    SyncAck,
    SyncBatch,
)
from edgebus.topics import JSON_VIEW_KIND, PREFIX, Topics

ASYNCAPI_VERSION = "3.0.0"
MQTT_BINDING_VERSION = "0.2.0"


@dataclass(frozen=True, slots=True)
class Route:
    """Who publishes which messages on one kind of topic (a Topics builder), and how."""

    channel: str  # the Topics method that builds the topic
    by: str  # the publisher's role
    messages: tuple[type[Message], ...]
    qos: int
    retain: bool = False
    note: str = ""
    reply: tuple[type[Message], ...] = ()  # request/reply: answers on reply/<node>/<id>


_ANSWERS = (ErrorReply,)  # any request may be answered with an error instead
# Read off the publishing code (nodes, coordinator, actor, storage, broker); the test
# checks every `bus.publish(<...>.topics.X(...), ..., qos=..., retain=...)` against it.
ROUTES: tuple[Route, ...] = (
    Route("frame_chunk", "camera", (FrameChunk,), 0,
          note="paced by the emulated link; stops at the frame's deadline; unpaced, the "
               "chunk that ends a frame rides in its end marker instead"),
    Route("frame_chunk", "latent_sender", (FrameChunk,), 1,
          note="the QoS pool's camera: one chunk 0 holds a frame's whole latent"),
    Route("frame_end", "camera", (EndOfFrame,), 1,
          note="may carry the frame's last chunk (last_chunk); sent again, without it, "
               "with attempt 1, 2, ... while no outcome comes back"),
    Route("result", "edge", (Result,), 1),
    Route("result", "camera", (Result,), 1, note="its weak model's answer to a frame it kept"),
    Route("dropped", "edge", (FrameDropped,), 1),
    Route("dropped", "camera", (FrameDropped,), 1, note="frames whose edge never answered"),
    Route("outcome", "edge", (FrameOutcome,), 1),
    Route("status", "node", (Status,), 1, retain=True,
          note="also each node's MQTT last will, with state offline"),
    Route("heartbeat", "node", (Heartbeat,), 0),
    Route("qos_request", "requester", (QosRequest,), 1),
    Route("model_switch", "coordinator", (ModelSwitch,), 1, retain=True,
          note="an empty retained payload clears it when no switch of its own is left"),
    Route("model_ack", "node", (ModelSwitchAck,), 1),
    Route("model_drift", "camera", (DriftAlert,), 1),
    Route("sched_policy", "coordinator", (SchedulingPolicy,), 1, retain=True),
    Route("sync", "node", (SyncBatch,), 1),
    Route("sync_ack", "cloud", (SyncAck,), 1),
    Route("request", "requester", (ModelFetch,), 1, note="service `model` of the coordinator",
          reply=(ModelBundle, *_ANSWERS)),
    Route("request", "requester", (QosRequest,), 1, note="service `qos` of the coordinator",
          reply=(QosDecision, *_ANSWERS)),
    Route("request", "requester", (StoreQuery,), 1, note="service `store` of a node",
          reply=(StoreRows, *_ANSWERS)),
    Route("request", "requester", (RequestEnvelope,), 1,
          note="MQTT 3.1.1, which has no response topic: a request wrapped with its reply "
          "topic and correlation", reply=(ModelBundle, QosDecision, StoreRows, *_ANSWERS)),
    Route("deadletter", "client", (DeadLetter,), 0,
          note="any bus client that could not decode a payload"),
)  # fmt: skip

# Replies travel on reply/<node>/<request_id>; no operation publishes there by name.
REPLY_CHANNEL = "reply"

PARAMETERS = {
    "site": "The site: one deployment's namespace on a broker (setting `site`).",
    "camera": "A camera's node id.",
    "node": "A node's id (its MQTT user name where the broker has an ACL).",
    "frame_id": "The frame's number, an integer counting from 0 in each camera incarnation.",
    "chunk": "The chunk's index within its frame, an integer from 0, most important first.",
    "request_id": "The requester's id for one request (hex), which its reply topic names.",
    "service": "The node's service: `model` and `qos` (coordinator), `store` (any node).",
}

# Stand-ins the builders are called with; a whole topic level equal to one is a parameter.
_INT_SAMPLES = {"frame_id": 987_654_321_001, "chunk": 987_654_321_002}


def _builder_parameters(name: str) -> list[str]:
    return [p for p in inspect.signature(getattr(Topics, name)).parameters if p != "self"]


def channel_address(topics: Topics, name: str) -> str:
    """The address of the channel a Topics builder makes, `{param}` for each argument."""
    params = _builder_parameters(name)
    args: list[object] = [_INT_SAMPLES.get(p, f"{{{p}}}") for p in params]
    topic: str = getattr(topics, name)(*args)
    samples = {str(value): f"{{{p}}}" for p, value in _INT_SAMPLES.items()}
    return "/".join(samples.get(level, level) for level in topic.split("/"))


def _table() -> dict[str, str]:
    """The kinds of topic and what they carry, from the table in topics.py's docstring."""
    rows = {}
    for line in (topics_module.__doc__ or "").splitlines():
        if line.startswith("``") and "``" in line[2:]:
            pattern, _, text = line[2:].partition("``")
            rows[pattern] = text.strip()
    return rows


def _channel_description(name: str, relative: str) -> str:
    table_key = relative.replace("{", "<").replace("}", ">")
    text = _table().get(table_key) or inspect.getdoc(getattr(Topics, name)) or ""
    if not text:
        raise ValueError(f"topics.py documents no {table_key!r} (builder {name})")
    return text[0].upper() + text[1:].rstrip(".") + "."


def _channel_names() -> list[str]:
    names = list(dict.fromkeys(route.channel for route in ROUTES))
    return [*names, REPLY_CHANNEL]


def _messages_on(channel: str) -> list[type[Message]]:
    if channel == REPLY_CHANNEL:
        found = [cls for route in ROUTES for cls in route.reply]
    else:
        found = [cls for route in ROUTES if route.channel == channel for cls in route.messages]
    return sorted(set(found), key=lambda cls: cls.TYPE_CODE)


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _channel_ref(channel: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{channel}/messages/{name}"}


def _channels(topics: Topics, site_fixed: bool) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for name in _channel_names():
        address = channel_address(topics, name)
        relative = address[len(topics.base) + 1 :]
        params = ([] if site_fixed else ["site"]) + _builder_parameters(name)
        on = _messages_on(name)
        retained = sorted({r.retain for r in ROUTES if r.channel == name})
        description = _channel_description(name, relative)
        if retained == [True] and "retained" not in description.lower():
            description += " Retained."
        channel: dict[str, Any] = {"address": address, "title": relative,
                                   "description": description}  # fmt: skip
        channel["messages"] = {cls.TYPE_NAME: _ref("messages", cls.TYPE_NAME) for cls in on}
        if params:
            channel["parameters"] = {p: _ref("parameters", p) for p in params}
        channels[name] = channel
        if not _viewable(topics, address):
            continue
        json_address = topics.json_view(address)
        channels[f"{name}_json"] = {
            "address": json_address,
            "title": json_address[len(topics.base) + 1 :],
            "description": f"JSON view of `{relative}`: each message there, republished as "
            "`edgebus sub --json` prints it.",
            "messages": {
                f"{cls.TYPE_NAME}_json": _ref("messages", f"{cls.TYPE_NAME}_json") for cls in on
            },
            **({"parameters": channel["parameters"]} if params else {}),
        }
    return channels


def _viewable(topics: Topics, address: str) -> bool:
    """Whether `edgebus json-view` may republish this channel: its address, parameters as
    wildcards, is one of the filters the view subscribes to."""

    def wild(topic: str) -> str:
        return re.sub(r"\{\w+\}", "+", topic)

    return wild(address) in {wild(f) for f in topics.json_viewable().values()}


def _json_view_operations(topics: Topics) -> dict[str, Any]:
    """The JSON view republishes each viewable channel's messages on its twin, at the QoS
    they were delivered with (its subscription is QoS 1) and retained where the source is."""
    operations: dict[str, Any] = {}
    for name in _channel_names():
        if name == REPLY_CHANNEL or not _viewable(topics, channel_address(topics, name)):
            continue
        routes = [r for r in ROUTES if r.channel == name]
        twin = f"{name}_json"
        operations[f"json_view_sends_{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{twin}"},
            "summary": f"edgebus json-view republishes {name} as JSON (application/json)",
            "messages": [_channel_ref(twin, f"{cls.TYPE_NAME}_json") for cls in _messages_on(name)],
            "bindings": {
                "mqtt": {
                    "qos": max(r.qos for r in routes),
                    "retain": any(r.retain for r in routes),
                    "bindingVersion": MQTT_BINDING_VERSION,
                }
            },
        }
    return operations


def _operation_ids() -> list[str]:
    ids = []
    for route in ROUTES:
        what = "_".join(cls.TYPE_NAME for cls in route.messages)
        ids.append(f"request_with_{what}" if route.reply else f"{route.by}_sends_{route.channel}")
    return ids


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for op_id, route in zip(_operation_ids(), ROUTES, strict=True):
        names = ", ".join(cls.__name__ for cls in route.messages)
        summary = f"{route.by.replace('_', ' ')} publishes {names}"
        operation: dict[str, Any] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{route.channel}"},
            "summary": summary + (f": {route.note}" if route.note else ""),
            "messages": [_channel_ref(route.channel, cls.TYPE_NAME) for cls in route.messages],
            "bindings": {
                "mqtt": {
                    "qos": route.qos,
                    "retain": route.retain,
                    "bindingVersion": MQTT_BINDING_VERSION,
                }
            },
        }
        if route.reply:
            operation["reply"] = {
                "channel": {"$ref": f"#/channels/{REPLY_CHANNEL}"},
                "messages": [_channel_ref(REPLY_CHANNEL, cls.TYPE_NAME) for cls in route.reply],
            }
        if op_id in operations:
            raise ValueError(f"two routes make the operation {op_id}")
        operations[op_id] = operation
    return operations


def _info() -> dict[str, Any]:
    return {
        "title": "edgebus",
        "version": f"topics {topics_module.VERSION}, wire schema {SCHEMA_VERSION}",
        "description": (
            "The MQTT bus of edgebus: cameras, edge nodes, a cloud node and a coordinator "
            f"talk only through topics under `{PREFIX}/<site>/`. Generated from "
            "edgebus/topics.py and the message types by `edgebus asyncapi`; do not edit.\n\n"
            f"Payloads ({WIRE_CONTENT_TYPE}): a {HEADER_SIZE}-byte header (magic "
            f"0x{MAGIC:02X}, schema version {SCHEMA_VERSION}, message type code) and then a "
            "msgpack array of the message's fields in declaration order, without names. "
            "Fields are only ever appended, with defaults; a receiver ignores trailing "
            "fields it does not know. Each message's x-edgebus-wire lists its type code "
            "and field order. The payload schemas describe the decoded form, the object "
            '`edgebus sub --json` prints (bytes as {"hex": ...}).\n\n'
            f"JSON views: the channels under `{PREFIX}/<site>/{JSON_VIEW_KIND}/` carry the "
            "same messages as one JSON object each (application/json), with the topic "
            "they came on, for clients that cannot read msgpack, where an `edgebus json-view` "
            "node republishes the chosen kinds."
        ),
    }


def _server(broker_url: str) -> dict[str, Any]:
    url = urlsplit(broker_url)
    return {
        "host": url.netloc.rpartition("@")[2],
        "protocol": url.scheme,
        "description": (
            "The default broker (setting `broker`): `edgebus up` starts an embedded one "
            "here. Clients speak MQTT 5 where the broker does, else MQTT 3.1.1."
        ),
    }


def build(site: str | None = None, broker_url: str = "mqtt://127.0.0.1:1883") -> dict[str, Any]:
    """The AsyncAPI document of the bus. With `site`, addresses name that site; without,
    the site is the first parameter of every channel."""
    topics = Topics(site if site is not None else "{site}")
    parameters = PARAMETERS if site is None else {k: v for k, v in PARAMETERS.items()
                                                   if k != "site"}  # fmt: skip
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for cls in MESSAGE_TYPES:
        messages[cls.TYPE_NAME] = wire_message(cls)
        schemas[cls.TYPE_NAME] = payload_schema(cls)
    for cls in MESSAGE_TYPES:
        messages[f"{cls.TYPE_NAME}_json"] = json_message(cls)
        schemas[f"{cls.TYPE_NAME}_json"] = json_view_schema(cls)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(),
        "defaultContentType": WIRE_CONTENT_TYPE,
        "servers": {"local": _server(broker_url)},
        "channels": _channels(topics, site_fixed=site is not None),
        "operations": {**_operations(), **_json_view_operations(topics)},
        "components": {
            "parameters": {name: {"description": text} for name, text in parameters.items()},
            "messages": messages,
            "schemas": schemas,
        },
    }
