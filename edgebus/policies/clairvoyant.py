"""Offline optimum over a known trace: dynamic programming over (image index, bucket level).

W_t(n̄) is the best total value from image t on, when image t sees level n̄:

    W_t(n̄) = max( W_{t+1}(min(M, n̄ + N·g_t)),  x_t + W_{t+1}(min(M, n̄ - P + N·g_t)) if n̄ >= P )

with W_T = 0 and the bucket full (n̄ = M) at image 0. With x = E[R | metric] this is the
clairvoyant reference: it foresees arrivals and metrics but not outcomes. With x = the
realised rewards it is the hindsight bound, which no causal policy can reach because it
knows which images the strong model fixes.
"""

from __future__ import annotations

import numpy as np

from edgebus.policies.token_bucket import BucketParams


def best_total(params: BucketParams, values: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Per stream, the largest Σ a_t·x_t any bucket-feasible offload sequence achieves."""
    values, gaps = np.atleast_2d(values).astype(np.float64), np.atleast_2d(gaps)
    if values.shape != gaps.shape:
        raise ValueError(f"clairvoyant: values {values.shape} and gaps {gaps.shape} differ")
    n, p, m = params.n, params.p, params.m
    streams, length = values.shape
    levels = np.arange(m + 1)
    # Indexed by level 0..M; levels below N never occur at a decision but keep indexing plain.
    future = np.zeros((streams, m + 1))
    can_send = levels >= p
    below = np.maximum(levels - p, 0)
    for t in range(length - 1, -1, -1):
        refill = n * gaps[:, t : t + 1]
        keep = np.take_along_axis(future, np.minimum(m, levels + refill), axis=1)
        spend = np.take_along_axis(future, np.minimum(m, below + refill), axis=1)
        spend += values[:, t : t + 1]
        future = np.where(can_send & (spend > keep), spend, keep)
    return future[:, m]
