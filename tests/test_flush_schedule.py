"""The local store's commit schedule: the first queued row starts the interval, a full
batch commits at once, and an idle writer is never woken."""

from __future__ import annotations

import asyncio

import pytest

from edgebus.storage.flush_schedule import FlushSchedule

pytestmark = pytest.mark.timeout(10)


async def _due_within(schedule: FlushSchedule, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await schedule.wait()
    except TimeoutError:
        return False
    return True


# The upper bound is wall-clock (a late loop would break it), so this one runs alone.
@pytest.mark.serial
async def test_the_first_queued_row_starts_the_interval_and_later_ones_do_not_extend_it():
    loop = asyncio.get_running_loop()
    schedule = FlushSchedule(0.4)
    started = loop.time()
    schedule.queued(full=False)
    await asyncio.sleep(0.2)
    schedule.queued(full=False)  # must not push the commit back to 0.6 s
    assert await _due_within(schedule, 5)
    waited = loop.time() - started
    assert 0.4 <= waited < 0.6, waited


async def test_a_full_batch_is_due_at_once():
    schedule = FlushSchedule(60)
    schedule.queued(full=False)
    schedule.queued(full=True)
    assert await _due_within(schedule, 1)
    # The interval's timer went with it: nothing is due until a row is queued again.
    assert not await _due_within(schedule, 0.1)


async def test_nothing_queued_is_never_due():
    schedule = FlushSchedule(0.01)
    assert not await _due_within(schedule, 0.2)


async def test_rows_queued_after_a_wake_start_a_new_interval():
    loop = asyncio.get_running_loop()
    schedule = FlushSchedule(0.1)
    schedule.queued(full=False)
    assert await _due_within(schedule, 5)
    assert not await _due_within(schedule, 0.15)  # the wake consumed what was due
    started = loop.time()
    schedule.queued(full=False)
    assert await _due_within(schedule, 5)
    assert loop.time() - started >= 0.1


async def test_cancel_drops_the_pending_interval():
    schedule = FlushSchedule(0.05)
    schedule.queued(full=False)
    schedule.cancel()
    assert not await _due_within(schedule, 0.2)
