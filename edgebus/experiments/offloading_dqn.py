"""The DQN of the offloading simulation: its shape for a scenario, training one for
`edgebus train dqn`, and the policy a sweep point uses (a shipped card trained on exactly
that scenario, else one trained for the point with the preset's budget, else none)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from edgebus.experiments.offloading_inputs import read_costs
from edgebus.experiments.offloading_sweep import Point, Preset
from edgebus.policies.costs import CostData
from edgebus.policies.dqn import DQNSpec, load_dqn
from edgebus.policies.evaluate import Scenario
from edgebus.policies.policy import Policy
from edgebus.policies.runtime import shipped_dqn_cards
from edgebus.policies.token_bucket import BucketParams

SCENARIO_KEYS = ("rate", "depth", "trace", "spread", "rprob", "arrivals", "gap1", "gap2")


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
            and _costs_file(str(training.get("costs", ""))) == _costs_file(costs)
            and _same_scenario(training.get("scenario", {}), scenario)
        ):
            return card
    return None


def _costs_file(source: str) -> str:
    """The costs file a source names, wherever it was given from: "shipped:x.npz",
    "edgebus/assets/x.npz" and "/abs/x.npz" are the same costs."""
    return Path(source.removeprefix("shipped:")).name


def point_dqn(
    data: CostData, source: str, point: Point, preset: Preset
) -> tuple[Policy | None, str]:
    """The point's DQN and where it came from (the `dqn_source` column)."""
    if point.shipped_ok:
        card = shipped_dqn(point.scenario, point.history, source, preset.dqn_folder)
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
