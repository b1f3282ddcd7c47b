"""Training the DQN offloading policy (torch), and its export to ONNX.

One "Q iteration":
1. draw `segments` windows of the training trace, with replacement; each gives the history
   X of an image, its reward R, the gap g after it and the next image's history X';
2. compute targets for every bucket level at once with the weights as they are now (the
   frozen target network), since the level follows from the action without exploring:
       tgt(n̄, 0) = γ·Qmax(X', min(M, n̄ + N·g))            for n̄ = N..M
       tgt(n̄, 1) = R + γ·Qmax(X', min(M, n̄ - P + N·g))    for n̄ = P..M
   with Qmax(X', n̄') = max(Q(X', n̄', 0), Q(X', n̄', 1) if n̄' >= P), then subtract their mean
   (only differences between actions matter, and centring keeps the values from drifting
   by γ/(1-γ) times the mean reward);
3. run segments / batch Adam steps on the MSE, so the target network is synced every
   `segments / batch` updates.
The learning rate drops from 1e-3 to 1e-4 for the last quarter of the iterations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgebus.ml.errors import TrainingError
from edgebus.ml.export import export_onnx
from edgebus.policies.costs import CostData
from edgebus.policies.dqn import INPUT_NAME, LEAKY_SLOPE, OUTPUT_NAME, DQNSpec, write_card
from edgebus.policies.evaluate import Scenario
from edgebus.policies.mdp import GAMMA

Tick = Callable[[int, float], None]  # (iteration done, mean loss of that iteration)


def q_network(spec: DQNSpec) -> nn.Sequential:
    """`layers` hidden Dense(hidden) + LeakyReLU(0.2), then a linear Q head (He-uniform)."""
    blocks: list[nn.Module] = []
    width = spec.inputs
    for _ in range(spec.layers):
        layer = nn.Linear(width, spec.hidden)
        nn.init.kaiming_uniform_(layer.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
        nn.init.zeros_(layer.bias)
        blocks += [layer, nn.LeakyReLU(LEAKY_SLOPE)]
        width = spec.hidden
    head = nn.Linear(width, spec.outputs)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*blocks, head)


@dataclass(frozen=True)
class DQNTrainConfig:
    iterations: int = 1000
    segments: int = 16_384  # per Q iteration (the paper: 128 x 128)
    batch: int = 128
    lr: float = 1e-3
    final_lr: float = 1e-4
    final_fraction: float = 0.25  # share of iterations at final_lr
    gamma: float = GAMMA
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch < 1 or self.segments < self.batch:
            raise TrainingError(
                "DQN training: need iterations >= 1 and segments >= batch >= 1, got "
                f"{self.iterations}, {self.segments}, {self.batch}"
            )


class SegmentSampler:
    """Windows of a training trace: X (history at image t), R_t, gap_t and X' (at t+1)."""

    def __init__(
        self,
        spec: DQNSpec,
        indices: np.ndarray,
        gaps: np.ndarray,
        metrics: np.ndarray,
        rewards: np.ndarray,
    ) -> None:
        indices, gaps = np.atleast_2d(indices), np.atleast_2d(gaps)
        if indices.shape != gaps.shape or indices.shape[1] < 2:
            raise TrainingError(
                f"DQN training: index trace {indices.shape} and gap trace {gaps.shape} must "
                "share one (streams, length >= 2) shape"
            )
        self.spec = spec
        self.length = indices.shape[1]
        self.streams = indices.shape[0]
        self.metric_seq = np.asarray(metrics, dtype=np.float32)[indices].ravel()
        self.reward_seq = np.asarray(rewards, dtype=np.float32)[indices].ravel()
        self.gap_seq = gaps.astype(np.int64).ravel()

    def sample(
        self, count: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        stream = rng.integers(0, self.streams, count)
        t = rng.integers(0, self.length - 1, count)
        base = stream * self.length
        current = self._history(base, t)
        following = self._history(base, t + 1)
        at = base + t
        return current, self.reward_seq[at], self.gap_seq[at], following

    def _history(self, base: np.ndarray, t: np.ndarray) -> np.ndarray:
        k, g = self.spec.metrics, self.spec.gaps
        lag = t[:, None] - np.arange(k)
        out = np.empty((len(t), k + g), dtype=np.float32)
        out[:, :k] = np.where(lag >= 0, self.metric_seq[base[:, None] + np.maximum(lag, 0)], 0)
        if g:
            # The gaps before image t: gap_{t-1} first.
            glag = t[:, None] - 1 - np.arange(g)
            out[:, k:] = np.where(glag >= 0, self.gap_seq[base[:, None] + np.maximum(glag, 0)], 0)
        return out


def q_targets(
    q_next: torch.Tensor, reward: torch.Tensor, gap: torch.Tensor, spec: DQNSpec, gamma: float
) -> torch.Tensor:
    """Targets for every (level, action) output, mean-centred over the whole draw."""
    n, p, m = spec.n, spec.p, spec.m
    keep_len = m - n + 1
    qmax = q_next[:, :keep_len].clone()
    qmax[:, p - n :] = torch.maximum(qmax[:, p - n :], q_next[:, keep_len:])
    refill = n * gap[:, None]
    keep_next = torch.clamp(torch.arange(n, m + 1)[None, :] + refill, max=m) - n
    spend_next = torch.clamp(torch.arange(0, m - p + 1)[None, :] + refill, max=m) - n
    tgt_keep = gamma * torch.gather(qmax, 1, keep_next)
    tgt_spend = reward[:, None] + gamma * torch.gather(qmax, 1, spend_next)
    targets = torch.cat([tgt_keep, tgt_spend], dim=1)
    return targets - targets.mean()


@dataclass(frozen=True)
class TrainedDQN:
    model: nn.Sequential
    spec: DQNSpec
    losses: list[float]
    seconds: float


def train_dqn(
    spec: DQNSpec,
    sampler: SegmentSampler,
    config: DQNTrainConfig,
    tick: Tick | None = None,
) -> TrainedDQN:
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model = q_network(spec)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    switch_at = round(config.iterations * (1 - config.final_fraction))
    losses: list[float] = []
    start = time.perf_counter()
    for it in range(config.iterations):
        if it == switch_at:
            for group in optimiser.param_groups:
                group["lr"] = config.final_lr
        current, reward, gap, following = sampler.sample(config.segments, rng)
        with torch.no_grad():
            targets = q_targets(
                model(torch.from_numpy(following)),
                torch.from_numpy(reward),
                torch.from_numpy(gap),
                spec,
                config.gamma,
            )
        inputs = torch.from_numpy(current)
        total = 0.0
        steps = config.segments // config.batch
        for s in range(steps):
            part = slice(s * config.batch, (s + 1) * config.batch)
            optimiser.zero_grad(set_to_none=True)
            loss = torch.mean((model(inputs[part]) - targets[part]) ** 2)
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        mean = total / steps
        if not np.isfinite(mean):
            raise TrainingError(f"DQN training diverged at iteration {it} (loss {mean})")
        losses.append(mean)
        if tick is not None:
            tick(it + 1, mean)
    model.eval()
    return TrainedDQN(model, spec, losses, time.perf_counter() - start)


# Training traces use their own seeds, far from the test traces' (Scenario.seed + small).
TRAIN_SEED_OFFSET = 1_000_003
TRAIN_STREAMS = 50
TRAIN_LENGTH = 20_000


def scenario_sampler(
    spec: DQNSpec,
    data: CostData,
    scenario: Scenario,
    streams: int = TRAIN_STREAMS,
    length: int = TRAIN_LENGTH,
) -> SegmentSampler:
    """Segments of fresh traces of the scenario's kind over the *training* split."""
    train = data.train.sorted_by_metric()
    seed = scenario.seed + TRAIN_SEED_OFFSET
    drawn = Scenario(**{**asdict(scenario), "streams": streams, "length": length, "seed": seed})
    return SegmentSampler(
        spec, drawn.indices(len(train.metric)), drawn.gaps(seed), train.metric, train.reward
    )


def export_dqn(trained: TrainedDQN, folder: Path, name: str, extra: dict[str, Any]) -> Path:
    """Write `<name>.onnx` and its card `<name>.json`; returns the card's path."""
    folder.mkdir(parents=True, exist_ok=True)
    example = torch.randn(4, trained.spec.inputs)
    gap = export_onnx(trained.model, example, folder / f"{name}.onnx", INPUT_NAME, OUTPUT_NAME)
    card = folder / f"{name}.json"
    write_card(
        card,
        trained.spec,
        f"{name}.onnx",
        {
            "name": name,
            "onnx_max_abs_diff": gap,
            "train_seconds": round(trained.seconds, 1),
            "final_loss": trained.losses[-1],
            **extra,
        },
    )
    return card


def train_and_export(
    data: CostData,
    scenario: Scenario,
    spec: DQNSpec,
    config: DQNTrainConfig,
    folder: Path,
    name: str,
    costs_source: str,
    tick: Tick | None = None,
) -> tuple[Path, TrainedDQN]:
    """Train on the scenario's kind of traces over the training split, export, and card it."""
    sampler = scenario_sampler(spec, data, scenario)
    trained = train_dqn(spec, sampler, config, tick)
    record = {
        "costs": costs_source,
        "scenario": asdict(scenario),
        "config": asdict(config),
        "train_images": {"streams": TRAIN_STREAMS, "length": TRAIN_LENGTH},
    }
    return export_dqn(trained, folder, name, {"training": record}), trained
