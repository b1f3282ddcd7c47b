"""Per-image offloading decisions for one camera, and the shipped policy assets.

A camera asks `OffloadDecider.decide(metric, gap)` once per image, with the image's
offloading metric and the number of slots since its previous image. The decider refills
its `TokenBucket` by that gap, asks the policy, spends a token when the answer is yes and
returns the decision with the levels before and after. It is the simulator's bucket and
the simulator's policy objects, run with one stream, so the camera and `simulate` agree
image for image.

Policies by mode: never, always, baseline, mdp, dqn. Baseline and MDP thresholds are
fitted on the training split of a costs file (the shipped one by default); the DQN comes
from a `dqn_*.json` card (the shipped one matching the bucket by default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from edgebus.policies.costs import CostData, load_costs
from edgebus.policies.dqn import PolicyFileError, load_dqn
from edgebus.policies.policy import Policy, ThresholdPolicy, baseline, mdp
from edgebus.policies.token_bucket import BucketParams, TokenBucket
from edgebus.policies.traces import periodic_gaps

MODES = ("never", "always", "baseline", "mdp", "dqn")
SHIPPED_COSTS = "offloading_costs_top1.npz"
DEFAULT_DQN = "dqn_sp0.1_rp0.1_r0.1_b4"
# Costs and DQNs are measured on one weak/strong pair: what ships for each weak model (the
# costs file and the folder of its DQN cards, under the assets).
PAIR_ASSETS = {
    "weak": (SHIPPED_COSTS, "."),
    "fashion_weak": ("offloading_costs_fashion_top1.npz", "fashion"),
}


def assets_folder() -> Path:
    return Path(str(resources.files("edgebus") / "assets"))


def _pair(weak: str) -> tuple[str, str]:
    if weak not in PAIR_ASSETS:
        raise PolicyFileError(
            f"weak model {weak!r}: nothing ships for it; pass offload_costs (and "
            "offload_policy for dqn) trained on its outputs"
        )
    return PAIR_ASSETS[weak]


def shipped_costs_path(weak: str = "weak") -> Path:
    """The costs measured on `weak`'s outputs (and the strong model of its data set)."""
    return assets_folder() / _pair(weak)[0]


def shipped_dqn_cards(folder: Path | None = None) -> list[Path]:
    return sorted((folder or assets_folder()).glob("dqn_*.json"))


def shipped_dqn_for(
    params: BucketParams, scenario: dict[str, object] | None = None, weak: str = "weak"
) -> Path:
    """The shipped DQN card for this bucket and weak model, preferring one trained on
    `scenario`'s traces (matching the fields given); the default correlated one when
    several fit."""
    matches = []
    for card in shipped_dqn_cards((assets_folder() / _pair(weak)[1]).resolve()):
        data = json.loads(card.read_text())
        spec = data.get("spec", {})
        if (spec.get("n"), spec.get("p"), spec.get("m")) != (params.n, params.p, params.m):
            continue
        trained_on = data.get("training", {}).get("scenario", {})
        if scenario and any(trained_on.get(k) != v for k, v in scenario.items()):
            continue
        matches.append(card)
    if not matches:
        raise PolicyFileError(
            f"no shipped DQN for bucket (N, P, M) = ({params.n}, {params.p}, {params.m})"
            + (f" and traces {scenario}" if scenario else "")
            + "; train one with `edgebus train dqn` and pass its card"
        )
    preferred = [c for c in matches if c.stem == DEFAULT_DQN]
    return (preferred or matches)[0]


def policy_for(
    mode: str,
    params: BucketParams,
    costs: CostData | None = None,
    dqn_card: Path | None = None,
    backend: str = "numpy",
    weak: str = "weak",
) -> Policy:
    """The policy behind a camera's `--offload` mode."""
    if mode not in MODES:
        raise ValueError(f"offload mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "never":
        return ThresholdPolicy("never", params, np.array(np.inf))
    if mode == "always":
        return ThresholdPolicy("always", params, np.array(-np.inf))
    if mode == "dqn":
        card = dqn_card if dqn_card is not None else shipped_dqn_for(params, weak=weak)
        policy = load_dqn(card, backend)
        if policy.params != params:
            raise PolicyFileError(
                f"DQN card {card}: trained for bucket {policy.params}, not {params}"
            )
        return policy
    data = costs if costs is not None else load_costs(shipped_costs_path(weak))
    gaps = periodic_gaps(2)
    if mode == "baseline":
        return baseline(params, data.train.metric, 1.0)
    return mdp(params, data.train.metric, data.train.reward, gaps)


@dataclass(frozen=True)
class Decision:
    offload: bool  # the image goes to the edge (the policy wanted it and a token was there)
    wanted: bool  # what the policy asked for
    level_before: int  # bucket level n̄ when the image arrived, in N..M
    level_after: int  # after spending, before the next refill


class OffloadDecider:
    """One camera stream's policy and token bucket; the bucket starts full."""

    def __init__(self, policy: Policy, params: BucketParams) -> None:
        self.policy = policy
        self.params = params
        self.bucket = TokenBucket(params)
        self.policy.reset(1)
        self._pending: bool | None = None  # last decision, its refill still to apply

    @property
    def level(self) -> int:
        return self.bucket.level

    def decide(self, metric: float, gap: int = 1) -> Decision:
        """`gap`: slots since this stream's previous image (ignored for the first image)."""
        if self._pending is not None:
            if gap < 1:
                raise ValueError(f"offload decider: gap must be >= 1 slot, got {gap}")
            # The token for the previous image was checked when it was granted; this applies
            # its spend and the refill of the gap together, exactly as the simulator does.
            self.bucket.step(self._pending, gap)
            self.policy.observe(np.array([gap]))
        before = self.bucket.level
        wanted = bool(self.policy.wants(np.array([float(metric)]), np.array([before]))[0])
        sent = wanted and self.bucket.can_offload
        self._pending = sent
        after = before - self.params.p * int(sent)
        return Decision(sent, wanted, before, after)
