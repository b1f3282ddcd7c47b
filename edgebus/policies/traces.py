"""Test and training traces: which image arrives (an index) and how many slots until the next.

Index traces are (streams, length) arrays of indices into a dataset of K images. The
correlated "locreset" trace indexes the dataset *sorted by offloading metric*, so nearby
indices mean similar metrics: callers sort their metrics (and rewards) before indexing.
Gap traces are (streams, length) integer arrays; gaps[s, t] is the number of slots from
image t to image t+1 of stream s, which is what refills the bucket after image t.
Every generator takes a seed and returns the same trace for the same arguments.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np


def _check_shape(size: int, length: int, streams: int) -> None:
    if size < 1:
        raise ValueError(f"trace: dataset size must be >= 1, got {size}")
    if length < 1 or streams < 1:
        raise ValueError(f"trace: length and streams must be >= 1, got {length} and {streams}")


def iid_indices(size: int, length: int, streams: int = 1, seed: int = 0) -> np.ndarray:
    """Images drawn uniformly at random, independently."""
    _check_shape(size, length, streams)
    return np.random.default_rng(seed).integers(0, size, (streams, length))


@overload
def locreset_indices(
    size: int,
    length: int,
    streams: int = ...,
    spread: float = ...,
    rprob: float = ...,
    seed: int = ...,
    *,
    return_location: Literal[False] = ...,
) -> np.ndarray: ...


@overload
def locreset_indices(
    size: int,
    length: int,
    streams: int = ...,
    spread: float = ...,
    rprob: float = ...,
    seed: int = ...,
    *,
    return_location: Literal[True],
) -> tuple[np.ndarray, np.ndarray]: ...


def locreset_indices(
    size: int,
    length: int,
    streams: int = 1,
    spread: float = 0.1,
    rprob: float = 0.01,
    seed: int = 0,
    *,
    return_location: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The paper's local-reset model over a metric-sorted dataset.

    A location L starts uniform in [0, K). Before every image after the first, with
    probability `rprob`, L moves by a uniform offset, i.e. to a uniform new place (mod K).
    The image is (L + delta) mod K with delta uniform in {0..floor(spread*K)}: the window
    wraps around, so the top and bottom of the metric range are neighbours.

    With `return_location` it also returns L (same shape), for oracle policies that are
    told where the window is (`known_location.py`); the indices and the random draws are
    the same either way.
    """
    _check_shape(size, length, streams)
    if not 0 <= spread <= 1:
        raise ValueError(f"trace spread sp must be in [0, 1], got {spread}")
    if not 0 <= rprob <= 1:
        raise ValueError(f"trace reset probability rprob must be in [0, 1], got {rprob}")
    rng = np.random.default_rng(seed)
    delta = rng.integers(0, int(spread * size) + 1, (streams, length))
    jumps = np.zeros((streams, length), dtype=np.int64)
    jumps[:, 0] = rng.integers(0, size, streams)
    resets = rng.random((streams, length - 1)) < rprob
    jumps[:, 1:][resets] = rng.integers(0, size, int(resets.sum()))
    # A uniform offset mod K lands on a uniform place, so a running sum is a reset.
    location = np.cumsum(jumps, axis=1) % size
    indices = (location + delta) % size
    return (indices, location) if return_location else indices


def periodic_gaps(length: int, streams: int = 1) -> np.ndarray:
    """One image every slot."""
    _check_shape(1, length, streams)
    return np.ones((streams, length), dtype=np.int64)


def markov_gaps(
    length: int,
    streams: int = 1,
    gap1: int = 1,
    gap2: int = 3,
    tprob1: float = 0.001,
    tprob2: float = 0.0005,
    seed: int = 0,
) -> np.ndarray:
    """Two-state Markov-modulated periodic arrivals.

    State i lasts a geometric(tprob_i) number of slots (support 1, 2, ...) and holds
    floor(duration / I_i) images, one every I_i slots from the state's start. The first
    state is drawn from the stationary law pi1 = tprob2 / (tprob1 + tprob2). The gap after
    an image is the time to the next arrival, wherever it falls, so a state change shows
    up as one gap mixing the two periods.
    """
    _check_shape(1, length, streams)
    if gap1 < 1 or gap2 < 1:
        raise ValueError(f"trace gaps I1 and I2 must be >= 1 slot, got {gap1} and {gap2}")
    for name, prob in (("tprob1", tprob1), ("tprob2", tprob2)):
        if not 0 < prob <= 1:
            raise ValueError(f"trace switching probability {name} must be in (0, 1], got {prob}")
    rng = np.random.default_rng(seed)
    gaps, probs = np.array([gap1, gap2]), np.array([tprob1, tprob2])
    out = np.empty((streams, length), dtype=np.int64)
    # Images per visit average 1/(tprob*I); draw visits in blocks sized to need few rounds.
    per_cycle = 1 / (tprob1 * gap1) + 1 / (tprob2 * gap2)
    block = max(8, int(2 * (length + 1) / max(per_cycle, 1e-9)) + 8)
    for s in range(streams):
        state = 0 if rng.random() < tprob2 / (tprob1 + tprob2) else 1
        arrivals: list[np.ndarray] = []
        count, start = 0, 0
        while count < length + 1:
            order = (state + np.arange(block)) % 2
            durations = rng.geometric(probs[order])
            starts = start + np.concatenate(([0], np.cumsum(durations)[:-1]))
            n_images = durations // gaps[order]
            total = int(n_images.sum())
            if total:
                visit = np.repeat(np.arange(block), n_images)
                first = np.cumsum(n_images) - n_images
                k = np.arange(total) - np.repeat(first, n_images) + 1
                arrivals.append(starts[visit] + k * gaps[order][visit])
                count += total
            start = int(starts[-1] + durations[-1])
            state = int((state + block) % 2)
        times = np.concatenate(arrivals)[: length + 1]
        out[s] = np.diff(times)
    return out


def gap_distribution(gaps: np.ndarray) -> np.ndarray:
    """Empirical P[gap = g] for g = 0..max(gaps) (entry 0 is always 0)."""
    flat = np.asarray(gaps, dtype=np.int64).ravel()
    if flat.size == 0 or flat.min() < 1:
        raise ValueError("gap distribution: gaps must be a non-empty array of integers >= 1")
    return np.bincount(flat) / flat.size
