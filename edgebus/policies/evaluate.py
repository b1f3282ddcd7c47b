"""Every policy on one scenario: average loss per image, with standard errors over streams.

Train-side quantities (thresholds, the gap distribution, E[R | metric]) come only from the
training split and a training gap trace drawn with a different seed; test traces index
the test split. Weak-only and strong-only losses are over the same test images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgebus.policies.clairvoyant import best_total
from edgebus.policies.costs import CostData
from edgebus.policies.metric import KernelRegression
from edgebus.policies.policy import Policy, baseline, lower_bound, mdp, simulate
from edgebus.policies.token_bucket import BucketParams
from edgebus.policies.traces import iid_indices, locreset_indices, markov_gaps, periodic_gaps


@dataclass(frozen=True)
class Scenario:
    rate: float = 0.1
    depth: float = 4.0
    trace: str = "locreset"  # or "iid"
    spread: float = 0.1
    rprob: float = 0.1
    arrivals: str = "periodic"  # or "markov"
    gap1: int = 1
    gap2: int = 3
    tprob1: float = 0.001
    tprob2: float = 0.0005
    streams: int = 20
    length: int = 10_000
    seed: int = 0

    def indices(self, size: int) -> np.ndarray:
        if self.trace == "iid":
            return iid_indices(size, self.length, self.streams, self.seed)
        if self.trace == "locreset":
            return locreset_indices(
                size, self.length, self.streams, self.spread, self.rprob, self.seed
            )
        raise ValueError(f"scenario trace must be 'iid' or 'locreset', got {self.trace!r}")

    def gaps(self, seed: int) -> np.ndarray:
        if self.arrivals == "periodic":
            return periodic_gaps(self.length, self.streams)
        if self.arrivals == "markov":
            return markov_gaps(
                self.length, self.streams, self.gap1, self.gap2, self.tprob1, self.tprob2, seed
            )
        raise ValueError(f"scenario arrivals must be 'periodic' or 'markov', got {self.arrivals!r}")


def compare(
    data: CostData,
    scenario: Scenario,
    extra: Sequence[Policy] = (),
    expected_reward: KernelRegression | None = None,
) -> dict[str, tuple[float, float]]:
    """name -> (mean loss per image, standard error over streams); `extra` policies (a
    trained DQN) run on the same test traces as the built-in ones. `expected_reward`, the
    training-split regression of R on the metric, may be passed in when sweeping many
    scenarios over one dataset: it depends on the data only."""
    return {
        name: summarise(loss)
        for name, loss in stream_losses(data, scenario, extra, expected_reward).items()
    }


def summarise(per_stream: np.ndarray) -> tuple[float, float]:
    """Mean and standard error over streams."""
    n = len(per_stream)
    sem = float(per_stream.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return float(per_stream.mean()), sem


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of a - b and its standard error, stream by stream: both ran on the same traces,
    so this is much tighter than the two standard errors side by side."""
    return summarise(np.asarray(a) - np.asarray(b))


def stream_losses(
    data: CostData,
    scenario: Scenario,
    extra: Sequence[Policy] = (),
    expected_reward: KernelRegression | None = None,
) -> dict[str, np.ndarray]:
    """name -> loss per image of every test stream (see `compare`)."""
    params = BucketParams.from_rate(scenario.rate, scenario.depth)
    train = data.train
    train_gaps = scenario.gaps(scenario.seed + 10_007)
    mean_gap = float(train_gaps.mean())
    test = data.test.sorted_by_metric()
    idx = scenario.indices(len(test.metric))
    gaps = scenario.gaps(scenario.seed)
    metrics, rewards = test.metric[idx], test.reward[idx]
    weak = test.wcost[idx].sum(axis=1)
    images = scenario.length
    out = {"weak_only": weak / images, "strong_only": test.scost[idx].sum(axis=1) / images}
    policies = [
        lower_bound(params, train.metric, mean_gap),
        baseline(params, train.metric, mean_gap),
        mdp(params, train.metric, train.reward, train_gaps),
        *extra,
    ]
    for policy in policies:
        result = simulate(policy, params, metrics, rewards, gaps)
        out[policy.name] = (weak - result.gain) / images
    regression = expected_reward or KernelRegression.fit(train.metric, train.reward)
    expected = regression(test.metric)
    # Planned on E[R | metric], scored on what those offloads actually gained.
    _, realised = best_total(params, expected[idx], gaps, rewards)
    out["clairvoyant"] = (weak - realised) / images
    hindsight, _ = best_total(params, rewards, gaps)
    out["hindsight_unreachable"] = (weak - hindsight) / images
    return out
