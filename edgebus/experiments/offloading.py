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
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgebus.policies.costs import CostData, load_costs
from edgebus.policies.dqn import DQNSpec, load_dqn
from edgebus.policies.evaluate import Scenario, paired_difference, stream_losses, summarise
from edgebus.policies.metric import KernelRegression
from edgebus.policies.policy import Policy
from edgebus.policies.runtime import shipped_costs_path, shipped_dqn_cards
from edgebus.policies.token_bucket import BucketParams

COLUMNS = (
    "weak_only",
    "strong_only",
    "lower_bound",
    "baseline",
    "mdp",
    "dqn",
    "clairvoyant",
    "hindsight_unreachable",
)
Tick = Callable[[str], None]


def _pair(text: str, flag: str, kind: type) -> tuple:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 2:
        raise ValueError(f"{flag} {text!r}: expected two comma-separated {kind.__name__}s")
    return values


def scenario_from_options(
    rate: float,
    depth: float,
    trace: str,
    spread: float,
    rprob: float,
    arrivals: str,
    gaps: str = "1,3",
    tprob: str = "0.001,0.0005",
    streams: int = 100,
    length: int = 10_000,
    seed: int = 0,
) -> Scenario:
    """A validated scenario from command-line style options (errors name the flag)."""
    if trace not in ("locreset", "iid"):
        raise ValueError(f"--trace {trace!r}: expected locreset or iid")
    if arrivals not in ("periodic", "markov"):
        raise ValueError(f"--arrivals {arrivals!r}: expected periodic or markov")
    if not 0 <= spread <= 1:
        raise ValueError(f"--spread {spread}: expected a value in [0, 1]")
    if not 0 <= rprob <= 1:
        raise ValueError(f"--rprob {rprob}: expected a value in [0, 1]")
    gap1, gap2 = _pair(gaps, "--gaps", int)
    tprob1, tprob2 = _pair(tprob, "--tprob", float)
    if gap1 < 1 or gap2 < 1:
        raise ValueError(f"--gaps {gaps!r}: expected gaps >= 1 slot")
    if not (0 < tprob1 <= 1 and 0 < tprob2 <= 1):
        raise ValueError(f"--tprob {tprob!r}: expected probabilities in (0, 1]")
    BucketParams.from_rate(rate, depth)  # a bad r or b fails here, with its own message
    return Scenario(
        rate=rate,
        depth=depth,
        trace=trace,
        spread=spread,
        rprob=rprob,
        arrivals=arrivals,
        gap1=gap1,
        gap2=gap2,
        tprob1=tprob1,
        tprob2=tprob2,
        streams=streams,
        length=length,
        seed=seed,
    )


def default_name(scenario: Scenario, history: int) -> str:
    trace = "iid" if scenario.trace == "iid" else f"sp{scenario.spread:g}_rp{scenario.rprob:g}"
    name = f"dqn_{trace}_r{scenario.rate:g}_b{scenario.depth:g}"
    if scenario.arrivals == "markov":
        name += f"_markov{scenario.gap1}-{scenario.gap2}_tp{scenario.tprob1:g}"
    return name if history == 97 else f"{name}_T{history}"


def dqn_spec(scenario: Scenario, history: int, hidden: int = 64, layers: int = 5) -> DQNSpec:
    """Periodic arrivals carry nothing in their gaps; Markov ones get as many gaps as metrics."""
    params = BucketParams.from_rate(scenario.rate, scenario.depth)
    gaps = history - 1 if scenario.arrivals == "markov" else 0
    return DQNSpec(params.n, params.p, params.m, history - 1, gaps, hidden, layers)


def read_costs(path: Path | None) -> tuple[CostData, str]:
    source = path if path is not None else shipped_costs_path()
    return load_costs(source), str(source if path is not None else f"shipped:{source.name}")


def train_policy(
    out: Path,
    name: str,
    costs: Path | None,
    scenario: Scenario,
    history: int,
    iterations: int,
    seed: int,
    threads: int,
    tick: Callable[[int, float], None] | None = None,
) -> Path:
    """`edgebus train dqn`: train on the scenario's traces over the training split, export."""
    from edgebus.ml.train_dqn import DQNTrainConfig, train_and_export

    data, source = read_costs(costs)
    spec = dqn_spec(scenario, history)
    config = DQNTrainConfig(iterations=iterations, seed=seed, threads=threads)
    card, _ = train_and_export(
        data,
        replace(scenario, seed=seed),
        spec,
        config,
        out,
        name or default_name(scenario, history),
        source,
        tick,
    )
    return card


# --- sweeps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    streams: int  # test streams per point
    length: int  # test images per stream
    dqn_iterations: int  # Q iterations for a point with no shipped DQN; 0 = no DQN there
    spreads: tuple[float, ...]
    rprobs: tuple[float, ...]
    rates: tuple[float, ...]
    depths: tuple[float, ...]
    tprobs: tuple[float, ...]  # tprob1 values of Fig. 8
    histories: tuple[int, ...]
    target_streams: int = 100
    target_length: int = 10_000
    dqn_segments: int = 16_384  # per Q iteration
    threads: int = 1  # torch threads for per-point training (more only slows a tiny MLP)


QUICK = Preset(
    streams=20,
    length=5_000,
    dqn_iterations=30,
    spreads=(0.02, 0.1, 0.5, 1.0),
    rprobs=(0.01, 0.1, 1.0),
    rates=(0.05, 0.1, 0.25),
    depths=(2, 4, 8),
    tprobs=(0.0005, 0.005, 0.05),
    histories=(2, 17, 97),
    dqn_segments=8_192,
)
FULL = Preset(
    streams=100,
    length=10_000,
    dqn_iterations=300,
    spreads=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    rprobs=(0.001, 0.01, 0.03, 0.1, 0.3, 1.0),
    rates=(0.05, 0.1, 0.25),
    depths=(1, 2, 4, 8, 12, 20),
    tprobs=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
    histories=(2, 5, 9, 17, 33, 65, 97),
)

# The targets: r = 0.1, b = 4, periodic arrivals.
TARGET_CASES: dict[str, dict[str, Any]] = {
    "correlated sp=0.1 rprob=0.01": {"spread": 0.1, "rprob": 0.01},
    "correlated sp=0.1 rprob=0.1": {"spread": 0.1, "rprob": 0.1},
    "uncorrelated sp=1": {"spread": 1.0, "rprob": 0.1},
}
# Differences reported with stream-paired standard errors.
PAIRS = (("dqn", "mdp"), ("mdp", "clairvoyant"), ("mdp", "baseline"), ("lower_bound", "dqn"))
SCENARIO_KEYS = ("rate", "depth", "trace", "spread", "rprob", "arrivals", "gap1", "gap2")


@dataclass(frozen=True)
class Point:
    figure: str
    series: str
    x_name: str
    x: float
    scenario: Scenario
    history: int = 97
    shipped_ok: bool = True


def _markov(scenario: Scenario, gap2: int, tprob1: float, tprob2: float) -> Scenario:
    return replace(scenario, arrivals="markov", gap1=1, gap2=gap2, tprob1=tprob1, tprob2=tprob2)


def points(preset: Preset) -> list[Point]:
    base = Scenario(streams=preset.streams, length=preset.length)
    out = [
        Point("fig5_spread", "rprob=0.1", "sp", s, replace(base, spread=s)) for s in preset.spreads
    ]
    out += [
        Point("fig5_rprob", "sp=0.1", "rprob", p, replace(base, rprob=p)) for p in preset.rprobs
    ]
    for r in preset.rates:
        out += [
            Point("fig6_depth", f"r={r:g}", "b", b, replace(base, rate=r, depth=b))
            for b in preset.depths
        ]
    for config, (gap2, ratio) in {"config1 I=(1,3)": (3, 2), "config2 I=(1,6)": (6, 4)}.items():
        out += [
            Point("fig8_tprob", config, "tprob1", t, _markov(base, gap2, t, t / ratio))
            for t in preset.tprobs
        ]
    for r in preset.rates:
        out += [
            Point(
                "fig9_markov",
                f"r={r:g}",
                "b",
                b,
                _markov(replace(base, rate=r, depth=b), 3, 0.001, 0.0005),
            )
            for b in preset.depths
        ]
    out += [
        Point("fig12_history", "sp=0.1 rprob=0.1", "T", t, base, history=t, shipped_ok=False)
        for t in preset.histories
    ]
    return out


def _same_scenario(trained_on: dict[str, object], scenario: Scenario) -> bool:
    want = asdict(scenario)
    keys = SCENARIO_KEYS + (("tprob1", "tprob2") if scenario.arrivals == "markov" else ())
    return all(trained_on.get(k) == want[k] for k in keys)


def shipped_dqn(
    scenario: Scenario, history: int, costs: str, folder: Path | None = None
) -> Path | None:
    """The shipped card trained on exactly these costs, this kind of trace and history."""
    for card in shipped_dqn_cards(folder):
        data = json.loads(card.read_text())
        spec, training = data.get("spec", {}), data.get("training", {})
        if (
            spec.get("metrics") == history - 1
            and training.get("costs") == costs
            and _same_scenario(training.get("scenario", {}), scenario)
        ):
            return card
    return None


def _point_dqn(
    data: CostData, source: str, point: Point, preset: Preset
) -> tuple[Policy | None, str]:
    if point.shipped_ok:
        card = shipped_dqn(point.scenario, point.history, source)
        if card is not None:
            return load_dqn(card), f"shipped:{card.stem}"
    iterations = preset.dqn_iterations
    if iterations <= 0:
        return None, "none"
    from edgebus.ml.train_dqn import DQNTrainConfig, scenario_sampler, train_dqn
    from edgebus.policies.dqn import DQNPolicy, NumpyMLP

    spec = dqn_spec(point.scenario, point.history)
    config = DQNTrainConfig(
        iterations=iterations, segments=preset.dqn_segments, threads=preset.threads
    )
    trained = train_dqn(spec, scenario_sampler(spec, data, point.scenario), config)
    return DQNPolicy(spec, NumpyMLP.from_torch(trained.model)), f"trained:{iterations}it"


@dataclass(frozen=True)
class Row:
    figure: str
    series: str
    x_name: str
    x: float
    losses: dict[str, tuple[float, float]]
    dqn_source: str
    images: int
    paired: dict[str, tuple[float, float]]  # "a-b" -> mean and s.e. of stream-paired a - b


def run_point(
    data: CostData,
    source: str,
    point: Point,
    preset: Preset,
    expected_reward: KernelRegression | None = None,
) -> Row:
    policy, dqn_source = _point_dqn(data, source, point, preset)
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


# --- output ------------------------------------------------------------------------------


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["figure", "series", "x_name", "x", "images", "dqn_source"]
            + [f"{c}{s}" for c in COLUMNS for s in ("", "_sem")]
            + [f"{a}-{b}{s}" for a, b in PAIRS for s in ("", "_sem")]
        )
        for r in rows:
            values: list[str] = []
            for c in COLUMNS:
                mean, sem = r.losses.get(c, (float("nan"), float("nan")))
                values += [f"{mean:.6f}", f"{sem:.6f}"]
            for a, b in PAIRS:
                mean, sem = r.paired.get(f"{a}-{b}", (float("nan"), float("nan")))
                values += [f"{mean:.6f}", f"{sem:.6f}"]
            head = [r.figure, r.series, r.x_name, f"{r.x:g}", r.images, r.dqn_source]
            writer.writerow(head + values)


STYLE = {
    "weak_only": ("weak only", "k", ":"),
    "strong_only": ("strong only", "0.5", ":"),
    "lower_bound": ("Lower Bound", "tab:gray", "-."),
    "baseline": ("Baseline", "tab:orange", "-"),
    "mdp": ("MDP", "tab:blue", "-"),
    "dqn": ("DQN", "tab:red", "-"),
    "clairvoyant": ("clairvoyant", "tab:green", "--"),
}


def plot_figure(path: Path, figure: str, rows: Sequence[Row]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = list(dict.fromkeys(r.series for r in rows))
    fig, axes = plt.subplots(1, len(series), figsize=(4.6 * len(series), 3.8), squeeze=False)
    for ax, name in zip(axes[0], series, strict=True):
        part = sorted((r for r in rows if r.series == name), key=lambda r: r.x)
        xs = np.array([r.x for r in part])
        for key, (label, colour, dash) in STYLE.items():
            if figure == "fig12_history" and key not in ("mdp", "dqn", "clairvoyant", "baseline"):
                continue
            pts = [(x, r.losses[key]) for x, r in zip(xs, part, strict=True) if key in r.losses]
            if not pts:
                continue
            x, ms = np.array([p[0] for p in pts]), [p[1] for p in pts]
            ax.errorbar(
                x,
                [m[0] for m in ms],
                yerr=[m[1] for m in ms],
                label=label,
                color=colour,
                linestyle=dash,
                marker="o",
                markersize=3,
                capsize=2,
            )
        log_x = bool(part) and part[0].x_name in ("sp", "rprob", "tprob1", "T")
        ax.set_xscale("log" if log_x else "linear")
        ax.set_xlabel(part[0].x_name if part else "")
        ax.set_ylabel("average loss per image")
        ax.set_title(f"{figure}: {name}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        "preset": asdict(preset),
        "seconds": round(seconds, 1),
        "targets": {
            r.series: {k: list(v) for k, v in {**r.losses, **r.paired}.items()} for r in targets
        },
        "checks": checks,
    }
    (out / "offloading_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return Report(rows, targets, checks, seconds)


def steps(preset: Preset, figures: Sequence[str] | None, with_targets: bool) -> int:
    todo = [p for p in points(preset) if figures is None or p.figure in figures]
    return len(todo) + (len(TARGET_CASES) if with_targets else 0)
