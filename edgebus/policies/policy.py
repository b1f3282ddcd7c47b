"""One decision interface for every offloading policy, and the vectorised simulator.

A policy says, for one image per stream, whether it *wants* to offload, given the image's
metric and the stream's bucket level. The bucket (not the policy) grants or refuses, so
no policy can overdraw it. Policies may keep per-stream history (the DQN does):
`reset(streams)` starts a fresh run and `observe(gaps)` hands over, after each image, the
gap until the stream's next image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgebus.policies.mdp import GAMMA, solve_mdp
from edgebus.policies.token_bucket import BucketParams, TokenBuckets
from edgebus.policies.traces import gap_distribution


class Policy(Protocol):
    name: str
    uses_bucket: bool  # False only for the Lower Bound, which ignores the rate limit

    def reset(self, streams: int) -> None: ...

    def wants(self, metrics: np.ndarray, levels: np.ndarray) -> np.ndarray: ...

    def observe(self, gaps: np.ndarray) -> None: ...


def lower_bound_threshold(train_metrics: np.ndarray, rate: float, mean_gap: float) -> float:
    """Offload the top r·τ̄ share of training metrics: θ is the smallest metric kept."""
    ordered = np.sort(np.asarray(train_metrics, dtype=np.float64))
    share = rate * mean_gap
    if share >= 1:
        return -np.inf
    cut = int(len(ordered) * (1 - share))
    return float(ordered[cut]) if cut < len(ordered) else np.inf


@dataclass
class ThresholdPolicy:
    """Offload iff metric >= thresholds[level - P]; level-independent when given a scalar."""

    name: str
    params: BucketParams
    thresholds: np.ndarray
    uses_bucket: bool = True

    def __post_init__(self) -> None:
        self.thresholds = np.broadcast_to(
            np.asarray(self.thresholds, dtype=np.float64), (self.params.m - self.params.p + 1,)
        ).copy()

    def reset(self, streams: int) -> None:
        """Thresholds carry no per-stream state."""

    def wants(self, metrics: np.ndarray, levels: np.ndarray) -> np.ndarray:
        # Levels below P cannot send anyway; clipping only keeps the lookup in range.
        idx = np.clip(levels - self.params.p, 0, len(self.thresholds) - 1)
        return metrics >= self.thresholds[idx]

    def observe(self, gaps: np.ndarray) -> None:
        """Thresholds ignore arrival history."""


def lower_bound(
    params: BucketParams, train_metrics: np.ndarray, mean_gap: float
) -> ThresholdPolicy:
    theta = lower_bound_threshold(train_metrics, params.rate, mean_gap)
    return ThresholdPolicy("lower_bound", params, np.array(theta), uses_bucket=False)


def baseline(params: BucketParams, train_metrics: np.ndarray, mean_gap: float) -> ThresholdPolicy:
    theta = lower_bound_threshold(train_metrics, params.rate, mean_gap)
    return ThresholdPolicy("baseline", params, np.array(theta))


def mdp(
    params: BucketParams,
    train_metrics: np.ndarray,
    train_rewards: np.ndarray,
    train_gaps: np.ndarray,
    gamma: float = GAMMA,
) -> ThresholdPolicy:
    solution = solve_mdp(params, train_metrics, train_rewards, gap_distribution(train_gaps), gamma)
    return ThresholdPolicy("mdp", params, solution.thresholds)


@dataclass(frozen=True)
class SimResult:
    gain: np.ndarray  # per stream: Σ R over offloaded images
    offloads: np.ndarray  # per stream: how many images were offloaded
    images: int  # images per stream
    min_level: int  # lowest bucket level seen at a decision (never below N)


def simulate(
    policy: Policy,
    params: BucketParams,
    metrics: np.ndarray,
    rewards: np.ndarray,
    gaps: np.ndarray,
) -> SimResult:
    """Run (streams, length) traces; the bucket starts full and refills N·gap after each image."""
    metrics, rewards, gaps = np.atleast_2d(metrics), np.atleast_2d(rewards), np.atleast_2d(gaps)
    if not metrics.shape == rewards.shape == gaps.shape:
        raise ValueError(
            f"simulate: metrics {metrics.shape}, rewards {rewards.shape} and gaps {gaps.shape} "
            "must have one shape (streams, length)"
        )
    streams, length = metrics.shape
    buckets = TokenBuckets(params, streams)
    policy.reset(streams)
    gain = np.zeros(streams)
    offloads = np.zeros(streams, dtype=np.int64)
    min_level = params.m
    for t in range(length):
        want = policy.wants(metrics[:, t], buckets.level)
        min_level = min(min_level, int(buckets.level.min()))
        if policy.uses_bucket:
            sent = buckets.step(want, gaps[:, t])
        else:
            sent = np.asarray(want, dtype=bool)
        policy.observe(gaps[:, t])
        gain += np.where(sent, rewards[:, t], 0.0)
        offloads += sent
    return SimResult(gain=gain, offloads=offloads, images=length, min_level=min_level)


def mean_loss(base_loss: np.ndarray, gain: np.ndarray, images: int) -> tuple[float, float]:
    """Average loss over all images and its standard error over streams.

    base_loss is the per-stream weak-only loss sum; offloading an image subtracts its reward.
    """
    per_stream = (np.asarray(base_loss, dtype=np.float64) - gain) / images
    sem = float(per_stream.std(ddof=1) / np.sqrt(len(per_stream))) if len(per_stream) > 1 else 0.0
    return float(per_stream.mean()), sem
