"""The integer token bucket of the offloading paper (Eq. 2), for one stream or many at once.

A bucket of rate r and depth b is kept in integer units: r = N/P and b = M/P, so the
level n̄ lives in {N..M}, an offload needs n̄ >= P (one whole token) and after an image
followed by a gap of `gap` slots n̄' = min(M, n̄ - P*a + N*gap). Integers keep the camera
and the simulator bit-identical and make "never overdrawn" exact rather than approximate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_DENOMINATOR = 100


@dataclass(frozen=True)
class BucketParams:
    """(N, P, M) with r = N/P and b = M/P, reduced by their common divisor."""

    n: int
    p: int
    m: int

    def __post_init__(self) -> None:
        if self.n < 1 or self.p < 1:
            raise ValueError(f"bucket: N and P must be positive, got N={self.n} P={self.p}")
        if self.m < self.p:
            raise ValueError(f"bucket: depth M={self.m} below P={self.p} never allows an offload")
        if self.m < self.n:
            raise ValueError(f"bucket: depth M={self.m} below one slot's refill N={self.n}")

    @classmethod
    def from_rate(cls, rate: float, depth: float, max_p: int = MAX_DENOMINATOR) -> BucketParams:
        """The (N, P, M) with P <= max_p closest to (rate, depth) in summed absolute error."""
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"bucket rate r must be a finite number > 0, got {rate!r}")
        if not (isinstance(depth, int | float) and math.isfinite(depth) and depth >= 1):
            raise ValueError(f"bucket depth b must be a finite number >= 1 token, got {depth!r}")
        if rate < 1 / max_p - 1e-12:
            raise ValueError(
                f"bucket rate r={rate} is below 1/{max_p}, the least with P <= {max_p}"
            )
        if depth < rate:
            raise ValueError(f"bucket depth b={depth} must be at least the rate r={rate}")
        best: tuple[float, int, int, int] | None = None
        for p in range(1, max_p + 1):
            # The smallest P within rounding noise wins, so 0.1 gives P=10, not P=20 or 30.
            n, m = max(1, round(rate * p)), max(p, round(depth * p))
            err = abs(rate - n / p) + abs(depth - m / p)
            if best is None or err < best[0] - 1e-12:
                best = (err, n, p, m)
        assert best is not None
        _, n, p, m = best
        g = math.gcd(math.gcd(n, p), m)
        return cls(n // g, p // g, m // g)

    @property
    def rate(self) -> float:
        return self.n / self.p

    @property
    def depth(self) -> float:
        return self.m / self.p

    @property
    def levels(self) -> np.ndarray:
        """Every level a decision can see, N..M."""
        return np.arange(self.n, self.m + 1)

    def next_level(self, level: int, offload: bool, gap: int) -> int:
        return min(self.m, level - self.p * int(offload) + self.n * gap)


class TokenBucket:
    """One stream's bucket (the camera's), starting full as in the paper's runtime."""

    def __init__(self, params: BucketParams, level: int | None = None) -> None:
        self.params = params
        self.level = params.m if level is None else level
        if not params.n <= self.level <= params.m:
            raise ValueError(f"bucket level {self.level} outside {params.n}..{params.m}")

    @property
    def can_offload(self) -> bool:
        return self.level >= self.params.p

    @property
    def tokens(self) -> float:
        return self.level / self.params.p

    def step(self, offload: bool, gap: int = 1) -> bool:
        """Apply one image's decision; an offload without a token is refused (returns False)."""
        if gap < 1:
            raise ValueError(f"bucket gap must be >= 1 slot, got {gap}")
        sent = bool(offload) and self.can_offload
        self.level = self.params.next_level(self.level, sent, gap)
        return sent


class TokenBuckets:
    """Many parallel streams' buckets as one integer array, for vectorised simulation."""

    def __init__(self, params: BucketParams, streams: int) -> None:
        self.params = params
        self.level = np.full(streams, params.m, dtype=np.int64)

    @property
    def can_offload(self) -> np.ndarray:
        return self.level >= self.params.p

    def step(self, offload: np.ndarray, gap: np.ndarray | int = 1) -> np.ndarray:
        """Apply one image per stream; returns which offloads were actually granted."""
        sent = np.asarray(offload, dtype=bool) & self.can_offload
        p = self.params
        self.level = np.minimum(p.m, self.level - p.p * sent + p.n * np.asarray(gap))
        return sent
