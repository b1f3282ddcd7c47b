import itertools

import numpy as np
import pytest

from edgebus.policies.clairvoyant import best_total
from edgebus.policies.mdp import solve_mdp, transition_matrix
from edgebus.policies.token_bucket import BucketParams, TokenBucket


def policy_value(params, metrics, rewards, pmf, thresholds, gamma):
    """Exact discounted value of a threshold policy: solve V = r + γ P V."""
    trans = transition_matrix(params, pmf)
    levels = params.levels
    size = len(levels)
    reward, move = np.zeros(size), np.zeros((size, size))
    for i, level in enumerate(levels):
        if level >= params.p:
            sent = metrics >= thresholds[level - params.p]
            f, g = sent.mean(), (rewards * sent).mean()
            reward[i] = g
            move[i] = f * trans[level - params.p] + (1 - f) * trans[level]
        else:
            move[i] = trans[level]
    return np.linalg.solve(np.eye(size) - gamma * move, reward)


@pytest.mark.parametrize(
    ("params", "pmf", "gamma"),
    [
        (BucketParams(1, 2, 4), np.array([0, 1.0]), 0.9),
        (BucketParams(1, 2, 5), np.array([0, 0.5, 0.3, 0.2]), 0.99),
        (BucketParams(2, 3, 6), np.array([0, 0.7, 0.0, 0.3]), 0.9999),
        (BucketParams(3, 2, 6), np.array([0, 0.6, 0.4]), 0.99),
    ],
)
def test_mdp_thresholds_match_brute_force(params, pmf, gamma):
    rng = np.random.default_rng(1)
    metrics = rng.normal(size=5)
    rewards = np.array([1.0, -1.0, 0.0, 1.0, 1.0]) * np.sign(metrics + 0.3)
    cuts = [np.inf, *np.sort(metrics)[::-1]]
    send_levels = params.m - params.p + 1
    best = None
    for choice in itertools.product(cuts, repeat=send_levels):
        v = policy_value(params, metrics, rewards, pmf, np.array(choice), gamma)
        best = v if best is None else np.maximum(best, v)
    found = solve_mdp(params, metrics, rewards, pmf, gamma=gamma, max_iter=200_000)
    v = policy_value(params, metrics, rewards, pmf, found.thresholds, gamma)
    # One threshold policy is optimal in every state at once (an MDP has a uniform optimum).
    assert np.allclose(v, best, rtol=1e-6, atol=1e-9)


def test_mdp_threshold_falls_as_tokens_pile_up():
    rng = np.random.default_rng(2)
    metrics = rng.normal(size=2000)
    rewards = (rng.random(2000) < 1 / (1 + np.exp(-2 * metrics))).astype(float) - 0.3
    sol = solve_mdp(BucketParams(1, 10, 40), metrics, rewards, np.array([0, 1.0]))
    assert np.all(np.diff(sol.thresholds) <= 1e-12)
    assert sol.thresholds[-1] < sol.thresholds[0]


def brute_force_total(params, values, gaps):
    best = 0.0
    for actions in itertools.product((0, 1), repeat=len(values)):
        bucket, total = TokenBucket(params), 0.0
        for a, x, g in zip(actions, values, gaps, strict=True):
            if a and not bucket.can_offload:
                break
            bucket.step(bool(a), int(g))
            total += a * x
        else:
            best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_clairvoyant_dp_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    params = [BucketParams(1, 3, 5), BucketParams(1, 2, 2), BucketParams(2, 3, 7)][seed % 3]
    length = 10
    values = rng.normal(size=(3, length)).round(2)
    gaps = rng.integers(1, 4, (3, length))
    got, same = best_total(params, values, gaps)
    assert np.array_equal(got, same)
    want = [brute_force_total(params, values[s], gaps[s]) for s in range(3)]
    assert np.allclose(got, want)
