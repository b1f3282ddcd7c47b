"""Run one `edgebus` command and say whose memory it gained while it ran.

python -m edgebus.bench.memory_node OUT.json WINDOW_S TRACE_FRAMES COMMAND ...

Before the command runs, this process does everything the camera's memory steps do
except build the models (`memory_steps.CAMERA_STEPS`): it imports the same modules and
reads a command line with typer. It then reads its mapped memory by owner and, unless
TRACE_FRAMES is 0, starts tracemalloc with that many frames per allocation, so what the
command gains while it runs is all that is traced. WINDOW_S seconds later, while the
command still runs, it writes OUT.json:

- `rss_before` / `rss_after`: VmRSS in bytes;
- `mapped_before` / `mapped_after`: resident bytes by owner (`memory_owners.smaps_by_owner`),
  mapped files and the anonymous total;
- `traced`: bytes of the Python objects allocated since and still alive, by owner
  (`memory_owners.traced_by_owner`); empty when not tracing.

Tracing costs memory of its own, far more than tracemalloc reports for itself (with
32 frames, about 17 MB more RSS for a camera), so a run that reads the process's RSS and
mapped memory does not trace, and a second, traced run says which Python objects the
gain holds. The command's model sessions are built while it runs.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import tracemalloc
from pathlib import Path

from edgebus.bench.memory_owners import smaps_by_owner, traced_by_owner
from edgebus.bench.memory_steps import CAMERA_STEPS

# Deep enough to get past asyncio's and threading's frames to the code that asked.
DEFAULT_TRACE_FRAMES = 32
_USAGE = "usage: python -m edgebus.bench.memory_node OUT.json WINDOW_S TRACE_FRAMES COMMAND ..."


def rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    if found is None:
        raise RuntimeError("/proc/self/status has no VmRSS")
    return int(found.group(1)) * 1024


def mapped_by_owner() -> dict[str, int]:
    return smaps_by_owner(Path("/proc/self/smaps").read_text())


def preload() -> None:
    """What a camera has loaded before it runs, but its models (see the module's doc)."""
    for step in CAMERA_STEPS:
        if not step.loads_models:
            exec(step.code, {"__name__": "edgebus_memory_step"})


def report(out: Path, window_s: float, before: dict[str, object]) -> None:
    """Write OUT.json from the running process (called on a timer thread). A failure is
    one `error:` line in the node's output, which the benchmark's log shows, since a
    timer thread's exception would only end that thread."""
    try:
        _write_report(out, window_s, before)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: memory report {out}: {exc}", file=sys.stderr, flush=True)


def _write_report(out: Path, window_s: float, before: dict[str, object]) -> None:
    traced = traced_by_owner(tracemalloc.take_snapshot()) if tracemalloc.is_tracing() else {}
    result = dict(before)
    result.update(
        window_s=window_s, rss_after=rss_bytes(), mapped_after=mapped_by_owner(), traced=traced
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(result, indent=1, sort_keys=True))
    partial.replace(out)  # a reader never sees half a report


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(f"error: {_USAGE}", file=sys.stderr)
        return 2
    out = Path(argv[0])
    try:
        window_s, frames = float(argv[1]), int(argv[2])
    except ValueError:
        print(f"error: WINDOW_S {argv[1]!r}, TRACE_FRAMES {argv[2]!r}: expected seconds "
              "and a whole number of frames", file=sys.stderr)  # fmt: skip
        return 2
    if window_s <= 0 or frames < 0:
        print(f"error: WINDOW_S {argv[1]!r}, TRACE_FRAMES {argv[2]!r}: expected more than "
              "0 seconds and 0 or more frames", file=sys.stderr)  # fmt: skip
        return 2
    preload()
    before: dict[str, object] = {"rss_before": rss_bytes(), "mapped_before": mapped_by_owner()}
    if frames:
        tracemalloc.start(frames)
    timer = threading.Timer(window_s, report, (out, window_s, before))
    timer.daemon = True
    timer.start()
    from edgebus.cli import app

    code = 0
    try:
        app(argv[3:], prog_name="edgebus")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        timer.cancel()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
