"""Fixes to amqtt 0.12's Broker for a fleet that connects all at once.

- The broker iterates its subscription table across `await`s (when a client connects,
  and for every message it routes). A client subscribing or leaving meanwhile raised
  `RuntimeError: dictionary changed size during iteration`, which killed the connecting
  client's handler: its CONNACK had gone out, but nothing served the connection after
  it. Seen with 32 cameras starting at once. Iteration here walks a snapshot.
- On every connection the broker replayed the retained messages of *every* filter any
  client had subscribed to, to the connecting client. It now replays only the filters
  that client's own session holds.
- A connection refused at CONNECT (an MQTT 5 first attempt, a bad password) raised out of
  the stream callback, and asyncio printed a traceback for each; it is one log line.

Imported only when the embedded broker starts (amqtt is slow to import).
"""

from __future__ import annotations

import logging
from _collections_abc import dict_items
from collections.abc import Iterator
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import MQTTError

log = logging.getLogger("edgebus.broker")


class SnapshotDict(dict[str, Any]):
    """A dict whose iteration walks a copy, so awaiting inside a loop over it is safe
    (amqtt walks its table with `for f in table` and `table.items()`)."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> dict_items[str, Any]:
        return dict(self).items()


class FleetSafeBroker(Broker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = SnapshotDict()

    async def stream_connected(self, reader: Any, writer: Any, listener_name: str) -> None:
        # amqtt lets a connection it refused at CONNECT (an MQTT 5 client's first try, a
        # bad password) raise out of the stream callback, and asyncio prints a traceback
        # for each: one line says the same.
        try:
            await super().stream_connected(reader, writer, listener_name)
        except (OSError, MQTTError) as exc:
            log.info("embedded broker: a connection ended during CONNECT: %s", exc or type(exc))

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Any
    ) -> None:
        holders = self._subscriptions.get(subscription[0], ())
        if not any(holder.client_id == session.client_id for holder, _qos in holders):
            return
        await super()._publish_retained_messages_for_subscription(subscription, session)
