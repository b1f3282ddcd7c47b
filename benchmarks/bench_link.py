"""Pacing accuracy of the link emulator: measured vs trace throughput over 10 s per preset.

python benchmarks/bench_link.py [--seconds 10] [--chunk 256]
"""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.table import Table

from edgebus.broker.link import BandwidthTrace, measure_throughput


async def main(seconds: float, chunk: int) -> None:
    table = Table(title=f"link emulator, {seconds:g} s per trace, {chunk} B sends")
    for column in ("trace", "trace B/s", "measured B/s", "error"):
        table.add_column(column, justify="right")
    for name in ("none", "light", "heavy", "switching", "stepped"):
        measured, expected = await measure_throughput(BandwidthTrace.preset(name), seconds, chunk)
        table.add_row(
            name,
            f"{expected:,.0f}",
            f"{measured:,.0f}",
            f"{100 * (measured - expected) / expected:+.2f} %",
        )
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunk", type=int, default=256)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.chunk))
