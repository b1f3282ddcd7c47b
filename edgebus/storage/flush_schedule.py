"""When a local store's writer commits next: `interval_s` after the first row queued since
the last commit, or at once when the batch is full.

One timer and one event, so an idle writer sleeps and a commit costs the writer one
wake-up. An `asyncio.timeout` around a wait for "full" cost two, and a timer of its own,
for every commit: on a camera, one commit per frame.
"""

from __future__ import annotations

import asyncio


class FlushSchedule:
    """Made on the store's event loop; every method runs there."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._loop = asyncio.get_running_loop()
        self._due = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    def queued(self, full: bool) -> None:
        """A row (or a batch put back) waits: commit within interval_s, or now if full."""
        if full:
            self._fire()
        elif self._timer is None and not self._due.is_set():
            self._timer = self._loop.call_later(self.interval_s, self._fire)

    def _fire(self) -> None:
        self.cancel()  # a full batch comes before the interval's end
        self._due.set()

    async def wait(self) -> None:
        """Until a commit is due; rows queued from then on start the next interval."""
        await self._due.wait()
        self._due.clear()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
