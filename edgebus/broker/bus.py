"""The Bus: one async interface over MQTT 5 (with a 3.1.1 fallback) for every actor.

What it adds on top of a client library (see transport.py):

- reconnection with jittered exponential backoff, re-subscribing every filter;
- a bounded outgoing queue while disconnected, flushed in order on reconnect;
- at-least-once delivery for QoS > 0: a message stays in flight until its PUBACK
  and is sent again after a reconnect if the ack never came;
- decoding to `messages.py` types, with bad payloads counted and forwarded to the
  deadletter topic instead of reaching (or killing) the actor;
- request/reply over response-topic + correlation-data (an envelope on 3.1.1);
- flow control that follows the broker: at most its MQTT 5 Receive Maximum (or a
  configured window on 3.1.1) of QoS > 0 messages in flight;
- persistent sessions: a broker that kept this client's session delivers its queued
  messages right after CONNACK, before the actor has subscribed again in this process;
  those are held (bounded, for `unclaimed_s`) and handed to the first subscription
  that matches them instead of being acknowledged and lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from edgebus import messages
from edgebus.aio import cancel_and_wait
from edgebus.broker.address import BrokerAddress
from edgebus.broker.backoff import Backoff
from edgebus.broker.bus_errors import (
    BusClosed,
    BusError,
    OutgoingQueueFull,
    PublishRefused,
    Refusal,
    RequestFailed,
    RequestTimeout,
)
from edgebus.broker.deadletter import DeadLetterReporter
from edgebus.broker.inbox import Inbox, UnclaimedLimits
from edgebus.broker.matching import topic_matches, validate_filter
from edgebus.broker.memory import open_connection as memory_connection
from edgebus.broker.outbox import BusStats, Outbox, OutboxSetup, Outgoing
from edgebus.broker.request_reply import RequestHandler, Requests
from edgebus.broker.subscription import Delivery, Subscription
from edgebus.broker.transport import (
    MQTT5,
    NO_PROPERTIES,
    ConnectFailed,
    Connection,
    ConnectionCallbacks,
    ConnectOptions,
    Incoming,
    MessageProperties,
    NotConnected,
    Will,
    connection_factory,
)
from edgebus.message_wire import WIRE_CONTENT_TYPE
from edgebus.messages import Message
from edgebus.topics import Topics

# What an edgebus message carries on MQTT 5 unless its publisher gives its own properties.
WIRE_PROPERTIES = MessageProperties(content_type=WIRE_CONTENT_TYPE)

log = logging.getLogger("edgebus.bus")

# The Bus's interface: its errors and deliveries live in their own modules.
__all__ = [
    "Bus", "BusClosed", "BusError", "BusOptions", "BusStats", "Delivery", "OutgoingQueueFull",
    "PublishRefused", "Refusal", "RequestFailed", "RequestHandler", "RequestTimeout",
    "Subscription",
]  # fmt: skip


@dataclass(slots=True)
class BusOptions:
    site: str = "lab"
    node_id: str = ""
    client: str = "gmqtt"
    protocol: str = "auto"
    keepalive_s: int = 30
    clean_start: bool = True
    session_expiry_s: int = 0
    queue_limit: int = 10_000
    # QoS > 0 messages in flight on MQTT 3.1.1, where the broker states no limit: a stock
    # Mosquitto's max_inflight_messages. On MQTT 5 the broker's Receive Maximum applies.
    max_inflight: int = 20
    subscription_queue: int = 10_000
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    connect_timeout_s: float = 5.0
    will: Will | None = None
    deadletter: bool = True
    # Messages no subscription matches yet (a persistent session's backlog): kept this
    # long, at most unclaimed_limit of them, for the subscription that will claim them.
    unclaimed_s: float = 30.0
    unclaimed_limit: int = 10_000
    # amqtt drops messages still being routed when their sender's DISCONNECT arrives,
    # even after it acked them; lingering this long after the flush avoids that.
    linger_s: float = 0.1


class Bus:
    def __init__(self, address: BrokerAddress, options: BusOptions | None = None) -> None:
        self.address = address
        self.options = options or BusOptions()
        self.node_id = self.options.node_id or f"edgebus-{uuid.uuid4().hex[:8]}"
        self.topics = Topics(self.options.site)
        self.stats = BusStats()
        self.deadletters = DeadLetterReporter(self.node_id, log)
        self.backoff = Backoff(self.options.reconnect_min_s, self.options.reconnect_max_s)
        self.protocol_version = MQTT5
        self._factory = (
            memory_connection if address.in_memory else connection_factory(self.options.client)
        )
        self.outbox = Outbox(
            OutboxSetup(
                node_id=self.node_id,
                client=self.options.client,
                broker_url=address.url,
                queue_limit=self.options.queue_limit,
                max_inflight=self.options.max_inflight,
            ),
            self.stats,
        )
        self.inbox = Inbox(
            UnclaimedLimits(self.options.unclaimed_s, self.options.unclaimed_limit),
            self.stats,
            self._dead_letter,
        )
        self.requests = Requests(self)
        self._connection: Connection | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._filters: dict[str, int] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[object]] = set()
        # Called after every reconnect with whether the broker still had our session;
        # nodes republish their retained state there (a crashed broker forgot it).
        self.on_reconnect: list[Callable[[bool], Awaitable[None]]] = []
        self.session_present = False
        self.last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def window(self) -> int:
        """QoS > 0 messages allowed in flight on the current connection."""
        return self.outbox.window

    @property
    def refusals(self) -> deque[Refusal]:
        """The newest publishes the broker refused (an ACL, a quota, a bad topic)."""
        return self.outbox.refusals

    def begin(self) -> None:
        """Start connecting, and reconnecting until close(), without waiting: publishes
        queue (up to queue_limit) until the first connection."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"bus-{self.node_id}")

    async def start(self, timeout: float | None = None) -> None:
        """Connect, then keep reconnecting in the background until close().

        With a timeout, give up after that many seconds without a first connection and
        raise ConnectFailed with the last reason; without one, wait as long as it takes.
        """
        self.begin()
        assert self._supervisor is not None
        waiter = asyncio.create_task(self._connected.wait())
        done, _ = await asyncio.wait(
            {waiter, self._supervisor}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return
        waiter.cancel()
        if self._supervisor in done:
            self._supervisor.result()
        await self.close(flush_timeout=0)
        raise ConnectFailed(self.last_error or f"cannot connect to broker {self.address.url}")

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Flush what is queued or in flight (up to flush_timeout), then disconnect."""
        if self._closing:
            return
        if flush_timeout > 0 and self.connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), flush_timeout)
            if self.stats.published:
                await asyncio.sleep(self.options.linger_s)
        unsent = self.stats.unacknowledged = self.outbox.unacknowledged
        if unsent:
            log.warning("closing with %d message(s) not acknowledged by the broker", unsent)
        self._closing = True
        self.inbox.end_all()
        self.requests.fail_all(BusClosed("bus closed"))
        await self.outbox.stop()
        tasks: list[asyncio.Task[Any]] = [self._supervisor] if self._supervisor else []
        tasks += list(self._background)
        await cancel_and_wait(tasks, suppress=(Exception,))
        connection, self._connection = self._connection, None
        self.outbox.connection = None
        if connection is not None:
            await connection.close()

    async def flush(self) -> None:
        """Wait until the outgoing queue is empty and every QoS > 0 message is acked."""
        await self.outbox.flush()

    async def __aenter__(self) -> Bus:
        await self.start(timeout=self.options.connect_timeout_s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _supervise(self) -> None:
        options = ConnectOptions(
            address=self.address,
            client_id=self.node_id,
            protocol=self.options.protocol,
            keepalive_s=self.options.keepalive_s,
            clean_start=self.options.clean_start,
            session_expiry_s=self.options.session_expiry_s,
            will=self.options.will,
            connect_timeout_s=self.options.connect_timeout_s,
        )
        callbacks = ConnectionCallbacks(self.inbox.on_message, self.outbox.on_ack, self._on_lost)
        ever_connected = False
        while not self._closing:
            try:
                connection = await self._factory(options, callbacks)
            except ConnectFailed as exc:
                if str(exc) != self.last_error:
                    log.warning("%s; retrying with backoff", exc)
                self.last_error = str(exc)
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.backoff.reset()
            self._lost.clear()
            self._connection = connection
            self.protocol_version = connection.protocol_version
            if options.protocol == "auto" and connection.protocol_version != MQTT5:
                # Remember the fallback so reconnects skip the MQTT 5 attempt.
                options = replace(options, protocol="3.1.1")
            self.session_present = connection.session_present
            reconnected = ever_connected
            if ever_connected:
                self.stats.reconnects += 1
                log.info(
                    "reconnected to %s (%s)",
                    self.address.url,
                    "session kept" if connection.session_present else "new session",
                )
            ever_connected = True
            try:
                if self._filters:
                    await connection.subscribe(list(self._filters.items()))
            except (NotConnected, TimeoutError):
                self._on_lost(None)
            self._connected.set()
            if self._connection is connection:
                self.outbox.attach(connection)
            if reconnected:
                for hook in self.on_reconnect:
                    self.spawn(hook(connection.session_present))
            await self._lost.wait()
            self._connected.clear()
            self._connection = None
            with contextlib.suppress(Exception):
                await connection.close()
            if not self._closing:
                self.last_error = f"lost connection to broker {self.address.url}"
                log.warning("%s; reconnecting", self.last_error)
                await asyncio.sleep(self.backoff.next_delay())

    def _on_lost(self, exc: BaseException | None) -> None:
        self.outbox.detach()
        self._connection = None
        self._lost.set()

    # -- publishing ----------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        message: Message | bytes,
        qos: int = 0,
        retain: bool = False,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        properties: MessageProperties | None = None,
    ) -> None:
        """Send a message (or raw bytes). While disconnected it is queued, up to queue_limit.

        On MQTT 5 an edgebus message carries its content type unless `properties` says
        otherwise; raw bytes carry only what `properties` gives. Raises OutgoingQueueFull
        rather than blocking when the queue is full.
        """
        if self._closing:
            raise BusClosed("bus is closed")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        if isinstance(message, Message):
            payload = messages.encode(message)
            properties = WIRE_PROPERTIES if properties is None else properties
        else:
            payload = bytes(message)
        await self.outbox.send(
            Outgoing(
                topic, payload, qos, retain, response_topic, correlation,
                NO_PROPERTIES if properties is None else properties,
            )
        )  # fmt: skip

    # -- receiving -----------------------------------------------------------------

    async def subscribe(
        self, pattern: str, qos: int = 1, *, raw: bool = False, maxsize: int | None = None
    ) -> Subscription:
        """Subscribe to a topic filter; the returned iterator yields Delivery objects.

        Typed subscriptions (raw=False) only see valid edgebus messages; anything else is
        counted and sent to the deadletter topic. Raw subscriptions see every payload.
        """
        validate_filter(pattern)
        subscription = Subscription(
            self, pattern, qos, raw, maxsize or self.options.subscription_queue
        )
        self.inbox.add(subscription)
        known = self._filters.get(pattern)
        if known is None or known < qos:
            self._filters[pattern] = qos
            if self._connection is not None:
                # On failure the supervisor re-subscribes every filter after reconnecting.
                with contextlib.suppress(NotConnected, TimeoutError):
                    await self._connection.subscribe([(pattern, qos)])
        return subscription

    async def _unsubscribe(self, subscription: Subscription) -> None:
        self.inbox.remove(subscription)
        pattern = subscription.pattern
        if any(s.pattern == pattern for s in self.inbox.subscriptions):
            return
        self._filters.pop(pattern, None)
        if self._connection is not None and not self._closing:
            with contextlib.suppress(NotConnected, TimeoutError):
                await self._connection.unsubscribe([pattern])

    def _dead_letter(self, incoming: Incoming, reason: str) -> None:
        letter = self.deadletters.report(incoming.topic, incoming.payload, reason)
        deadletter_topic = self.topics.deadletter()
        if not self.options.deadletter or topic_matches(deadletter_topic, incoming.topic):
            return
        self.spawn(self.publish(deadletter_topic, letter, qos=0))

    def spawn(self, coroutine: Awaitable[object]) -> None:
        """Run a publish (or a reply collector) in the background for as long as the bus
        lives; a publish the closed or full bus refuses is dropped with a debug line."""

        async def guarded() -> None:
            try:
                await coroutine
            except (OutgoingQueueFull, BusClosed) as exc:
                log.debug("background publish dropped: %s", exc)

        task = asyncio.ensure_future(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- request / reply -----------------------------------------------------------

    async def request(self, topic: str, message: Message, timeout: float = 5.0) -> Message:
        """Send a request and wait for its reply; raises RequestTimeout or RequestFailed."""
        return await self.requests.request(topic, message, timeout)

    async def serve(self, pattern: str, handler: RequestHandler) -> asyncio.Task[None]:
        """Answer requests on `pattern` with `handler`; runs until the bus closes."""
        subscription = await self.subscribe(pattern, qos=1)
        task = asyncio.create_task(self.requests.serve(subscription, handler))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
