"""The edge alone under load: pre-encoded frames replayed from many simulated cameras.

python benchmarks/bench_replay.py --out results/replay [--rates 50,100,200,400]
    [--period-ms 500] [--duration 15]

A stock-config Mosquitto on a free loopback port and one real edge process
(`edgebus node --role edge`, the product's default settings) run for the whole sweep.
First, in this process, the models' own throughput: the edge's decode + classify call
(PNC decoder and the strong classifier, `FrameClassifier.classify_batch`) on the same
pre-encoded frames, at batch 1 and the best of batches 8 and 32. Then, per rate, a
replayer process plays N = rate x T cameras, one frame per camera per period, spread
evenly over it; frames are coded once, so the replayer's CPU stays small and the edge's
capacity is what is measured (see edgebus/bench/replay.py). Every frame's outcome is
read from the edge's store: results (capture-to-result latency), drops with a reason,
and lost frames with no outcome (must be 0). The edge's CPU per frame sent (psutil,
from the replayer's start until every outcome is stored) is split two ways: less the
models' own CPU for each result ("beyond inference"), and less what its classifier
thread (decode + classify) actually spent ("outside classify thread": its event loop,
store writes and sync). Writes replay.csv and replay.png under --out, prints the table
and the highest rate whose p99 stays within T + 100 ms with no lost frame. Numbers go
to the docs; nothing here is a timed assert.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.bench.mosquitto import LocalMosquitto, mosquitto_binary
from edgebus.bench.replay import ModelThroughput, ReplayPlan, model_throughput, pre_encode
from edgebus.bench.replay_edge import EdgeUnderTest, run_step
from edgebus.bench.replay_options import OptionError, add_replay_arguments, replay_plans
from edgebus.reports import write_csv

BATCHES = (1, 8, 32)


async def sweep(
    steps: list[ReplayPlan], models: ModelThroughput, progress: Progress
) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="edgebus-replay-"))
    rows: list[dict[str, Any]] = []
    task = progress.add_task("starting the edge", total=len(steps))
    with LocalMosquitto(stock=True) as broker:
        edge = EdgeUnderTest(broker.url, workdir, steps[0].period_ms)
        try:
            await edge.start()
            for plan in steps:
                progress.update(task, description=f"{plan.rate:g} frames/s ({plan.cameras} cams)")
                pid = broker.process.pid if broker.process is not None else None
                rows.append(await run_step(edge, broker.url, plan, workdir, models, pid))
                progress.advance(task)
                if not edge.running():
                    raise RuntimeError(f"the edge stopped:\n{edge.fleet.log_text('edge-replay')}")
        finally:
            await edge.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return rows


def plot(path: Path, rows: list[dict[str, Any]], models: ModelThroughput) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    period = rows[0]["period_ms"]
    rate = np.array([r["rate_offered"] for r in rows], dtype=float)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    top.plot(rate, rate, color="grey", linestyle=":", label="offered")
    top.plot(rate, [r["results_per_s"] for r in rows], "o-", label="results/s")
    top.plot(rate, [r["dropped"] / max(r["frames_sent"], 1) * r["rate_offered"] for r in rows],
             "s-", label="dropped/s (with a reason)")  # fmt: skip
    top.axhline(models.batch1_fps, color="tab:red", linestyle="--",
                label=f"models alone, batch 1 ({models.batch1_fps:.0f}/s)")  # fmt: skip
    best = f"models alone, batch {models.best_batch} ({models.best_fps:.0f}/s)"
    top.axhline(models.best_fps, color="tab:purple", linestyle="--", label=best)
    top.set_ylabel("frames/s")
    top.set_title(f"one edge, replayed PNC frames, T = {period} ms, stock Mosquitto")
    top.legend(fontsize=8)
    bottom.plot(rate, [r["p50_ms"] for r in rows], "o-", label="p50")
    bottom.plot(rate, [r["p99_ms"] for r in rows], "o-", label="p99")
    bottom.axhline(period + 100, color="grey", linestyle="--", label="T + 100 ms")
    bottom.set_yscale("log")
    bottom.set_xlabel("offered frames/s (cameras / T)")
    bottom.set_ylabel("capture to result, ms")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: list[dict[str, Any]], period_ms: int, duration_s: float) -> Table:
    out = Table(title=f"edge replay, T = {period_ms} ms, {duration_s:g} s per rate")
    columns = (
        ("rate offered", "rate_offered", "{:.0f}"), ("results/s", "results_per_s", "{:.1f}"),
        ("p50 ms", "p50_ms", "{:.0f}"), ("p99 ms", "p99_ms", "{:.0f}"),
        (f"p99 ≤ {period_ms + 100}", "within_target", "{}"), ("dropped", "dropped", "{}"),
        ("lost", "lost", "{}"), ("edge CPU ms/frame", "edge_cpu_ms_per_frame", "{:.2f}"),
        ("beyond inference ms/frame", "edge_beyond_inference_ms", "{:.2f}"),
        ("outside classify thread ms/frame", "edge_outside_classify_ms", "{:.2f}"),
        ("x models b1", "ratio_batch1", "{:.2f}"), ("x models best", "ratio_best", "{:.2f}"),
    )  # fmt: skip
    for title, _, _ in columns:
        out.add_column(title, justify="right")
    for row in rows:
        out.add_row(*(fmt.format("yes" if row[key] is True else "no" if row[key] is False
                                 else row[key]) for _, key, fmt in columns))  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_replay_arguments(parser, rates="50,100,200,400")
    args = parser.parse_args()
    try:
        steps = replay_plans(args)
    except OptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if mosquitto_binary() is None:
        print("error: the mosquitto binary is not installed", file=sys.stderr)
        return 2
    console = Console(width=200)
    console.print("models alone (decode + classify, in this process) ...")
    models = model_throughput(pre_encode(), batches=BATCHES)
    for batch in BATCHES:
        console.print(f"  batch {batch:>2}: {models.fps[batch]:.0f} frames/s, "
                      f"{models.cpu_ms[batch]:.2f} CPU ms/frame")  # fmt: skip
    with Progress(console=console) as progress:
        rows = asyncio.run(sweep(steps, models, progress))
    for row in rows:
        row["models_b1_fps"] = models.batch1_fps
        row["models_best_fps"] = models.best_fps
        row["models_best_batch"] = models.best_batch
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "replay.csv", rows)
    plot(args.out / "replay.png", rows, models)
    console.print(table(rows, args.period_ms, args.duration))
    for row in rows:
        if row["drop_reasons"]:
            print(f"{row['rate_offered']:g}/s dropped: {row['drop_reasons']}")
        if row["unsent"] or row["duplicated"]:
            print(f"{row['rate_offered']:g}/s: {row['unsent']} unsent by the replayer, "
                  f"{row['duplicated']} duplicated")  # fmt: skip
    good = [r for r in rows if r["within_target"] and r["lost"] == 0]
    if good:
        best = max(good, key=lambda r: r["rate_offered"])
        print(f"highest rate within T + 100 ms and nothing lost: {best['rate_offered']:g} "
              f"frames/s offered, {best['results_per_s']:.1f} results/s "
              f"({best['dropped']} dropped), {best['ratio_batch1']:.2f}x the models' batch-1 "
              f"throughput ({models.batch1_fps:.0f}/s), {best['ratio_best']:.2f}x their best "
              f"(batch {models.best_batch}, {models.best_fps:.0f}/s)")  # fmt: skip
    else:
        print(f"no rate kept p99 within T + 100 ms ({args.period_ms + 100} ms) with nothing lost")
    print(f"wrote {args.out / 'replay.csv'} and {args.out / 'replay.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
