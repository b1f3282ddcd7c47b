"""Known-location oracle for locreset traces: a bound on what any causal policy can reach.

In a locreset trace the image at step t is (L_t + δ_t) mod K over the metric-sorted data,
with δ_t fresh and uniform on {0..D}, D = ⌊sp·K⌋, and L_t kept from step to step unless a
reset (probability rprob) moves it to a uniform place. Given L_t the future (later L, δ)
is independent of every past metric, so a policy that is *told* L_t but not the future δ
knows at least as much as any policy that sees only past and current metrics. Its best
expected gain is therefore an upper bound on theirs (the DQN's included) for the same
per-image value x = E[R | metric].

The optimal oracle is a threshold rule. With the state (L, n̄) when an image of value x
arrives and post-decision level k = n̄ - P·a,

    C(L, k)  = γ Σ_n' T(k, n') [(1 - rprob)·V(L, n') + rprob·V̄(n')],  V̄ = mean over L
    V(L, n̄) = C(L, n̄)                                                 for n̄ < P
    V(L, n̄) = C(L, n̄) + E_{x | L}[(x - θ)^+],  θ = C(L, n̄) - C(L, n̄ - P)   for n̄ >= P

and the image is offloaded iff x > θ(L, n̄). L is discretised into bins of consecutive
locations; a bin's law of x is the mixture of its locations' windows. Coarse bins only
lose information, so the bound tightens as the bins shrink (bins = K is exact).

The discounted problem (γ = 0.9999, as the MDP) is solved by policy iteration with exact
evaluation, not value iteration: the bucket's level chain relaxes at only ~0.999 per image,
so value iteration needed ~2·10⁴ sweeps to settle, while policy iteration ends in ~10
rounds of one batched (levels x levels) solve per bin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgebus.policies.mdp import GAMMA, transition_matrix
from edgebus.policies.token_bucket import BucketParams

PERIODIC = np.array([0.0, 1.0])  # gap pmf of one image per slot


@dataclass(frozen=True)
class WindowLaw:
    """Per location bin, the law of the arriving image's value as weighted samples."""

    values: np.ndarray  # (bins, width), ascending along each row
    weights: np.ndarray  # (bins, width), each row sums to 1; zero weight pads short rows
    share: np.ndarray  # (bins,) probability of each bin under a uniform L (the reset law)
    size: int  # K, the number of locations

    @property
    def bins(self) -> int:
        return len(self.share)


def location_bin(location: np.ndarray, bins: int, size: int) -> np.ndarray:
    """Bins of consecutive locations, as even as integers allow (sizes differ by at most 1)."""
    return np.asarray(location, dtype=np.int64) * bins // size


def window_law(values: np.ndarray, spread: float, bins: int) -> WindowLaw:
    """The law of x given the bin of L, for a locreset trace over `values` (metric order).

    D is ⌊spread·K⌋ exactly as `traces.locreset_indices` computes it. A bin of w locations
    puts weight (#locations whose window covers offset j) / (w·(D+1)) on offset j of its
    span, a trapezoid; indices wrap mod K, so with D >= K an index may appear twice.
    """
    values = np.asarray(values, dtype=np.float64)
    size = len(values)
    if values.ndim != 1 or size < 1:
        raise ValueError("known location: values must be a non-empty 1-D array")
    if not 1 <= bins <= size:
        raise ValueError(f"known location: bins must be in 1..{size}, got {bins}")
    if not 0 <= spread <= 1:
        raise ValueError(f"known location: spread must be in [0, 1], got {spread}")
    d = int(spread * size)
    counts = np.bincount(location_bin(np.arange(size), bins, size), minlength=bins)
    starts = np.cumsum(counts) - counts
    j = np.arange(counts.max() + d)[None, :]
    w = counts[:, None]
    cover = np.minimum(j, w - 1) - np.maximum(0, j - d) + 1
    weights = np.clip(cover, 0, None) / (w * (d + 1.0))
    samples = values[(starts[:, None] + j) % size]
    order = np.argsort(samples, axis=1, kind="stable")
    return WindowLaw(
        np.take_along_axis(samples, order, axis=1),
        np.take_along_axis(weights, order, axis=1),
        counts / size,
        size,
    )


@dataclass(frozen=True)
class _Tails:
    """P[x > θ | bin] and E[x·1{x > θ} | bin] for one θ per (bin, level).

    Each row is shifted by its own offset so the rows concatenate into one ascending
    array: one binary search finds every row's first sample above θ, and the tail sums of
    w and w·x from there are the two answers.
    """

    keys: np.ndarray
    tail_w: np.ndarray  # (bins, width + 1): Σ_{k >= j} w
    tail_wx: np.ndarray  # (bins, width + 1): Σ_{k >= j} w·x
    low: float
    high: float
    offset: float
    width: int

    @classmethod
    def build(cls, law: WindowLaw) -> _Tails:
        low, high = float(law.values.min()), float(law.values.max())
        offset = high - low + 2.0  # rows never overlap, even with θ clipped by ±0.5
        bins, width = law.values.shape
        keys = (law.values - low + offset * np.arange(bins)[:, None]).ravel()
        zero = np.zeros((bins, 1))
        tail_w = np.hstack([np.cumsum(law.weights[:, ::-1], axis=1)[:, ::-1], zero])
        tail_wx = np.hstack([np.cumsum((law.weights * law.values)[:, ::-1], axis=1)[:, ::-1], zero])
        return cls(keys, tail_w, tail_wx, low, high, offset, width)

    def first_above(self, theta: np.ndarray) -> np.ndarray:
        """Per (bin, level), the position in the bin's row of the first sample above θ."""
        rows = np.arange(theta.shape[0])[:, None]
        # Clipping only places the search; θ below (above) every sample keeps all (none).
        query = np.clip(theta - self.low, -0.5, self.high - self.low + 0.5) + self.offset * rows
        first = np.searchsorted(self.keys, query.ravel(), side="right").reshape(theta.shape)
        return first - self.width * rows


@dataclass(frozen=True)
class KnownLocationSolution:
    thresholds: np.ndarray  # (bins, M-P+1): offload at level P+j iff x > thresholds[bin, j]
    values: np.ndarray  # (bins, M-N+1): V(bin, n̄) minus the mean value at a full bucket
    iterations: int


def _evaluate(
    params: BucketParams,
    trans: np.ndarray,
    law: WindowLaw,
    rprob: float,
    gamma: float,
    send: np.ndarray,
    gain: np.ndarray,
) -> np.ndarray:
    """Exact V(bin, n̄) of the threshold policy that sends with probability `send` and
    collects `gain` = E[x·1{send}] at each (bin, level N..M).

    Per bin, V_b = g_b + γ·P_b·((1 - rprob)·V_b + rprob·V̄) with P_b the level chain, so
    V_b = a_b + B_b·V̄ for a_b = A_b⁻¹g_b, B_b = A_b⁻¹·γ·rprob·P_b, A_b = I - γ(1-rprob)P_b;
    averaging over bins leaves one small (levels x levels) system for V̄.
    """
    n, p, m = params.n, params.p, params.m
    post = np.arange(n, m + 1)
    keep, spend = trans[post], trans[np.maximum(post - p, 0)]  # spend only used where n̄ >= P
    chain = send[..., None] * spend + (1 - send)[..., None] * keep  # (bins, levels, levels)
    eye = np.eye(len(post))
    rhs = np.concatenate([gain[..., None], gamma * rprob * chain], axis=-1)
    solved = np.linalg.solve(eye - gamma * (1 - rprob) * chain, rhs)
    a, b = solved[..., 0], solved[..., 1:]
    mean = np.linalg.solve(eye - np.einsum("k,kij->ij", law.share, b), law.share @ a)
    return a + b @ mean


def solve_known_location(
    params: BucketParams,
    law: WindowLaw,
    rprob: float,
    gap_pmf: np.ndarray = PERIODIC,
    gamma: float = GAMMA,
    max_iter: int = 100,
) -> KnownLocationSolution:
    """Policy iteration with exact evaluation; stops when no decision changes, which is the
    optimum of the discounted problem (finite policies, so it ends in a few rounds)."""
    if not 0 <= rprob <= 1:
        raise ValueError(f"known location: rprob must be in [0, 1], got {rprob}")
    if not 0 < gamma < 1:
        raise ValueError(f"known location: discount gamma must be in (0, 1), got {gamma}")
    n, p, m = params.n, params.p, params.m
    trans = transition_matrix(params, gap_pmf)  # (post-decision 0..M, levels N..M)
    tails = _Tails.build(law)
    first = max(p, n)  # lowest level that can both occur and send
    theta = np.zeros((law.bins, m - p + 1))  # start by sending every positive value
    cut: np.ndarray | None = None
    value = np.zeros((law.bins, m - n + 1))
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        new_cut = tails.first_above(theta)
        if cut is not None and np.array_equal(new_cut, cut):
            break
        cut = new_cut
        rows = np.arange(law.bins)[:, None]
        send = np.zeros_like(value)
        gain = np.zeros_like(value)
        send[:, first - n :] = tails.tail_w[rows, cut][:, first - p :]
        gain[:, first - n :] = tails.tail_wx[rows, cut][:, first - p :]
        value = _evaluate(params, trans, law, rprob, gamma, send, gain)
        arrive = (1 - rprob) * value + rprob * (law.share @ value)  # after the reset draw
        cont = gamma * (arrive @ trans.T)  # (bins, post-decision level 0..M)
        theta = cont[:, p : m + 1] - cont[:, : m - p + 1]
    # Values are reported relative to a full bucket; a constant shift changes no decision.
    return KnownLocationSolution(theta, value - law.share @ value[:, -1], iterations)


@dataclass
class KnownLocationPolicy:
    """The oracle as a `Policy`: told each stream's L_t (from `locreset_indices(...,
    return_location=True)`), it offloads iff E[R | metric] > θ(bin of L_t, n̄)."""

    name: str
    params: BucketParams
    thresholds: np.ndarray  # (bins, M-P+1), from `solve_known_location`
    size: int  # K of the trace's dataset
    locations: np.ndarray  # (streams, length) L_t of the test trace
    expected_reward: Callable[[np.ndarray], np.ndarray]
    uses_bucket: bool = True
    _step: int = field(default=0, init=False, repr=False)

    def reset(self, streams: int) -> None:
        if streams != self.locations.shape[0]:
            raise ValueError(
                f"known location: {streams} streams but locations for {self.locations.shape[0]}"
            )
        self._step = 0

    def wants(self, metrics: np.ndarray, levels: np.ndarray) -> np.ndarray:
        b = location_bin(self.locations[:, self._step], self.thresholds.shape[0], self.size)
        # Levels below P cannot send anyway; clipping only keeps the lookup in range.
        j = np.clip(levels - self.params.p, 0, self.thresholds.shape[1] - 1)
        return self.expected_reward(metrics) > self.thresholds[b, j]

    def observe(self, gaps: np.ndarray) -> None:
        self._step += 1
