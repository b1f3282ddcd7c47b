"""MQTT 5 PUBLISH properties in paho's terms (paho-mqtt, and aiomqtt built on it)."""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgebus.broker.transport import NO_PROPERTIES, Incoming, MessageProperties


def to_paho(
    properties: MessageProperties, response_topic: str | None, correlation: bytes | None
) -> Properties | None:
    """paho's Properties for a PUBLISH, or None when nothing is set (MQTT 5 only)."""
    if properties == NO_PROPERTIES and response_topic is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    if response_topic is not None:
        props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
    if properties.expiry_s is not None:
        props.MessageExpiryInterval = properties.expiry_s
    if properties.content_type is not None:
        props.ContentType = properties.content_type
    if properties.utf8:
        props.PayloadFormatIndicator = 1
    if properties.user:
        props.UserProperty = list(properties.user)
    return props


def incoming(topic: str, payload: bytes, qos: int, retain: bool, props: Any) -> Incoming:
    """A received message as the Bus takes it, its paho Properties (None on MQTT 3.1.1)
    read once for both clients built on paho."""
    return Incoming(
        topic, payload, qos, retain,
        getattr(props, "ResponseTopic", None) if props is not None else None,
        getattr(props, "CorrelationData", None) if props is not None else None,
        from_paho(props),
    )  # fmt: skip


def from_paho(props: Any) -> MessageProperties:
    """What a received message's paho Properties carry (None on MQTT 3.1.1)."""
    if props is None:
        return NO_PROPERTIES
    expiry = getattr(props, "MessageExpiryInterval", None)
    content_type = getattr(props, "ContentType", None)
    user = getattr(props, "UserProperty", None) or ()
    received = MessageProperties(
        expiry_s=int(expiry) if expiry is not None else None,
        content_type=str(content_type) if content_type is not None else None,
        utf8=bool(getattr(props, "PayloadFormatIndicator", 0)),
        user=tuple((str(k), str(v)) for k, v in user),
    )
    return NO_PROPERTIES if received == NO_PROPERTIES else received
