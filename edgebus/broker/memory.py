"""An MQTT broker inside the process, for `memory://<name>` URLs: the same Bus, the same
topic matching, QoS, retained messages, last wills and persistent sessions, without a
socket. Test suites run on it as well as on real brokers, and a unit test of an actor
needs no broker process.

What it keeps of MQTT 5 (as a stock Mosquitto behaves):
- a subscription receives each matching message at min(publish QoS, subscription QoS);
  `$share/<group>/<filter>` hands each message to one member of the group in turn;
- retained messages are replayed on subscribe with the retain flag; an empty retained
  payload clears the topic;
- a session with `clean_start = False` and a session expiry keeps its subscriptions and
  queues QoS 1 and 2 messages (up to 1,000, Mosquitto's default) while its client is away;
- a client that connects with a client id already in use takes the session over and the
  older connection is dropped;
- a connection closed without DISCONNECT (`MemoryBroker.drop`) publishes its will; a
  stopped broker drops every connection and refuses new ones until started again.

Delivery is asynchronous (the event loop's next turn), in order per connection; every
QoS 1 and 2 publish is acknowledged at once with reason 0.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field

from edgebus.broker.matching import topic_matches
from edgebus.broker.transport import (
    MQTT5,
    NO_PROPERTIES,
    ConnectFailed,
    ConnectionCallbacks,
    ConnectOptions,
    Incoming,
    MessageProperties,
    NotConnected,
    Will,
)

SHARE_PREFIX = "$share/"
# Messages queued for an absent persistent session (Mosquitto's max_queued_messages).
MAX_QUEUED = 1000
# The Receive Maximum a stock Mosquitto grants.
RECEIVE_MAXIMUM = 20

_BROKERS: dict[str, MemoryBroker] = {}


def running_broker(name: str) -> MemoryBroker | None:
    return _BROKERS.get(name)


@dataclass(slots=True)
class _Session:
    client_id: str
    persistent: bool
    subscriptions: dict[str, int] = field(default_factory=dict)  # filter -> QoS
    queued: deque[Incoming] = field(default_factory=lambda: deque(maxlen=MAX_QUEUED))
    connection: MemoryConnection | None = None


class MemoryBroker:
    """One named broker; `memory://<name>` URLs reach it while it runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._turns = itertools.count()  # round-robin over a shared group's members
        self.published = 0

    @property
    def url(self) -> str:
        return f"memory://{self.name}"

    def start(self) -> MemoryBroker:
        if _BROKERS.get(self.name) not in (None, self):
            raise ValueError(f"a memory broker named {self.name!r} is already running")
        _BROKERS[self.name] = self
        return self

    def stop(self) -> None:
        """Like a broker process that dies: every connection is lost, nothing is kept
        (no persistence), and clients cannot connect until `start()`."""
        _BROKERS.pop(self.name, None)
        for session in list(self._sessions.values()):
            if session.connection is not None:
                session.connection.lose(ConnectionResetError("memory broker stopped"))
        self._sessions.clear()
        self._retained.clear()

    def drop(self, client_id: str) -> None:
        """Cut a client off without DISCONNECT, as a SIGKILL would: its will is sent."""
        session = self._sessions.get(client_id)
        if session is not None and session.connection is not None:
            connection = session.connection
            self._detach(session)
            connection.lose(ConnectionResetError("dropped by the memory broker"))
            if connection.will is not None:
                will = connection.will
                self.route(will.topic, will.payload, will.qos, will.retain, None, None)

    # -- the connection's side -----------------------------------------------------

    def attach(self, connection: MemoryConnection, options: ConnectOptions) -> bool:
        """Connect a client; returns whether its earlier session was resumed."""
        session = self._sessions.get(options.client_id)
        if session is not None and session.connection is not None:
            old = session.connection  # the client id is taken over
            session.connection = None
            old.lose(ConnectionResetError("session taken over by a new connection"))
        persistent = not options.clean_start and options.session_expiry_s > 0
        resumed = session is not None and session.persistent and not options.clean_start
        if not resumed:
            session = self._sessions[options.client_id] = _Session(options.client_id, persistent)
        assert session is not None
        session.persistent = persistent
        session.connection = connection
        while session.queued:
            connection.deliver(session.queued.popleft())
        return resumed

    def _detach(self, session: _Session) -> None:
        session.connection = None
        if not session.persistent:
            self._sessions.pop(session.client_id, None)

    def disconnect(self, connection: MemoryConnection) -> None:
        session = self._sessions.get(connection.client_id)
        if session is not None and session.connection is connection:
            self._detach(session)

    def subscribe(self, connection: MemoryConnection, patterns: list[tuple[str, int]]) -> None:
        session = self._session_of(connection)
        for pattern, qos in patterns:
            session.subscriptions[pattern] = qos
            if pattern.startswith(SHARE_PREFIX):
                continue  # shared subscriptions get no retained messages (MQTT 5, 4.8.2)
            for topic, (payload, retained_qos) in list(self._retained.items()):
                if topic_matches(pattern, topic):
                    connection.deliver(Incoming(topic, payload, min(qos, retained_qos), True))

    def unsubscribe(self, connection: MemoryConnection, patterns: list[str]) -> None:
        session = self._session_of(connection)
        for pattern in patterns:
            session.subscriptions.pop(pattern, None)

    def _session_of(self, connection: MemoryConnection) -> _Session:
        session = self._sessions.get(connection.client_id)
        if session is None or session.connection is not connection:
            raise NotConnected("not connected")
        return session

    def route(
        self, topic: str, payload: bytes, qos: int, retain: bool,
        response_topic: str | None, correlation: bytes | None,
        properties: MessageProperties = NO_PROPERTIES,
    ) -> None:  # fmt: skip
        self.published += 1
        if retain:
            if payload:
                self._retained[topic] = (payload, qos)
            else:
                self._retained.pop(topic, None)
        groups: dict[str, list[tuple[_Session, int]]] = {}
        for session in list(self._sessions.values()):
            best: int | None = None
            for pattern, sub_qos in session.subscriptions.items():
                if pattern.startswith(SHARE_PREFIX):
                    group, _, inner = pattern[len(SHARE_PREFIX) :].partition("/")
                    if topic_matches(inner, topic):
                        groups.setdefault(f"{group}/{inner}", []).append((session, sub_qos))
                elif topic_matches(pattern, topic):
                    best = sub_qos if best is None else max(best, sub_qos)
            if best is not None:
                self._offer(session, Incoming(topic, payload, min(qos, best), False,
                                              response_topic, correlation, properties))  # fmt: skip
        for members in groups.values():
            online = [m for m in members if m[0].connection is not None] or members
            session, sub_qos = online[next(self._turns) % len(online)]
            self._offer(session, Incoming(topic, payload, min(qos, sub_qos), False,
                                          response_topic, correlation, properties))  # fmt: skip

    @staticmethod
    def _offer(session: _Session, message: Incoming) -> None:
        if session.connection is not None:
            session.connection.deliver(message)
        elif session.persistent and message.qos > 0:
            session.queued.append(message)


class MemoryConnection:
    """One client's connection to a MemoryBroker (the transport Connection protocol)."""

    protocol_version = MQTT5
    inflight_limit: int | None = RECEIVE_MAXIMUM

    def __init__(
        self, broker: MemoryBroker, options: ConnectOptions, callbacks: ConnectionCallbacks
    ) -> None:
        self._broker = broker
        self._callbacks = callbacks
        self._loop = asyncio.get_running_loop()
        self.client_id = options.client_id
        self.will: Will | None = options.will
        self.open = True
        self.session_present = broker.attach(self, options)

    def deliver(self, message: Incoming) -> None:
        self._loop.call_soon(self._hand_over, message)

    def _hand_over(self, message: Incoming) -> None:
        if self.open:
            self._callbacks.on_message(message)

    def lose(self, exc: BaseException) -> None:
        if self.open:
            self.open = False
            self._loop.call_soon(self._callbacks.on_lost, exc)

    def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, token: int,
        response_topic: str | None = None, correlation: bytes | None = None,
        properties: MessageProperties = NO_PROPERTIES,
    ) -> None:  # fmt: skip
        if not self.open:
            raise NotConnected("not connected")
        self._broker.route(topic, payload, qos, retain, response_topic, correlation, properties)
        if qos > 0:
            self._loop.call_soon(self._callbacks.on_ack, token, 0)

    def pending_bytes(self) -> int:
        return 0

    async def drained(self) -> None:
        return  # routed synchronously: nothing ever waits to be written

    async def subscribe(self, patterns: list[tuple[str, int]]) -> None:
        if not self.open:
            raise NotConnected("not connected")
        self._broker.subscribe(self, patterns)

    async def unsubscribe(self, patterns: list[str]) -> None:
        if not self.open:
            raise NotConnected("not connected")
        self._broker.unsubscribe(self, patterns)

    async def close(self) -> None:
        """DISCONNECT: the session ends (or waits, if persistent) and the will is not sent."""
        if self.open:
            self.open = False
            self._broker.disconnect(self)


async def open_connection(
    options: ConnectOptions, callbacks: ConnectionCallbacks
) -> MemoryConnection:
    broker = running_broker(options.address.host)
    if broker is None:
        raise ConnectFailed(f"cannot connect to broker {options.address.url}: no such broker")
    return MemoryConnection(broker, options, callbacks)
