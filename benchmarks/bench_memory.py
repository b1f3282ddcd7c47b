"""Where a camera process's memory goes, step by step, up to a real running camera.

python benchmarks/bench_memory.py --out results/memory [--running-s 20] [--warmup 10]

The loading steps (`edgebus.bench.memory_steps`), each in a fresh interpreter, cumulative:
bare interpreter, numpy, onnxruntime, edgebus's codec modules, the camera's models at the
default settings, SQLAlchemy, edgebus's local store, gmqtt and msgpack, edgebus's bus, the
CLI's libraries (typer, rich, PIL, psutil), edgebus's CLI and camera node, and typer
reading the camera's command line. Each library's step comes before the edgebus step that
uses it, so every step's increment is either a library's or edgebus's own, and says which.
For each: current RSS (VmRSS), peak RSS (VmHWM) and the increment over the step before.
Then each library alone over a bare interpreter: those increments overlap (onnxruntime
imports numpy), so they do not add up.

The last step runs a real camera: a stock-config Mosquitto on a free loopback port and a
fleet of node processes (cloud, one edge, one camera) at the product's defaults, as
benchmarks/bench_profile.py starts them. The camera runs under
`edgebus.bench.memory_node`, which loads what the steps load (but the models) before the
node starts. After --warmup seconds the camera's RSS is sampled (psutil) for --running-s
seconds; the row gives its final RSS, the peak sampled in that window and its lifetime
peak (VmHWM, the measure of the steps). At the end of the window the camera reports what
it gained while running, by owner: each library's and edgebus's mapped pages from this
run, and, from a second run of the same fleet with tracemalloc on (--trace-frames), whose
Python objects the gain holds. Tracing costs RSS of its own, so the first run is not
traced.

Writes memory.csv, memory_running.csv and memory.png under --out and prints the tables;
the numbers go to the docs, never into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.bench.memory_node import DEFAULT_TRACE_FRAMES
from edgebus.bench.memory_owners import RunningGain, running_gain
from edgebus.bench.memory_steps import (
    ALONE,
    CAMERA_STEPS,
    EDGEBUS,
    KB_PER_MB,
    LIBRARY,
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
OWNER_COLORS = {LIBRARY: "C0", EDGEBUS: "C1"}
NATIVE = "no Python object (model sessions, SQLite, stacks, malloc)"
TARGET_MB = 60  # the camera the docs ask about
# The camera writes its report on a timer at the end of the window; a loaded machine may
# be late by a few seconds, never by this much.
REPORT_GRACE_S = 30.0


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


async def run_camera(
    warmup_s: float, running_s: float, workdir: Path, trace_frames: int = 0
) -> tuple[RunningCamera, dict[str, Any]]:
    """A cloud, an edge and one camera against a stock Mosquitto; the camera's RSS over
    `running_s` seconds after `warmup_s`, and its `memory_node` report at the end of that
    window (with its Python objects when `trace_frames` > 0)."""
    period_ms = Settings().frame_period_ms
    report_path = workdir / "camera-memory.json"
    window_s = warmup_s + running_s
    node = ("-m", "edgebus.bench.memory_node", str(report_path), f"{window_s:g}",
            str(trace_frames))  # fmt: skip
    with LocalMosquitto(stock=True) as broker:
        fleet = Fleet(broker.url, workdir, period_ms=period_ms, env=product_defaults())
        try:
            fleet.start("cloud", "cloud-1")
            fleet.start("edge", "edge-1")
            camera = fleet.start("camera", CAMERA, cli=(sys.executable, *node))
            await asyncio.sleep(warmup_s)
            check_running(fleet)
            process = psutil.Process(camera.process.pid)
            sampler = RssSampler({CAMERA: process})
            sampler.start()
            await asyncio.sleep(running_s)
            sampler.stop()
            await wait_for_report(fleet, report_path, REPORT_GRACE_S)
            final = process.memory_info().rss / 2**20
            lifetime = lifetime_peak_mb(camera.process.pid)
            await fleet.stop_all()
        finally:
            fleet.kill_all()
    samples = sampler.samples.get(CAMERA, 0)
    if not samples:
        raise BenchError(f"{CAMERA}: no RSS sample in {running_s:g} s")
    report = fleet.audit()
    running = RunningCamera(final, sampler.peak[CAMERA] / 2**20, lifetime, samples,
                            report.frames_lost, report.frames_duplicated)  # fmt: skip
    return running, json.loads(report_path.read_text())


async def wait_for_report(fleet: Fleet, path: Path, timeout_s: float) -> None:
    """The camera's memory report, written on its timer; every node still up meanwhile."""
    until = time.monotonic() + timeout_s
    while not path.exists():
        check_running(fleet)
        if time.monotonic() > until:
            raise BenchError(f"{CAMERA} wrote no memory report within {timeout_s:g} s "
                             f"(log: {fleet.nodes[CAMERA].log})")  # fmt: skip
        await asyncio.sleep(0.1)
    check_running(fleet)


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
    owners = {step.name: step.owner for step in CAMERA_STEPS}
    rows = [_row("camera steps", f"{i}. {r.reading.step}", r, owners.get(r.reading.step, ""))
            for i, r in enumerate(steps, 1)]  # fmt: skip
    last = steps[-1].reading
    live = increment(Reading(running_label, running.final_mb, running.lifetime_peak_mb), last)
    rows.append(_row("camera steps", f"{len(steps) + 1}. {running_label}", live, "both",
                     round(running.window_peak_mb, 1)))  # fmt: skip
    rows += [_row("alone over bare", r.reading.step, r, LIBRARY) for r in alone]
    return rows


def _row(
    section: str, step: str, result: StepResult, owner: str, window_peak_mb: float | str = ""
) -> dict[str, object]:
    reading = result.reading
    return {
        "section": section,
        "step": step,
        "owner": owner,  # whose memory the step adds: a library's or edgebus's own
        "rss_mb": round(reading.rss_mb, 1),
        "rss_increment_mb": round(result.rss_increment_mb, 1),
        "peak_mb": round(reading.peak_mb, 1),
        "peak_increment_mb": round(result.peak_increment_mb, 1),
        "window_peak_mb": window_peak_mb,  # the running camera only: sampled peak
    }


def plot(path: Path, rows: list[dict[str, object]], gain: RunningGain) -> None:
    """Left: the camera's RSS as a waterfall, each step's bar starting where the one before
    ended, coloured by whose memory it adds, its peak marked; middle: what the running
    camera gained, by owner; right: each library alone over a bare interpreter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in rows if r["section"] == "camera steps"]
    alone = [r for r in rows if r["section"] == "alone over bare"][1:]  # past the bare one
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(20, 6), width_ratios=(2, 1, 1))
    labels = [str(r["step"]) for r in steps]
    ends = [_mb(r, "rss_mb") for r in steps]
    starts = [0.0, *ends[:-1]]
    widths = [end - start for start, end in zip(starts, ends, strict=True)]
    colors = [OWNER_COLORS.get(str(r["owner"]), "C2") for r in steps]
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
    for owner, color in OWNER_COLORS.items():
        left.barh([labels[0]], [0], color=color, label=f"{owner}'s memory")
    left.legend(loc="upper right", fontsize=8)
    shown = [owner for owner in gain.owners if owner.files_mb + owner.objects_mb >= 0.1]
    names = [owner.owner for owner in shown] + ["no Python object"]
    files = [owner.files_mb for owner in shown] + [0.0]
    objects = [owner.objects_mb for owner in shown] + [gain.native_mb]
    middle.barh(names, files, color="C7", label="its files' pages")
    middle.barh(names, objects, left=files, color="C4", label="its Python objects / native")
    middle.invert_yaxis()
    middle.set_xlabel("MB gained while running")
    middle.set_title("running camera, by owner")
    middle.legend(loc="lower right", fontsize=8)
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
        table.add_column("whose", justify="left")
        for column in ("RSS", "+RSS", "peak", "+peak"):
            table.add_column(column, justify="right")
        for row in (r for r in rows if r["section"] == section):
            table.add_row(str(row["step"]), str(row["owner"]), *(f"{_mb(row, key):.1f}" for key in (
                "rss_mb", "rss_increment_mb", "peak_mb", "peak_increment_mb")))  # fmt: skip
        console.print(table)
    by_owner = {owner: sum(_mb(r, "rss_increment_mb") for r in rows
                           if r["section"] == "camera steps" and r["owner"] == owner)
                for owner in (LIBRARY, EDGEBUS)}  # fmt: skip
    console.print(f"loaded before running: libraries {by_owner[LIBRARY]:.1f} MB (the bare "
                  f"interpreter and the models included), edgebus's own modules "
                  f"{by_owner[EDGEBUS]:.1f} MB")  # fmt: skip
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
        task = progress.add_task("memory steps", total=len(CAMERA_STEPS) + len(ALONE) + 3)

        def advance(reading: Reading) -> None:
            progress.update(task, advance=1, description=_short(reading.step))

        steps = measure_cumulative(timeout_s=args.timeout, on_reading=advance)
        alone = measure_alone(timeout_s=args.timeout, on_reading=advance)
        progress.update(task, description=f"running camera ({args.warmup:g} + "
                        f"{args.running_s:g} s)")  # fmt: skip
        workdir = Path(tempfile.mkdtemp(prefix="edgebus-memory-"))
        running, plain = asyncio.run(run_camera(args.warmup, args.running_s, workdir))
        progress.advance(task)
        progress.update(task, description="running camera, its Python objects traced")
        traced_dir = Path(tempfile.mkdtemp(prefix="edgebus-memory-traced-"))
        _, traced = asyncio.run(run_camera(args.warmup, args.running_s, traced_dir,
                                           args.trace_frames))  # fmt: skip
        progress.advance(task)
    label = f"{RUNNING} ({args.running_s:g} s after {args.warmup:g} s warm-up)"
    rows = step_rows(steps, alone, running, label)
    gain = running_gain(plain, traced)
    write_csv(args.out / "memory.csv", rows)
    write_csv(args.out / "memory_running.csv", gain_rows(gain))
    plot(args.out / "memory.png", rows, gain)
    print_tables(console, rows, running)
    print_gain(console, gain)
    console.print(f"wrote {args.out / 'memory.csv'}, {args.out / 'memory_running.csv'} and "
                  f"{args.out / 'memory.png'}")  # fmt: skip


def gain_rows(gain: RunningGain) -> list[dict[str, object]]:
    """The running camera's gain by owner: its files' pages, its Python objects; then the
    anonymous memory no Python object accounts for."""
    rows: list[dict[str, object]] = [
        {"owner": owner.owner, "files_mb": round(owner.files_mb, 2),
         "python_objects_mb": round(owner.objects_mb, 2), "native_mb": 0.0}
        for owner in gain.owners
    ]  # fmt: skip
    rows.append({"owner": NATIVE, "files_mb": 0.0, "python_objects_mb": 0.0,
                 "native_mb": round(gain.native_mb, 2)})  # fmt: skip
    return rows


def print_gain(console: Console, gain: RunningGain) -> None:
    table = Table(title="what the running camera gained over its loaded code, by owner (MB)")
    table.add_column("owner", justify="left", no_wrap=True)
    for column in ("files' pages", "Python objects", "total"):
        table.add_column(column, justify="right")
    for owner in gain.owners:
        if abs(owner.files_mb) + owner.objects_mb >= 0.05:
            table.add_row(owner.owner, f"{owner.files_mb:.2f}", f"{owner.objects_mb:.2f}",
                          f"{owner.files_mb + owner.objects_mb:.2f}")  # fmt: skip
    table.add_row(NATIVE, "", "", f"{gain.native_mb:.2f}")
    console.print(table)
    console.print(f"anonymous memory gained: {gain.anonymous_mb:.2f} MB (Python objects from "
                  "the traced run, the rest from the plain run)")  # fmt: skip


def _short(step: str) -> str:
    return step if len(step) <= 40 else step[:39] + "…"


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number above 0")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--running-s", type=positive, default=20.0,
                        help="seconds the running camera's RSS is sampled")  # fmt: skip
    parser.add_argument("--warmup", type=positive, default=10.0,
                        help="seconds the fleet runs before sampling starts")  # fmt: skip
    parser.add_argument("--trace-frames", type=positive_int, default=DEFAULT_TRACE_FRAMES,
                        help="frames per allocation in the traced run")  # fmt: skip
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
