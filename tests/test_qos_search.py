"""Algorithm 1 (fixed) against exhaustive search, and the P map with its diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgebus.qos.compression_search import (
    QosRule,
    SearchError,
    Trial,
    binary_search,
    exhaustive,
    max_probes,
    step_sweep,
)
from edgebus.qos.qos_map import QosMap


def saturating(knee: float, ceiling: float = 0.9) -> callable:
    """A QoS(d) curve shaped like the paper's accuracy against latent size."""
    return lambda d: ceiling * (1 - math.exp(-d / knee))


@pytest.mark.parametrize("full_d", [1, 2, 3, 7, 64, 100, 384, 784, 1000])
@pytest.mark.parametrize("knee", [0.5, 3.0, 20.0, 150.0])
@pytest.mark.parametrize("tolerance", [0.0, 0.005, 0.02, 0.1])
def test_binary_search_matches_exhaustive_on_monotone_curves(full_d, knee, tolerance):
    rule = QosRule(tolerance=tolerance, step=0.01)
    curve = saturating(knee)
    found = binary_search(full_d, curve, rule)
    brute = exhaustive(full_d, curve, rule)
    assert found.chosen_d == brute.chosen_d
    assert found.models_trained <= max_probes(full_d)
    assert rule.bucket(curve(found.chosen_d)) == rule.bucket(curve(brute.chosen_d))


def test_probe_bound_is_ceil_log2_plus_one_and_every_model_is_kept():
    calls: list[int] = []

    def curve(d: int) -> float:
        calls.append(d)
        return min(1.0, d / 40)

    result = binary_search(784, curve, QosRule(tolerance=0.0))
    assert result.models_trained == len(calls) == len(set(calls))
    assert [t.d for t in result.trials] == calls
    assert result.models_trained <= math.ceil(math.log2(784)) + 1 == 11
    assert result.chosen_d == 40
    assert calls[0] == 784  # the full-size model sets Q_h first


def test_step_lands_on_integer_midpoints_within_bounds():
    seen: list[int] = []
    binary_search(10, lambda d: seen.append(d) or float(d >= 7), QosRule(tolerance=0.0))
    assert all(isinstance(d, int) and 1 <= d <= 10 for d in seen)
    assert seen == [10, 5, 7, 6]


def test_random_monotone_step_curves_match_exhaustive():
    rng = np.random.default_rng(0)
    for _ in range(200):
        full_d = int(rng.integers(1, 300))
        values = np.sort(rng.uniform(0, 1, full_d))  # QoS(d) = values[d - 1], non-decreasing
        rule = QosRule(tolerance=float(rng.choice([0.0, 0.01, 0.05])))
        found = binary_search(full_d, lambda d, v=values: float(v[d - 1]), rule)
        brute = exhaustive(full_d, lambda d, v=values: float(v[d - 1]), rule)
        assert found.chosen_d == brute.chosen_d


def test_search_for_a_lower_target_reuses_known_models():
    curve = saturating(20.0)
    rule = QosRule(tolerance=0.0)
    first = binary_search(784, curve, rule)
    again = binary_search(784, curve, rule, target=0.6, known=first.trials)
    brute = next(d for d in range(1, 785) if curve(d) >= 0.6)
    assert again.chosen_d == brute
    assert not {t.d for t in again.trials} & {t.d for t in first.trials}


def test_unreachable_target_gives_none():
    result = binary_search(50, lambda d: 0.5, QosRule(tolerance=0.0), target=0.9)
    assert result.chosen_d is None


def test_step_sweep_trains_the_ten_percent_grid():
    result = step_sweep(784, saturating(20.0), QosRule())
    assert [t.d for t in result.trials] == [784, *(round(784 * k / 10) for k in range(1, 10))]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"tolerance": -0.1}, "tolerance"), ({"step": 0.0}, "bucket step")],
)
def test_bad_rules_are_rejected(kwargs, message):
    with pytest.raises(SearchError, match=message):
        QosRule(**kwargs)


def test_bad_range_is_rejected():
    with pytest.raises(SearchError, match="D: expected >= 1"):
        binary_search(0, lambda d: 1.0, QosRule())


def test_bucketing_rule_uses_lower_edges():
    rule = QosRule(step=0.05)
    assert rule.bucket(0.3) == 0.3
    assert rule.bucket(0.349) == 0.3
    assert rule.bucket(0.35) == 0.35
    assert rule.reaches(0.89, 0.9) is QosRule(tolerance=0.01).reaches(0.89, 0.9) is True


def test_qos_map_rows_and_diagnostics():
    trials = [Trial(d, q, 0.0) for d, q in [(784, 0.91), (392, 0.905), (196, 0.9), (98, 0.87),
                                            (49, 0.80), (24, 0.71), (36, 0.78)]]  # fmt: skip
    pmap = QosMap(QosRule(step=0.05), trials)
    rows = {r.level: r.sizes for r in pmap.levels()}
    assert rows == {0.9: (196, 392, 784), 0.85: (98,), 0.8: (49,), 0.75: (36,), 0.7: (24,)}
    assert {r.level: r.compression_range for r in pmap.levels()}[0.9] == 784 - 196
    assert pmap.qos_range() == pytest.approx(0.91 - 0.71)
    assert pmap.smallest_reaching(0.86) == 98
    assert pmap.smallest_reaching(0.76) == 36
    assert pmap.smallest_reaching(0.95) is None
    steps = [(t.from_level, t.to_level, t.added_features) for t in pmap.transitions()]
    assert steps == [(0.7, 0.75, 12), (0.75, 0.8, 13), (0.8, 0.85, 49), (0.85, 0.9, 98)]
    pmap.add(98, 0.92)  # a retrained model moves rows
    assert pmap.smallest_reaching(0.9) == 98
    assert QosMap.from_json(pmap.to_json()).qos_of == pmap.qos_of
