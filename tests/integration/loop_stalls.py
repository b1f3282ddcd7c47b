"""Measures when the test's own event loop stalled, so a wall-clock assertion can excuse
exactly the frames a stall overlapped instead of widening its tolerance for all of them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from edgebus.aio import cancel_and_wait

TICK_S = 0.005


@dataclass(slots=True)
class LoopStalls:
    """Wall-clock spans in which the loop woke at least `threshold_s` late."""

    threshold_s: float
    spans: list[tuple[float, float]] = field(default_factory=list)

    def overlaps(self, start: float, end: float) -> bool:
        return any(s < end and e > start for s, e in self.spans)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            late = loop.time() - due
            if late >= self.threshold_s:
                now = time.time()
                self.spans.append((now - late - TICK_S, now))


@contextlib.asynccontextmanager
async def watching_loop_stalls(threshold_s: float) -> AsyncIterator[LoopStalls]:
    stalls = LoopStalls(threshold_s)
    watcher = asyncio.create_task(stalls._watch())
    try:
        yield stalls
    finally:
        await cancel_and_wait([watcher])
