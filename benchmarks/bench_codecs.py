"""Encode-time benchmark of PNC against WebP and progressive JPEG (PNC paper, Table I).

Same measurement as `edgebus bench codecs`; kept as a script so it runs without the CLI:

    python benchmarks/bench_codecs.py --sizes 64,224 --images 30 --repeats 3 --out results/bench
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgebus.experiments.codec_bench import bench, write_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,224")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = bench(sizes, args.images, args.repeats)
    for r in rows:
        print(
            f"{r.image_size:4d}  {r.method.strip():32s} {r.mean_ms:8.3f} ms  "
            f"x WebP m6 q20 {r.ratio_to_webp_m6_q20:6.3f}  x pjpeg q30 {r.ratio_to_pjpeg_q30:6.3f}"
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(args.out / "bench_codecs.csv", rows)


if __name__ == "__main__":
    main()
