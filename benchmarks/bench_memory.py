"""Where a camera process's memory goes, step by step, up to a real running camera.

python benchmarks/bench_memory.py --out results/memory [--running-s 20] [--warmup 10]

Steps 1-7 (`edgebus.bench.memory_steps`), each in a fresh interpreter, cumulative in the
order a camera process loads things: bare interpreter, numpy, onnxruntime, the camera's
models at the default settings, sqlalchemy and the local store, gmqtt and the bus, then
everything `edgebus node --role camera` imports. For each: current RSS (VmRSS), peak RSS
(VmHWM) and the increment over the step before. Then each library alone over a bare
interpreter: those increments overlap (onnxruntime imports numpy), so they do not add up.

Step 8 runs a real camera: a stock-config Mosquitto on a free loopback port and a fleet of
node processes (cloud, one edge, one camera) at the product's defaults, as
benchmarks/bench_profile.py starts them. After --warmup seconds the camera's RSS is
sampled (psutil) for --running-s seconds; the row gives its final RSS, the peak sampled in
that window and its lifetime peak (VmHWM, the measure of steps 1-7).

Writes memory.csv and memory.png under --out and prints the tables; the numbers go to the
docs, never into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.bench.memory_steps import (
    ALONE,
    CAMERA_STEPS,
    KB_PER_MB,
    MemoryStepError,
    Reading,
    StepResult,
    increment,
    measure_alone,
    measure_cumulative,
)
from edgebus.bench.mosquitto import LocalMosquitto, mosquitto_binary
from edgebus.bench.process_fleet import Fleet, product_defaults
from edgebus.bench.rss_sampler import RssSampler
from edgebus.config import Settings
from edgebus.reports import write_csv

CAMERA = "camera-1"
RUNNING = "running camera"
TARGET_MB = 60  # the camera the docs ask about


class BenchError(RuntimeError):
    """A run-time failure, reported as one `error:` line."""


@dataclass(frozen=True)
class RunningCamera:
    """The camera process's RSS in MB: at the end of the window, the window's sampled
    peak and its lifetime peak (VmHWM: model loading and start-up included)."""

    final_mb: float
    window_peak_mb: float
    lifetime_peak_mb: float
    samples: int
    lost: int  # the fleet's audit: frames lost and duplicated, to show it really ran
    duplicated: int


def lifetime_peak_mb(pid: int) -> float:
    """VmHWM of a running process, as steps 1-7 read their own."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / KB_PER_MB
    raise BenchError(f"/proc/{pid}/status has no VmHWM")


async def run_camera(warmup_s: float, running_s: float, workdir: Path) -> RunningCamera:
    """A cloud, an edge and one camera against a stock Mosquitto; the camera's RSS over
    `running_s` seconds after `warmup_s`."""
    period_ms = Settings().frame_period_ms
    with LocalMosquitto(stock=True) as broker:
        fleet = Fleet(broker.url, workdir, period_ms=period_ms, env=product_defaults())
        try:
            fleet.start("cloud", "cloud-1")
            fleet.start("edge", "edge-1")
            camera = fleet.start("camera", CAMERA)
            await asyncio.sleep(warmup_s)
            check_running(fleet)
            process = psutil.Process(camera.process.pid)
            sampler = RssSampler({CAMERA: process})
            sampler.start()
            await asyncio.sleep(running_s)
            sampler.stop()
            check_running(fleet)
            final = process.memory_info().rss / 2**20
            lifetime = lifetime_peak_mb(camera.process.pid)
            await fleet.stop_all()
        finally:
            fleet.kill_all()
    samples = sampler.samples.get(CAMERA, 0)
    if not samples:
        raise BenchError(f"{CAMERA}: no RSS sample in {running_s:g} s")
    report = fleet.audit()
    return RunningCamera(final, sampler.peak[CAMERA] / 2**20, lifetime, samples,
                         report.frames_lost, report.frames_duplicated)  # fmt: skip


def check_running(fleet: Fleet) -> None:
    """Every node still up, or a BenchError naming the one that ended and its log."""
    for node_id, node in fleet.nodes.items():
        if node.process.poll() is not None:
            raise BenchError(
                f"{node_id} exited with code {node.process.returncode} (log: {node.log})"
            )


def step_rows(
    steps: list[StepResult], alone: list[StepResult], running: RunningCamera, running_label: str
) -> list[dict[str, object]]:
    """The CSV: the cumulative steps, the running camera over the last of them, then each
    library alone over the bare interpreter."""
    rows = [_row("camera steps", f"{i}. {r.reading.step}", r) for i, r in enumerate(steps, 1)]
    last = steps[-1].reading
    live = increment(Reading(running_label, running.final_mb, running.lifetime_peak_mb), last)
    rows.append(_row("camera steps", f"{len(steps) + 1}. {running_label}", live,
                     round(running.window_peak_mb, 1)))  # fmt: skip
    rows += [_row("alone over bare", r.reading.step, r) for r in alone]
    return rows


def _row(
    section: str, step: str, result: StepResult, window_peak_mb: float | str = ""
) -> dict[str, object]:
    reading = result.reading
    return {
        "section": section,
        "step": step,
        "rss_mb": round(reading.rss_mb, 1),
        "rss_increment_mb": round(result.rss_increment_mb, 1),
        "peak_mb": round(reading.peak_mb, 1),
        "peak_increment_mb": round(result.peak_increment_mb, 1),
        "window_peak_mb": window_peak_mb,  # the running camera only: sampled peak
    }


def plot(path: Path, rows: list[dict[str, object]]) -> None:
    """Left: the camera's RSS as a waterfall, each step's bar starting where the one before
    ended, its peak marked; right: each library alone over a bare interpreter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in rows if r["section"] == "camera steps"]
    alone = [r for r in rows if r["section"] == "alone over bare"][1:]  # past the bare one
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5), width_ratios=(2, 1))
    labels = [str(r["step"]) for r in steps]
    ends = [_mb(r, "rss_mb") for r in steps]
    starts = [0.0, *ends[:-1]]
    widths = [end - start for start, end in zip(starts, ends, strict=True)]
    colors = [f"C{i}" for i in range(len(steps))]
    left.barh(labels, widths, left=starts, color=colors)
    left.scatter([_mb(r, "peak_mb") for r in steps], labels, marker="|", s=200, color="black",
                 label="peak (VmHWM)", zorder=3)  # fmt: skip
    for label, start, width, end in zip(labels, starts, widths, ends, strict=True):
        left.annotate(f"{width:+.1f} -> {end:.1f}", (max(start, end), label), xytext=(4, 0),
                      textcoords="offset points", va="center", fontsize=8)  # fmt: skip
    left.axvline(TARGET_MB, linestyle="--", color="grey", label=f"{TARGET_MB} MB")
    left.invert_yaxis()
    left.set_xlabel("RSS, MB (each bar: what the step adds)")
    left.set_title("camera process, cumulative steps")
    left.set_xlim(0, max(ends + [_mb(r, "peak_mb") for r in steps]) * 1.2)  # room for labels
    left.legend(loc="upper right", fontsize=8)
    right.barh([str(r["step"]) for r in alone], [_mb(r, "peak_increment_mb") for r in alone])
    right.invert_yaxis()
    right.set_xlabel("peak RSS over a bare interpreter, MB")
    right.set_title("each library alone (they overlap)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _mb(row: dict[str, object], key: str) -> float:
    value = row[key]
    assert isinstance(value, float | int)
    return float(value)


def print_tables(console: Console, rows: list[dict[str, object]], running: RunningCamera) -> None:
    for section, title in (("camera steps", "camera process RSS, cumulative steps (MB)"),
                           ("alone over bare", "each library alone over a bare interpreter "
                            "(MB; increments overlap)")):  # fmt: skip
        table = Table(title=title)
        table.add_column("step", justify="left", no_wrap=True)
        for column in ("RSS", "+RSS", "peak", "+peak"):
            table.add_column(column, justify="right")
        for row in (r for r in rows if r["section"] == section):
            table.add_row(str(row["step"]), *(f"{_mb(row, key):.1f}" for key in (
                "rss_mb", "rss_increment_mb", "peak_mb", "peak_increment_mb")))  # fmt: skip
        console.print(table)
    console.print(
        f"running camera: final RSS {running.final_mb:.1f} MB, peak sampled in the window "
        f"{running.window_peak_mb:.1f} MB ({running.samples} samples), lifetime peak "
        f"(VmHWM) {running.lifetime_peak_mb:.1f} MB; fleet audit: lost {running.lost}, "
        f"duplicated {running.duplicated}"
    )


def run(args: argparse.Namespace, console: Console) -> None:
    if mosquitto_binary() is None:
        raise BenchError("the mosquitto binary is not installed")
    args.out.mkdir(parents=True, exist_ok=True)
    with Progress(console=console) as progress:
        task = progress.add_task("memory steps", total=len(CAMERA_STEPS) + len(ALONE) + 2)

        def advance(reading: Reading) -> None:
            progress.update(task, advance=1, description=_short(reading.step))

        steps = measure_cumulative(timeout_s=args.timeout, on_reading=advance)
        alone = measure_alone(timeout_s=args.timeout, on_reading=advance)
        progress.update(task, description=f"running camera ({args.warmup:g} + "
                        f"{args.running_s:g} s)")  # fmt: skip
        workdir = Path(tempfile.mkdtemp(prefix="edgebus-memory-"))
        running = asyncio.run(run_camera(args.warmup, args.running_s, workdir))
        progress.advance(task)
    label = f"{RUNNING} ({args.running_s:g} s after {args.warmup:g} s warm-up)"
    rows = step_rows(steps, alone, running, label)
    write_csv(args.out / "memory.csv", rows)
    plot(args.out / "memory.png", rows)
    print_tables(console, rows, running)
    console.print(f"wrote {args.out / 'memory.csv'} and {args.out / 'memory.png'}")


def _short(step: str) -> str:
    return step if len(step) <= 40 else step[:39] + "…"


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--running-s", type=positive, default=20.0,
                        help="seconds the running camera's RSS is sampled")  # fmt: skip
    parser.add_argument("--warmup", type=positive, default=10.0,
                        help="seconds the fleet runs before sampling starts")  # fmt: skip
    parser.add_argument("--timeout", type=positive, default=120.0,
                        help="seconds each measuring subprocess may take")  # fmt: skip
    args = parser.parse_args()
    console = Console()
    try:
        run(args, console)
    except (BenchError, MemoryStepError, OSError, psutil.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything else still ends in one line, named by its type
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
