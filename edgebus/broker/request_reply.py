"""Request/reply over the Bus: MQTT 5 response topic + correlation data, or an envelope
that carries both on MQTT 3.1.1, where PUBLISH has no properties."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from edgebus import messages
from edgebus.broker.bus_errors import (
    BusClosed,
    OutgoingQueueFull,
    RequestFailed,
    RequestTimeout,
)
from edgebus.broker.subscription import Subscription
from edgebus.broker.transport import MQTT5
from edgebus.messages import DecodeError, Message

if TYPE_CHECKING:
    from edgebus.broker.bus import Bus

log = logging.getLogger("edgebus.bus")

RequestHandler = Callable[[Message], Awaitable[Message]]


class Requests:
    """The requests a Bus has sent and waits on, and the services it answers."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._replies: Subscription | None = None

    def fail_all(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    async def request(self, topic: str, message: Message, timeout: float) -> Message:
        bus = self.bus
        if self._replies is None:
            self._replies = await bus.subscribe(bus.topics.replies(bus.node_id), qos=1)
            bus.spawn(self._collect_replies(self._replies))
        request_id = uuid.uuid4().hex
        reply_topic = bus.topics.reply(bus.node_id, request_id)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            if bus.protocol_version >= MQTT5:
                await bus.publish(
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
                await bus.publish(topic, envelope, qos=1)
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

    async def serve(self, subscription: Subscription, handler: RequestHandler) -> None:
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
            await self.bus.publish(topic, reply, qos=1, correlation=correlation)
