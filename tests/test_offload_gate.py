"""The camera's offloading gate: metric from the costs file, slot gaps, long-run bucket
safety, and one-line errors for bad offload settings."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from edgebus.codecs.classifier import Classifier
from edgebus.config import ConfigError, Settings, load_settings
from edgebus.ml.datasets import procedural_shapes
from edgebus.nodes.camera import CameraNode
from edgebus.nodes.offload_gate import PolicyGate
from edgebus.nodes.sources import CapturedFrame
from edgebus.policies.costs import (
    load_camera_metric,
    load_costs,
    metric_arrays,
    split_indices,
)
from edgebus.policies.metric import OffloadMetric
from edgebus.policies.runtime import OffloadDecider, policy_for, shipped_costs_path
from edgebus.policies.token_bucket import BucketParams


def _frame(frame_id: int, image: np.ndarray, capture_mono: float) -> CapturedFrame:
    return CapturedFrame(frame_id, image, 0, 1000.0 + capture_mono, capture_mono, 0.0, 0.0)


def test_camera_metric_reproduces_the_shipped_costs_metric():
    """The weak model's logits through the stored fitted metric give the metric the costs
    file (and so every threshold and DQN made from it) was computed with."""
    path = shipped_costs_path()
    metric = load_camera_metric(path)
    weak = Classifier("weak")
    split = weak.card["split"]
    first = int(split["train"]) + int(split["val"])
    images = procedural_shapes(int(split["seed"]), first, 64, weak.image_size).images
    ours = metric(weak.logits(images).astype(np.float64))
    with np.load(path) as npz:
        stored = npz["metric"][:64].astype(np.float64)
    np.testing.assert_allclose(ours, (stored - metric.mean) / metric.std, atol=1e-4)
    data = load_costs(path)
    assert abs(data.train.metric.mean()) < 1e-9 and data.train.metric.std() == pytest.approx(1)


def test_camera_metric_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 10)) * 3
    labels = rng.integers(0, 10, 300)
    rewards = rng.integers(-1, 2, 300).astype(float)
    fitted = OffloadMetric.fit(logits, labels, rewards)
    path = tmp_path / "costs.npz"
    stored = fitted(logits)
    np.savez(path, metric=stored, wcost=np.zeros(300), scost=np.zeros(300), **metric_arrays(fitted))
    metric = load_camera_metric(path)
    data = load_costs(path)
    full = np.empty(300)
    tr, ts = split_indices(300)
    full[tr], full[ts] = data.train.metric, data.test.metric
    np.testing.assert_allclose(metric(logits), full, atol=1e-9)
    np.savez(tmp_path / "old.npz", metric=stored, wcost=np.zeros(300), scost=np.zeros(300))
    with pytest.raises(ValueError, match=r"old\.npz: no fitted metric \(metric_beta missing\)"):
        load_camera_metric(tmp_path / "old.npz")
    with pytest.raises(ValueError, match=r"nope\.npz: does not exist"):
        load_camera_metric(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read it as npz"):
        load_camera_metric(tmp_path / "junk.npz")


async def test_gate_counts_skipped_slots_and_answers_with_the_weak_model():
    gate = PolicyGate("always", 0.5, 1.0, period_s=0.1)
    image = procedural_shapes(7, 0, 1, 64).images[0]
    answers = [await gate.admit(_frame(i, image, t)) for i, t in enumerate((0.0, 0.1, 0.2, 0.5))]
    assert [a.weak.gap for a in answers] == [1, 1, 1, 3]
    # r = 1/2, b = 1: offload, no token, offload (a token back after two slots), then three
    # slots refill to the depth again.
    assert [a.offload for a in answers] == [True, False, True, True]
    weak = answers[0].weak
    assert len(weak.top_k) == 5 and weak.scores == sorted(weak.scores, reverse=True)
    assert weak.top_k[0] == int(np.argmax(Classifier("weak").logits(image)[0]))
    # A frame of another size is fitted to the weak model's input, not refused.
    big = np.asarray(np.kron(image, np.ones((2, 2, 1))), dtype=np.uint8)
    assert (await gate.admit(_frame(4, big, 0.6))).weak is not None


@pytest.mark.parametrize("mode", ["always", "baseline", "mdp"])
def test_bucket_is_never_overdrawn_over_a_long_run(mode):
    """100,000 images with random gaps, replayed through a float bucket (Eq. 1)."""
    rate, depth = 0.1, 4.0
    params = BucketParams.from_rate(rate, depth)
    decider = OffloadDecider(policy_for(mode, params, load_costs(shipped_costs_path())), params)
    rng = np.random.default_rng(1)
    metrics = rng.normal(size=100_000)
    gaps = rng.integers(1, 4, size=100_000)
    tokens, offloads = depth, 0
    for i in range(len(metrics)):
        gap = int(gaps[i])
        if i:
            tokens = min(depth, tokens + rate * gap)
        decision = decider.decide(float(metrics[i]), gap)
        assert decision.level_before / params.p == pytest.approx(tokens)
        if decision.offload:
            assert tokens >= 1 - 1e-9
            tokens -= 1
            offloads += 1
    assert offloads <= depth + rate * int(gaps[1:].sum())
    assert offloads > 0


def test_bad_offload_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="offload: expected one of off, never"):
        load_settings(None, {"offload": "sometimes"})
    with pytest.raises(
        ConfigError, match=r"offload_rate: expected tokens per frame slot in \(0, 1\]"
    ):
        load_settings(None, {"offload_rate": -1.0})
    with pytest.raises(ConfigError, match="an offload costs one token"):
        load_settings(None, {"offload_rate": 2.0})
    with pytest.raises(ConfigError, match=r"offload_policy: file .* does not exist"):
        load_settings(None, {"offload_policy": str(tmp_path / "none.json")})
    with pytest.raises(ConfigError, match=r"camera c1: bucket rate r=0\.001 is below 1/100"):
        CameraNode(Settings(node_id="c1", offload="mdp", offload_rate=0.001))
    with pytest.raises(ConfigError, match=r"camera c2: no shipped DQN for bucket"):
        CameraNode(Settings(node_id="c2", offload="dqn", offload_rate=0.25, offload_bucket=2))
    junk = tmp_path / "costs.npz"
    junk.write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"camera c3: costs file .*costs\.npz"):
        CameraNode(Settings(node_id="c3", offload="mdp", offload_costs=str(junk)))


def test_gate_runs_off_the_event_loop():
    gate = PolicyGate("mdp", 0.1, 4.0, period_s=0.1)
    image = procedural_shapes(7, 0, 1, 64).images[0]

    async def both() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        for i in range(5):
            await gate.admit(_frame(i, image, i * 0.1))
        task.cancel()
        assert ticks > 50  # the loop kept running while the weak model did

    asyncio.run(both())
