"""aiomqtt transport: asyncio over paho, one task per publish to avoid awaiting each ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgebus.broker.paho_properties import incoming, to_paho
from edgebus.broker.transport import (
    MQTT5,
    MQTT311,
    NO_PROPERTIES,
    WRITE_LOW_WATER,
    ConnectFailed,
    ConnectionCallbacks,
    ConnectOptions,
    NotConnected,
)

# aiomqtt warns on every publish while many are pending; the Bus paces them itself.
logging.getLogger("mqtt").setLevel(logging.ERROR)


class AiomqttConnection:
    def __init__(self, callbacks: ConnectionCallbacks, protocol_version: int) -> None:
        self._callbacks = callbacks
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._publishes: set[asyncio.Task[None]] = set()
        self._closing = False
        self.protocol_version = protocol_version
        self.session_present = False
        # aiomqtt publishes through paho, which queues beyond its own in-flight cap.
        self.inflight_limit: int | None = None

    async def open(self, options: ConnectOptions) -> None:
        will = None
        if options.will is not None:
            will = aiomqtt.Will(
                options.will.topic, options.will.payload, options.will.qos, options.will.retain
            )
        properties = None
        if self.protocol_version == MQTT5 and options.session_expiry_s:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = int(options.session_expiry_s)
        self._client = aiomqtt.Client(
            options.address.host,
            options.address.port,
            username=options.address.username,
            password=options.address.password,
            identifier=options.client_id,
            protocol=aiomqtt.ProtocolVersion.V5
            if self.protocol_version == MQTT5
            else aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=None if self.protocol_version == MQTT5 else options.clean_start,
            clean_start=options.clean_start if self.protocol_version == MQTT5 else 3,
            keepalive=options.keepalive_s,
            timeout=options.connect_timeout_s,
            tls_context=options.address.ssl_context(),
            properties=properties,
        )
        try:
            await asyncio.wait_for(self._client.__aenter__(), options.connect_timeout_s)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise ConnectFailed(
                f"cannot connect to broker {options.address.url}: {exc or 'timed out'}"
            ) from None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._client is not None
        try:
            async for message in self._client.messages:
                self._callbacks.on_message(
                    incoming(str(message.topic), bytes(message.payload), message.qos,
                             bool(message.retain), message.properties)
                )  # fmt: skip
        except aiomqtt.MqttError as exc:
            if not self._closing:
                self._closing = True
                self._callbacks.on_lost(exc)

    def pending_bytes(self) -> int:
        # Each pending publish is a task; weigh them so the Bus's 1 MiB high-water mark
        # caps them near a thousand.
        return len(self._publishes) * 1024

    async def drained(self) -> None:
        while not self._closing and self.pending_bytes() > WRITE_LOW_WATER:
            await asyncio.wait(set(self._publishes), return_when=asyncio.FIRST_COMPLETED)

    def publish(
        self,
        topic,
        payload,
        qos,
        retain,
        token,
        response_topic=None,
        correlation=None,
        properties=NO_PROPERTIES,
    ) -> None:
        if self._closing or self._client is None:
            raise NotConnected("not connected")
        props = None
        if self.protocol_version == MQTT5:
            props = to_paho(properties, response_topic, correlation)
        task = asyncio.create_task(self._publish(topic, payload, qos, retain, props, token))
        self._publishes.add(task)
        task.add_done_callback(self._publishes.discard)

    async def _publish(self, topic, payload, qos, retain, props, token) -> None:
        assert self._client is not None
        try:
            await self._client.publish(topic, payload, qos, retain, props)
        except aiomqtt.MqttError:
            return  # the reader reports the loss; the Bus resends what was not acked
        if qos > 0:
            # aiomqtt's publish returns on PUBACK without its reason code.
            self._callbacks.on_ack(token, 0)

    async def subscribe(self, patterns: list[tuple[str, int]]) -> None:
        if self._closing or self._client is None:
            raise NotConnected("not connected")
        try:
            await self._client.subscribe(patterns, timeout=10)
        except aiomqtt.MqttError as exc:
            raise NotConnected(str(exc)) from None

    async def unsubscribe(self, patterns: list[str]) -> None:
        if self._client is not None and not self._closing:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.unsubscribe(patterns, timeout=5)

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.__aexit__(None, None, None), 2)


async def open_connection(
    options: ConnectOptions, callbacks: ConnectionCallbacks
) -> AiomqttConnection:
    versions = {"5": [MQTT5], "3.1.1": [MQTT311], "auto": [MQTT5, MQTT311]}[options.protocol]
    last: ConnectFailed | None = None
    for version in versions:
        connection = AiomqttConnection(callbacks, version)
        try:
            await connection.open(options)
            return connection
        except ConnectFailed as exc:
            last = exc
            if "refused" in str(exc).lower() and "protocol" not in str(exc).lower():
                break
    assert last is not None
    raise last
