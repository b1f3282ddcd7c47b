"""Small asyncio helpers shared by the layers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[object] | None],
    suppress: tuple[type[BaseException], ...] = (),
) -> None:
    """Cancel every task, then wait for each to end.

    A task's own exception propagates unless its type is in `suppress`; cancelling all
    first means one slow task does not keep the others running meanwhile.
    """
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, *suppress):
            await task


def failure(task: asyncio.Task[object]) -> BaseException | None:
    """What a finished task raised; None while it runs, or if it returned or was cancelled
    (Task.exception() itself raises for those last two)."""
    if not task.done() or task.cancelled():
        return None
    return task.exception()


def install_stop_signals(stop: Callable[[], None]) -> None:
    """SIGINT and SIGTERM call `stop` on the running loop (a node's or a fleet's clean stop)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
