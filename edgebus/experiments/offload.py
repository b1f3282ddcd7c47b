"""Deadline-driven offloading over the bus (PNC paper, Figs. 6–10), in real time.

For each period T, one camera per (codec, scenario, chunk size) cell and one edge node run
at once over a real broker. Every camera plays the same held-out frames (the procedural test
split the shipped models never saw), through its own emulated uplink. Results are scored
against the label each end marker carries for evaluation.

Reported per cell: top-1/top-5 accuracy, the fraction of frames fully offloaded, offloading
throughput (wire bytes per second), deadline overruns (chunks that crossed the emulated link
after their deadline), late chunks discarded by the edge, and the emulated link's throughput
error against its trace over the time it was busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import math
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.actor.lifecycle import bus_for
from edgebus.broker.link import TraceError, trace_from_spec
from edgebus.broker.ports import free_port, wait_for_port
from edgebus.codecs.errors import CodecError
from edgebus.config import Settings
from edgebus.messages import Result
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.codec_choice import parse_codec
from edgebus.nodes.edge import EdgeNode
from edgebus.nodes.frame_sender import SentFrame
from edgebus.nodes.sources import SyntheticSource

# The procedural test split of the shipped models (seed 0, images 13000-14999).
TEST_SEED, TEST_START, TEST_IMAGES = 0, 13_000, 2_000
DEFAULT_CODECS = ("pnc", "pjpeg", "webp0", "webp10", "webp20")
DEFAULT_PERIODS = (300, 500, 700)
DEFAULT_SCENARIOS = ("none", "light", "heavy", "switching")

Tick = Callable[[float], None]


class OffloadInputError(ValueError):
    """A bad experiment option; the message is one line."""


@dataclass(frozen=True)
class Cell:
    codec: str
    period_ms: int
    scenario: str
    chunk_bytes: int
    replica: int = 0  # several cameras of one cell (the scale benchmark)

    @property
    def camera_id(self) -> str:
        name = f"{self.codec}.{self.scenario.replace('/', '_')}.c{self.chunk_bytes}"
        return f"{name}.r{self.replica}" if self.replica else name


@dataclass
class FrameRecord:
    cell: Cell
    sent: SentFrame
    result: Result | None
    result_count: int  # must be exactly 1


@dataclass(frozen=True)
class CellSummary:
    cell: Cell
    frames: int
    results: int
    duplicate_results: int
    top1: float
    top5: float
    fully_offloaded: float
    throughput_bps: float
    mean_units: float
    overruns: int
    late_chunks: int
    throughput_error: float
    p99_latency_ms: float

    def row(self) -> dict[str, object]:
        out: dict[str, object] = dataclasses.asdict(self.cell)
        out.update({k: v for k, v in dataclasses.asdict(self).items() if k != "cell"})
        return out


def parse_chunk_sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 0:
        raise OffloadInputError(f"--chunk-bytes: expected integers >= 0, got {text!r}")
    return sizes


def check_options(
    codecs: Sequence[str], periods: Sequence[int], scenarios: Sequence[str], frames: int
) -> None:
    for codec in codecs:
        try:
            parse_codec(codec)
        except CodecError as exc:
            raise OffloadInputError(f"--codecs: {exc}") from None
    for scenario in scenarios:
        try:
            if trace_from_spec(scenario) is None:
                raise OffloadInputError("--scenarios: 'off' has no link to measure")
        except TraceError as exc:
            raise OffloadInputError(f"--scenarios: {exc}") from None
    if any(p <= 0 for p in periods):
        raise OffloadInputError(f"--periods: expected positive milliseconds, got {list(periods)}")
    if not 1 <= frames <= TEST_IMAGES:
        raise OffloadInputError(f"--frames: expected 1..{TEST_IMAGES}, got {frames}")


async def run_period(
    base: Settings,
    cells: list[Cell],
    frames: int,
    tick: Tick,
    external_edge: bool = False,
) -> tuple[list[FrameRecord], dict[Cell, float], int]:
    """Run cells of one period at once; returns the frames, each camera's throughput
    error and the edge's late-chunk count (-1 with an external edge, already listening)."""
    period = cells[0].period_ms
    settings = dataclasses.replace(base, frame_period_ms=period, store_enabled=False)
    edge = (
        None
        if external_edge
        else EdgeNode(dataclasses.replace(settings, role="edge", node_id=f"edge-t{period}"))
    )
    observer = bus_for(dataclasses.replace(settings, node_id=f"observer-t{period}"))
    results: dict[tuple[str, int], list[Result]] = {}
    sent: dict[str, list[SentFrame]] = {cell.camera_id: [] for cell in cells}
    await observer.start(timeout=10)
    subscription = await observer.subscribe(observer.topics.results(), qos=1)

    async def collect() -> None:
        async for delivery in subscription:
            message = delivery.message
            if isinstance(message, Result):
                results.setdefault((message.camera, message.frame_id), []).append(message)

    def on_sent(frame: SentFrame) -> None:
        sent[frame.camera].append(frame)
        tick(1.0)

    collector = asyncio.create_task(collect())
    edge_task = asyncio.create_task(edge.run(connect_timeout=10)) if edge is not None else None
    if edge is not None:
        await edge.ready.wait()
    cameras = [
        CameraNode(
            dataclasses.replace(
                settings,
                role="camera",
                node_id=cell.camera_id,
                codec=cell.codec,
                link=cell.scenario,
                chunk_bytes=cell.chunk_bytes,
            ),
            max_frames=frames,
            source=SyntheticSource(settings.frame_width, TEST_SEED, TEST_START),
            on_sent=on_sent,
        )
        for cell in cells
    ]
    tasks = [asyncio.create_task(camera.run(connect_timeout=10)) for camera in cameras]
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + frames * period / 1000 + 30
        while loop.time() < until and any(len(v) < frames for v in sent.values()):
            if any(t.done() for t in tasks):
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            await asyncio.sleep(0.2)
        # Results follow the last end marker by a decode; the grace covers lost markers.
        until = loop.time() + 2 * period / 1000 + 2
        total = sum(len(v) for v in sent.values())
        while loop.time() < until and len(results) < total:
            await asyncio.sleep(0.05)
    finally:
        for camera in cameras:
            camera.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        if edge is not None and edge_task is not None:
            edge.stop()
            await asyncio.gather(edge_task, return_exceptions=True)
        collector.cancel()
        await observer.close(flush_timeout=0)
    records = []
    errors: dict[Cell, float] = {}
    for cell, camera in zip(cells, cameras, strict=True):
        errors[cell] = camera.link.throughput_error() if camera.link is not None else 0.0
        for frame in sent[cell.camera_id]:
            got = results.get((cell.camera_id, frame.frame_id), [])
            records.append(FrameRecord(cell, frame, got[0] if got else None, len(got)))
    return records, errors, int(edge.assembler.stats.late) if edge is not None else -1


def _hit(record: FrameRecord, k: int) -> bool:
    return record.result is not None and record.sent.label in record.result.top_k[:k]


def summarise(
    records: list[FrameRecord], errors: dict[Cell, float], late: dict[int, int]
) -> list[CellSummary]:
    by_cell: dict[Cell, list[FrameRecord]] = {}
    for record in records:
        by_cell.setdefault(record.cell, []).append(record)
    out = []
    for cell, rows in by_cell.items():
        scored = [r for r in rows if r.result is not None]
        duplicates = sum(r.result_count - 1 for r in rows if r.result_count > 1)
        # A frame without a result counts as a miss: the system gave no answer in time.
        top1 = np.mean([_hit(r, 1) for r in rows])
        top5 = np.mean([_hit(r, 5) for r in rows])
        frames = [r.sent for r in rows]
        latencies = [r.result.latency_ms for r in scored if r.result is not None]
        out.append(
            CellSummary(
                cell,
                len(frames),
                len(scored),
                duplicates,
                float(top1),
                float(top5),
                float(np.mean([f.units_sent == f.units_total for f in frames])),
                sum(f.wire_bytes for f in frames) / (len(frames) * cell.period_ms / 1000),
                float(np.mean([f.units_sent for f in frames])),
                sum(f.overruns for f in frames),
                late.get(cell.period_ms, 0),
                errors.get(cell, 0.0),
                float(np.percentile(latencies, 99)) if latencies else math.nan,
            )
        )
    return sorted(out, key=lambda s: (s.cell.period_ms, s.cell.scenario, s.cell.codec))


@contextlib.contextmanager
def embedded_broker_process() -> Iterator[str]:
    """The embedded (amqtt) broker in a child process: it routes every chunk in Python, and
    on the experiment's own event loop it would steal the time the cameras' deadlines need."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "edgebus", "broker", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=20)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()


async def run_offload(
    base: Settings,
    codecs: Sequence[str],
    periods: Sequence[int],
    scenarios: Sequence[str],
    chunk_sizes: Sequence[int],
    frames: int,
    broker: str | None,
    tick: Tick,
    at_once: int = 10,
) -> tuple[list[CellSummary], list[FrameRecord]]:
    records: list[FrameRecord] = []
    errors: dict[Cell, float] = {}
    late: dict[int, int] = {}
    with contextlib.ExitStack() as stack:
        if broker is None:
            url = stack.enter_context(embedded_broker_process())
            base = dataclasses.replace(base, broker=url, protocol="3.1.1")
        else:
            base = dataclasses.replace(base, broker=broker)
        for period in periods:
            cells = [
                Cell(codec, period, scenario, chunk)
                for scenario in scenarios
                for codec in codecs
                for chunk in chunk_sizes
            ]
            for first in range(0, len(cells), at_once):
                group = cells[first : first + at_once]
                got, errs, group_late = await run_period(base, group, frames, tick)
                records += got
                errors.update(errs)
                late[period] = late.get(period, 0) + group_late
    return summarise(records, errors, late), records


# -- output ------------------------------------------------------------------------------


def write_csv(out: Path, summaries: list[CellSummary], records: list[FrameRecord]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [s.row() for s in summaries]
    with (out / "offload_cells.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (out / "offload_frames.csv").open("w", newline="") as handle:
        frames = csv.writer(handle)
        frames.writerow(
            ["codec", "period_ms", "scenario", "chunk_bytes", "frame_id", "capture_ts",
             "label", "top1", "top5", "units_sent", "units_total", "units_received",
             "wire_bytes", "link_rate", "first_unit_ms", "latency_ms", "overruns"]
        )  # fmt: skip
        for r in records:
            c, s, res = r.cell, r.sent, r.result
            frames.writerow(
                [c.codec, c.period_ms, c.scenario, c.chunk_bytes, s.frame_id,
                 f"{s.capture_ts:.4f}", s.label,
                 int(res is not None and res.top_k[0] == s.label),
                 int(res is not None and s.label in res.top_k[:5]),
                 s.units_sent, s.units_total, res.units_received if res else -1,
                 s.wire_bytes, f"{s.link_rate:.0f}", f"{1000 * s.first_unit_s:.2f}",
                 f"{res.latency_ms:.1f}" if res else "", s.overruns]
            )  # fmt: skip


def plot_grid(out: Path, summaries: list[CellSummary]) -> Path:
    """Figs. 6–8 in the paper's layout: one column per scenario, bars per codec per period."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The paper's order (none, light, heavy, then switching); other traces after them.
    known = {name: i for i, name in enumerate(DEFAULT_SCENARIOS)}
    scenarios = sorted(
        dict.fromkeys(s.cell.scenario for s in summaries), key=lambda n: known.get(n, len(known))
    )
    periods = sorted({s.cell.period_ms for s in summaries})
    methods = list(dict.fromkeys((s.cell.codec, s.cell.chunk_bytes) for s in summaries))
    metrics = [
        ("top5", "top-5 accuracy (Fig. 6)", 1.0),
        ("top1", "top-1 accuracy", 1.0),
        ("fully_offloaded", "fully offloaded (Fig. 7)", 1.0),
        ("throughput_bps", "throughput B/s (Fig. 8)", 1.0),
    ]
    fig, axes = plt.subplots(
        len(metrics), len(scenarios), figsize=(4 * len(scenarios), 2.8 * len(metrics)),
        squeeze=False,
    )  # fmt: skip
    width = 0.8 / max(1, len(methods))
    index = {(s.cell.codec, s.cell.chunk_bytes, s.cell.period_ms, s.cell.scenario): s
             for s in summaries}  # fmt: skip
    for col, scenario in enumerate(scenarios):
        for row, (field, title, _) in enumerate(metrics):
            ax = axes[row][col]
            for m, (codec, chunk) in enumerate(methods):
                values = [
                    getattr(index[(codec, chunk, p, scenario)], field)
                    if (codec, chunk, p, scenario) in index
                    else np.nan
                    for p in periods
                ]
                label = codec if len({c for _, c in methods}) == 1 else f"{codec}/{chunk}B"
                ax.bar(np.arange(len(periods)) + m * width, values, width, label=label)
            ax.set_xticks(np.arange(len(periods)) + width * (len(methods) - 1) / 2)
            ax.set_xticklabels([f"T={p}" for p in periods])
            if row == 0:
                ax.set_title(scenario)
            if col == 0:
                ax.set_ylabel(title)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "offload_grid.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_switching(out: Path, records: list[FrameRecord], codec: str, period: int) -> Path | None:
    """Fig. 9/10 style: per frame, the link rate, bytes and units of one camera."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        r
        for r in records
        if r.cell.scenario == "switching" and r.cell.codec == codec and r.cell.period_ms == period
    ]
    if not rows:
        return None
    rows.sort(key=lambda r: r.sent.frame_id)
    t = np.array([r.sent.capture_ts for r in rows])
    t -= t[0]
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
    axes[0].step(t, [r.sent.link_rate for r in rows], where="post", color="grey", label="trace")
    axes[0].plot(t, [r.sent.wire_bytes / (period / 1000) for r in rows], ".", label="frame")
    axes[0].set_ylabel("throughput B/s")
    axes[0].legend(fontsize=7)
    axes[1].plot(t, [r.sent.wire_bytes for r in rows], ".-")
    axes[1].set_ylabel("bytes per frame")
    axes[2].plot(t, [r.result.units_received if r.result else 0 for r in rows], ".-")
    axes[2].set_ylabel("units received")
    axes[2].set_xlabel("time (s)")
    axes[0].set_title(f"{codec}, T = {period} ms, switching none/heavy every 10 s")
    fig.tight_layout()
    path = out / f"offload_switching_{codec}_t{period}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
