"""Whole-file sizes of the WebP and progressive-JPEG baselines on synthetic frames, by size.

The paper's switching result (progressive JPEG beats WebP) needs WebP files too big for a
jammed period. This shows whether a larger frame alone gets there on our procedural data.

python benchmarks/codec_sizes_by_resolution.py OUT [--sizes 64,128,224] [--frames 50]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgebus.nodes.codec_choice import parse_codec
from edgebus.nodes.sources import SyntheticSource

# The experiment's baseline specs, built exactly as a camera builds them.
SPECS = ("webp0", "webp10", "webp20", "pjpeg10", "pjpeg30")


def main(out: Path, sizes: list[int], frames: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in sizes:
        source = SyntheticSource(size, seed=3)
        images = [source.frame(i).image for i in range(frames)]
        for spec in SPECS:
            codec = parse_codec(spec).build(size)
            measured = [sum(len(unit) for unit in codec.encode(image).units) for image in images]
            rows.append((size, spec, float(np.mean(measured)), int(np.max(measured))))
    with (out / "codec_sizes_by_resolution.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["size_px", "codec", "mean_bytes", "max_bytes"])
        writer.writerows(rows)
    table = Table(title=f"baseline file sizes, {frames} synthetic frames per size")
    for column in ("size px", "codec", "mean B", "max B"):
        table.add_column(column, justify="right")
    for size, label, mean, largest in rows:
        table.add_row(str(size), label, f"{mean:,.0f}", f"{largest:,}")
    Console().print(table)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        message = f"expected comma-separated pixel sizes, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if any(size < 16 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected sizes of at least 16 px, got {text!r}")
    return sizes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", type=_sizes, default=[64, 128, 224])
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()
    main(args.out, args.sizes, args.frames)
