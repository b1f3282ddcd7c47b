"""The offloading metric (paper Eq. 6): how much offloading an image is expected to help.

Fitting, on training images only:
1. one inverse temperature β for the weak logits, grid-searched to minimise cross-entropy;
2. h = entropy of softmax(β·logits);
3. f(h) = Σ_k σ(h, h_k) R_k / Σ_k σ(h, h_k), σ = exp(-(h - h_k)² / w²), with the bandwidth w
   chosen by 2-fold (even/odd) cross-validation and f tabulated on a grid;
4. metric = (f(h) - μ) / s with the training mean and standard deviation of f(h).

Because the standardisation in 4. is affine, the metric also gives
E[R | metric] ≈ μ + s·metric, which the clairvoyant reference needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_POINTS = 1000
# Bandwidths 2^-8 .. 2^-4 in steps of 2^0.5, as a fraction of the entropy range.
BANDWIDTH_FRACTIONS = 2.0 ** np.arange(-8, -3.75, 0.5)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def top_k_loss(logits: np.ndarray, labels: np.ndarray, k: int = 5) -> np.ndarray:
    """1.0 where the label is not among the k largest logits, else 0.0."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"top-k loss: k must be in 1..{logits.shape[-1]}, got {k}")
    true = np.take_along_axis(logits, labels[:, None], axis=1)
    # Ranking by "how many classes beat the label" keeps ties in the label's favour.
    return ((logits > true).sum(axis=1) >= k).astype(np.float64)


def cross_entropy(logits: np.ndarray, labels: np.ndarray, beta: float) -> float:
    logp = log_softmax(beta * logits)
    return float(-np.take_along_axis(logp, labels[:, None], axis=1).mean())


def fit_inverse_temperature(
    logits: np.ndarray, labels: np.ndarray, lo: float = 0.0, hi: float = 2.0, rounds: int = 6
) -> float:
    """Grid search of β on [lo, hi] (10 points), refined around the best point each round."""
    logits = np.asarray(logits, dtype=np.float64)
    best = lo
    for _ in range(rounds):
        grid = np.linspace(lo, hi, 10)
        losses = [cross_entropy(logits, labels, b) for b in grid]
        best = float(grid[int(np.argmin(losses))])
        step = grid[1] - grid[0]
        lo, hi = max(0.0, best - step), best + step
    return best


def entropy(logits: np.ndarray, beta: float) -> np.ndarray:
    logp = log_softmax(beta * np.asarray(logits, dtype=np.float64))
    return -(np.exp(logp) * logp).sum(axis=1)


def _kernel_table(x: np.ndarray, y: np.ndarray, grid: np.ndarray, width: float) -> np.ndarray:
    """Nadaraya–Watson estimate of E[y | x] at each grid point, in chunks to bound memory."""
    out = np.empty(len(grid))
    chunk = max(1, 2_000_000 // max(len(x), 1))
    fallback = float(y.mean())
    for start in range(0, len(grid), chunk):
        g = grid[start : start + chunk, None]
        w = np.exp(-(((g - x[None, :]) / width) ** 2))
        total = w.sum(axis=1)
        # Far from every sample the weights underflow; the global mean is the honest guess.
        with np.errstate(invalid="ignore", divide="ignore"):
            est = (w @ y) / total
        out[start : start + chunk] = np.where(total > 1e-300, est, fallback)
    return out


@dataclass(frozen=True)
class KernelRegression:
    """E[y | x] by a Gaussian kernel, tabulated on a grid and read with linear interpolation."""

    grid: np.ndarray
    table: np.ndarray
    width: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, points: int = GRID_POINTS) -> KernelRegression:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1 or len(x) < 4:
            raise ValueError("kernel regression: x and y must be equal 1-D arrays of >= 4 values")
        span = float(x.max() - x.min()) or 1.0
        grid = np.linspace(x.min(), x.max(), points)
        halves = (slice(0, None, 2), slice(1, None, 2))
        best_width, best_err = span * BANDWIDTH_FRACTIONS[0], np.inf
        for width in span * BANDWIDTH_FRACTIONS:
            err = 0.0
            for fit_half, test_half in (halves, halves[::-1]):
                table = _kernel_table(x[fit_half], y[fit_half], grid, width)
                err += float(((np.interp(x[test_half], grid, table) - y[test_half]) ** 2).sum())
            if err < best_err:
                best_width, best_err = float(width), err
        return cls(grid, _kernel_table(x, y, grid, best_width), best_width)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(x, dtype=np.float64), self.grid, self.table)


@dataclass(frozen=True)
class OffloadMetric:
    """The fitted metric: weak logits in, z-normalised expected offloading reward out."""

    beta: float
    regression: KernelRegression
    mean: float
    std: float

    @classmethod
    def fit(cls, logits: np.ndarray, labels: np.ndarray, rewards: np.ndarray) -> OffloadMetric:
        beta = fit_inverse_temperature(logits, labels)
        h = entropy(logits, beta)
        regression = KernelRegression.fit(h, rewards)
        f = regression(h)
        std = float(f.std())
        return cls(beta, regression, float(f.mean()), std if std > 0 else 1.0)

    def expected_reward_raw(self, logits: np.ndarray) -> np.ndarray:
        return self.regression(entropy(logits, self.beta))

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return (self.expected_reward_raw(logits) - self.mean) / self.std

    def expected_reward(self, metric: np.ndarray) -> np.ndarray:
        """E[R | metric]: undo the z-normalisation."""
        return self.mean + self.std * np.asarray(metric, dtype=np.float64)


def rewards_from_costs(weak_cost: np.ndarray, strong_cost: np.ndarray) -> np.ndarray:
    """R = L(weak) - L(strong): +1 when only the strong model is right, -1 the other way."""
    return np.asarray(weak_cost, dtype=np.float64) - np.asarray(strong_cost, dtype=np.float64)
