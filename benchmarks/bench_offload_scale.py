"""Scale: 8 PNC cameras at T = 300 ms into one edge node, capture-to-result latency.

python benchmarks/bench_offload_scale.py [--cameras 8] [--period-ms 300] [--frames 100]
    [--scenario switching] [--broker URL] [--repeats 1]

All cameras start together, so their deadlines (and end markers) coincide: the edge sees
bursts of 8 frames at once, the worst case for its classifier queue. Target: no frame
classified later than T + 100 ms after capture.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
from rich.console import Console
from rich.table import Table

from edgebus.broker.embedded import EmbeddedBroker
from edgebus.config import Settings
from edgebus.experiments.offload import Cell, run_period


async def one_run(args: argparse.Namespace) -> tuple[np.ndarray, int, int, int]:
    embedded = None
    url = args.broker
    if url is None:
        embedded = await EmbeddedBroker(port=0).start()
        url = embedded.url
    try:
        base = Settings(broker=url, node_id="bench")
        cells = [
            Cell("pnc", args.period_ms, args.scenario, 0, replica=i + 1)
            for i in range(args.cameras)
        ]
        records, _, late = await run_period(base, cells, args.frames, lambda n: None)
    finally:
        if embedded is not None:
            await embedded.stop()
    latencies = np.array([r.result.latency_ms for r in records if r.result is not None])
    missing = sum(1 for r in records if r.result is None)
    overruns = sum(r.sent.overruns for r in records)
    return latencies, missing, overruns, late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--period-ms", type=int, default=300)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--scenario", default="switching")
    parser.add_argument("--broker", default=None)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    limit = args.period_ms + 100
    table = Table(
        title=f"{args.cameras} PNC cameras, T = {args.period_ms} ms, {args.scenario}, "
        f"{args.frames} frames each, one edge"
    )
    for column in ("run", "results", "missing", "p50 ms", "p99 ms", "max ms",
                   f"> {limit} ms", "overruns", "late chunks"):  # fmt: skip
        table.add_column(column, justify="right")
    for run in range(args.repeats):
        latencies, missing, overruns, late = asyncio.run(one_run(args))
        table.add_row(
            str(run + 1), str(len(latencies)), str(missing),
            f"{np.percentile(latencies, 50):.0f}", f"{np.percentile(latencies, 99):.0f}",
            f"{latencies.max():.0f}", str(int((latencies > limit).sum())), str(overruns),
            str(late),
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
