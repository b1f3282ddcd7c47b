"""The MDP policy: one metric threshold per bucket level, assuming i.i.d. metrics.

State: the level n̄ in {N..M} seen when an image arrives. Action: a threshold θ, i.e.
offload iff m >= θ. With K training pairs (m_k, R_k), F(θ) = P[m >= θ] and
G(θ) = (1/K) Σ R_k 1{m_k >= θ}. After the decision the level is k = n̄ - P·a and the next
image sees min(M, k + N·gap), gap drawn from the empirical gap distribution:

    V(n̄) = γ Σ T(n̄, n') V(n')                                      for n̄ < P
    V(n̄) = max_θ G(θ) + γ [F(θ) Σ T(n̄-P, n') V(n') + (1-F(θ)) Σ T(n̄, n') V(n')]  for n̄ >= P

For a level, the bracket is γ·TV(n̄) + F·γ·(TV(n̄-P) - TV(n̄)), so the best θ maximises
G + c·F for one slope c: a vertex of the upper concave hull of the (F, G) points, found
by binary search. That keeps each sweep O(levels · log K) for any training-set size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebus.policies.token_bucket import BucketParams

GAMMA = 0.9999


def transition_matrix(params: BucketParams, gap_pmf: np.ndarray) -> np.ndarray:
    """T[k, j] = P[next level = N + j | level after the decision = k], k in 0..M."""
    n, m = params.n, params.m
    pmf = np.asarray(gap_pmf, dtype=np.float64)
    out = np.zeros((m + 1, m - n + 1))
    post = np.arange(m + 1)
    for gap in np.nonzero(pmf)[0]:
        if gap < 1:
            raise ValueError("MDP: the gap distribution must put no mass on gaps below 1")
        out[post, np.minimum(m, post + n * gap) - n] += pmf[gap]
    return out


@dataclass(frozen=True)
class _Hull:
    """Upper concave hull of the achievable (F, G) cuts, with the threshold of each vertex."""

    f: np.ndarray
    g: np.ndarray
    theta: np.ndarray
    slopes: np.ndarray  # decreasing slopes of the hull's segments

    @classmethod
    def build(cls, metrics: np.ndarray, rewards: np.ndarray) -> _Hull:
        order = np.argsort(-metrics, kind="stable")
        m, r = metrics[order], rewards[order]
        k = len(m)
        # A cut may only fall between distinct metric values: tied images go together.
        ends = np.nonzero(np.append(m[1:] < m[:-1], True))[0] + 1
        f = np.concatenate(([0.0], ends / k))
        g = np.concatenate(([0.0], np.cumsum(r)[ends - 1] / k))
        theta = np.concatenate(([np.inf], m[ends - 1]))
        hull: list[int] = []
        for i in range(len(f)):
            while len(hull) >= 2:
                a, b = hull[-2], hull[-1]
                if (g[b] - g[a]) * (f[i] - f[a]) <= (g[i] - g[a]) * (f[b] - f[a]):
                    hull.pop()
                else:
                    break
            hull.append(i)
        idx = np.array(hull)
        slopes = np.diff(g[idx]) / np.diff(f[idx])
        return cls(f[idx], g[idx], theta[idx], slopes)

    def best(self, c: np.ndarray) -> np.ndarray:
        """Vertex index maximising G + c·F: walk while a segment still gains (slope > -c)."""
        return np.searchsorted(-self.slopes, c, side="left")


@dataclass(frozen=True)
class MDPSolution:
    thresholds: np.ndarray  # one per level P..M; +inf means never offload at that level
    values: np.ndarray  # V(n̄) - V(M) for n̄ in N..M (relative values)
    iterations: int


def solve_mdp(
    params: BucketParams,
    metrics: np.ndarray,
    rewards: np.ndarray,
    gap_pmf: np.ndarray,
    gamma: float = GAMMA,
    max_iter: int = 10_000,
    tol: float = 1e-6,
) -> MDPSolution:
    """Value iteration; stops once the thresholds move by less than tol × the metric range
    and the value differences between levels have settled."""
    metrics = np.asarray(metrics, dtype=np.float64)
    rewards = np.asarray(rewards, dtype=np.float64)
    if metrics.shape != rewards.shape or metrics.ndim != 1 or metrics.size == 0:
        raise ValueError("MDP: metrics and rewards must be equal-length non-empty 1-D arrays")
    if not 0 < gamma < 1:
        raise ValueError(f"MDP: discount gamma must be in (0, 1), got {gamma}")
    if max_iter < 1:
        raise ValueError(f"MDP: max_iter must be >= 1, got {max_iter}")
    hull = _Hull.build(metrics, rewards)
    trans = transition_matrix(params, gap_pmf)
    n, p, m = params.n, params.p, params.m
    # Thresholds cover levels P..M; with r >= 1 (N > P) those below N are never seen.
    send_levels = np.arange(p, m + 1)
    first = max(p, n)
    value = np.zeros(m - n + 1)
    span = float(metrics.max() - metrics.min()) or 1.0
    prev_theta: np.ndarray | None = None
    prev_rel: np.ndarray | None = None
    theta = np.full(m - p + 1, np.inf)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        tv = trans @ value  # expected next value for every post-decision level 0..M
        new = np.empty_like(value)
        new[: first - n] = gamma * tv[n:first]
        keep, spend = tv[send_levels], tv[send_levels - p]
        choice = hull.best(gamma * (spend - keep))
        score = hull.g[choice] + gamma * (keep + hull.f[choice] * (spend - keep))
        new[first - n :] = score[first - p :]
        theta = hull.theta[choice]
        # Subtracting a constant leaves every argmax unchanged (rows of T sum to 1), and
        # keeps the iterates bounded so the stopping rule sees relative values settle.
        rel = new - new[-1]
        value = rel
        if prev_theta is not None and prev_rel is not None:
            moved = np.where(np.isfinite(theta) & np.isfinite(prev_theta), theta - prev_theta, 0)
            same_inf = np.isinf(theta) == np.isinf(prev_theta)
            if (
                same_inf.all()
                and np.abs(moved).max() < tol * span
                and np.abs(rel - prev_rel).max() < 1e-9 * max(1.0, np.abs(rel).max())
            ):
                break
        prev_theta, prev_rel = theta, rel
    return MDPSolution(thresholds=theta, values=value, iterations=iterations)
