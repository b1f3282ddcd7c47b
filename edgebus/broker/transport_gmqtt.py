"""gmqtt transport: the default, chosen by `edgebus bench bus` (see the README)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from gmqtt.storage import PersistentStorage

from edgebus.broker.gmqtt_properties import publish_properties, received_properties
from edgebus.broker.transport import (
    MQTT5,
    MQTT311,
    NO_PROPERTIES,
    WRITE_HIGH_WATER,
    WRITE_LOW_WATER,
    ConnectFailed,
    ConnectionCallbacks,
    ConnectOptions,
    Incoming,
    InflightFull,
    MessageProperties,
    NotConnected,
    describe_os_error,
)

# gmqtt logs every reconnect attempt and refused CONNACK at WARNING; the Bus reports
# those itself, once, in its own words.
logging.getLogger("gmqtt").setLevel(logging.CRITICAL)

# Any negative value other than gmqtt's "unlimited" (-1) turns its own reconnects off.
_NO_RECONNECT = -2


COALESCE_LIMIT = 64 * 1024
# The Receive Maximum an MQTT 5 broker grants when its CONNACK does not name one.
DEFAULT_RECEIVE_MAXIMUM = 65535
SUBSCRIBE_ID_WAIT_S = 10.0


class HandshakeRejected(ConnectFailed):
    """The broker dropped the socket instead of answering CONNECT (amqtt does so for MQTT 5)."""


class NoConnack(ConnectFailed):
    """The socket opened but CONNECT got no answer (amqtt stalls on an MQTT 5 will)."""


class _CoalescingTransport:
    """Batches the socket writes of one event-loop turn into a single send().

    gmqtt writes each packet as it is built, which costs one syscall per message and
    caps a publisher near 20k msg/s. Joining the writes of one turn (or every 64 KiB)
    keeps the order and adds no latency beyond the current turn.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._chunks: list[bytes] = []
        self._size = 0
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._chunks:
            self._loop.call_soon(self.flush)
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= COALESCE_LIMIT:
            self.flush()

    def flush(self) -> None:
        if self._chunks and not self._transport.is_closing():
            self._transport.write(b"".join(self._chunks))
        self._chunks.clear()
        self._size = 0

    def get_write_buffer_size(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


class _AckTrackingStorage(PersistentStorage):
    """gmqtt's in-flight store, used only to learn which mid got its PUBACK."""

    def __init__(self, on_acked_mid: Callable[[int], None]) -> None:
        super().__init__()
        self.last_pushed_mid = 0
        self._on_acked_mid = on_acked_mid

    def push_message(self, mid: int, raw_package: bytes) -> None:
        self.last_pushed_mid = mid
        super().push_message(mid, raw_package)

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        self._on_acked_mid(mid)


def _read_puback_reasons(client: gmqtt.Client, reasons: dict[int, int]) -> None:
    """Record each MQTT 5 PUBACK's reason code by packet id, which gmqtt skips: a broker
    that refuses a message (0x87, not authorized) still acknowledges it. gmqtt's packet
    handler looks its handlers up by name on first use, so this wraps the instance's."""
    handler = client._package_handler
    original = handler._handle_puback_packet

    def reading(cmd: int, packet: bytes) -> None:
        (mid,) = struct.unpack("!H", packet[:2])
        if len(packet) > 2:  # absent means success (MQTT 5, 3.4.2.1)
            reasons[mid] = packet[2]
        original(cmd, packet)

    handler._handle_puback_packet = reading


class GmqttConnection:
    def __init__(self, callbacks: ConnectionCallbacks) -> None:
        self._callbacks = callbacks
        self._tokens: dict[int, int] = {}
        self._storage = _AckTrackingStorage(self._acked)
        self._client: gmqtt.Client | None = None
        self._puback_reasons: dict[int, int] = {}
        self._closing = False
        self._handshake_lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handshake_done = False
        self._suback: dict[int, asyncio.Future[None]] = {}
        self.protocol_version = MQTT5
        self.session_present = False
        self.inflight_limit: int | None = None

    def _acked(self, mid: int) -> None:
        reason = self._puback_reasons.pop(mid, 0)
        token = self._tokens.pop(mid, None)
        if token is not None:
            self._callbacks.on_ack(token, reason)

    async def open(self, options: ConnectOptions) -> None:
        will = None
        if options.will is not None:
            will = gmqtt.Message(
                options.will.topic,
                options.will.payload,
                qos=options.will.qos,
                retain=options.will.retain,
            )
        properties = {}
        if options.session_expiry_s:
            properties["session_expiry_interval"] = int(options.session_expiry_s)
        client = gmqtt.Client(
            options.client_id,
            clean_session=options.clean_start,
            will_message=will,
            persistent_storage=self._storage,
            **properties,
        )
        client.reconnect_retries = _NO_RECONNECT
        _read_puback_reasons(client, self._puback_reasons)
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_connect = self._on_connect
        address = options.address
        if address.username:
            client.set_auth_credentials(address.username, address.password)
        version = MQTTv311 if options.protocol == "3.1.1" else MQTTv50
        self._client = client
        connect = asyncio.ensure_future(
            client.connect(
                address.host,
                address.port,
                ssl=address.ssl_context() or False,
                keepalive=options.keepalive_s,
                version=version,
            )
        )
        # Whoever stops waiting (a timeout, or open() itself cancelled when a node gives
        # up) leaves the attempt to fail on its own: its error is read here, so asyncio
        # does not print it as a traceback.
        connect.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            done, _ = await asyncio.wait(
                {connect, self._handshake_lost},
                timeout=options.connect_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if connect not in done:
                connect.cancel()
                await self._abandon()
                if self._handshake_lost in done:
                    raise HandshakeRejected(
                        f"broker {address.url} closed the connection during the MQTT handshake"
                    )
                raise NoConnack(
                    f"cannot connect to broker {address.url}: no CONNACK within "
                    f"{options.connect_timeout_s:g} s"
                )
            connect.result()
            self._handshake_done = True
        except ConnectFailed:
            raise
        except OSError as exc:
            await self._abandon()
            raise ConnectFailed(describe_os_error(exc, address)) from None
        except Exception as exc:  # gmqtt raises its own MQTTConnectError for refusals
            await self._abandon()
            raise ConnectFailed(f"broker {address.url} refused the connection: {exc}") from None
        self._coalesce_writes(client)
        state = client._connection_state  # the negotiated version after a 3.1.1 fallback
        self.protocol_version = MQTT311 if state.protocol_version == MQTTv311 else MQTT5
        if options.protocol == "5" and self.protocol_version != MQTT5:
            await self.close()
            raise ConnectFailed(f"broker {address.url} does not speak MQTT 5 (asked for 5)")
        if self.protocol_version == MQTT5:
            self.inflight_limit = self._usable_receive_maximum(client)

    @staticmethod
    def _usable_receive_maximum(client: gmqtt.Client) -> int:
        """The broker's Receive Maximum, less what gmqtt's packet-id pool cannot use.

        gmqtt sizes its id pool to the Receive Maximum but refuses the last id, and
        SUBSCRIBE and UNSUBSCRIBE draw from the same pool: keeping two ids back means a
        full publish window never makes a subscribe fail.
        """
        properties = getattr(client._connection._handler, "_connack_properties", {}) or {}
        values = properties.get("receive_maximum")
        receive_maximum = int(values[0]) if values else DEFAULT_RECEIVE_MAXIMUM
        return max(1, receive_maximum - 2)

    @staticmethod
    def _coalesce_writes(client: gmqtt.Client) -> None:
        # gmqtt keeps the transport in two places: the connection and its protocol.
        connection = client._connection
        connection._transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        coalescing = _CoalescingTransport(connection._transport)
        connection._transport = coalescing
        connection._protocol._transport = coalescing

    async def _abandon(self) -> None:
        self._closing = True
        if self._client is not None:
            # The socket may never have opened; there is nothing to release then.
            with contextlib.suppress(Exception):
                await self._client.disconnect()

    def _on_connect(self, client: object, flags: int, rc: int, properties: object) -> None:
        self.session_present = bool(flags)

    def _on_message(
        self, client: object, topic: str, payload: bytes, qos: int, properties: dict
    ) -> int:
        response = properties.get("response_topic")
        correlation = properties.get("correlation_data")
        self._callbacks.on_message(
            Incoming(
                topic=topic,
                payload=payload,
                qos=qos,
                retain=bool(properties.get("retain", 0)),
                response_topic=response[0] if response else None,
                correlation=correlation[0] if correlation else None,
                properties=received_properties(properties),
            )
        )
        return 0

    def _on_disconnect(self, client: object, packet: object, exc: object = None) -> None:
        if not self._handshake_done:
            if not self._handshake_lost.done():
                self._handshake_lost.set_result(None)
            return
        if not self._closing:
            self._closing = True
            for future in self._suback.values():
                if not future.done():
                    future.set_exception(NotConnected("connection lost before SUBACK"))
            self._callbacks.on_lost(exc if isinstance(exc, BaseException) else None)

    def _on_subscribe(self, client: object, mid: int, qos: object, properties: object) -> None:
        future = self._suback.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        token: int,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        properties: MessageProperties = NO_PROPERTIES,
    ) -> None:
        client = self._client
        if client is None or self._closing or not client.is_connected:
            raise NotConnected("not connected")
        kwargs: dict[str, Any] = {}
        if self.protocol_version == MQTT5:
            kwargs.update(publish_properties(properties))
            if response_topic is not None:
                kwargs["response_topic"] = response_topic
                if correlation is not None:
                    kwargs["correlation_data"] = correlation
        try:
            client.publish(topic, payload, qos=qos, retain=retain, **kwargs)
        except OverflowError:
            # gmqtt's "All ids has already used": no packet id until an ack frees one.
            raise InflightFull("no MQTT packet id free until an acknowledgement") from None
        if qos > 0:
            self._tokens[self._storage.last_pushed_mid] = token

    def pending_bytes(self) -> int:
        connection = self._client._connection if self._client is not None else None
        transport = getattr(connection, "_transport", None)
        return transport.get_write_buffer_size() if transport is not None else 0

    async def drained(self) -> None:
        connection = self._client._connection if self._client is not None else None
        if connection is None or self._closing:
            return
        # Hand this turn's coalesced writes to the socket, whose flow control (limits set
        # at connect) pauses the protocol above WRITE_HIGH_WATER and resumes it at or
        # below WRITE_LOW_WATER; asyncio's drain waits for that resume.
        connection._transport.flush()
        with contextlib.suppress(ConnectionError):
            await connection._protocol._drain_helper()

    async def subscribe(self, patterns: list[tuple[str, int]]) -> None:
        client = self._client
        if client is None or self._closing:
            raise NotConnected("not connected")
        subs = [gmqtt.Subscription(pattern, qos=qos) for pattern, qos in patterns]
        mid = await self._with_packet_id(lambda: client.subscribe(subs))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._suback[mid] = future
        await asyncio.wait_for(future, 10)

    async def unsubscribe(self, patterns: list[str]) -> None:
        client = self._client
        if client is not None and not self._closing:
            await self._with_packet_id(lambda: client.unsubscribe(patterns))

    async def _with_packet_id(self, send: Callable[[], int]) -> int:
        """Run a SUBSCRIBE or UNSUBSCRIBE once gmqtt has a packet id free for it."""
        loop = asyncio.get_running_loop()
        until = loop.time() + SUBSCRIBE_ID_WAIT_S
        while True:
            if self._closing:
                raise NotConnected("not connected")
            try:
                return send()
            except OverflowError:
                if loop.time() > until:
                    raise TimeoutError("no MQTT packet id free for a subscription") from None
                await asyncio.sleep(0.005)

    async def close(self) -> None:
        if self._client is None:
            return
        self._closing = True
        # An already broken connection is closed either way.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.disconnect(), 2)


async def open_connection(
    options: ConnectOptions, callbacks: ConnectionCallbacks
) -> GmqttConnection:
    connection = GmqttConnection(callbacks)
    if options.protocol != "auto":
        await connection.open(options)
        return connection
    try:
        # Half the time for the MQTT 5 attempt: a 3.1.1-only broker may never answer it
        # (amqtt with a password file reads the MQTT 5 CONNECT as 3.1.1 and waits for
        # bytes that never come), and the 3.1.1 attempt needs the rest.
        await connection.open(replace(options, connect_timeout_s=options.connect_timeout_s / 2))
    except (HandshakeRejected, NoConnack):
        connection = GmqttConnection(callbacks)
        await connection.open(replace(options, protocol="3.1.1"))
    return connection
