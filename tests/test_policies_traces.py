import numpy as np
import pytest

from edgebus.policies.traces import (
    gap_distribution,
    iid_indices,
    locreset_indices,
    markov_gaps,
    periodic_gaps,
)


def lag1(x: np.ndarray) -> float:
    x = x - x.mean(axis=1, keepdims=True)
    return float((x[:, 1:] * x[:, :-1]).sum() / (x * x).sum())


def test_iid_is_uniform_and_uncorrelated():
    idx = iid_indices(50, 20_000, 4, seed=3)
    assert idx.shape == (4, 20_000) and idx.min() >= 0 and idx.max() < 50
    counts = np.bincount(idx.ravel(), minlength=50)
    assert np.abs(counts / idx.size - 1 / 50).max() < 0.004
    assert abs(lag1(idx.astype(float))) < 0.02


def test_seeds_reproduce_and_differ():
    assert np.array_equal(
        locreset_indices(100, 50, 3, seed=7), locreset_indices(100, 50, 3, seed=7)
    )
    assert not np.array_equal(locreset_indices(100, 50, 3, seed=7), locreset_indices(100, 50, 3))
    assert np.array_equal(markov_gaps(500, 2, seed=4), markov_gaps(500, 2, seed=4))
    assert np.array_equal(iid_indices(9, 30, 2, seed=1), iid_indices(9, 30, 2, seed=1))


def test_locreset_small_spread_is_correlated_and_full_spread_is_not():
    size = 1000
    metric = np.arange(size) / size  # a sorted dataset: index order is metric order
    near = metric[locreset_indices(size, 20_000, 4, spread=0.1, rprob=0.01, seed=0)]
    far = metric[locreset_indices(size, 20_000, 4, spread=1.0, rprob=0.01, seed=0)]
    assert lag1(near) > 0.7  # below 0.9 only because windows near the top wrap to 0
    assert abs(lag1(far)) < 0.03
    # Wrap-around keeps every index equally likely, so the mean metric stays central.
    assert abs(near.mean() - 0.5) < 0.03 and abs(far.mean() - 0.5) < 0.01


def test_locreset_window_and_resets():
    size, spread = 1000, 0.05
    idx = locreset_indices(size, 5000, 2, spread=spread, rprob=0.0, seed=2)
    # With no resets the location is fixed, so every index is within the window above it.
    offsets = (idx - idx.min(axis=1, keepdims=True)) % size
    span = [len(np.unique(row)) for row in idx]
    assert all(s <= int(spread * size) + 1 for s in span)
    assert offsets.max() <= size - 1
    resets = locreset_indices(size, 20_000, 1, spread=0.0, rprob=0.1, seed=5)[0]
    changes = np.mean(resets[1:] != resets[:-1])
    assert abs(changes - 0.1 * (1 - 1 / size)) < 0.01


def test_markov_mean_gap_and_state_occupancy():
    gap1, gap2, t1, t2 = 1, 3, 0.01, 0.005
    gaps = markov_gaps(50_000, 4, gap1, gap2, t1, t2, seed=11)
    assert gaps.shape == (4, 50_000) and gaps.min() >= 1
    pi1 = t2 / (t1 + t2)
    # Time share of state 1 is pi1; images arrive at 1/I_i per slot inside state i.
    rate = pi1 / gap1 + (1 - pi1) / gap2
    assert abs(gaps.mean() - 1 / rate) < 0.05
    time_in_1 = gaps[gaps == gap1].sum() / gaps.sum()
    assert abs(time_in_1 - pi1) < 0.03
    assert np.isin(np.unique(gaps), np.arange(1, gap1 + gap2 + 1)).all()
    # Long sojourns: consecutive gaps are almost always from the same state.
    assert np.mean(gaps[:, 1:] == gaps[:, :-1]) > 0.97


def test_periodic_and_gap_distribution():
    assert periodic_gaps(5, 2).tolist() == [[1] * 5] * 2
    dist = gap_distribution(np.array([[1, 1, 3, 2]]))
    assert dist.tolist() == [0, 0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="gaps"):
        gap_distribution(np.array([0, 1]))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"spread": 1.5}, "spread sp"), ({"rprob": -0.1}, "rprob")],
)
def test_locreset_rejects_bad_options(kwargs, name):
    with pytest.raises(ValueError, match=name):
        locreset_indices(10, 10, 1, **kwargs)


def test_markov_rejects_bad_options():
    with pytest.raises(ValueError, match="tprob2"):
        markov_gaps(10, tprob2=0)
    with pytest.raises(ValueError, match="I1 and I2"):
        markov_gaps(10, gap1=0)
