"""Reconnect delays: exponential with full jitter, so a fleet does not reconnect in step."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    minimum_s: float = 0.2
    maximum_s: float = 10.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.minimum_s <= self.maximum_s:
            raise ValueError("backoff needs 0 < minimum_s <= maximum_s")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")

    def ceiling(self) -> float:
        """The upper bound of the next delay, before jitter."""
        return min(self.maximum_s, self.minimum_s * self.factor**self.attempt)

    def next_delay(self) -> float:
        """A delay drawn uniformly from [minimum, ceiling], then the ceiling grows."""
        delay = self.rng.uniform(self.minimum_s, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
