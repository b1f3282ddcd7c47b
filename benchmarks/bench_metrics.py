"""What Prometheus metrics cost a camera: its CPU time with metrics off, and on and scraped.

python benchmarks/bench_metrics.py --out results/metrics [--duration 20] [--repeats 2]
    [--period-ms 500] [--scrape-s 1]

Each run starts a cloud, an edge and a camera as their own `edgebus node` processes on an
embedded broker in this process, lets the camera settle, then measures the camera
process's CPU seconds (user + system, psutil) over --duration: once with metrics off,
once with `--metrics-port` and a scrape of its /metrics every --scrape-s (urllib from
this process, as Prometheus would). Runs alternate off/on --repeats times; the table has
each run, the medians and their ratio. Writes metrics.csv under --out. Nothing here is a
timed assert.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from edgebus.bench.process_fleet import Fleet, logged, wait_for
from edgebus.broker.embedded import EmbeddedBroker
from edgebus.broker.ports import free_port
from edgebus.reports import write_csv


@dataclass
class Run:
    metrics: bool
    cpu_s: float
    wall_s: float
    scrapes: int
    scrape_ms: float  # mean wall time of one scrape, seen from the scraper
    frames_sent: float  # from the last scrape (on) or nan (off)

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.wall_s


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def scrape(port: int) -> tuple[float, float]:
    """One scrape: its wall time (s) and the camera's frames_sent in it."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    elapsed = time.perf_counter() - started
    sent = next(
        (float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
         if line.startswith("edgebus_frames_sent_total{")),
        float("nan"),
    )  # fmt: skip
    return elapsed, sent


async def one_run(metrics: bool, args: argparse.Namespace, work: Path) -> Run:
    broker = await EmbeddedBroker(port=0).start()
    data = Path(tempfile.mkdtemp(prefix="metrics-", dir=work))
    fleet = Fleet(broker.url, data, period_ms=args.period_ms)
    port = free_port()
    try:
        fleet.start("cloud", "cloud-1")
        fleet.start("edge", "edge-1")
        await wait_for(lambda: logged(fleet, "edge-1", "online"), 60, "edge-1 online")
        extra = ("--metrics-port", str(port)) if metrics else ()
        camera = fleet.start("camera", "cam-1", *extra)
        await wait_for(lambda: logged(fleet, "cam-1", "online"), 60, "cam-1 online")
        await asyncio.sleep(args.settle)
        process = psutil.Process(camera.process.pid)
        scrapes: list[float] = []
        sent = float("nan")
        started, cpu_before = time.monotonic(), cpu_seconds(process)
        until = started + args.duration
        while (now := time.monotonic()) < until:
            if metrics:
                took, sent = await asyncio.to_thread(scrape, port)
                scrapes.append(took)
            await asyncio.sleep(min(args.scrape_s, max(0.0, until - time.monotonic())))
        wall, cpu = now - started, cpu_seconds(process) - cpu_before
        if not fleet.running("cam-1"):
            raise RuntimeError(f"the camera died:\n{fleet.log_text('cam-1')[-2000:]}")
        return Run(metrics, cpu, wall, len(scrapes),
                   1000 * statistics.fmean(scrapes) if scrapes else 0.0, sent)  # fmt: skip
    finally:
        await fleet.stop_all(timeout_s=20)
        await broker.stop()


async def main(args: argparse.Namespace) -> list[Run]:
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for index in range(args.repeats):
        for metrics in (False, True):
            run = await one_run(metrics, args, work)
            print(f"run {index + 1}, metrics {'on' if metrics else 'off'}: {run.cpu_s:.3f} s CPU")
            runs.append(run)
    return runs


def report(runs: list[Run], args: argparse.Namespace) -> None:
    table = Table(
        title=f"camera CPU over {args.duration:g} s, frame period {args.period_ms} ms "
        f"(metrics on: scraped every {args.scrape_s:g} s)"
    )
    for column in ("metrics", "CPU s", "CPU %", "scrapes", "scrape ms", "frames_sent"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row("on" if run.metrics else "off", f"{run.cpu_s:.3f}",
                      f"{100 * run.cpu_share:.2f}", str(run.scrapes), f"{run.scrape_ms:.1f}",
                      f"{run.frames_sent:g}")  # fmt: skip
    off = statistics.median(r.cpu_s for r in runs if not r.metrics)
    on = statistics.median(r.cpu_s for r in runs if r.metrics)
    scrapes = statistics.median(r.scrapes for r in runs if r.metrics)
    table.add_section()
    table.add_row("median off", f"{off:.3f}", "", "", "", "")
    table.add_row("median on", f"{on:.3f}", "", f"{scrapes:g}", "", "")
    table.add_row("on / off", f"{on / off:.3f}", "", "", "", "")
    per_scrape = (on - off) / scrapes * 1000 if scrapes else float("nan")
    table.add_row("CPU ms per scrape", f"{per_scrape:.2f}", "", "", "", "")
    Console().print(table)
    write_csv(
        Path(args.out) / "metrics.csv",
        [{"metrics": "on" if r.metrics else "off", "cpu_s": round(r.cpu_s, 4),
          "wall_s": round(r.wall_s, 3), "scrapes": r.scrapes,
          "scrape_ms": round(r.scrape_ms, 2), "period_ms": args.period_ms} for r in runs],
    )  # fmt: skip


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/metrics", help="results folder")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per run")
    parser.add_argument("--repeats", type=int, default=2, help="off/on pairs")
    parser.add_argument("--period-ms", type=int, default=500, help="camera frame period")
    parser.add_argument("--scrape-s", type=float, default=1.0, help="scrape interval")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    report(asyncio.run(main(arguments)), arguments)
