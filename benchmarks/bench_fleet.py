"""The fleet under load: N cameras at T = 300 ms into one edge, every frame accounted for.

python benchmarks/bench_fleet.py --out results/fleet [--cameras 8,16,32]
    [--brokers mosquitto,embedded] [--modes processes,inprocess] [--duration 40]

Each cell is one `edgebus up` (cloud and coordinator in this process; edge and cameras in
this process or as their own processes) against a stock-config Mosquitto started here on
a free loopback port, or the embedded amqtt broker. Afterwards the stores are audited:
frames captured, classified, dropped with a reason, silently lost (must be 0) and
duplicated (must be 0); latency p50/p99 comes from the results rows; CPU and peak RSS
per process are sampled with psutil. Writes fleet.csv and fleet.png under --out and
prints the table. Numbers go to the README; nothing here is a timed assert.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.bench.mosquitto import LocalMosquitto
from edgebus.bench.result_latency import offloaded_latencies_ms
from edgebus.config import Settings
from edgebus.launch import UpPlan, run_up
from edgebus.reports import write_csv
from edgebus.storage.audit import audit, local_store_paths

PERIOD_MS = 300


@dataclass
class Cell:
    cameras: int
    broker: str  # mosquitto | embedded
    mode: str  # processes | inprocess

    @property
    def name(self) -> str:
        return f"{self.cameras} cams, {self.broker}, {self.mode}"


class Sampler:
    """Per-process CPU seconds and peak RSS of this process and its children, by role."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.cpu: dict[int, float] = {}
        self.rss: dict[int, int] = {}
        self.role: dict[int, str] = {}
        # This process runs every cell: count only the CPU time spent during this one.
        self.cpu_before: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        me = psutil.Process()
        times = me.cpu_times()
        self.cpu_before[me.pid] = times.user + times.system
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for process in [me, *me.children(recursive=True)]:
                try:
                    with process.oneshot():
                        times = process.cpu_times()
                        self.cpu[process.pid] = times.user + times.system
                        rss = process.memory_info().rss
                        self.rss[process.pid] = max(rss, self.rss.get(process.pid, 0))
                        if process.pid not in self.role:
                            self.role[process.pid] = _role_of(process, me.pid)
                except psutil.Error:
                    continue
            self._stop.wait(self.interval_s)

    def by_role(self, wall_s: float) -> dict[str, tuple[float, float]]:
        """role -> (mean CPU % of one core per process, mean peak RSS in MB)."""
        out: dict[str, tuple[float, float]] = {}
        for role in sorted(set(self.role.values()) - {"other"}):
            pids = [p for p, r in self.role.items() if r == role]
            seconds = [self.cpu.get(p, 0.0) - self.cpu_before.get(p, 0.0) for p in pids]
            cpu = np.mean(seconds) / wall_s * 100
            rss = np.mean([self.rss.get(p, 0) for p in pids]) / 2**20
            out[role] = (float(cpu), float(rss))
        return out


def _role_of(process: psutil.Process, me: int) -> str:
    if process.pid == me:
        return "up"
    command = process.cmdline()
    if "--role" in command:
        return command[command.index("--role") + 1]
    return "other"


def run_cell(cell: Cell, duration_s: float) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="edgebus-fleet-"))
    mosquitto = LocalMosquitto(stock=True).start() if cell.broker == "mosquitto" else None
    settings = Settings(
        node_id="up", data_dir=str(workdir), frame_period_ms=PERIOD_MS, log_level="error"
    )
    plan = UpPlan(
        cameras=cell.cameras, duration_s=duration_s,
        broker=mosquitto.url if mosquitto is not None else None,
        processes=cell.mode == "processes", dashboard=False,
        sensors=0,  # N image cameras, as the published table measured
    )  # fmt: skip
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - the summary is not wanted
    started = time.monotonic()
    try:
        with Sampler() as sampler:
            asyncio.run(run_up(settings, plan, console))
    finally:
        if mosquitto is not None:
            mosquitto.__exit__(None, None, None)
    wall_s = time.monotonic() - started
    url = f"sqlite:///{workdir}/global.sqlite3"
    report = audit(local_store_paths(workdir), url)
    latencies = offloaded_latencies_ms(url)
    reasons: Counter[str] = Counter()
    for camera in report.cameras:
        reasons.update(camera.reasons)
    usage = sampler.by_role(wall_s)
    row: dict[str, object] = {
        "cameras": cell.cameras,
        "broker": cell.broker,
        "mode": cell.mode,
        "captured": sum(c.captured for c in report.cameras),
        "classified": sum(c.results for c in report.cameras),
        "dropped": sum(c.dropped for c in report.cameras),
        "drop_reasons": "; ".join(f"{r} {n}" for r, n in reasons.most_common()),
        "awaiting": report.frames_awaiting,
        "silently_lost": report.frames_lost,
        "duplicated": report.frames_duplicated,
        "rows_lost": report.rows_lost,
        "p50_ms": float(np.percentile(latencies, 50)) if latencies.size else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99)) if latencies.size else float("nan"),
    }
    for role in ("up", "edge", "camera"):
        cpu, rss = usage.get(role, (float("nan"), float("nan")))
        row[f"{role}_cpu_pct"] = round(cpu, 1)
        row[f"{role}_rss_mb"] = round(rss, 1)
    return row


def plot(path: Path, rows: list[dict[str, object]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['cameras']}\n{r['broker'][:4]}\n{r['mode'][:4]}" for r in rows]
    x = np.arange(len(rows))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, len(rows) * 0.9), 7), sharex=True)
    classified = np.array([r["classified"] for r in rows], dtype=float)
    dropped = np.array([r["dropped"] for r in rows], dtype=float)
    awaiting = np.array([r["awaiting"] for r in rows], dtype=float)
    lost = np.array([r["silently_lost"] for r in rows], dtype=float)
    top.bar(x, classified, label="classified")
    top.bar(x, dropped, bottom=classified, label="dropped (with a reason)")
    top.bar(x, awaiting, bottom=classified + dropped, label="awaiting (open at the camera)",
            color="grey")  # fmt: skip
    top.bar(x, lost, bottom=classified + dropped + awaiting, label="silently lost", color="red")
    top.set_ylabel("frames")
    top.legend()
    top.set_title(f"every frame accounted for: N cameras at T = {PERIOD_MS} ms, one edge")
    bottom.bar(x - 0.2, [r["p50_ms"] for r in rows], 0.4, label="p50")
    bottom.bar(x + 0.2, [r["p99_ms"] for r in rows], 0.4, label="p99")
    bottom.axhline(PERIOD_MS + 100, color="grey", linestyle="--", label="T + 100 ms")
    bottom.set_ylabel("capture to result, ms")
    bottom.set_yscale("log")
    bottom.legend()
    bottom.set_xticks(x, labels)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _number(text: str) -> object:
    try:
        return float(text) if "." in text or text == "nan" else int(text)
    except ValueError:
        return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cameras", default="8,16,32")
    parser.add_argument("--brokers", default="mosquitto,embedded")
    parser.add_argument("--modes", default="processes,inprocess")
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--replot", type=Path, help="Only redraw the PNG from this fleet.csv.")
    args = parser.parse_args()
    if args.replot is not None:
        rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(args.replot.open())]
        args.out.mkdir(parents=True, exist_ok=True)
        plot(args.out / "fleet.png", rows)
        return 0
    try:
        counts = [int(c) for c in args.cameras.split(",")]
    except ValueError:
        print(f"error: --cameras {args.cameras!r}: expected integers", file=sys.stderr)
        return 2
    brokers = [b for b in args.brokers.split(",") if b]
    modes = [m for m in args.modes.split(",") if m]
    if not set(brokers) <= {"mosquitto", "embedded"} or not set(modes) <= {
        "processes",
        "inprocess",
    }:
        print("error: --brokers takes mosquitto,embedded and --modes processes,inprocess",
              file=sys.stderr)  # fmt: skip
        return 2
    cells = [Cell(n, b, m) for b in brokers for m in modes for n in counts]
    rows = []
    with Progress() as progress:
        task = progress.add_task("fleet cells", total=len(cells))
        for cell in cells:
            progress.update(task, description=cell.name)
            rows.append(run_cell(cell, args.duration))
            progress.advance(task)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "fleet.csv", rows)
    plot(args.out / "fleet.png", rows)
    table = Table(title=f"fleet, T = {PERIOD_MS} ms, {args.duration:g} s per cell")
    columns = ("cameras", "broker", "mode", "captured", "classified", "dropped", "awaiting",
               "silently_lost", "duplicated", "p50_ms", "p99_ms", "edge_cpu_pct", "edge_rss_mb",
               "camera_cpu_pct", "camera_rss_mb", "up_cpu_pct", "up_rss_mb")  # fmt: skip
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(*(f"{row[c]:.0f}" if isinstance(row[c], float) else str(row[c])
                        for c in columns))  # fmt: skip
    Console(width=220).print(table)
    for row in rows:
        if row["drop_reasons"]:
            print(
                f"{row['cameras']} cameras, {row['broker']}, {row['mode']}: {row['drop_reasons']}"
            )
    print(f"wrote {args.out / 'fleet.csv'} and {args.out / 'fleet.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
