"""The offloading simulation's result rows and the files written from them: one CSV row per
point (means and standard errors of every policy, and the stream-paired differences), and
one PNG per figure."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
# Differences reported with stream-paired standard errors.
PAIRS = (("dqn", "mdp"), ("mdp", "clairvoyant"), ("mdp", "baseline"), ("lower_bound", "dqn"))


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
