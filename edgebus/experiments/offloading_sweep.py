"""The points of the offloading simulation's figures: the presets that size a sweep, the
issue's target cases, and one `Point` per (figure, series, x) that a preset asks for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgebus.policies.evaluate import Scenario


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
    # Where to look for DQNs trained on exactly a point's scenario and costs (None: the
    # shipped ones); a point without one trains its own with dqn_iterations.
    dqn_folder: Path | None = None


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


def steps(preset: Preset, figures: Sequence[str] | None, with_targets: bool) -> int:
    todo = [p for p in points(preset) if figures is None or p.figure in figures]
    return len(todo) + (len(TARGET_CASES) if with_targets else 0)
