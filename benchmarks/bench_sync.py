"""Store-sync benchmark: rows/s and sync lag over MQTT against a direct bulk insert.

Same measurement as `edgebus bench sync`; kept as a script so it runs without the CLI
(a private mosquitto is started unless --broker is given):

    python benchmarks/bench_sync.py --rows 20000 --nodes 1,10 --targets sqlite,postgresql
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgebus.bench.mosquitto import LocalMosquitto
from edgebus.bench.sync import check_postgres, run_sync_bench, write_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--nodes", default="1,10")
    parser.add_argument("--targets", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--broker", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    if "postgresql" in targets:
        check_postgres(args.postgres_url)
    local = LocalMosquitto().start() if args.broker is None else None
    broker = local.url if local is not None else args.broker
    try:
        rows = run_sync_bench(
            broker, targets, [int(n) for n in args.nodes.split(",")], args.rows, args.postgres_url
        )
    finally:
        if local is not None:
            local.__exit__(None, None, None)
    for r in rows:
        print(
            f"{r.target:10s} {r.nodes:3d} nodes  {r.rows_per_s:9,.0f} rows/s  "
            f"p50 {r.p50_lag_ms:6.0f} ms  p99 {r.p99_lag_ms:6.0f} ms  "
            f"direct {r.direct_rows_per_s:9,.0f} rows/s  ratio {r.ratio:.2f}"
        )
    if args.out is not None:
        write_csv(args.out / "bench_sync.csv", rows)


if __name__ == "__main__":
    main()
