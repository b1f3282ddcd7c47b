"""EdgeSplit (thesis Ch. 4, Algorithm 6) and its baselines over the round-time model.

- `optimal_bandwidth`: P2, min_B max_i T^r_i s.t. sum B_i <= B for fixed split points, a
  convex program solved with cvxpy (compiled once per device count, re-solved with new
  parameters on every iteration).
- `alternating_minimisation`: Algorithm 6 from one starting bandwidth: fix B and give each
  device its best split, fix the splits and solve P2, repeat while the round time improves.
- `edgesplit`: Algorithm 6 from the thesis's equal-bandwidth start, replaced by fully local
  training with optimised bandwidth where that is faster: never slower than fully local.
- baselines: `vanilla` (one split, equal bandwidth), `edgesplit_fix` (one split, optimal
  bandwidth) and `fully_local` (split at the last layer, optimal bandwidth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from edgebus.research.edgesplit_model import SplitProblem, round_times
from edgebus.research.edgesplit_profile import EdgeSplitError

DEFAULT_MAX_ITERATIONS = 50
# "While T improves": a relative gain below this is solver noise, not an improvement.
IMPROVEMENT = 1e-9


class BandwidthSolverError(RuntimeError):
    """The convex solver did not return an optimal allocation."""


@dataclass(frozen=True)
class SplitPlan:
    """Split point per device (1-based; the model depth means fully local), bandwidth per
    device in bytes/s and the resulting round time max_i T^r_i in seconds."""

    method: str
    splits: tuple[int, ...]
    bandwidth: np.ndarray
    round_s: float
    iterations: int = 0


class BandwidthAllocator:
    """P2 for a fixed number of devices, as a parametrised cvxpy problem.

    With c_i = C_i / B (transfer seconds at the whole bandwidth) and a_i = A_ij, P2 is
    min T s.t. a_i + tau_i <= T, sum_i c_i / tau_i <= 1, and B_i = B c_i / tau_i. Solving
    for the transfer times tau_i rather than the shares keeps every variable on the scale
    of the round time, so a device that needs a sliver of the link is still timed exactly.
    """

    def __init__(self, devices: int) -> None:
        if devices < 1:
            raise EdgeSplitError(f"bandwidth allocator devices: expected >= 1, got {devices}")
        self.devices = devices
        self._setup = cp.Parameter(devices, nonneg=True)
        self._transfer = cp.Parameter(devices, nonneg=True)
        self._transfer_s = cp.Variable(devices, nonneg=True)
        self._round = cp.Variable()
        share_used = cp.sum(cp.multiply(self._transfer, cp.inv_pos(self._transfer_s)))
        self._problem = cp.Problem(
            cp.Minimize(self._round),
            [self._setup + self._transfer_s <= self._round, share_used <= 1],
        )

    def shares(self, setup_s: np.ndarray, transfer_s: np.ndarray) -> np.ndarray:
        """Optimal shares of the total bandwidth (summing to at most 1)."""
        if transfer_s.shape != (self.devices,) or setup_s.shape != (self.devices,):
            raise EdgeSplitError(f"bandwidth allocator: expected {self.devices} devices' data")
        moving = transfer_s > 0
        if not np.any(moving):
            return np.full(self.devices, 1.0 / self.devices)
        scale = max(float(setup_s.max()), float(transfer_s.max()))
        self._setup.value = setup_s / scale
        self._transfer.value = transfer_s / scale
        # A fresh Clarabel instance per solve: the same data then always give the same bits,
        # which `edgesplit`'s never-slower-than-local promise is checked against.
        self._problem.solve(solver=cp.CLARABEL, warm_start=False)
        times = self._transfer_s.value
        if self._problem.status != cp.OPTIMAL or times is None:
            raise BandwidthSolverError(f"bandwidth step: solver status {self._problem.status}")
        shares = np.zeros(self.devices)
        shares[moving] = transfer_s[moving] / (np.asarray(times)[moving] * scale)
        return shares / max(1.0, float(shares.sum()))


def _plan(
    problem: SplitProblem,
    method: str,
    columns: np.ndarray,
    bandwidth: np.ndarray,
    iterations: int = 0,
) -> SplitPlan:
    splits = tuple(int(c) + 1 for c in columns)
    return SplitPlan(
        method=method,
        splits=splits,
        bandwidth=bandwidth,
        round_s=float(round_times(problem, splits, bandwidth).max()),
        iterations=iterations,
    )


def _allocate(
    problem: SplitProblem, columns: np.ndarray, allocator: BandwidthAllocator
) -> np.ndarray:
    rows = np.arange(problem.size)
    setup = problem.compute_s[rows, columns]
    transfer = problem.transfer_bytes[columns] / problem.total_bandwidth
    return allocator.shares(setup, transfer) * problem.total_bandwidth


def _allocator(problem: SplitProblem, allocator: BandwidthAllocator | None) -> BandwidthAllocator:
    if allocator is None:
        return BandwidthAllocator(problem.size)
    if allocator.devices != problem.size:
        raise EdgeSplitError(
            f"bandwidth allocator: built for {allocator.devices} devices, problem has "
            f"{problem.size}"
        )
    return allocator


def optimal_bandwidth(
    problem: SplitProblem, splits: Sequence[int], allocator: BandwidthAllocator | None = None
) -> np.ndarray:
    """P2: the bandwidth per device (bytes/s) minimising the round time for these splits."""
    columns = problem.check_splits(splits)
    return _allocate(problem, columns, _allocator(problem, allocator))


def best_splits(problem: SplitProblem, bandwidth: np.ndarray) -> np.ndarray:
    """Step 1 of Algorithm 6: each device's argmin_j (A_ij + C_j / B_i), as 0-based columns."""
    with np.errstate(divide="ignore", invalid="ignore"):
        transfer_s = np.where(
            problem.transfer_bytes[None, :] > 0,
            problem.transfer_bytes[None, :] / bandwidth[:, None],
            0.0,
        )
    return np.argmin(problem.compute_s + transfer_s, axis=1)


def alternating_minimisation(
    problem: SplitProblem,
    start_bandwidth: Sequence[float] | np.ndarray,
    allocator: BandwidthAllocator | None = None,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> SplitPlan:
    """Algorithm 6 from one starting allocation."""
    if max_iterations < 1:
        raise EdgeSplitError(f"max_iterations: expected >= 1, got {max_iterations}")
    solver = _allocator(problem, allocator)
    bandwidth = np.asarray(start_bandwidth, dtype=float)
    round_times(problem, [problem.depth] * problem.size, bandwidth)  # validates the start
    best: SplitPlan | None = None
    for iteration in range(1, max_iterations + 1):
        columns = best_splits(problem, bandwidth)
        bandwidth = _allocate(problem, columns, solver)
        plan = _plan(problem, "edgesplit", columns, bandwidth, iteration)
        if best is not None and plan.round_s >= best.round_s * (1 - IMPROVEMENT):
            break
        best = plan
    assert best is not None  # the loop runs at least once
    return best


def vanilla(problem: SplitProblem, split: int) -> SplitPlan:
    """Every device splits at `split` and gets an equal share of the bandwidth."""
    columns = problem.check_splits([split] * problem.size)
    bandwidth = np.full(problem.size, problem.total_bandwidth / problem.size)
    return _plan(problem, "vanilla", columns, bandwidth)


def edgesplit_fix(
    problem: SplitProblem, split: int, allocator: BandwidthAllocator | None = None
) -> SplitPlan:
    """Every device splits at `split`; the bandwidth is optimised (P2)."""
    columns = problem.check_splits([split] * problem.size)
    return _plan(
        problem,
        "edgesplit-fix",
        columns,
        _allocate(problem, columns, _allocator(problem, allocator)),
    )


def fully_local(problem: SplitProblem, allocator: BandwidthAllocator | None = None) -> SplitPlan:
    """Every device trains the whole model; only parameters travel, on optimised bandwidth."""
    plan = edgesplit_fix(problem, problem.depth, allocator)
    return SplitPlan("local", plan.splits, plan.bandwidth, plan.round_s)


def best_common_split(problem: SplitProblem, include_local: bool = False) -> int:
    """The one split point that is best for all devices under equal bandwidth (a tuned
    vanilla split learning); fully local is left out unless `include_local`."""
    last = problem.depth if include_local else problem.depth - 1
    if last < 1:
        raise EdgeSplitError(f"model depth {problem.depth}: no split point before the last layer")
    return min(range(1, last + 1), key=lambda split: vanilla(problem, split).round_s)


def edgesplit(problem: SplitProblem, max_iterations: int = DEFAULT_MAX_ITERATIONS) -> SplitPlan:
    """EdgeSplit: Algorithm 6 from equal bandwidth, or fully local training with optimised
    bandwidth when that is faster, so it is never slower than fully local."""
    allocator = BandwidthAllocator(problem.size)
    equal = np.full(problem.size, problem.total_bandwidth / problem.size)
    alternating = alternating_minimisation(problem, equal, allocator, max_iterations)
    local = fully_local(problem, allocator)
    if local.round_s < alternating.round_s:
        return SplitPlan(
            "edgesplit", local.splits, local.bandwidth, local.round_s, alternating.iterations
        )
    return alternating
