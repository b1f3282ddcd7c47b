"""A camera's CPU per frame against the least its libraries need for the same frame.

python benchmarks/bench_camera_floor.py --out results/floor [--cameras 8] [--period-ms 500]
    [--warmup 10] [--duration 30] [--runs 2] [--profile]

Each run measures two fleets in turn on a stock-config Mosquitto started here on a free
loopback port, alternating which goes first:
- real: cloud, one edge and N cameras at the product's defaults (as bench_profile.py's
  plain run); each camera's CPU from /proc over the window, divided by the frames it
  recorded in the window;
- floor: N floor cameras (`edgebus.bench.camera_floor`) that do, per frame, only what a
  camera's libraries must: the camera's own capture and PNC encoder on one worker
  thread, the frame in its QoS 1 end marker, a QoS 1 outcome back, one SQLAlchemy
  Core transaction in the product's tables, and a QoS 1 sync with its ack every 10 s.

Both run the same capture and encoder code on the same frames, timed on the floor's
worker thread by its CPU clock. So, per frame and from plain runs only (no profiler):
- the libraries' least beyond capture and encoder = floor - capture and encoder;
- the real camera beyond capture and encoder = real - capture and encoder;
- edgebus's own = real - floor.

With --profile, one more real fleet and one more floor fleet run with camera 0 and floor
camera 0 under cProfile (`edgebus.bench.floor_profile`): the two profiles side by side,
by stage and by whose code ran, each spread over its plain runs' mean CPU per frame, say
where edgebus's own cost lies (camera_floor_profile.csv and .png).

Writes camera_floor.csv and camera_floor.png under --out and prints the table; numbers go
to docs/performance.md, never into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.bench.fleet_usage import (
    FleetWindow,
    add_fleet_arguments,
    camera_names,
    frames_in,
    measure_fleet,
)
from edgebus.bench.floor_fleet import FloorFailed, FloorFleet, run_floor_fleet
from edgebus.bench.floor_plot import FloorRun, plot_floor
from edgebus.bench.floor_profile import (
    FleetShape,
    plot_side_by_side,
    print_side_by_side,
    profile_floor,
    profile_real,
    side_by_side,
)
from edgebus.bench.mosquitto import LocalMosquitto
from edgebus.reports import write_csv

# CSV key -> the table's column (ms per frame unless named otherwise).
COLUMNS = {
    "run": "run",
    "first": "first",
    "real_ms": "real",
    "floor_ms": "floor",
    "capture_encode_ms": "capture+enc",
    "real_beyond_ms": "real beyond",
    "floor_beyond_ms": "libs' least",
    "edgebus_ms": "edgebus own",
    "real_rss_mb": "real MB",
    "lost": "lost",
}


async def real_fleet(args: argparse.Namespace) -> tuple[float, float, FleetWindow]:
    """(CPU ms per frame over every camera, the largest camera's peak RSS MB, the run)."""
    workdir = Path(tempfile.mkdtemp(prefix="edgebus-floor-real-"))
    with LocalMosquitto(stock=True) as broker:
        run = await measure_fleet(broker.url, workdir, args.cameras, args.period_ms,
                                  args.warmup, args.duration)  # fmt: skip
    names = camera_names(args.cameras)
    frames = sum(frames_in(run.store_url, n, run.start, run.end) for n in names)
    cpu_s = sum(run.usage.cpu_s[n] for n in names)
    rss = max(run.usage.peak_rss.get(n, 0) for n in names) / 2**20
    return cpu_s / max(frames, 1) * 1000, rss, run


def floor_fleet(args: argparse.Namespace) -> FloorFleet:
    workdir = Path(tempfile.mkdtemp(prefix="edgebus-floor-"))
    with LocalMosquitto(stock=True) as broker:
        return run_floor_fleet(broker.url, workdir, args.cameras, args.period_ms,
                               args.warmup, args.duration)  # fmt: skip


def row_of(run: int, first: str, real: tuple[float, float, FleetWindow],
           floor: FloorFleet) -> dict[str, object]:  # fmt: skip
    real_ms, real_rss, window = real
    floor_ms, codec_ms = floor.ms_per_frame()
    return {
        "run": run,
        "first": first,
        "real_ms": round(real_ms, 2),
        "floor_ms": round(floor_ms, 2),
        "capture_encode_ms": round(codec_ms, 2),
        "real_beyond_ms": round(real_ms - codec_ms, 2),
        "floor_beyond_ms": round(floor_ms - codec_ms, 2),
        "edgebus_ms": round(real_ms - floor_ms, 2),
        "real_rss_mb": round(real_rss, 1),
        "lost": window.lost + window.duplicated,
    }


def plot(path: Path, rows: list[dict[str, object]]) -> None:
    runs = [FloorRun(f"run {row['run']}", float(row["capture_encode_ms"]),  # type: ignore[arg-type]
                     float(row["floor_beyond_ms"]), float(row["edgebus_ms"]))  # type: ignore[arg-type]
            for row in rows]  # fmt: skip
    plot_floor(path, runs, base="capture + encoder",
               least="libraries' least (asyncio, gmqtt, SQLAlchemy)",
               ylabel="camera CPU ms per frame",
               title="A camera's CPU per frame against its libraries' least")  # fmt: skip


def profile_pair(
    args: argparse.Namespace, rows: list[dict[str, object]], advance: Callable[[], None]
) -> list[dict[str, object]]:
    """One real and one floor camera under cProfile, their shares applied to the plain
    runs' mean CPU per frame (floor_profile.side_by_side)."""
    shape = FleetShape(args.cameras, args.period_ms, args.warmup, args.duration)
    real = asyncio.run(profile_real(shape))
    advance()
    floor = profile_floor(shape)
    advance()
    real_ms = sum(_number(row, "real_ms") for row in rows) / len(rows)
    floor_ms = sum(_number(row, "floor_ms") for row in rows) / len(rows)
    codec_ms = sum(_number(row, "capture_encode_ms") for row in rows) / len(rows)
    return side_by_side(real, real_ms, floor, floor_ms, codec_ms)


def _number(row: dict[str, object], key: str) -> float:
    value = row[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_fleet_arguments(parser)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="then profile one real and one floor camera side by side")  # fmt: skip
    args = parser.parse_args()
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    with Progress(console=console) as progress:
        task = progress.add_task("real and floor fleets",
                                 total=2 * args.runs + (2 if args.profile else 0))  # fmt: skip
        for run in range(1, args.runs + 1):
            first = "real" if run % 2 else "floor"
            try:
                if first == "real":
                    real = asyncio.run(real_fleet(args))
                    progress.advance(task)
                    floor = floor_fleet(args)
                else:
                    floor = floor_fleet(args)
                    progress.advance(task)
                    real = asyncio.run(real_fleet(args))
            except FloorFailed as exc:
                console.print(f"error: floor fleet: {exc}")
                return 1
            progress.advance(task)
            rows.append(row_of(run, first, real, floor))
        if args.profile:
            progress.update(task, description="profiled: one real, one floor camera")
            try:
                profile_rows = profile_pair(args, rows, lambda: progress.advance(task))
            except FloorFailed as exc:
                console.print(f"error: floor fleet: {exc}")
                return 1
    write_csv(args.out / "camera_floor.csv", rows)
    plot(args.out / "camera_floor.png", rows)
    if args.profile:
        write_csv(args.out / "camera_floor_profile.csv", profile_rows)
        plot_side_by_side(args.out / "camera_floor_profile.png", profile_rows)
        print_side_by_side(console, profile_rows, "camera CPU ms per frame")
    table = Table(title=f"camera CPU ms per frame, {args.cameras} cameras at T = "
                  f"{args.period_ms} ms: real, floor, and beyond capture+encoder",
                  caption="libs' least = floor - capture+enc; edgebus own = real - floor; "
                  "real MB = the largest real camera's peak RSS")  # fmt: skip
    for key, title in COLUMNS.items():
        table.add_column(title, justify="left" if key == "first" else "right")
    for row in rows:
        table.add_row(*(str(row[key]) for key in COLUMNS))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
