"""Where a frame's CPU goes, stage by stage, on a camera and on the edge.

python benchmarks/bench_profile.py --out results/profile [--cameras 8] [--period-ms 500]
    [--warmup 10] [--duration 30]

A fleet of real node processes (cloud, one edge, N cameras at the default settings) runs
twice against a stock-config Mosquitto started here on a free loopback port:
- plain: each process's CPU time (from /proc, via psutil) over the measuring window and
  its peak RSS; divided by the frames it handled in that window, this is the headline
  CPU per frame;
- profiled: camera 0 and the edge run under cProfile on every thread, timed by each
  thread's CPU clock (`edgebus.bench.profiled_node`); their time is attributed to the
  pipeline's stages (`edgebus.bench.stage_profile`).
cProfile slows Python code far more than the C inside onnxruntime or SQLite, so the
profiled milliseconds are larger than the plain ones; the table gives each stage's share
of the profiled time and that share of the plain CPU per frame. The models' own cost is
the onnxruntime stage, timed in place. Writes profile.csv and profile.png under --out and
prints the table; numbers go to docs/performance.md, never into a timed test. A second
table (profile_by_code.csv) splits the CPU beyond the codec by whose code ran: edgebus's
own, asyncio, the rest of the standard library, or a package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgebus.bench.fleet_usage import (
    Usage,
    add_fleet_arguments,
    camera_names,
    frames_in,
    measure_fleet,
)
from edgebus.bench.mosquitto import LocalMosquitto
from edgebus.bench.stage_profile import MODEL, ROLE_STAGES, stage_owner_seconds, stage_seconds
from edgebus.reports import write_csv

PROFILED = ("camera-0", "edge-1")


@dataclass
class RunResult:
    usage: Usage
    frames: dict[str, int]  # node -> frames in its window
    stages: dict[str, dict[str, float]]  # profiled node -> stage -> seconds
    owners: dict[str, dict[tuple[str, str], float]]  # profiled node -> (stage, code) -> s
    lost: int
    duplicated: int


async def run_fleet(args: argparse.Namespace, profiled: bool, workdir: Path) -> RunResult:
    def cli_for(node: str) -> tuple[str, ...] | None:
        if not (profiled and node in PROFILED):
            return None
        return (sys.executable, "-m", "edgebus.bench.profiled_node",
                str(workdir / f"{node}.pstats"), str(args.warmup))  # fmt: skip

    with LocalMosquitto(stock=True) as broker:
        run = await measure_fleet(broker.url, workdir, args.cameras, args.period_ms,
                                  args.warmup, args.duration, cli_for)  # fmt: skip
    frames: dict[str, int] = {}
    stages: dict[str, dict[str, float]] = {}
    owners: dict[str, dict[tuple[str, str], float]] = {}
    for node in ["edge-1", *camera_names(args.cameras)]:
        window = (run.start, run.end)
        if profiled and node in PROFILED:
            times = json.loads((workdir / f"{node}.json").read_text())
            window = (times["start"], times["end"])
            role = "edge" if node.startswith("edge") else "camera"
            stages[node] = stage_seconds(workdir / f"{node}.pstats", role)
            owners[node] = stage_owner_seconds(workdir / f"{node}.pstats", role)
        frames[node] = frames_in(run.store_url, node, *window)
    return RunResult(run.usage, frames, stages, owners, run.lost, run.duplicated)


def plain_ms_per_frame(plain: RunResult, role: str, cameras: int) -> float:
    """The plain run's CPU per frame: the mean over every camera, or the edge's."""
    names = camera_names(cameras) if role == "camera" else ["edge-1"]
    plain_cpu = sum(plain.usage.cpu_s[n] for n in names)
    plain_frames = sum(plain.frames[n] for n in names)
    return plain_cpu / max(plain_frames, 1) * 1000


def rows_from(plain: RunResult, profiled: RunResult, cameras: int) -> list[dict[str, object]]:
    """One row per stage and role: profiled ms per frame, share, share of the plain CPU."""
    rows: list[dict[str, object]] = []
    for node, role in (("camera-0", "camera"), ("edge-1", "edge")):
        stages = profiled.stages[node]
        total = sum(stages.values())
        frames = max(profiled.frames[node], 1)
        plain_ms = plain_ms_per_frame(plain, role, cameras)
        for stage in ROLE_STAGES[role]:
            share = stages[stage] / total if total else 0.0
            rows.append({
                "role": role, "stage": stage,
                "profiled_ms_per_frame": round(stages[stage] / frames * 1000, 3),
                "share_pct": round(share * 100, 1),
                "ms_per_frame": round(share * plain_ms, 3),
            })  # fmt: skip
        model_ms = stages[MODEL] / frames * 1000
        rows.append({"role": role, "stage": "TOTAL (plain run)", "profiled_ms_per_frame":
                     round(total / frames * 1000, 3), "share_pct": 100.0,
                     "ms_per_frame": round(plain_ms, 3)})  # fmt: skip
        rows.append({"role": role, "stage": "beyond the models", "profiled_ms_per_frame":
                     round(total / frames * 1000 - model_ms, 3), "share_pct":
                     round((1 - stages[MODEL] / total) * 100, 1) if total else 0.0,
                     "ms_per_frame": round(plain_ms - model_ms, 3)})  # fmt: skip
    return rows


# What the camera's target ("2 ms per frame beyond its encoder and weak model") leaves out.
CAMERA_CODEC_STAGES = (
    MODEL,
    "encode (features, quantise, Huffman)",
    "weak model and offload policy",
)


def owner_rows(plain: RunResult, profiled: RunResult, cameras: int) -> list[dict[str, object]]:
    """Per role, whose code the CPU beyond the codec's own stages ran in (ms per frame, as
    shares of the plain run): with the capture stage, and without it (a real camera's
    sensor, not the synthetic renderer, would produce the frame)."""
    rows: list[dict[str, object]] = []
    for node, role in (("camera-0", "camera"), ("edge-1", "edge")):
        found = profiled.owners[node]
        total = sum(found.values())
        scale = plain_ms_per_frame(plain, role, cameras) / total if total else 0.0
        left_out = CAMERA_CODEC_STAGES if role == "camera" else (MODEL,)
        by_owner: dict[str, list[float]] = {}
        for (stage, owner), seconds in found.items():
            if stage in left_out:
                continue
            both = by_owner.setdefault(owner, [0.0, 0.0])
            both[0] += seconds * scale
            if stage != "capture":
                both[1] += seconds * scale
        for owner, (with_capture, without) in sorted(by_owner.items(), key=lambda kv: -kv[1][0]):
            rows.append({"role": role, "code": owner, "ms_per_frame": round(with_capture, 3),
                         "ms_per_frame_without_capture": round(without, 3)})  # fmt: skip
        totals = [sum(v[i] for v in by_owner.values()) for i in (0, 1)]
        rows.append({"role": role, "code": "TOTAL", "ms_per_frame": round(totals[0], 3),
                     "ms_per_frame_without_capture": round(totals[1], 3)})  # fmt: skip
    return rows


def summary_rows(plain: RunResult, cameras: int, duration_s: float) -> list[dict[str, object]]:
    groups = {"camera (mean of all)": camera_names(cameras), "edge": ["edge-1"]}
    rows: list[dict[str, object]] = []
    for label, names in groups.items():
        frames = sum(plain.frames[n] for n in names)
        cpu_s = sum(plain.usage.cpu_s[n] for n in names)
        rows.append({
            "node": label,
            "frames_per_s": round(frames / len(names) / duration_s, 2),
            "cpu_ms_per_frame": round(cpu_s / max(frames, 1) * 1000, 2),
            "peak_rss_mb": round(max(plain.usage.peak_rss[n] for n in names) / 2**20, 1),
        })  # fmt: skip
    return rows


def plot(path: Path, rows: list[dict[str, object]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, role in zip(axes, ("camera", "edge"), strict=True):
        stage_rows = [r for r in rows if r["role"] == role and r["stage"] in ROLE_STAGES[role]]
        labels = [str(r["stage"]) for r in stage_rows]
        ax.barh(labels, [float(r["ms_per_frame"]) for r in stage_rows])  # type: ignore[arg-type]
        ax.invert_yaxis()
        ax.set_xlabel("CPU ms per frame (share of the plain run's CPU)")
        ax.set_title(f"{role}: where a frame's CPU goes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_fleet_arguments(parser)
    args = parser.parse_args()
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, RunResult] = {}
    with Progress(console=console) as progress:
        task = progress.add_task("plain, then profiled", total=2)
        for name in ("plain", "profiled"):
            workdir = Path(tempfile.mkdtemp(prefix=f"edgebus-profile-{name}-"))
            results[name] = asyncio.run(run_fleet(args, name == "profiled", workdir))
            progress.advance(task)
    plain, profiled = results["plain"], results["profiled"]
    rows = rows_from(plain, profiled, args.cameras)
    summary = summary_rows(plain, args.cameras, args.duration)
    by_code = owner_rows(plain, profiled, args.cameras)
    write_csv(args.out / "profile.csv", rows)
    write_csv(args.out / "profile_by_code.csv", by_code)
    write_csv(args.out / "profile_summary.csv", summary)
    plot(args.out / "profile.png", rows)
    table = Table(title=f"CPU per frame by stage: {args.cameras} cameras at T = "
                  f"{args.period_ms} ms into one edge")  # fmt: skip
    for column in ("role", "stage", "profiled ms/frame", "share %", "ms/frame"):
        table.add_column(column, justify="left" if column in ("role", "stage") else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    code = Table(title="beyond the codec (camera: its encoder and weak model; edge: its "
                 "models), by whose code ran, ms per frame")  # fmt: skip
    for column in ("role", "code", "ms/frame", "ms/frame without capture"):
        code.add_column(column, justify="left" if column in ("role", "code") else "right")
    for row in by_code:
        code.add_row(*(str(v) for v in row.values()))
    console.print(code)
    totals = Table(title="plain run (no profiler)")
    for column in ("node", "frames/s", "CPU ms per frame", "peak RSS MB"):
        totals.add_column(column)
    for row in summary:
        totals.add_row(*(str(v) for v in row.values()))
    console.print(totals)
    console.print(f"audit: lost {plain.lost} + {profiled.lost}, duplicated "
                  f"{plain.duplicated} + {profiled.duplicated} (plain + profiled)")  # fmt: skip


if __name__ == "__main__":
    main()
