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
import itertools
import logging
import time
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
from edgebus.broker.matching import topic_matches, validate_filter
from edgebus.broker.memory import open_connection as memory_connection
from edgebus.broker.subscription import Delivery, Subscription
from edgebus.broker.transport import (
    MQTT5,
    ConnectFailed,
    Connection,
    ConnectionCallbacks,
    ConnectOptions,
    Incoming,
    InflightFull,
    NotConnected,
    Will,
    connection_factory,
)
from edgebus.messages import DecodeError, Message
from edgebus.topics import Topics

log = logging.getLogger("edgebus.bus")

# The Bus's interface: its errors and deliveries live in their own modules.
__all__ = [
    "Bus", "BusClosed", "BusError", "BusOptions", "BusStats", "Delivery", "OutgoingQueueFull",
    "PublishRefused", "Refusal", "RequestFailed", "RequestHandler", "RequestTimeout",
    "Subscription",
]  # fmt: skip

WRITE_HIGH_WATER = 1 << 20
WRITE_LOW_WATER = 256 << 10
# Never more than this many QoS > 0 messages in flight, whatever an MQTT 5 broker grants:
# each one is held in memory until its PUBACK.
MAX_WINDOW = 1024


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    response_topic: str | None = None
    correlation: bytes | None = None


@dataclass(slots=True)
class BusStats:
    published: int = 0
    published_bytes: int = 0
    received: int = 0
    received_bytes: int = 0
    resent: int = 0
    reconnects: int = 0
    queue_full: int = 0
    slow_consumer_drops: int = 0
    unclaimed_dropped: int = 0
    refused: int = 0  # QoS > 0 messages the broker acknowledged with a refusal
    unacknowledged: int = 0  # queued or in flight when the bus closed


# The newest refusals a Bus keeps for its owner to report.
REFUSALS_KEPT = 100


RequestHandler = Callable[[Message], Awaitable[Message]]


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
        self._connection: Connection | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._backlog: deque[_Outgoing] = deque()
        self._inflight: dict[int, _Outgoing] = {}
        self.refusals: deque[Refusal] = deque(maxlen=REFUSALS_KEPT)
        self.window = self.options.max_inflight
        self._window = asyncio.Event()
        self._tokens = itertools.count(1)
        self._subscriptions: list[Subscription] = []
        self._filters: dict[str, int] = {}
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._reply_subscription: Subscription | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[object]] = set()
        self._unclaimed: deque[tuple[float, Incoming]] = deque()
        # Called after every reconnect with whether the broker still had our session;
        # nodes republish their retained state there (a crashed broker forgot it).
        self.on_reconnect: list[Callable[[bool], Awaitable[None]]] = []
        self.session_present = False
        self.last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def start(self, timeout: float | None = None) -> None:
        """Connect, then keep reconnecting in the background until close().

        With a timeout, give up after that many seconds without a first connection and
        raise ConnectFailed with the last reason; without one, wait as long as it takes.
        """
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"bus-{self.node_id}")
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
        unsent = self.stats.unacknowledged = len(self._backlog) + len(self._inflight)
        if unsent:
            log.warning("closing with %d message(s) not acknowledged by the broker", unsent)
        self._closing = True
        for subscription in list(self._subscriptions):
            subscription.end()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BusClosed("bus closed"))
        tasks: list[asyncio.Task[Any]] = [
            t for t in (self._supervisor, self._flusher) if t is not None
        ]
        tasks += list(self._background)
        await cancel_and_wait(tasks, suppress=(Exception,))
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def flush(self) -> None:
        """Wait until the outgoing queue is empty and every QoS > 0 message is acked."""
        while self._backlog or self._inflight:
            self._window.clear()
            await self._window.wait()

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
        callbacks = ConnectionCallbacks(self._on_message, self._on_ack, self._on_lost)
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
            self.window = self._window_for(connection)
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
            self._kick_flusher()
            if reconnected:
                for hook in self.on_reconnect:
                    self._spawn(hook(connection.session_present))
            await self._lost.wait()
            self._connected.clear()
            self._connection = None
            with contextlib.suppress(Exception):
                await connection.close()
            if not self._closing:
                self.last_error = f"lost connection to broker {self.address.url}"
                log.warning("%s; reconnecting", self.last_error)
                await asyncio.sleep(self.backoff.next_delay())

    def _window_for(self, connection: Connection) -> int:
        """QoS > 0 messages allowed in flight on this connection (the broker sets the pace)."""
        limit = connection.inflight_limit
        if limit is None:
            return max(1, self.options.max_inflight)
        return max(1, min(limit, MAX_WINDOW))

    def _on_lost(self, exc: BaseException | None) -> None:
        # Whatever was not acked goes back to the head of the queue, oldest first, so a
        # reconnect resends it before anything newer (at-least-once, order kept).
        if self._inflight:
            self.stats.resent += len(self._inflight)
            self._backlog.extendleft(reversed(list(self._inflight.values())))
            self._inflight.clear()
        self._connection = None
        self._lost.set()

    def _on_ack(self, token: int, reason_code: int = 0) -> None:
        out = self._inflight.pop(token, None)
        self._window.set()
        if reason_code >= 0x80 and out is not None:
            # Not resent: the broker would refuse it again (an ACL, a quota, a bad topic).
            refusal = Refusal(out.topic, reason_code)
            self.refusals.append(refusal)
            self.stats.refused += 1
            log.warning("%s: %s", self.node_id, refusal)

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
    ) -> None:
        """Send a message (or raw bytes). While disconnected it is queued, up to queue_limit.

        Raises OutgoingQueueFull rather than blocking when the queue is full.
        """
        if self._closing:
            raise BusClosed("bus is closed")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        payload = messages.encode(message) if isinstance(message, Message) else bytes(message)
        out = _Outgoing(topic, payload, qos, retain, response_topic, correlation)
        if self._connection is not None and not self._backlog:
            if qos > 0 and len(self._inflight) >= self.window:
                await self._wait_window()
            if self._connection is not None and (
                self._connection.pending_bytes() > WRITE_HIGH_WATER
            ):
                await self._wait_socket()
            if self._connection is not None and not self._backlog:
                try:
                    self._send(self._connection, out)
                    return
                except (NotConnected, InflightFull):
                    pass  # queued below; the flusher sends it once the window opens
        self._enqueue(out)

    async def _wait_window(self) -> None:
        while len(self._inflight) >= self.window and self._connection is not None:
            self._window.clear()
            await self._window.wait()

    async def _wait_socket(self) -> None:
        # QoS 0 has no acks to pace it: without this a fast publisher buffers without bound
        # in the socket's user-space write buffer.
        while self._connection is not None and (self._connection.pending_bytes() > WRITE_LOW_WATER):
            await asyncio.sleep(0.0005)

    def _send(self, connection: Connection, out: _Outgoing) -> None:
        token = next(self._tokens)
        if out.qos > 0:
            self._inflight[token] = out
        try:
            connection.publish(
                out.topic,
                out.payload,
                out.qos,
                out.retain,
                token,
                out.response_topic,
                out.correlation,
            )
        except (NotConnected, InflightFull):
            self._inflight.pop(token, None)
            raise
        except Exception as exc:
            # A library error about this one message must not escape as its own type.
            self._inflight.pop(token, None)
            raise PublishRefused(
                f"{self.options.client} refused a publish to {out.topic}: {exc}"
            ) from None
        self.stats.published += 1
        self.stats.published_bytes += len(out.payload)

    def _enqueue(self, out: _Outgoing) -> None:
        if len(self._backlog) >= self.options.queue_limit:
            self.stats.queue_full += 1
            if self.stats.queue_full in (1, 10, 100) or self.stats.queue_full % 1000 == 0:
                log.error(
                    "outgoing queue full (%d messages) while disconnected from %s: "
                    "%d message(s) refused so far",
                    self.options.queue_limit,
                    self.address.url,
                    self.stats.queue_full,
                )
            raise OutgoingQueueFull(
                f"outgoing queue full ({self.options.queue_limit} messages) while "
                f"disconnected from {self.address.url}; message to {out.topic} not queued"
            )
        self._backlog.append(out)
        self._kick_flusher()

    def _kick_flusher(self) -> None:
        if (
            self._connection is not None
            and self._backlog
            and (self._flusher is None or self._flusher.done())
        ):
            self._flusher = asyncio.create_task(self._flush_backlog())

    async def _flush_backlog(self) -> None:
        try:
            await self._send_backlog()
        except Exception:
            # Never "Task exception was never retrieved": what is unsent stays queued and
            # the next reconnect or publish starts a new flusher.
            log.exception(
                "sending the outgoing queue failed; %d message(s) wait", len(self._backlog)
            )

    async def _send_backlog(self) -> None:
        sent = 0
        while self._backlog and self._connection is not None:
            out = self._backlog[0]
            if out.qos > 0 and len(self._inflight) >= self.window:
                await self._wait_window()
                continue
            if self._connection.pending_bytes() > WRITE_HIGH_WATER:
                await self._wait_socket()
                continue
            try:
                self._send(self._connection, out)
            except NotConnected:
                return
            except InflightFull:
                # The library's id pool is smaller than the window: shrink to what it holds.
                self.window = max(1, len(self._inflight))
                await self._wait_window()
                continue
            except PublishRefused as exc:
                log.error("%s; message dropped from the outgoing queue", exc)
            self._backlog.popleft()
            sent += 1
            if sent % 256 == 0:
                await asyncio.sleep(0)  # let acks and incoming messages through
        self._window.set()

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
        self._subscriptions.append(subscription)
        self._hand_unclaimed(subscription)
        known = self._filters.get(pattern)
        if known is None or known < qos:
            self._filters[pattern] = qos
            if self._connection is not None:
                # On failure the supervisor re-subscribes every filter after reconnecting.
                with contextlib.suppress(NotConnected, TimeoutError):
                    await self._connection.subscribe([(pattern, qos)])
        return subscription

    async def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        pattern = subscription.pattern
        if any(s.pattern == pattern for s in self._subscriptions):
            return
        self._filters.pop(pattern, None)
        if self._connection is not None and not self._closing:
            with contextlib.suppress(NotConnected, TimeoutError):
                await self._connection.unsubscribe([pattern])

    def _on_message(self, incoming: Incoming) -> None:
        self.stats.received += 1
        self.stats.received_bytes += len(incoming.payload)
        if not self._dispatch(incoming, self._subscriptions):
            self._keep_unclaimed(incoming)

    def _keep_unclaimed(self, incoming: Incoming) -> None:
        now = time.monotonic()
        while self._unclaimed and (
            now - self._unclaimed[0][0] > self.options.unclaimed_s
            or len(self._unclaimed) >= self.options.unclaimed_limit
        ):
            self._unclaimed.popleft()
            self.stats.unclaimed_dropped += 1
        self._unclaimed.append((now, incoming))

    def _hand_unclaimed(self, subscription: Subscription) -> None:
        if not self._unclaimed:
            return
        horizon = time.monotonic() - self.options.unclaimed_s
        kept: deque[tuple[float, Incoming]] = deque()
        for arrived, incoming in self._unclaimed:
            if arrived < horizon:
                self.stats.unclaimed_dropped += 1
            elif subscription.matches(incoming.topic):
                self._dispatch(incoming, [subscription])
            else:
                kept.append((arrived, incoming))
        self._unclaimed = kept

    def _dispatch(self, incoming: Incoming, subscriptions: list[Subscription]) -> bool:
        """Offer a message to the matching subscriptions; False if none matched."""
        decoded: Message | None = None
        error: str | None = None
        deadlettered = False
        matched = False
        for subscription in subscriptions:
            if not subscription.matches(incoming.topic):
                continue
            matched = True
            if not incoming.payload and not subscription.raw:
                continue  # a retained message being cleared: no message to deliver
            if decoded is None and error is None:
                try:
                    decoded = messages.decode(incoming.payload)
                except DecodeError as exc:
                    error = str(exc)
            if error is not None and not subscription.raw:
                if not deadlettered:
                    deadlettered = True
                    self._dead_letter(incoming, error)
                continue
            subscription._offer(
                Delivery(
                    incoming.topic,
                    incoming.payload,
                    decoded,
                    incoming.qos,
                    incoming.retain,
                    incoming.response_topic,
                    incoming.correlation,
                    error,
                )
            )
        return matched

    def _dead_letter(self, incoming: Incoming, reason: str) -> None:
        letter = self.deadletters.report(incoming.topic, incoming.payload, reason)
        deadletter_topic = self.topics.deadletter()
        if not self.options.deadletter or topic_matches(deadletter_topic, incoming.topic):
            return
        self._spawn(self.publish(deadletter_topic, letter, qos=0))

    def _spawn(self, coroutine: Awaitable[object]) -> None:
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
        if self._reply_subscription is None:
            self._reply_subscription = await self.subscribe(
                self.topics.replies(self.node_id), qos=1
            )
            self._spawn(self._collect_replies(self._reply_subscription))
        request_id = uuid.uuid4().hex
        reply_topic = self.topics.reply(self.node_id, request_id)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            if self.protocol_version >= MQTT5:
                await self.publish(
                    topic,
                    message,
                    qos=1,
                    response_topic=reply_topic,
                    correlation=request_id.encode(),
                )
            else:
                envelope = messages.RequestEnvelope(
                    reply_topic, request_id.encode(), messages.encode(message)
                )
                await self.publish(topic, envelope, qos=1)
            try:
                reply = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise RequestTimeout(
                    f"no reply to request on {topic} within {timeout:g} s"
                ) from None
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, messages.ErrorReply):
            raise RequestFailed(reply.error)
        return reply

    async def _collect_replies(self, subscription: Subscription) -> None:
        async for delivery in subscription:
            request_id = delivery.topic.rsplit("/", 1)[-1]
            future = self._pending.get(request_id)
            if future is not None and not future.done() and delivery.message is not None:
                future.set_result(delivery.message)

    async def serve(self, pattern: str, handler: RequestHandler) -> asyncio.Task[None]:
        """Answer requests on `pattern` with `handler`; runs until the bus closes."""
        subscription = await self.subscribe(pattern, qos=1)
        task = asyncio.create_task(self._serve(subscription, handler))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _serve(self, subscription: Subscription, handler: RequestHandler) -> None:
        async for delivery in subscription:
            request = delivery.message
            reply_to, correlation = delivery.response_topic, delivery.correlation
            if isinstance(request, messages.RequestEnvelope):
                reply_to, correlation = request.response_topic, request.correlation
                try:
                    request = messages.decode(request.body)
                except DecodeError as exc:
                    await self._reply(reply_to, correlation, messages.ErrorReply(str(exc)))
                    continue
            if not reply_to or request is None:
                continue  # a plain publish on a service topic is not a request
            try:
                reply = await handler(request)
            except Exception as exc:
                log.warning("request handler for %s failed: %s", subscription.pattern, exc)
                reply = messages.ErrorReply(f"{type(exc).__name__}: {exc}")
            await self._reply(reply_to, correlation, reply)

    async def _reply(self, topic: str, correlation: bytes | None, reply: Message) -> None:
        with contextlib.suppress(OutgoingQueueFull, BusClosed):
            await self.publish(topic, reply, qos=1, correlation=correlation)
