"""The Bus's outgoing side: flow control, the queue kept while disconnected, resends.

- At most `window` QoS > 0 messages are in flight, each held until its PUBACK: the
  broker's MQTT 5 Receive Maximum (capped at MAX_WINDOW) or a configured window on 3.1.1.
- QoS 0 has no acks to pace it, so a publisher waits while the socket holds more than
  WRITE_HIGH_WATER bytes, until the connection reports it drained.
- While disconnected, messages wait in a bounded backlog; a lost connection puts what
  was in flight back at its head, oldest first, so a reconnect resends it before
  anything newer (at-least-once, order kept).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass

from edgebus.broker.bus_errors import OutgoingQueueFull, PublishRefused, Refusal
from edgebus.broker.transport import (
    NO_PROPERTIES,
    WRITE_HIGH_WATER,
    Connection,
    InflightFull,
    MessageProperties,
    NotConnected,
)

log = logging.getLogger("edgebus.bus")

# Never more than this many QoS > 0 messages in flight, whatever an MQTT 5 broker grants:
# each one is held in memory until its PUBACK.
MAX_WINDOW = 1024
# The newest refusals a Bus keeps for its owner to report.
REFUSALS_KEPT = 100


@dataclass(slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    response_topic: str | None = None
    correlation: bytes | None = None
    properties: MessageProperties = NO_PROPERTIES


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


@dataclass(frozen=True, slots=True)
class OutboxSetup:
    """Who the outbox speaks for, in its logs and errors."""

    node_id: str
    client: str
    broker_url: str
    queue_limit: int
    max_inflight: int


class Outbox:
    def __init__(self, setup: OutboxSetup, stats: BusStats) -> None:
        self.setup = setup
        self.stats = stats
        self.connection: Connection | None = None
        self.window = setup.max_inflight
        self.refusals: deque[Refusal] = deque(maxlen=REFUSALS_KEPT)
        self._backlog: deque[Outgoing] = deque()
        self._inflight: dict[int, Outgoing] = {}
        self._progress = asyncio.Event()  # an ack came or the backlog moved
        self._tokens = itertools.count(1)
        self._flusher: asyncio.Task[None] | None = None

    @property
    def unacknowledged(self) -> int:
        return len(self._backlog) + len(self._inflight)

    @property
    def inflight(self) -> int:
        """QoS > 0 messages sent and not yet acknowledged (at most the window)."""
        return len(self._inflight)

    # -- the connection comes and goes ---------------------------------------------

    def attach(self, connection: Connection) -> None:
        self.connection = connection
        self.window = self._window_for(connection)
        self.kick()

    def _window_for(self, connection: Connection) -> int:
        """QoS > 0 messages allowed in flight on this connection (the broker sets the pace)."""
        limit = connection.inflight_limit
        if limit is None:
            return max(1, self.setup.max_inflight)
        return max(1, min(limit, MAX_WINDOW))

    def detach(self) -> None:
        """The connection is gone: what was not acked goes back to the head of the queue."""
        if self._inflight:
            self.stats.resent += len(self._inflight)
            self._backlog.extendleft(reversed(list(self._inflight.values())))
            self._inflight.clear()
        self.connection = None
        self._progress.set()

    def on_ack(self, token: int, reason_code: int = 0) -> None:
        out = self._inflight.pop(token, None)
        self._progress.set()
        if reason_code >= 0x80 and out is not None:
            # Not resent: the broker would refuse it again (an ACL, a quota, a bad topic).
            refusal = Refusal(out.topic, reason_code)
            self.refusals.append(refusal)
            self.stats.refused += 1
            log.warning("%s: %s", self.setup.node_id, refusal)

    # -- sending -------------------------------------------------------------------

    async def send(self, out: Outgoing) -> None:
        """Send now if the connection and the window allow, otherwise queue."""
        if self.connection is not None and not self._backlog:
            if out.qos > 0 and len(self._inflight) >= self.window:
                await self._wait_window()
            await self._wait_socket()
            if self.connection is not None and not self._backlog:
                try:
                    self._send(self.connection, out)
                    return
                except (NotConnected, InflightFull):
                    pass  # queued below; the flusher sends it once the window opens
        self._enqueue(out)

    async def flush(self) -> None:
        """Wait until the queue is empty and every QoS > 0 message is acked."""
        while self._backlog or self._inflight:
            self._progress.clear()
            await self._progress.wait()

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _wait_window(self) -> None:
        while len(self._inflight) >= self.window and self.connection is not None:
            self._progress.clear()
            await self._progress.wait()

    async def _wait_socket(self) -> None:
        # QoS 0 has no acks to pace it: without this a fast publisher buffers without bound
        # in the socket's user-space write buffer.
        connection = self.connection
        if connection is not None and connection.pending_bytes() > WRITE_HIGH_WATER:
            await connection.drained()

    def _send(self, connection: Connection, out: Outgoing) -> None:
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
                out.properties,
            )
        except (NotConnected, InflightFull):
            self._inflight.pop(token, None)
            raise
        except Exception as exc:
            # A library error about this one message must not escape as its own type.
            self._inflight.pop(token, None)
            raise PublishRefused(
                f"{self.setup.client} refused a publish to {out.topic}: {exc}"
            ) from None
        self.stats.published += 1
        self.stats.published_bytes += len(out.payload)

    def _enqueue(self, out: Outgoing) -> None:
        limit = self.setup.queue_limit
        if len(self._backlog) >= limit:
            self.stats.queue_full += 1
            if self.stats.queue_full in (1, 10, 100) or self.stats.queue_full % 1000 == 0:
                log.error(
                    "outgoing queue full (%d messages) while disconnected from %s: "
                    "%d message(s) refused so far",
                    limit,
                    self.setup.broker_url,
                    self.stats.queue_full,
                )
            raise OutgoingQueueFull(
                f"outgoing queue full ({limit} messages) while disconnected from "
                f"{self.setup.broker_url}; message to {out.topic} not queued"
            )
        self._backlog.append(out)
        self.kick()

    def kick(self) -> None:
        """Start sending the backlog, unless disconnected or already at it."""
        if (
            self.connection is not None
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
        while self._backlog and self.connection is not None:
            out = self._backlog[0]
            if out.qos > 0 and len(self._inflight) >= self.window:
                await self._wait_window()
                continue
            if self.connection.pending_bytes() > WRITE_HIGH_WATER:
                await self._wait_socket()
                continue
            try:
                self._send(self.connection, out)
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
        self._progress.set()
