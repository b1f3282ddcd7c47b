"""The floor benchmarks' figure (bench_camera_floor.py, bench_edge_floor.py): for each run
a real node's bar and its floor's, stacked as the node's own models (or capture and
encoder), the libraries' least beyond them, and, on the real bar only, edgebus's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FloorRun:
    label: str  # names the run under its two bars
    base_ms: float  # the models' (or capture and encoder's) CPU per frame
    least_ms: float  # the floor beyond the base: what the libraries alone need
    own_ms: float  # real - floor: edgebus's own


def plot_floor(path: Path, runs: list[FloorRun], *, base: str, least: str, ylabel: str,
               title: str) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{run.label}\n{kind}" for run in runs for kind in ("real", "floor")]
    bases = [run.base_ms for run in runs for _ in range(2)]
    leasts = [run.least_ms for run in runs for _ in range(2)]
    owns = [value for run in runs for value in (run.own_ms, 0.0)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.bar(labels, bases, label=base)
    ax.bar(labels, leasts, bottom=bases, label=least)
    tops = [b + least_ms for b, least_ms in zip(bases, leasts, strict=True)]
    ax.bar(labels, owns, bottom=tops, label="edgebus's own")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(t + o for t, o in zip(tops, owns, strict=True)) * 1.4)
    ax.set_title(title)
    ax.legend(loc="upper center", ncols=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
