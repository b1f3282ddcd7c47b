"""The edge's CPU per frame against the least its libraries need for the same frames.

python benchmarks/bench_edge_floor.py --out results/edge_floor [--rates 100]
    [--period-ms 500] [--duration 15] [--runs 2] [--profile]

First, in this process, the models' own CPU per frame at batch 1 (the edge's decode and
classify call on the replay's pre-encoded frames, as bench_replay.py measures it). Then
each run replays the same frames at each rate, on a stock-config Mosquitto started here on
a free loopback port, into two edges in turn, alternating which goes first:
- real: `edgebus node --role edge` at the product's defaults, with a cloud node that acks
  its sync (bench_replay.py's edge);
- floor: `edgebus.bench.edge_floor`, which does per frame only what an edge's libraries
  must: gmqtt receive, msgpack, the same decode and classify call on one worker thread,
  one SQLAlchemy Core transaction for the frame's rows, a QoS 1 result and outcome, and a
  sync share.

Each edge's process CPU over the step, per frame sent, from plain runs (psutil, no
profiler). So, per frame:
- beyond inference = edge CPU - the models' own at batch 1, for each result;
- the libraries' least beyond inference = the floor's;
- edgebus's own = real - floor (the inference estimate cancels out).

With --profile, one more step of each edge at the first rate runs under cProfile on every
thread (`edgebus.bench.profiled_node`, the floor through `--module`), and the two profiles
are set side by side by stage and by whose code ran (`edgebus.bench.floor_profile`): the
decode and classify call gets the models' own figure on both sides, and each side's
profile spreads the rest of its plain CPU per frame (edge_floor_profile.csv and .png).

Writes edge_floor.csv and edge_floor.png under --out and prints the table; numbers go to
docs/performance.md, never into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.bench.edge_floor import FLOOR, FloorEdgeProcess
from edgebus.bench.floor_plot import FloorRun, plot_floor
from edgebus.bench.floor_profile import (
    EDGE,
    PROFILER,
    ProfiledNode,
    plot_side_by_side,
    print_side_by_side,
    side_by_side,
)
from edgebus.bench.mosquitto import LocalMosquitto, mosquitto_binary
from edgebus.bench.process_fleet import CLI
from edgebus.bench.replay import ModelThroughput, ReplayPlan, model_throughput, pre_encode
from edgebus.bench.replay_edge import EdgeUnderTest, run_step
from edgebus.bench.replay_options import OptionError, add_replay_arguments, replay_plans
from edgebus.bench.stage_profile import stage_owner_seconds
from edgebus.reports import write_csv

# The profiled edge's profile starts this long after it does: past its start-up (imports,
# models, connecting), which is no frame's cost, and into the replay.
PROFILE_AFTER_S = 8.0

# CSV key -> the table's column (ms per frame unless named otherwise).
COLUMNS = {
    "run": "run",
    "first": "first",
    "rate": "frames/s",
    "real_ms": "real",
    "floor_ms": "floor",
    "inference_ms": "inference",
    "real_beyond_ms": "real beyond",
    "floor_beyond_ms": "libs' least",
    "edgebus_ms": "edgebus own",
    "real_p99_ms": "real p99 ms",
    "floor_p99_ms": "floor p99 ms",
    "lost": "lost",
}


async def step(
    kind: str, plan: ReplayPlan, models: ModelThroughput, profile: Path | None = None
) -> dict[str, Any]:
    """One replay step into a fresh edge of this kind, on a broker of its own; with
    `profile`, the edge runs under cProfile (profiled_node), its stats saved there."""
    workdir = Path(tempfile.mkdtemp(prefix=f"edgebus-edge-floor-{kind}-"))
    with LocalMosquitto(stock=True) as broker:
        pid = broker.process.pid if broker.process is not None else None
        if kind == "real":
            cli = CLI if profile is None else (*PROFILER, str(profile), f"{PROFILE_AFTER_S:g}")
            real = EdgeUnderTest(broker.url, workdir, plan.period_ms, cli=cli)
            try:
                await real.start()
                return await run_step(real, broker.url, plan, workdir, models, pid)
            finally:
                await real.stop()
        floor_cli = FLOOR if profile is None else (
            *PROFILER, str(profile), f"{PROFILE_AFTER_S:g}", "--module", "edgebus.bench.edge_floor"
        )  # fmt: skip
        floor = FloorEdgeProcess(broker.url, workdir, plan.site, cli=floor_cli)
        try:
            await floor.start()
            return await run_step(floor, broker.url, plan, workdir, models, pid)
        finally:
            floor.stop()


def row_of(run: int, first: str, inference_ms: float, real: dict[str, Any],
           floor: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "run": run,
        "first": first,
        "rate": real["rate_offered"],
        "real_ms": round(real["edge_cpu_ms_per_frame"], 2),
        "floor_ms": round(floor["edge_cpu_ms_per_frame"], 2),
        "inference_ms": round(inference_ms, 2),
        "real_beyond_ms": round(real["edge_beyond_inference_ms"], 2),
        "floor_beyond_ms": round(floor["edge_beyond_inference_ms"], 2),
        "edgebus_ms": round(real["edge_cpu_ms_per_frame"] - floor["edge_cpu_ms_per_frame"], 2),
        "real_p99_ms": round(real["p99_ms"]),
        "floor_p99_ms": round(floor["p99_ms"]),
        "lost": sum(r["lost"] + r["duplicated"] + r["unsent"] for r in (real, floor)),
    }


def plot(path: Path, rows: list[dict[str, Any]]) -> None:
    runs = [FloorRun(f"run {row['run']}, {row['rate']:g}/s", row["inference_ms"],
                     row["floor_beyond_ms"], row["edgebus_ms"]) for row in rows]  # fmt: skip
    plot_floor(
        path,
        runs,
        base="the models (decode + classify, batch 1)",
        least="libraries' least (gmqtt, SQLAlchemy, ...)",
        ylabel="edge CPU ms per frame",
        title="The edge's CPU per frame against its libraries' least (replayed frames)",
    )


def profile_pair(
    plan: ReplayPlan, models: ModelThroughput, rows: list[dict[str, Any]]
) -> list[dict[str, object]]:
    """The real and the floor edge, each under cProfile for one more step at the plan's
    rate; their shares spread over the plain runs' mean CPU per frame at that rate, the
    decode and classify call given the models' own figure on both sides."""
    workdir = Path(tempfile.mkdtemp(prefix="edgebus-edge-floor-profile-"))
    profiled: dict[str, ProfiledNode] = {}
    for kind, role in (("real", EDGE.real_role), ("floor", EDGE.floor_role)):
        out = workdir / f"{kind}.pstats"
        result = asyncio.run(step(kind, plan, models, profile=out))
        if not out.exists():
            raise RuntimeError(f"the profiled {kind} edge saved no profile ({out})")
        profiled[kind] = ProfiledNode(stage_owner_seconds(out, role), int(result["results"]))
    at_rate = [row for row in rows if row["rate"] == plan.rate]
    real_ms = sum(row["real_ms"] for row in at_rate) / len(at_rate)
    floor_ms = sum(row["floor_ms"] for row in at_rate) / len(at_rate)
    return side_by_side(profiled["real"], real_ms, profiled["floor"], floor_ms,
                        models.batch1_cpu_ms, pairing=EDGE)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_replay_arguments(parser, rates="100")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="then profile the real and the floor edge side by side, at the "
                        "first rate")  # fmt: skip
    args = parser.parse_args()
    try:
        plans = replay_plans(args)
    except OptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.runs < 1:
        print(f"error: --runs {args.runs}: expected 1 or more", file=sys.stderr)
        return 2
    if mosquitto_binary() is None:
        print("error: the mosquitto binary is not installed", file=sys.stderr)
        return 1
    console = Console(width=160)
    console.print("models alone (decode + classify, batch 1, in this process) ...")
    models = model_throughput(pre_encode(), batches=(1,))
    rows: list[dict[str, Any]] = []
    with Progress(console=console) as progress:
        task = progress.add_task("real and floor edges",
                                 total=2 * args.runs * len(plans) + 2 * args.profile)  # fmt: skip
        for run in range(1, args.runs + 1):
            order = ("real", "floor") if run % 2 else ("floor", "real")
            for plan in plans:
                steps: dict[str, dict[str, Any]] = {}
                for kind in order:
                    try:
                        steps[kind] = asyncio.run(step(kind, plan, models))
                    except RuntimeError as exc:
                        console.print(f"error: the {kind} edge: {exc}")
                        return 1
                    progress.advance(task)
                rows.append(row_of(run, order[0], models.batch1_cpu_ms, steps["real"],
                                   steps["floor"]))  # fmt: skip
        if args.profile:
            progress.update(task, description="profiled: the real and the floor edge")
            try:
                profile_rows = profile_pair(plans[0], models, rows)
            except RuntimeError as exc:
                console.print(f"error: profiling: {exc}")
                return 1
            progress.advance(task, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "edge_floor.csv", rows)
    plot(args.out / "edge_floor.png", rows)
    if args.profile:
        write_csv(args.out / "edge_floor_profile.csv", profile_rows)
        plot_side_by_side(args.out / "edge_floor_profile.png", profile_rows, node="edge")
        print_side_by_side(console, profile_rows,
                           f"edge CPU ms per frame at {plans[0].rate:g} frames/s")  # fmt: skip
    table = Table(title=f"edge CPU ms per frame sent, replayed at T = {args.period_ms} ms: "
                  "real, floor, and beyond inference",
                  caption="libs' least = floor - inference; edgebus own = real - floor; "
                  "lost = lost, doubled or unsent frames of both edges")  # fmt: skip
    for key, title in COLUMNS.items():
        table.add_column(title, justify="left" if key == "first" else "right")
    for row in rows:
        table.add_row(*(f"{row[key]:g}" if isinstance(row[key], float) else str(row[key])
                        for key in COLUMNS))  # fmt: skip
    console.print(table)
    print(f"wrote {args.out / 'edge_floor.csv'} and {args.out / 'edge_floor.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
