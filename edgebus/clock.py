"""Clocks that actors take, so simulations can run faster than real time."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from edgebus.aio import cancel_and_wait


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (timestamps on the wire)."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring intervals."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Real time sped up by ``speed``: every sleep is shortened and every reading stretched."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._origin_wall = time.time()
        self._origin_mono = time.monotonic()

    def time(self) -> float:
        return self._origin_wall + (time.monotonic() - self._origin_mono) * self.speed

    def monotonic(self) -> float:
        return self._origin_mono + (time.monotonic() - self._origin_mono) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


async def sleep_unless_woken(clock: Clock, seconds: float, wake: asyncio.Event) -> None:
    """Sleep `seconds` on `clock`, or only until `wake` is set (which stays set)."""
    if wake.is_set():
        return
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    waiter = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait((sleeper, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait((sleeper, waiter))
