"""Run one `edgebus` command under cProfile, on every thread, and save the merged stats.

python -m edgebus.bench.profiled_node OUT.pstats WARMUP_S COMMAND ...

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
import json
import pstats
import sys
import threading
import time
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


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("error: usage: python -m edgebus.bench.profiled_node OUT.pstats WARMUP_S COMMAND")
        return 2
    out, warmup_s = Path(argv[0]), float(argv[1])
    window: dict[str, float] = {}

    def start() -> None:
        window["start"] = time.time()
        _started.set()

    from edgebus.cli import app

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
        app(argv[2:], prog_name="edgebus")
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
