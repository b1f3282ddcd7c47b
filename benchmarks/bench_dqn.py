"""Per-image decision time of the offloading policies (paper Table I: DQN 0.25 ms on a Pi 4).

One camera stream, batch 1, single thread: the DQN's Q-values by numpy and by onnxruntime,
and the whole `OffloadDecider.decide` call (history update, Q-values, bucket) for the DQN
and the MDP thresholds. Median and 95th percentile over `--images` decisions.

python benchmarks/bench_dqn.py [--card edgebus/assets/dqn_sp0.1_rp0.1_r0.1_b4.json]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgebus.policies.dqn import load_dqn, read_card
from edgebus.policies.runtime import DEFAULT_DQN, OffloadDecider, assets_folder, policy_for


def timings(call: Callable[[int], object], count: int, warmup: int = 200) -> np.ndarray:
    for i in range(warmup):
        call(i)
    out = np.empty(count)
    for i in range(count):
        start = time.perf_counter_ns()
        call(i)
        out[i] = time.perf_counter_ns() - start
    return out / 1e6


def main(card: Path, images: int) -> None:
    spec, _ = read_card(card)
    params = spec.params
    rng = np.random.default_rng(0)
    metrics = rng.normal(size=images + 200)
    x = rng.normal(size=(1, spec.inputs)).astype(np.float32)
    by_numpy, by_ort = load_dqn(card, "numpy"), load_dqn(card, "onnxruntime", threads=1)
    dqn_decider = OffloadDecider(load_dqn(card, "numpy"), params)
    ort_decider = OffloadDecider(load_dqn(card, "onnxruntime", threads=1), params)
    mdp_decider = OffloadDecider(policy_for("mdp", params), params)
    cases = {
        "DQN Q-values, numpy": lambda i: by_numpy.q(x),
        "DQN Q-values, onnxruntime": lambda i: by_ort.q(x),
        "decide(), DQN numpy": lambda i: dqn_decider.decide(metrics[i]),
        "decide(), DQN onnxruntime": lambda i: ort_decider.decide(metrics[i]),
        "decide(), MDP thresholds": lambda i: mdp_decider.decide(metrics[i]),
    }
    table = Table(title=f"offloading decision time per image, {card.name}, {images} images")
    for column in ("what", "median ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for name, call in cases.items():
        ms = timings(call, images)
        table.add_row(name, f"{np.median(ms):.4f}", f"{np.percentile(ms, 95):.4f}")
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--card", type=Path, default=assets_folder() / f"{DEFAULT_DQN}.json")
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    main(args.card, args.images)
