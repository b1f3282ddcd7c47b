"""The clocks' sleep that an event cuts short (the camera's outcome sweep sleeps on it)."""

from __future__ import annotations

import asyncio
import time

import pytest

from edgebus.clock import RealClock, ScaledClock, sleep_unless_woken

pytestmark = pytest.mark.timeout(30)


async def test_a_wake_ends_the_sleep_early_and_leaves_no_task_behind():
    wake = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, wake.set)
    started = time.monotonic()
    await sleep_unless_woken(RealClock(), 30.0, wake)
    assert time.monotonic() - started < 5.0 and wake.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_without_a_wake_it_sleeps_the_clocks_time():
    started = time.monotonic()
    await sleep_unless_woken(ScaledClock(10.0), 1.0, asyncio.Event())  # 0.1 s of real time
    assert 0.09 <= time.monotonic() - started < 5.0


async def test_a_wake_already_set_does_not_sleep():
    wake = asyncio.Event()
    wake.set()
    started = time.monotonic()
    await sleep_unless_woken(RealClock(), 30.0, wake)
    assert time.monotonic() - started < 1.0
