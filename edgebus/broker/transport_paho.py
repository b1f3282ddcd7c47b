"""paho-mqtt transport: paho's own network thread, handing events to the asyncio loop."""

from __future__ import annotations

import asyncio
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
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
    describe_os_error,
)


class PahoConnection:
    def __init__(self, callbacks: ConnectionCallbacks, protocol_version: int) -> None:
        self._callbacks = callbacks
        self._loop = asyncio.get_running_loop()
        self._tokens: dict[int, int] = {}
        self._connected: asyncio.Future[int] = self._loop.create_future()
        self._suback: dict[int, asyncio.Future[None]] = {}
        self._closing = False
        # Set whenever paho reports a packet written (QoS 0) or acked, and when the
        # connection is lost: what wakes a publisher waiting for the socket to drain.
        self._written = asyncio.Event()
        self._unwritten: dict[int, int] = {}
        self._unwritten_bytes = 0
        self.protocol_version = protocol_version
        self.session_present = False
        # paho queues what exceeds its own in-flight cap, so nothing overflows here; the
        # Bus still keeps to the broker's Receive Maximum.
        self.inflight_limit: int | None = None
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            protocol=paho.MQTTv5 if protocol_version == MQTT5 else paho.MQTTv311,
        )

    async def open(self, options: ConnectOptions) -> None:
        client = self._client
        client._client_id = options.client_id.encode()  # the constructor rejects bytes
        if options.address.username:
            client.username_pw_set(options.address.username, options.address.password)
        if options.will is not None:
            client.will_set(
                options.will.topic, options.will.payload, options.will.qos, options.will.retain
            )
        context = options.address.ssl_context()
        if context is not None:
            client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        kwargs: dict[str, Any] = {}
        if self.protocol_version == MQTT5:
            kwargs["clean_start"] = options.clean_start
            if options.session_expiry_s:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = int(options.session_expiry_s)
                kwargs["properties"] = props
        else:
            client._clean_session = options.clean_start
        try:
            await self._loop.run_in_executor(
                None,
                lambda: client.connect(
                    options.address.host, options.address.port, options.keepalive_s, **kwargs
                ),
            )
        except OSError as exc:
            raise ConnectFailed(describe_os_error(exc, options.address)) from None
        client.loop_start()
        try:
            code = await asyncio.wait_for(self._connected, options.connect_timeout_s)
        except TimeoutError:
            await self.close()
            raise ConnectFailed(
                f"cannot connect to broker {options.address.url}: no CONNACK within "
                f"{options.connect_timeout_s:g} s"
            ) from None
        if code != 0:
            await self.close()
            raise ConnectFailed(
                f"broker {options.address.url} refused the connection: "
                f"{paho.connack_string(code) if code < 128 else code}"
            )

    # paho calls these from its network thread.
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        if self.protocol_version == MQTT5:
            receive_maximum = getattr(properties, "ReceiveMaximum", None)
            self.inflight_limit = int(receive_maximum) if receive_maximum else 65535
        code = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        self._loop.call_soon_threadsafe(self._resolve_connect, code)

    def _resolve_connect(self, code: int) -> None:
        if not self._connected.done():
            self._connected.set_result(code)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._loop.call_soon_threadsafe(self._lost)

    def _lost(self) -> None:
        self._written.set()
        if not self._closing:
            self._closing = True
            self._callbacks.on_lost(None)

    def _on_message(self, client, userdata, msg) -> None:
        received = incoming(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain),
                            getattr(msg, "properties", None))  # fmt: skip
        self._loop.call_soon_threadsafe(self._callbacks.on_message, received)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Handled on the loop thread, where publish() maps mids to tokens synchronously:
        # by the time this runs the mapping exists, with no lock shared with paho's thread.
        code = getattr(reason_code, "value", reason_code)
        self._loop.call_soon_threadsafe(self._acked, mid, int(code or 0))

    def _acked(self, mid: int, reason_code: int) -> None:
        self._unwritten_bytes -= self._unwritten.pop(mid, 0)
        self._written.set()
        token = self._tokens.pop(mid, None)
        if token is not None:
            self._callbacks.on_ack(token, reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._loop.call_soon_threadsafe(self._subscribed, mid)

    def _subscribed(self, mid: int) -> None:
        future = self._suback.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def pending_bytes(self) -> int:
        # paho's out-packet queue belongs to its thread; count what we handed it instead,
        # until paho reports it written (QoS 0) or acknowledged.
        return self._unwritten_bytes

    async def drained(self) -> None:
        while not self._closing and self.pending_bytes() > WRITE_LOW_WATER:
            self._written.clear()
            await self._written.wait()

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
        if self._closing:
            raise NotConnected("not connected")
        props = None
        if self.protocol_version == MQTT5:
            props = to_paho(properties, response_topic, correlation)
        info = self._client.publish(topic, payload, qos, retain, props)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_QUEUE_SIZE):
            raise NotConnected(paho.error_string(info.rc))
        if qos > 0:
            self._tokens[info.mid] = token
        size = len(payload) + len(topic)
        self._unwritten[info.mid] = size
        self._unwritten_bytes += size

    async def subscribe(self, patterns: list[tuple[str, int]]) -> None:
        if self._closing:
            raise NotConnected("not connected")
        future: asyncio.Future[None] = self._loop.create_future()
        rc, mid = self._client.subscribe(patterns)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise NotConnected(paho.error_string(rc))
        self._suback[mid] = future
        await asyncio.wait_for(future, 10)

    async def unsubscribe(self, patterns: list[str]) -> None:
        if not self._closing:
            self._client.unsubscribe(patterns)

    async def close(self) -> None:
        self._closing = True
        self._written.set()
        self._client.disconnect()
        await self._loop.run_in_executor(None, self._client.loop_stop)


async def open_connection(
    options: ConnectOptions, callbacks: ConnectionCallbacks
) -> PahoConnection:
    versions = {"5": [MQTT5], "3.1.1": [MQTT311], "auto": [MQTT5, MQTT311]}[options.protocol]
    for index, version in enumerate(versions):
        connection = PahoConnection(callbacks, version)
        try:
            await connection.open(options)
            return connection
        except ConnectFailed as exc:
            # 0x01 in 3.1.1 / 0x84 in 5: the broker does not speak this version.
            retry = index + 1 < len(versions) and (
                "protocol" in str(exc).lower() or "132" in str(exc)
            )
            if not retry:
                raise
    raise ConnectFailed(f"cannot connect to broker {options.address.url}")
