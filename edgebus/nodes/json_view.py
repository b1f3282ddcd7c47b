"""The JSON view: a node that republishes chosen topics as JSON with field names, so tools
that cannot read edgebus's msgpack wire (Node-RED, Home Assistant, `mosquitto_sub | jq`)
can use the bus.

`edgebus/v1/<site>/<kind>/...` is republished on `edgebus/v1/<site>/json/<kind>/...` in the
form `edgebus sub --json` prints (`to_json`), with the MQTT 5 content type
application/json and the UTF-8 payload-format indicator, and the source's user properties
(a frame's trace id). The retained kinds (statuses, model switches, scheduling policies)
are retained in the view too, so a tool that subscribes late sees the current state; a
cleared retained message clears its twin. Payloads that are not edgebus messages are
skipped and counted, never republished: the view only ever carries what decoded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from edgebus.actor.counters import Counts
from edgebus.actor.lifecycle import Node
from edgebus.broker.bus import BusError, Delivery, Subscription
from edgebus.broker.transport import MessageProperties
from edgebus.clock import Clock
from edgebus.config import Settings
from edgebus.message_wire import JSON_CONTENT_TYPE
from edgebus.messages import to_json
from edgebus.topics import TopicError, Topics, parse

log = logging.getLogger("edgebus.json_view")

VIEWABLE = tuple(Topics("_").json_viewable())  # the names `--kind` takes
DEFAULT_KINDS = ("results", "dropped", "status", "heartbeat", "model-switch", "sched-policy")


@dataclass(slots=True)
class JsonViewCounters(Counts):
    republished: int = 0
    cleared: int = 0  # retained twins cleared because their source was
    skipped_foreign: int = 0  # payloads that are not edgebus messages
    unpublished: int = 0  # the bus refused or the queue was full


def json_properties(source: MessageProperties) -> MessageProperties:
    return MessageProperties(content_type=JSON_CONTENT_TYPE, utf8=True, user=source.user)


def is_retained_kind(topics: Topics, topic: str) -> bool:
    """Statuses, model switches and scheduling policies are retained at their source."""
    kind = parse(topic).kind
    return kind == "status" or topic == topics.model_switch() or kind == "sched"


class JsonViewNode(Node):
    role: ClassVar[str] = "json-view"
    capabilities: ClassVar[tuple[str, ...]] = ("view:json",)
    counters: JsonViewCounters

    def __init__(
        self, settings: Settings, kinds: tuple[str, ...] = DEFAULT_KINDS, clock: Clock | None = None
    ) -> None:
        unknown = sorted(set(kinds) - set(VIEWABLE))
        if not kinds:
            raise ValueError(f"no kind to republish; expected some of {', '.join(VIEWABLE)}")
        if unknown:
            raise ValueError(
                f"unknown kind {', '.join(unknown)}; expected some of {', '.join(VIEWABLE)}"
            )
        super().__init__(settings, clock)
        self.kinds = kinds
        self.counters = JsonViewCounters()

    async def main(self) -> None:
        viewable = self.topics.json_viewable()
        patterns = sorted({viewable[kind] for kind in self.kinds})
        subscriptions = [await self.bus.subscribe(p, qos=1, raw=True) for p in patterns]
        self.ready.set()
        for subscription in subscriptions[1:]:
            self.supervise(self._pump(subscription), f"view-{subscription.pattern}")
        await self._pump(subscriptions[0])

    async def _pump(self, subscription: Subscription) -> None:
        async for delivery in subscription:
            await self.republish(delivery)

    async def republish(self, delivery: Delivery) -> None:
        try:
            target = self.topics.json_view(delivery.topic)
        except TopicError:
            return  # another site's topic or a view itself: never republished
        retain = is_retained_kind(self.topics, delivery.topic)
        if delivery.message is None:
            if delivery.payload or not retain:
                self.counters.skipped_foreign += 1
                return
            payload = b""  # the source was cleared: so is its JSON copy
            self.counters.cleared += 1
        else:
            payload = to_json(delivery.topic, delivery.message).encode()
            self.counters.republished += 1
        try:
            await self.bus.publish(
                target, payload, qos=delivery.qos, retain=retain,
                properties=json_properties(delivery.properties),
            )  # fmt: skip
        except BusError as exc:
            self.counters.unpublished += 1
            log.debug("JSON view of %s not published: %s", delivery.topic, exc)
