"""Experiment part `edgesplit` of `edgebus experiment scheduling` (thesis Ch. 4).

From the shipped layer profile (LeNet-5 and a small VGG measured on this CPU):
- round time against device count (at 30 and 300 Mbps) and against total bandwidth (8
  devices): Vanilla, EdgeSplit-Fix, EdgeSplit and fully local training;
- Table 4.4-style rows at 8 devices (30 Mbps as in the thesis, and 300 / 1000 Mbps);
- SplitPipe peak server memory, FIFO against backward-first;
- Algorithm 6's wall time against device count, up to 100 devices.

Devices are drawn from a seeded mix of classes; device count N uses the first N of one
draw, so the sweeps are nested and reproducible.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from edgebus.experiments.scheduling_report import PartReport, Tick
from edgebus.reports import write_csv
from edgebus.research import edgesplit as es
from edgebus.research import splitpipe
from edgebus.research.edgesplit_model import SplitProblem, build_problem
from edgebus.research.edgesplit_profile import ProfileSet, load_profiles

SEED = 2024
DEVICE_MIX = {"rpi4": 0.4, "jetson_nano": 0.3, "laptop": 0.3}
BATCHES = 50  # batches of the profile's size a device trains per round (1,600 samples)
MODELS = ("lenet", "vgg")
TABLE_DEVICES = 8
THESIS_MBPS = 30.0
MEMORY_MBPS = 1000.0  # where EdgeSplit's own plans split (at 30 Mbps they are all local)
RUNTIME_LIMIT_S = 3.0
METHODS = ("vanilla", "fix", "edgesplit", "local")


@dataclass(frozen=True)
class Preset:
    device_counts: tuple[int, ...]
    count_mbps: tuple[float, ...]
    bandwidths: tuple[float, ...]
    memory_clients: tuple[int, ...]
    runtime_counts: tuple[int, ...]
    runtime_repeats: int


QUICK = Preset(
    device_counts=(2, 4, 8, 16, 32, 48, 64, 100),
    count_mbps=(30.0, 300.0),
    bandwidths=(10.0, 30.0, 100.0, 300.0, 1000.0),
    memory_clients=(2, 4, 8, 16),
    runtime_counts=(10, 50, 100),
    runtime_repeats=3,
)
FULL = Preset(
    device_counts=(2, 4, 6, 8, 12, 16, 24, 32, 40, 48, 56, 64, 80, 100),
    count_mbps=(30.0, 300.0),
    bandwidths=(5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0),
    memory_clients=(2, 4, 8, 16, 32),
    runtime_counts=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
    runtime_repeats=5,
)


def preset(quick: bool) -> Preset:
    return QUICK if quick else FULL


def steps(quick: bool) -> int:
    chosen = preset(quick)
    sweeps = len(MODELS) * (len(chosen.count_mbps) + 1)
    return sweeps + len(MODELS) + len(chosen.runtime_counts)


def draw_devices(count: int, seed: int = SEED) -> list[str]:
    rng = np.random.default_rng(seed)
    return [str(d) for d in rng.choice(list(DEVICE_MIX), size=count, p=list(DEVICE_MIX.values()))]


def compare(problem: SplitProblem) -> dict[str, Any]:
    """The four methods on one problem; Vanilla and Fix share the best split-learning split."""
    fixed = es.best_common_split(problem)
    plans = {
        "vanilla": es.vanilla(problem, fixed),
        "fix": es.edgesplit_fix(problem, fixed),
        "edgesplit": es.edgesplit(problem),
        "local": es.fully_local(problem),
    }
    best = plans["edgesplit"]
    return {
        **{f"{name}_s": round(plan.round_s, 4) for name, plan in plans.items()},
        "fixed_split": fixed,
        "partition": " ".join(str(s) for s in best.splits),
        "local_share": round(sum(s == problem.depth for s in best.splits) / problem.size, 3),
        "iterations": best.iterations,
    }


def sweep_points(profiles: ProfileSet, chosen: Preset, tick: Tick) -> list[dict[str, Any]]:
    devices = draw_devices(max(*chosen.device_counts, TABLE_DEVICES))
    points = []
    for model in MODELS:
        profile = profiles.model(model)
        cases = [[("devices", n, mbps) for n in chosen.device_counts] for mbps in chosen.count_mbps]
        cases.append([("bandwidth", TABLE_DEVICES, mbps) for mbps in chosen.bandwidths])
        for group in cases:
            for sweep, n, mbps in group:
                problem = build_problem(profile, devices[:n], mbps, BATCHES)
                row = {"model": model, "sweep": sweep, "devices": n, "mbps": mbps}
                points.append(row | compare(problem))
            tick(f"edgesplit: {model} {group[0][0]} sweep")
    return points


def memory_rows(profiles: ProfileSet, chosen: Preset, tick: Tick) -> list[dict[str, Any]]:
    """Peak server memory for N clients when every client keeps only the first layer (the
    heaviest load a server can get), and for EdgeSplit's own plans at 1000 Mbps."""
    devices = draw_devices(max(chosen.memory_clients))
    rows = []
    for model in MODELS:
        profile = profiles.model(model)
        for n in chosen.memory_clients:
            problem = build_problem(profile, devices[:n], MEMORY_MBPS, BATCHES)
            plans = {"first-layer": [1] * n, "edgesplit": list(es.edgesplit(problem).splits)}
            for plan, splits in plans.items():
                fifo = splitpipe.peak_memory_fifo(profile, splits)
                first = splitpipe.peak_memory_backward_first(profile, splits)
                union = splitpipe.server_weight_bytes(profile, splits)
                rows.append(
                    {
                        "model": model,
                        "plan": plan,
                        "clients": n,
                        "partition": " ".join(map(str, splits)),
                        "fifo_mb": round(fifo / 1e6, 3),
                        "backward_first_mb": round(first / 1e6, 3),
                        "saving_pct": round(100 * (1 - first / fifo), 1) if fifo else 0.0,
                        "union_weights_mb": round(union / 1e6, 3),
                        "separate_weights_mb": round(
                            splitpipe.separate_weight_bytes(profile, splits) / 1e6, 3
                        ),
                    }
                )
        tick(f"edgesplit: {model} memory")
    return rows


def runtime_rows(profiles: ProfileSet, chosen: Preset, tick: Tick) -> list[dict[str, Any]]:
    """Wall time of a whole planning call (solver compilation included), median of repeats."""
    devices = draw_devices(max(chosen.runtime_counts))
    rows = []
    for n in chosen.runtime_counts:
        for model, mbps in itertools.product(MODELS, chosen.count_mbps):
            problem = build_problem(profiles.model(model), devices[:n], mbps, BATCHES)
            equal = np.full(n, problem.total_bandwidth / n)
            equal_start, planned = [], []
            for _ in range(chosen.runtime_repeats):
                start = time.perf_counter()
                es.alternating_minimisation(problem, equal)
                middle = time.perf_counter()
                es.edgesplit(problem)
                planned.append(time.perf_counter() - middle)
                equal_start.append(middle - start)
            rows.append(
                {
                    "devices": n,
                    "model": model,
                    "mbps": mbps,
                    "alg6_equal_start_s": round(statistics.median(equal_start), 4),
                    "edgesplit_s": round(statistics.median(planned), 4),
                }
            )
        tick(f"edgesplit: runtime {n} devices")
    return rows


def _plot_sweeps(points: list[dict[str, Any]], chosen: Preset, out: Path) -> list[Path]:
    panels = [("devices", mbps) for mbps in chosen.count_mbps] + [("bandwidth", None)]
    fig, axes = plt.subplots(len(panels), len(MODELS), figsize=(10, 3.4 * len(panels)))
    for row, (sweep, mbps) in enumerate(panels):
        for col, model in enumerate(MODELS):
            ax = axes[row][col]
            chosen_points = [
                p
                for p in points
                if p["model"] == model and p["sweep"] == sweep and mbps in (None, p["mbps"])
            ]
            x = [p["devices"] if sweep == "devices" else p["mbps"] for p in chosen_points]
            for method in METHODS:
                ax.plot(x, [p[f"{method}_s"] for p in chosen_points], marker="o", label=method)
            if sweep == "bandwidth":
                ax.set_xscale("log")
                ax.set_xlabel(f"total bandwidth (Mbps), {TABLE_DEVICES} devices")
            else:
                ax.set_xlabel(f"devices, {mbps:g} Mbps total")
            ax.set_ylabel("round time (s)")
            ax.set_title(model)
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "edgesplit_round_time.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _plot_memory_runtime(
    memory: list[dict[str, Any]], runtime: list[dict[str, Any]], out: Path
) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for model in MODELS:
        rows = [r for r in memory if r["model"] == model and r["plan"] == "first-layer"]
        clients = [r["clients"] for r in rows]
        left.plot(clients, [r["fifo_mb"] for r in rows], marker="o", label=f"{model} FIFO")
        left.plot(
            clients,
            [r["backward_first_mb"] for r in rows],
            marker="s",
            ls="--",
            label=f"{model} backward-first",
        )
        for mbps in sorted({r["mbps"] for r in runtime}):
            timing = [r for r in runtime if r["model"] == model and r["mbps"] == mbps]
            right.plot(
                [r["devices"] for r in timing],
                [r["edgesplit_s"] for r in timing],
                marker="o",
                label=f"{model}, {mbps:g} Mbps",
            )
    left.set_xlabel("clients, every one split after layer 1")
    left.set_yscale("log")
    left.set_ylabel("peak server memory (MB)")
    left.legend(fontsize=8)
    right.axhline(RUNTIME_LIMIT_S, color="grey", lw=0.8, label="3 s target")
    right.set_yscale("log")
    right.set_xlabel("devices")
    right.set_ylabel("EdgeSplit planning time (s)")
    right.legend(fontsize=8)
    fig.tight_layout()
    path = out / "edgesplit_memory_runtime.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table_rows(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in points:
        if p["sweep"] != "bandwidth" or p["mbps"] not in (THESIS_MBPS, 300.0, 1000.0):
            continue
        rows.append(
            {
                "model": p["model"],
                "dev": p["devices"],
                "Mbps": p["mbps"],
                "vanilla": p["vanilla_s"],
                "fix": p["fix_s"],
                "edgesplit": p["edgesplit_s"],
                "local": p["local_s"],
                "partition": p["partition"],
                "van/es": round(p["vanilla_s"] / p["edgesplit_s"], 2),
            }
        )
    return rows


def _checks(
    points: list[dict[str, Any]], memory: list[dict[str, Any]], runtime: list[dict[str, Any]]
) -> dict[str, bool]:
    most = max(r["devices"] for r in runtime)
    slowest = max(r["edgesplit_s"] for r in runtime if r["devices"] == most)
    worse = [p for p in points if p["edgesplit_s"] > p["local_s"]]
    checks = {
        f"Algorithm 6 (EdgeSplit plan) <= {RUNTIME_LIMIT_S:g} s for {most} devices "
        f"(slowest median {slowest:.3f} s)": slowest <= RUNTIME_LIMIT_S,
        f"EdgeSplit never slower than fully local with optimised bandwidth "
        f"({len(points) - len(worse)}/{len(points)} sweep points)": not worse,
    }
    for p in points:
        if p["sweep"] == "bandwidth" and p["mbps"] == THESIS_MBPS:
            checks[
                f"{p['model']}: EdgeSplit beats Fix and Vanilla at {p['devices']} devices / "
                f"{THESIS_MBPS:g} Mbps ({p['edgesplit_s']:.1f} vs {p['fix_s']:.1f}, "
                f"{p['vanilla_s']:.1f} s; partition {p['partition']})"
            ] = p["edgesplit_s"] < min(p["fix_s"], p["vanilla_s"])
    most_clients = max(r["clients"] for r in memory)
    largest = [r for r in memory if r["plan"] == "first-layer" and r["clients"] == most_clients]
    detail = ", ".join(
        f"{r['model']} {r['backward_first_mb']:g} vs {r['fifo_mb']:g} MB" for r in largest
    )
    checks[
        f"SplitPipe backward-first peak <= FIFO peak on every plan ({most_clients} clients "
        f"split after layer 1: {detail})"
    ] = all(r["backward_first_mb"] <= r["fifo_mb"] for r in memory)
    return checks


def run(out: Path, quick: bool, tick: Tick) -> PartReport:
    started = time.perf_counter()
    chosen = preset(quick)
    out.mkdir(parents=True, exist_ok=True)
    profiles = load_profiles()
    points = sweep_points(profiles, chosen, tick)
    memory = memory_rows(profiles, chosen, tick)
    runtime = runtime_rows(profiles, chosen, tick)
    sweep_csv = out / "edgesplit_round_time.csv"
    write_csv(sweep_csv, points)
    memory_csv = out / "edgesplit_memory.csv"
    write_csv(memory_csv, memory)
    runtime_csv = out / "edgesplit_runtime.csv"
    write_csv(runtime_csv, runtime)
    table_csv = out / "edgesplit_table44.csv"
    rows = _table_rows(points)
    write_csv(table_csv, rows)
    files = [sweep_csv, memory_csv, runtime_csv, table_csv]
    files += _plot_sweeps(points, chosen, out)
    files.append(_plot_memory_runtime(memory, runtime, out))
    return PartReport(
        name="edgesplit",
        rows=rows,
        checks=_checks(points, memory, runtime),
        files=files,
        seconds=time.perf_counter() - started,
    )
