"""The Bus's incoming side: which subscriptions a message goes to, decoded once.

Typed subscriptions only see valid edgebus messages; a payload that does not decode is
reported once to the dead-letter callback, whatever number of subscriptions it matched.
A message no subscription matches yet (a persistent session's backlog, delivered right
after CONNACK, before the actor subscribed again in this process) is held, bounded and
for a while, for the first subscription that matches it, instead of being acked and lost.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from edgebus import messages
from edgebus.broker.outbox import BusStats
from edgebus.broker.subscription import Delivery, Subscription
from edgebus.broker.transport import Incoming
from edgebus.messages import DecodeError, Message


@dataclass(frozen=True, slots=True)
class UnclaimedLimits:
    seconds: float
    messages: int


class Inbox:
    def __init__(
        self,
        limits: UnclaimedLimits,
        stats: BusStats,
        dead_letter: Callable[[Incoming, str], None],
    ) -> None:
        self.limits = limits
        self.stats = stats
        self.subscriptions: list[Subscription] = []
        self._dead_letter = dead_letter
        self._unclaimed: deque[tuple[float, Incoming]] = deque()

    @property
    def unclaimed(self) -> int:
        """Messages held for a subscription that has not been made yet."""
        return len(self._unclaimed)

    def add(self, subscription: Subscription) -> None:
        self.subscriptions.append(subscription)
        self._hand_unclaimed(subscription)

    def remove(self, subscription: Subscription) -> None:
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)

    def end_all(self) -> None:
        for subscription in list(self.subscriptions):
            subscription.end()

    def on_message(self, incoming: Incoming) -> None:
        self.stats.received += 1
        self.stats.received_bytes += len(incoming.payload)
        if not self._dispatch(incoming, self.subscriptions):
            self._keep_unclaimed(incoming)

    def _keep_unclaimed(self, incoming: Incoming) -> None:
        now = time.monotonic()
        while self._unclaimed and (
            now - self._unclaimed[0][0] > self.limits.seconds
            or len(self._unclaimed) >= self.limits.messages
        ):
            self._unclaimed.popleft()
            self.stats.unclaimed_dropped += 1
        self._unclaimed.append((now, incoming))

    def _hand_unclaimed(self, subscription: Subscription) -> None:
        if not self._unclaimed:
            return
        horizon = time.monotonic() - self.limits.seconds
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
                    incoming.properties,
                )
            )
        return matched
