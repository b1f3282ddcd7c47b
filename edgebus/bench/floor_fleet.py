"""N floor cameras (`edgebus.bench.camera_floor`) and their responder as processes on one
broker, measured as a fleet of real cameras is: the same count, period and window."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edgebus.bench.camera_floor import FloorReport
from edgebus.bench.processes import terminate

FLOOR = (sys.executable, "-m", "edgebus.bench.camera_floor")
# Start-up (imports, connecting) and the last frame's sync, beyond warm-up and window.
SLACK_S = 60.0


class FloorFailed(RuntimeError):
    """A floor camera exited without its report (its stderr says why)."""


@dataclass(frozen=True, slots=True)
class FloorFleet:
    reports: list[FloorReport]

    def ms_per_frame(self) -> tuple[float, float]:
        """(the whole process, its capture and encoder thread) CPU ms per frame."""
        frames = max(sum(r.frames for r in self.reports), 1)
        cpu = sum(r.cpu_s for r in self.reports)
        codec = sum(r.codec_cpu_s for r in self.reports)
        return cpu / frames * 1000, codec / frames * 1000


def run_floor_fleet(
    broker_url: str, workdir: Path, cameras: int, period_ms: int, warmup_s: float,
    duration_s: float, sync_interval_s: float = 10.0,
    cli_for: Callable[[str], tuple[str, ...] | None] = lambda name: None,
) -> FloorFleet:  # fmt: skip
    """`cli_for(name)` may run a floor camera another way than FLOOR (under a profiler:
    `profiled_node ... --module edgebus.bench.camera_floor`); its arguments follow."""
    parts = urlsplit(broker_url)
    where = (parts.hostname or "127.0.0.1", str(parts.port or 1883))
    responder = subprocess.Popen([*FLOOR, "respond", *where], stdout=subprocess.PIPE)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        assert responder.stdout is not None
        if responder.stdout.readline().strip() != b"ready":
            raise FloorFailed("the floor responder did not start")
        for index in range(cameras):
            name = f"floor-{index}"
            run = cli_for(name) or FLOOR
            command = [*run, "camera", *where, name, str(workdir / f"{name}.sqlite3"),
                       "--period-ms", str(period_ms), "--warmup", str(warmup_s),
                       "--duration", str(duration_s), "--sync-interval",
                       str(sync_interval_s)]  # fmt: skip
            processes[name] = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        reports = []
        for name, process in processes.items():
            out, err = process.communicate(timeout=warmup_s + duration_s + SLACK_S)
            if process.returncode != 0 or not out.strip():
                tail = err.decode(errors="replace").strip().splitlines()[-3:]
                raise FloorFailed(f"{name} exited with {process.returncode}: {' | '.join(tail)}")
            reports.append(FloorReport(**json.loads(out.decode().strip().splitlines()[-1])))
        return FloorFleet(reports)
    finally:
        for process in processes.values():
            terminate(process, timeout_s=5)
        terminate(responder, timeout_s=5)
