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
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
from rich.console import Console
from rich.table import Table

from edgebus.actor.lifecycle import bus_for
from edgebus.config import Settings
from edgebus.experiments.offload import Cell, embedded_broker_process, run_period
from edgebus.messages import Status


@contextlib.contextmanager
def edge_process(url: str, period_ms: int) -> Iterator[None]:
    """The edge as its own process (`edgebus node --role edge`), as on a real edge box."""
    env = dict(os.environ, EDGEBUS_STORE_ENABLED="0")
    command = [sys.executable, "-m", "edgebus", "node", "--role", "edge", "--id", "edge-scale",
               "--broker", url, "--period-ms", str(period_ms), "--wait", "20"]  # fmt: skip
    child = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(until_online(url, "edge-scale"))
        yield
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)


async def until_online(url: str, node_id: str, timeout_s: float = 30.0) -> None:
    bus = bus_for(Settings(broker=url, node_id="bench-watch"))
    await bus.start(timeout=10)
    try:
        statuses = await bus.subscribe(bus.topics.status(node_id), qos=1)
        async with asyncio.timeout(timeout_s):
            async for delivery in statuses:
                if isinstance(delivery.message, Status) and delivery.message.state == "online":
                    return
    finally:
        await bus.close(flush_timeout=0)


async def one_run(
    args: argparse.Namespace, url: str, external_edge: bool
) -> tuple[np.ndarray, int, int, int]:
    base = Settings(broker=url, node_id="bench")
    cells = [
        Cell("pnc", args.period_ms, args.scenario, 0, replica=i + 1) for i in range(args.cameras)
    ]
    records, _, late = await run_period(base, cells, args.frames, lambda n: None, external_edge)
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
    parser.add_argument(
        "--edge-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the edge as its own process (default) or inside the cameras' process",
    )
    args = parser.parse_args()
    limit = args.period_ms + 100
    table = Table(
        title=f"{args.broker or 'embedded broker'}: {args.cameras} PNC cameras, "
        f"T = {args.period_ms} ms, {args.scenario}, {args.frames} frames each, one edge"
        f"{' process' if args.edge_process else ' in the cameras process'}"
    )
    for column in ("run", "results", "missing", "p50 ms", "p99 ms", "max ms",
                   f"> {limit} ms", "overruns", "late chunks"):  # fmt: skip
        table.add_column(column, justify="right")
    for run in range(args.repeats):
        with contextlib.ExitStack() as stack:
            # The embedded broker runs in its own process, as `edgebus broker` would.
            url = args.broker or stack.enter_context(embedded_broker_process())
            if args.edge_process:
                stack.enter_context(edge_process(url, args.period_ms))
            latencies, missing, overruns, late = asyncio.run(one_run(args, url, args.edge_process))
        table.add_row(
            str(run + 1), str(len(latencies)), str(missing),
            f"{np.percentile(latencies, 50):.0f}", f"{np.percentile(latencies, 99):.0f}",
            f"{latencies.max():.0f}", str(int((latencies > limit).sum())), str(overruns),
            str(late) if late >= 0 else "n/a",
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
