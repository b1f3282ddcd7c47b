"""Algorithm 2: the smallest model meeting the request, the override rules, and Eq. 3's
online refit."""

from __future__ import annotations

import math

import pytest

from edgebus.qos.compression_search import QosRule
from edgebus.qos.qos_model import (
    RAW,
    Device,
    LinearQosEstimator,
    Policy,
    PoolModel,
    QosTarget,
    decide,
)


def pool(configuration: str = "ECO") -> list[PoolModel]:
    out = []
    for d in (2, 7, 13, 25, 49, 98, 196, 392, 784):
        accuracy = 0.9 * (1 - math.exp(-d / 10))
        psnr = 12 + 3 * math.log2(d)
        out.append(
            PoolModel(f"{configuration}-{d}", configuration, d, 784, accuracy, psnr, 2 * d + 8)
        )
    return out


MODELS = pool("ECO") + pool("ECCD")
POLICY = Policy(rule=QosRule(tolerance=0.005))
SLOW_LINK = 4000.0  # bit/s; raw 28x28 at 2 fps needs 12,544


def choose(**kwargs) -> object:
    target = QosTarget(**{"accuracy": 0.8, "bandwidth_bps": SLOW_LINK, **kwargs})
    return decide(target, MODELS, LinearQosEstimator(), POLICY, cloud_accuracy=0.91)


def test_smallest_latent_meeting_accuracy_is_chosen():
    decision = choose(accuracy=0.8)
    expected = min(m.d for m in pool() if m.accuracy >= 0.8 - 0.005)
    assert (decision.configuration, decision.d, decision.meets_target) == ("ECO", expected, True)
    assert decision.model_id == f"ECO-{expected}"
    assert "smallest ECO latent" in decision.reasons[0]
    assert choose(accuracy=0.5).d < expected < choose(accuracy=0.89).d


def test_image_quality_target_selects_eccd_with_enough_psnr():
    decision = choose(accuracy=0.5, image_quality_db=27.0)
    assert decision.configuration == "ECCD"
    assert decision.d == min(m.d for m in pool("ECCD") if m.psnr_db >= 27.0 and m.accuracy >= 0.495)


def test_override_edge_without_resources_sends_raw():
    for device in (Device(cpu=0.02, memory_mb=2048), Device(cpu=0.9, memory_mb=16)):
        decision = choose(device=device)
        assert (decision.model_id, decision.configuration) == (RAW, "CO")
        assert "no resources" in decision.reasons[0]


def test_override_high_bandwidth_sends_raw():
    decision = choose(bandwidth_bps=200_000)
    assert (decision.model_id, decision.configuration, decision.meets_target) == (RAW, "CO", True)
    assert "no compression is needed" in decision.reasons[0]
    assert choose(bandwidth_bps=12_000).model_id != RAW  # just under raw's 12,544 bit/s


def test_link_too_slow_for_the_qos_model_falls_back_to_the_best_that_fits():
    # 2 fps * 8 bit * (2d + 8) B <= 500 bit/s  ->  d <= 11
    decision = choose(accuracy=0.85, bandwidth_bps=500)
    assert decision.d == 7 and not decision.meets_target
    assert any("exceed the link" in r for r in decision.reasons)


def test_unreachable_accuracy_uses_the_best_model_and_says_so():
    decision = choose(accuracy=0.99, bandwidth_bps=12_000)
    # d = 392 needs 12,672 bit/s; 196 is the best estimate that fits
    assert not decision.meets_target and decision.d == 196
    assert "no ECO model reaches" in decision.reasons[0]


def test_estimator_starts_at_the_pool_measurements_and_refits_online():
    estimator = LinearQosEstimator(ridge=0.1)
    weak = Device(cpu=0.3, memory_mb=256)
    models = pool()
    for m in models:
        assert estimator.estimate(m, weak) == pytest.approx(m.accuracy)
    # A weak device reports 0.1 less than the pool measured, for every model.
    for _ in range(3):
        for m in models:
            estimator.observe(m, weak, m.accuracy - 0.1)
    assert estimator.observations == 27
    for m in models:
        assert estimator.estimate(m, weak) == pytest.approx(m.accuracy - 0.1, abs=0.02)
    target = QosTarget(accuracy=0.75, bandwidth_bps=SLOW_LINK, device=weak)
    before = decide(target, models, LinearQosEstimator(), POLICY, 0.91)
    after = decide(target, models, estimator, POLICY, 0.91)
    assert after.d > before.d  # the device needs a bigger latent for the same accuracy


def test_estimator_window_bounds_history():
    estimator = LinearQosEstimator(window=5)
    for _ in range(12):
        estimator.observe(pool()[0], Device(1.0, 0.0), 0.1)
    assert estimator.observations == 5


def test_empty_pool_for_the_configuration_is_a_clear_error():
    with pytest.raises(LookupError, match="no ECCD models"):
        decide(
            QosTarget(0.8, SLOW_LINK, image_quality_db=20.0), pool("ECO"), LinearQosEstimator(),
            POLICY, 0.9,
        )  # fmt: skip
