"""Selective offloading under a token bucket, in simulation: the paper's figure families.

Each figure is a sweep of one knob. At every point the same test traces (locreset or
i.i.d. over the metric-sorted test split, periodic or Markov arrivals) run through
weak-only, strong-only, Lower Bound, Baseline, MDP, the DQN where the point has one, the
clairvoyant reference and the (unreachable) hindsight bound:

- fig5_spread / fig5_rprob: loss against sp and against rprob (r = 0.1, b = 4, periodic);
- fig6_depth: loss against b for r in {0.05, 0.1, 0.25} (sp = 0.1, rprob = 0.1);
- fig8_tprob: loss against tprob1 under Markov arrivals, Config 1 (I = 1, 3; tprob1 =
  2·tprob2) and Config 2 (I = 1, 6; tprob1 = 4·tprob2);
- fig9_markov: loss against b for r in {0.05, 0.1, 0.25} under Markov Config 1,
  tprob = (0.001, 0.0005);
- fig12_history: DQN loss against the history length T, with MDP and the clairvoyant
  reference as flat lines.

The DQN at a point is either a shipped one (when the point is exactly a shipped policy's
training scenario), one trained for the point with the preset's iteration budget, or none
(the `dqn_source` column says which). Trained policies use only the training split and
their own trace seeds.

The modules behind it, re-exported here:

- `offloading_inputs`: the scenario from command-line options, and the costs file;
- `offloading_sweep`: the presets, the target cases and each figure's points;
- `offloading_dqn`: the DQN's shape, `edgebus train dqn`, and the DQN of a point;
- `offloading_output`: the result rows, their CSV and the figures' PNGs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgebus.experiments.offloading_dqn import (
    SCENARIO_KEYS,
    default_name,
    dqn_spec,
    point_dqn,
    shipped_dqn,
    train_policy,
)
from edgebus.experiments.offloading_inputs import read_costs, scenario_from_options
from edgebus.experiments.offloading_output import (
    COLUMNS,
    PAIRS,
    STYLE,
    Row,
    plot_figure,
    write_csv,
)
from edgebus.experiments.offloading_sweep import (
    FULL,
    QUICK,
    TARGET_CASES,
    Point,
    Preset,
    points,
    steps,
)
from edgebus.policies.costs import CostData
from edgebus.policies.evaluate import Scenario, paired_difference, stream_losses, summarise
from edgebus.policies.metric import KernelRegression

__all__ = [
    "COLUMNS",
    "FULL",
    "PAIRS",
    "QUICK",
    "SCENARIO_KEYS",
    "STYLE",
    "TARGET_CASES",
    "Point",
    "Preset",
    "Report",
    "Row",
    "Scenario",
    "Tick",
    "check_targets",
    "default_name",
    "dqn_spec",
    "plot_figure",
    "points",
    "read_costs",
    "run",
    "run_point",
    "run_targets",
    "scenario_from_options",
    "shipped_dqn",
    "steps",
    "train_policy",
    "write_csv",
]

Tick = Callable[[str], None]


def run_point(
    data: CostData,
    source: str,
    point: Point,
    preset: Preset,
    expected_reward: KernelRegression | None = None,
) -> Row:
    policy, dqn_source = point_dqn(data, source, point, preset)
    dqn = [policy] if policy is not None else []
    per_stream = stream_losses(data, point.scenario, dqn, expected_reward)
    losses = {name: summarise(loss) for name, loss in per_stream.items()}
    paired = {
        f"{a}-{b}": paired_difference(per_stream[a], per_stream[b])
        for a, b in PAIRS
        if a in per_stream and b in per_stream
    }
    return Row(
        point.figure,
        point.series,
        point.x_name,
        point.x,
        losses,
        dqn_source,
        point.scenario.streams * point.scenario.length,
        paired,
    )


def run_targets(
    data: CostData,
    source: str,
    preset: Preset,
    tick: Tick | None = None,
    expected_reward: KernelRegression | None = None,
) -> list[Row]:
    """The issue's target cases on target_streams x target_length images, with the shipped
    DQNs when the costs are the shipped ones (else DQNs trained with the preset's budget)."""
    rows = []
    for label, knobs in TARGET_CASES.items():
        base = Scenario(streams=preset.target_streams, length=preset.target_length)
        scenario = replace(base, **knobs)
        point = Point("targets", label, "-", 0.0, scenario)
        rows.append(run_point(data, source, point, preset, expected_reward))
        if tick is not None:
            tick(f"targets: {label}")
    return rows


def check_targets(rows: Sequence[Row]) -> dict[str, bool]:
    """The issue's orderings, on the means (standard errors are reported beside them)."""
    out: dict[str, bool] = {}
    for row in rows:
        loss = {k: v[0] for k, v in row.losses.items()}
        if "dqn" not in loss:
            continue
        if row.series.startswith("correlated"):
            out[f"{row.series}: LB <= DQN < MDP < Baseline"] = (
                loss["lower_bound"] <= loss["dqn"] < loss["mdp"] < loss["baseline"]
            )
            gap = loss["mdp"] - loss["clairvoyant"]
            closed = (loss["mdp"] - loss["dqn"]) / gap if gap > 0 else float("nan")
            out[f"{row.series}: DQN closes >= 1/2 of MDP-clairvoyant gap ({closed:.2f})"] = (
                closed >= 0.5
            )
        else:
            rel = (loss["dqn"] - loss["mdp"]) / loss["mdp"]
            out[f"{row.series}: DQN within 1% of MDP ({100 * rel:+.2f}%)"] = abs(rel) <= 0.01
    return out


@dataclass(frozen=True)
class Report:
    rows: list[Row]
    targets: list[Row]
    checks: dict[str, bool]
    seconds: float


def run(
    out: Path,
    preset: Preset,
    costs: Path | None = None,
    figures: Sequence[str] | None = None,
    tick: Tick | None = None,
    with_targets: bool = True,
) -> Report:
    """Every figure's points, the target cases; CSV, PNGs and a JSON summary under `out`."""
    start = time.perf_counter()
    data, source = read_costs(costs)
    out.mkdir(parents=True, exist_ok=True)
    todo = [p for p in points(preset) if figures is None or p.figure in figures]
    expected_reward = KernelRegression.fit(data.train.metric, data.train.reward)
    rows = []
    for point in todo:
        rows.append(run_point(data, source, point, preset, expected_reward))
        if tick is not None:
            tick(f"{point.figure} {point.series} {point.x_name}={point.x:g}")
    targets = run_targets(data, source, preset, tick, expected_reward) if with_targets else []
    checks = check_targets(targets)
    write_csv(out / "offloading.csv", rows + targets)
    for figure in dict.fromkeys(r.figure for r in rows):
        mine = [r for r in rows if r.figure == figure]
        plot_figure(out / f"offloading_{figure}.png", figure, mine)
    seconds = time.perf_counter() - start
    summary = {
        "costs": source,
        "preset": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(preset).items()},
        "seconds": round(seconds, 1),
        "targets": {
            r.series: {k: list(v) for k, v in {**r.losses, **r.paired}.items()} for r in targets
        },
        "checks": checks,
    }
    (out / "offloading_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return Report(rows, targets, checks, seconds)
