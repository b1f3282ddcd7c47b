"""What the Bus needs from an MQTT client library: one connection's lifetime.

The Bus owns reconnection, queueing, at-least-once redelivery and decoding. A
transport only opens one connection, moves bytes and reports acks and loss.
That keeps the client libraries interchangeable, so `edgebus bench bus` can
compare them behind the same interface.
"""

from __future__ import annotations

import importlib
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edgebus.broker.address import BrokerAddress

# A publisher waits once more than WRITE_HIGH_WATER bytes are waiting for the socket, until
# no more than WRITE_LOW_WATER are: QoS 0 has no acks to pace it.
WRITE_HIGH_WATER = 1 << 20
WRITE_LOW_WATER = 256 << 10

MQTT5 = 5
MQTT311 = 4


class ConnectFailed(ConnectionError):
    """The broker could not be reached or refused us; the message is one line."""


class NotConnected(ConnectionError):
    """A publish or subscribe on a connection that is already gone."""


class InflightFull(RuntimeError):
    """The client library has no packet id left for another QoS > 0 message.

    The Bus keeps its window below the broker's Receive Maximum, so this is a safety net:
    the message waits for an acknowledgement instead of being lost.
    """


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class MessageProperties:
    """The MQTT 5 PUBLISH properties edgebus sets and reads (none of them exist on 3.1.1,
    where a connection sends the message without them)."""

    expiry_s: int | None = None  # the broker discards the message once it is this old
    content_type: str | None = None
    utf8: bool = False  # the payload format indicator: UTF-8 text
    user: tuple[tuple[str, str], ...] = ()  # user properties, e.g. ("trace-id", ...)

    def user_property(self, name: str) -> str | None:
        return next((value for key, value in self.user if key == name), None)


NO_PROPERTIES = MessageProperties()


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    response_topic: str | None = None
    correlation: bytes | None = None
    properties: MessageProperties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    address: BrokerAddress
    client_id: str
    protocol: str = "auto"  # "auto" tries MQTT 5 first, then 3.1.1
    keepalive_s: int = 30
    clean_start: bool = True
    session_expiry_s: int = 0
    will: Will | None = None
    connect_timeout_s: float = 5.0


# MQTT 5 PUBACK reason codes of 0x80 and above: the broker took the packet and refused
# the message (MQTT 3.1.1 has none: a broker there acknowledges what it drops).
PUBACK_REFUSALS = {
    0x80: "unspecified error",
    0x83: "implementation specific error",
    0x87: "not authorized",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
}


def refusal_text(reason_code: int) -> str:
    """'not authorized (reason 135)': what a PUBACK reason code means, with the code."""
    name = PUBACK_REFUSALS.get(reason_code, "refused")
    return f"{name} (reason {reason_code})"


@dataclass(slots=True)
class ConnectionCallbacks:
    on_message: Callable[[Incoming], None]
    # (token, PUBACK reason code): 0 is success; 0x80 and above, the broker refused it.
    on_ack: Callable[[int, int], None]
    on_lost: Callable[[BaseException | None], None]


class Connection(Protocol):
    """One live MQTT connection. Never reconnects by itself."""

    protocol_version: int
    session_present: bool
    # QoS > 0 messages this client may have in flight on this connection: the broker's
    # MQTT 5 Receive Maximum as the client library can use it; None where the broker
    # states no limit (MQTT 3.1.1), and the Bus applies its own configured window.
    inflight_limit: int | None

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
        """Hand a message to the socket (its properties only on MQTT 5); for qos > 0,
        report `token` and the PUBACK's reason code (0 where the library does not surface
        it) to on_ack.

        Raises NotConnected when the connection is gone and InflightFull when no packet id
        is free; any other exception means the library refused this one message."""
        ...

    def pending_bytes(self) -> int:
        """Bytes written but not yet taken by the socket (for publisher backpressure)."""
        ...

    async def drained(self) -> None:
        """Return once at most WRITE_LOW_WATER bytes wait for the socket, or the connection
        is gone; woken by the library's own write progress, never by polling."""
        ...

    async def subscribe(self, patterns: list[tuple[str, int]]) -> None: ...

    async def unsubscribe(self, patterns: list[str]) -> None: ...

    async def close(self) -> None: ...


class ConnectionFactory(Protocol):
    async def __call__(
        self, options: ConnectOptions, callbacks: ConnectionCallbacks
    ) -> Connection: ...


_CLIENTS = {
    "gmqtt": "edgebus.broker.transport_gmqtt",
    "aiomqtt": "edgebus.broker.transport_aiomqtt",
    "paho": "edgebus.broker.transport_paho",
}


def client_names() -> tuple[str, ...]:
    return tuple(_CLIENTS)


def connection_factory(client: str) -> ConnectionFactory:
    """The `open_connection` coroutine of a client library, imported on demand."""
    try:
        module = importlib.import_module(_CLIENTS[client])
    except KeyError:
        raise ValueError(
            f"unknown MQTT client {client!r}; expected one of {', '.join(_CLIENTS)}"
        ) from None
    return module.open_connection


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH.
X509_HOSTNAME_MISMATCH = 62


def describe_os_error(exc: BaseException, address: BrokerAddress) -> str:
    """One line that names the cause: an unknown host, a TLS certificate problem (whose
    fix differs: a CA file, or the right host name), or the socket error itself."""
    where = f"cannot connect to broker {address.url}"
    if isinstance(exc, socket.gaierror):
        return f"{where}: cannot resolve host {address.host!r} ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = (exc.verify_message or str(exc)).rstrip(".")
        if exc.verify_code == X509_HOSTNAME_MISMATCH or "hostname" in detail.lower():
            return (f"{where}: TLS: the broker's certificate is not valid for host "
                    f"{address.host!r} ({detail})")  # fmt: skip
        ca_file = address.tls_options.ca_file
        ca = f"ca_file {ca_file!r}" if ca_file else "the system's CA store"
        return (f"{where}: TLS: the broker's certificate is not trusted by {ca} ({detail}); "
                "give the CA that signed it with ca_file")  # fmt: skip
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS handshake failed: {exc.reason or exc}"
    code = getattr(exc, "errno", None)
    reason = (
        (os.strerror(code) if isinstance(code, int) and code > 0 else None)
        or getattr(exc, "strerror", None)
        or str(exc)
        or type(exc).__name__
    )
    return f"{where}: {reason.lower()}"
