"""Deadline-driven offloading over the bus (PNC paper, Figs. 6–10), in real time.

For each period T, one camera per (codec, scenario, chunk size) cell and one edge node run
at once over a real broker. Every camera plays the same held-out frames (the procedural test
split the shipped models never saw), through its own emulated uplink. Results are scored
against the label each end marker carries for evaluation.

Reported per cell: top-1/top-5 accuracy, the fraction of frames fully offloaded, offloading
throughput (wire bytes per second), deadline overruns (chunks that crossed the emulated link
after their deadline), late chunks discarded by the edge, and the emulated link's throughput
error against its trace over the time it was busy.

The modules behind it, re-exported here:

- `offload_options`: the test frames, the defaults and the option checks;
- `offload_scoring`: cells, frame records and the per-cell summary;
- `offload_run`: the broker, the cameras and the edge of each period, in real time;
- `offload_output`: the CSVs and the PNGs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.config import Settings
from edgebus.experiments.offload_options import (
    DEFAULT_CODECS,
    DEFAULT_PERIODS,
    DEFAULT_SCENARIOS,
    TEST_IMAGES,
    TEST_SEED,
    TEST_START,
    OffloadInputError,
    check_options,
    parse_chunk_sizes,
)
from edgebus.experiments.offload_output import plot_grid, plot_switching, write_csv
from edgebus.experiments.offload_run import (
    Tick,
    embedded_broker_process,
    run_offload,
    run_period,
)
from edgebus.experiments.offload_scoring import Cell, CellSummary, FrameRecord, summarise

__all__ = [
    "DEFAULT_CODECS",
    "DEFAULT_PERIODS",
    "DEFAULT_SCENARIOS",
    "TEST_IMAGES",
    "TEST_SEED",
    "TEST_START",
    "Cell",
    "CellSummary",
    "FrameRecord",
    "OffloadInputError",
    "Tick",
    "check_options",
    "embedded_broker_process",
    "parse_chunk_sizes",
    "plot_grid",
    "plot_switching",
    "run_and_report",
    "run_offload",
    "run_period",
    "summarise",
    "summary_table",
    "write_csv",
]


def summary_table(summaries: list[CellSummary], title: str) -> Table:
    table = Table(title=title)
    for column in ("T ms", "scenario", "codec", "chunk", "frames", "results", "top-1 %",
                   "top-5 %", "full %", "B/s", "units", "overruns", "late", "link err %",
                   "p99 ms"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("scenario", "codec") else "right")
    for s in summaries:
        table.add_row(
            str(s.cell.period_ms), s.cell.scenario, s.cell.codec, str(s.cell.chunk_bytes),
            str(s.frames), f"{s.results}" + (f" (+{s.duplicate_results} dup)"
                                             if s.duplicate_results else ""),
            f"{100 * s.top1:.1f}", f"{100 * s.top5:.1f}", f"{100 * s.fully_offloaded:.0f}",
            f"{s.throughput_bps:,.0f}", f"{s.mean_units:.2f}", str(s.overruns),
            str(s.late_chunks), f"{100 * s.throughput_error:+.2f}", f"{s.p99_latency_ms:.0f}",
        )  # fmt: skip
    return table


def run_and_report(
    base: Settings,
    out: Path,
    codecs: Sequence[str],
    periods: Sequence[int],
    scenarios: Sequence[str],
    chunk_sizes: Sequence[int],
    frames: int,
    broker: str | None,
    console: Console,
    at_once: int = 10,
) -> list[CellSummary]:
    """The `edgebus experiment offload` command: run with a progress bar, write CSV + PNGs,
    print the summary table."""
    check_options(codecs, periods, scenarios, frames)
    if at_once < 1:
        raise OffloadInputError(f"--cameras-at-once: expected at least 1, got {at_once}")
    cameras = len(codecs) * len(scenarios) * len(chunk_sizes)
    groups = -(-cameras // at_once)
    seconds = groups * frames * sum(periods) / 1000
    console.print(
        f"{cameras} cameras per period, {min(at_once, cameras)} at once, {frames} frames each:"
        f" about {seconds:.0f} s"
    )
    with Progress(console=console) as bar:
        task = bar.add_task("offload", total=cameras * frames * len(periods))
        summaries, records = asyncio.run(
            run_offload(
                base, codecs, periods, scenarios, chunk_sizes, frames, broker,
                lambda n: bar.update(task, advance=n), at_once,
            )
        )  # fmt: skip
    write_csv(out, summaries, records)
    plots: list[Path | None] = [plot_grid(out, summaries)]
    middle = sorted(periods)[len(periods) // 2]  # T = 500 ms by default, as the paper's Fig. 9
    plots += [plot_switching(out, records, codec, middle) for codec in codecs]
    console.print(summary_table(summaries, f"offloading over the bus, {out}"))
    written = [out / "offload_cells.csv", out / "offload_frames.csv"]
    written += [p for p in plots if p is not None]
    console.print("wrote " + ", ".join(str(p) for p in written))
    return summaries
