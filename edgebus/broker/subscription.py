"""A subscription on the Bus: an async iterator of deliveries matching one topic filter,
with a bounded queue that drops its oldest message, loudly, for a consumer too slow to
keep up rather than stalling the connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgebus.broker.bus_errors import BusClosed
from edgebus.broker.matching import topic_matches
from edgebus.broker.transport import NO_PROPERTIES, MessageProperties
from edgebus.messages import Message

if TYPE_CHECKING:
    from edgebus.broker.bus import Bus

log = logging.getLogger("edgebus.bus")


@dataclass(frozen=True, slots=True)
class Delivery:
    """A received message; `message` is None only for foreign payloads in raw subscriptions."""

    topic: str
    payload: bytes
    message: Message | None
    qos: int = 0
    retain: bool = False
    response_topic: str | None = None
    correlation: bytes | None = None
    error: str | None = None
    properties: MessageProperties = NO_PROPERTIES


_END = object()


class Subscription:
    """An async iterator of deliveries matching one topic filter."""

    def __init__(self, bus: Bus, pattern: str, qos: int, raw: bool, maxsize: int) -> None:
        self.bus = bus
        self.pattern = pattern
        self.qos = qos
        self.raw = raw
        self._queue: asyncio.Queue[Delivery | object] = asyncio.Queue(maxsize)
        self.closed = False

    def matches(self, topic: str) -> bool:
        return topic_matches(self.pattern, topic)

    def _offer(self, delivery: Delivery) -> None:
        if self.closed:
            return
        if self._queue.full():
            # A consumer that cannot keep up loses the oldest message, loudly, rather than
            # stalling every other subscription of this connection.
            self._queue.get_nowait()
            self.bus.stats.slow_consumer_drops += 1
            if self.bus.stats.slow_consumer_drops in (1, 100, 10_000) or (
                self.bus.stats.slow_consumer_drops % 100_000 == 0
            ):
                log.error(
                    "subscriber of %s is too slow: %d messages dropped so far",
                    self.pattern,
                    self.bus.stats.slow_consumer_drops,
                )
        self._queue.put_nowait(delivery)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Delivery:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if not isinstance(item, Delivery):  # the end marker
            raise StopAsyncIteration
        return item

    async def get(self, timeout: float | None = None) -> Delivery:
        """The next delivery; raises TimeoutError after `timeout` seconds."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except StopAsyncIteration:
            raise BusClosed(f"subscription to {self.pattern} is closed") from None

    def end(self) -> None:
        """No more deliveries: a consumer waiting on it stops (the bus is closing)."""
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)

    async def close(self) -> None:
        if not self.closed:
            self.end()
            await self.bus._unsubscribe(self)
