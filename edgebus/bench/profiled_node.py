"""Run one `edgebus` command under cProfile, on every thread, and save the merged stats.

python -m edgebus.bench.profiled_node OUT.pstats WARMUP_S COMMAND ...
python -m edgebus.bench.profiled_node OUT.pstats WARMUP_S --module MODULE ARGS ...

The first form runs an `edgebus` command; the second a benchmark module's `main(ARGS)`
(the floor camera of `edgebus.bench.camera_floor`, say), profiled the same way.

cProfile sees only the thread that enabled it, and a node spends part of its CPU on
worker threads (the camera's encoder and frame reader, the edge's classifier, SQLite
writes). Every thread gets its own profiler, timed by that thread's CPU clock so waiting
costs nothing, and all of them are merged into OUT.pstats when the command ends; the
stage table of `benchmarks/bench_profile.py` thus counts a frame's whole CPU, not only the
event loop's share. Profiling starts WARMUP_S seconds in, so imports, model loading and
the first frames' warm-up do not count; OUT.json says when it started and ended.
"""

from __future__ import annotations

import cProfile
import importlib
import json
import os
import pstats
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

_profilers: list[cProfile.Profile] = []
_lock = threading.Lock()
_started = threading.Event()


def _wait_then_profile(frame: FrameType, event: str, arg: Any) -> None:
    """Profile hook of every thread until the warm-up ends; then it hands the thread to a
    profiler of its own (which replaces this hook for that thread)."""
    if not _started.is_set():
        return
    profiler = cProfile.Profile(time.thread_time)
    with _lock:
        _profilers.append(profiler)
    profiler.enable()


def save(out: Path, window: dict[str, float]) -> None:
    with _lock:
        profilers = list(_profilers)
    out.parent.mkdir(parents=True, exist_ok=True)
    window["end"] = time.time()
    window.setdefault("start", window["end"])  # ended within its warm-up: nothing profiled
    out.with_suffix(".json").write_text(json.dumps(window))
    if not profilers:
        return
    profilers[0].disable()  # this thread's; the others ended with their threads or idle
    stats = pstats.Stats(profilers[0])
    for profiler in profilers[1:]:
        stats.add(profiler)
    stats.dump_stats(str(out))


def _save_then_exit_on(
    out: Path, window: dict[str, float]
) -> Callable[[int, FrameType | None], None]:
    """A SIGTERM handler that saves the profile, then ends the process.

    A benchmark stops a process that runs until told with SIGTERM, whose default action
    ends it unsaved. Raising SystemExit from the handler is not enough: it lands wherever
    the main thread happens to be, and inside a weakref callback or a lock's release it
    is swallowed and the process runs on (seen under load in CI). So the handler only
    starts a thread that saves and then exits at once: nothing in the main thread can
    swallow it, and no lock the main thread holds is taken on its behalf."""

    def handler(signum: int, frame: FrameType | None) -> None:
        def save_then_exit() -> None:
            try:
                save(out, window)
            finally:
                os._exit(128 + signum)

        threading.Thread(target=save_then_exit, name="profile-save", daemon=True).start()

    return handler


_USAGE = ("usage: python -m edgebus.bench.profiled_node OUT.pstats WARMUP_S "
          "(COMMAND ... | --module MODULE ARGS ...)")  # fmt: skip


class _UsageError(ValueError):
    """Arguments this wrapper cannot run; the message names the one at fault."""


def _target(command: list[str]) -> Callable[[], object]:
    """The call that runs the command: an `edgebus` command line, or a module's main(ARGS),
    imported now so that its import is not profiled."""
    if command[0] != "--module":
        from edgebus.cli import app

        return lambda: app(command, prog_name="edgebus")
    if len(command) < 2:
        raise _UsageError("--module needs a module name")
    try:
        module = importlib.import_module(command[1])
    except ImportError as exc:
        raise _UsageError(f"--module {command[1]!r}: cannot import it ({exc})") from None
    main = getattr(module, "main", None)
    if not callable(main):
        raise _UsageError(f"--module {command[1]!r}: it has no main()")
    return lambda: main(command[2:])


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(f"error: {_USAGE}", file=sys.stderr)
        return 2
    try:
        warmup_s = float(argv[1])
        target = _target(argv[2:])
    except ValueError as exc:  # a _UsageError, or WARMUP_S that is not a number
        reason = exc if isinstance(exc, _UsageError) else f"WARMUP_S {argv[1]!r}: not seconds"
        print(f"error: {reason}; {_USAGE}", file=sys.stderr)
        return 2
    out = Path(argv[0])
    window: dict[str, float] = {}

    def start() -> None:
        window["start"] = time.time()
        _started.set()

    # An edgebus node installs its own SIGTERM handler on its loop, which takes over from
    # this one: it stops, and the finally below saves.
    signal.signal(signal.SIGTERM, _save_then_exit_on(out, window))
    timer = threading.Timer(warmup_s, start)
    timer.daemon = True
    sys.setprofile(_wait_then_profile)
    threading.setprofile(_wait_then_profile)
    if warmup_s > 0:
        timer.start()
    else:
        start()
    code = 0
    try:
        returned = target()
        code = returned if isinstance(returned, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        timer.cancel()
        sys.setprofile(None)
        threading.setprofile(None)
        save(out, window)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
