"""MQTT 5 PUBLISH properties in gmqtt's terms: keyword arguments out, lists of values in."""

from __future__ import annotations

from typing import Any

from edgebus.broker.transport import NO_PROPERTIES, MessageProperties


def publish_properties(properties: MessageProperties) -> dict[str, Any]:
    """gmqtt's PUBLISH keyword arguments for the properties that are set."""
    kwargs: dict[str, Any] = {}
    if properties.expiry_s is not None:
        kwargs["message_expiry_interval"] = properties.expiry_s
    if properties.content_type is not None:
        kwargs["content_type"] = properties.content_type
    if properties.utf8:
        kwargs["payload_format_id"] = 1
    if properties.user:
        kwargs["user_property"] = list(properties.user)
    return kwargs


def received_properties(properties: dict[str, Any]) -> MessageProperties:
    """gmqtt lists each property's values; absent ones are absent."""
    if not any(key in properties for key in _PUBLISH_PROPERTY_NAMES):
        return NO_PROPERTIES
    expiry = properties.get("message_expiry_interval")
    content_type = properties.get("content_type")
    return MessageProperties(
        expiry_s=int(expiry[0]) if expiry else None,
        content_type=str(content_type[0]) if content_type else None,
        utf8=bool(properties.get("payload_format_id", [0])[0]),
        user=tuple((str(k), str(v)) for k, v in properties.get("user_property", ())),
    )


_PUBLISH_PROPERTY_NAMES = (
    "message_expiry_interval", "content_type", "payload_format_id", "user_property",
)  # fmt: skip
