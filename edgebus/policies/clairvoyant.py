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


def best_total(
    params: BucketParams,
    values: np.ndarray,
    gaps: np.ndarray,
    realised: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per stream, the largest Σ a_t·x_t over bucket-feasible offload sequences, and the
    Σ a_t·realised_t those same optimal decisions collect (equal when realised is None).

    The realised total rides along the backward pass with the same choices, so scoring
    the clairvoyant plan on actual outcomes needs no stored decisions.
    """
    values, gaps = np.atleast_2d(values).astype(np.float64), np.atleast_2d(gaps)
    actual = values if realised is None else np.atleast_2d(realised).astype(np.float64)
    if not values.shape == gaps.shape == actual.shape:
        raise ValueError(
            f"clairvoyant: values {values.shape}, gaps {gaps.shape} and realised "
            f"{actual.shape} must have one shape"
        )
    n, p, m = params.n, params.p, params.m
    streams, length = values.shape
    levels = np.arange(m + 1)
    # Indexed by level 0..M; levels below N never occur at a decision but keep indexing plain.
    future = np.zeros((streams, m + 1))
    collected = np.zeros((streams, m + 1))
    can_send = levels >= p
    below = np.maximum(levels - p, 0)
    for t in range(length - 1, -1, -1):
        refill = n * gaps[:, t : t + 1]
        keep_at = np.minimum(m, levels + refill)
        spend_at = np.minimum(m, below + refill)
        keep = np.take_along_axis(future, keep_at, axis=1)
        spend = np.take_along_axis(future, spend_at, axis=1) + values[:, t : t + 1]
        send = can_send & (spend > keep)
        future = np.where(send, spend, keep)
        collected = np.where(
            send,
            np.take_along_axis(collected, spend_at, axis=1) + actual[:, t : t + 1],
            np.take_along_axis(collected, keep_at, axis=1),
        )
    return future[:, m], collected[:, m]
