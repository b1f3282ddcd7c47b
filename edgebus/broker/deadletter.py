"""Accounting for payloads that fail to decode: count, log rarely, forward the bytes."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from edgebus.messages import DeadLetter
from edgebus.topics import TopicError, parse

LOG_INTERVAL_S = 60.0
MAX_FORWARDED_BYTES = 64 * 1024


def source_of(topic: str) -> str:
    """The sender a topic names (its node level), or the topic itself off-scheme."""
    try:
        parsed = parse(topic)
    except TopicError:
        return topic
    return parsed.node or f"{parsed.kind}/{'/'.join(parsed.rest)}"


class DeadLetterReporter:
    """Counts bad payloads per source and logs each source at most once per minute."""

    def __init__(
        self,
        reporter: str,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        self.reporter = reporter
        self.counts: Counter[str] = Counter()
        self._logger = logger
        self._clock = clock
        self._interval_s = interval_s
        self._last_logged: dict[str, float] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, topic: str, payload: bytes, reason: str) -> DeadLetter:
        source = source_of(topic)
        self.counts[source] += 1
        now = self._clock()
        last = self._last_logged.get(source)
        if last is None or now - last >= self._interval_s:
            self._last_logged[source] = now
            self._logger.warning(
                "malformed payload from %s on %s (%d so far from this source): %s",
                source,
                topic,
                self.counts[source],
                reason,
            )
        return DeadLetter(
            source_topic=topic,
            reason=reason,
            payload=bytes(payload[:MAX_FORWARDED_BYTES]),
            reporter=self.reporter,
        )
