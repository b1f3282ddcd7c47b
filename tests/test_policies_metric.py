import numpy as np
import pytest

from edgebus.policies.costs import costs_from_logits, load_costs, save_costs
from edgebus.policies.metric import (
    KernelRegression,
    OffloadMetric,
    cross_entropy,
    entropy,
    fit_inverse_temperature,
    top_k_loss,
)
from edgebus.policies.synthetic import classifier_images, synthetic_images


def test_top_k_loss():
    logits = np.array([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    assert top_k_loss(logits, np.array([4, 0]), 5).tolist() == [0.0, 1.0]
    assert top_k_loss(logits, np.array([0, 0]), 1).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="k must be"):
        top_k_loss(logits, np.array([0, 0]), 7)


def test_temperature_search_finds_the_generating_temperature():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4000, 10)) * 2
    # Labels drawn from softmax(0.5 * base): the best inverse temperature on base is 0.5.
    p = np.exp(0.5 * base)
    p /= p.sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) > rng.random((4000, 1))).argmax(axis=1)
    beta = fit_inverse_temperature(base, labels)
    assert abs(beta - 0.5) < 0.08
    assert cross_entropy(base, labels, beta) <= cross_entropy(base, labels, 1.0)


def test_entropy_bounds():
    logits = np.array([[0.0, 0, 0, 0], [100.0, 0, 0, 0]])
    h = entropy(logits, 1.0)
    assert h[0] == pytest.approx(np.log(4)) and h[1] == pytest.approx(0, abs=1e-12)
    assert entropy(logits, 0.0)[1] == pytest.approx(np.log(4))


def test_kernel_regression_recovers_a_smooth_mean_and_picks_a_sensible_width():
    rng = np.random.default_rng(1)
    x = rng.random(3000)
    y = np.sin(3 * x) + rng.normal(0, 0.3, 3000)
    fit = KernelRegression.fit(x, y)
    inner = np.linspace(0.1, 0.9, 50)
    assert np.abs(fit(inner) - np.sin(3 * inner)).max() < 0.1
    assert 2**-8 <= fit.width <= 2**-4 + 1e-12


def test_offload_metric_ranks_images_by_expected_reward():
    d = synthetic_images(3000, seed=3)
    rewards = top_k_loss(d.logits, d.labels) - d.strong_loss
    fitted = OffloadMetric.fit(d.logits[:2000], d.labels[:2000], rewards[:2000])
    train = fitted(d.logits[:2000])
    assert abs(train.mean()) < 1e-9 and abs(train.std() - 1) < 1e-9
    test = fitted(d.logits[2000:])
    high = test > np.quantile(test, 0.8)
    assert rewards[2000:][high].mean() > rewards[2000:][~high].mean() + 0.2
    # E[R | metric] undoes the normalisation, back on the reward scale.
    assert np.allclose(fitted.expected_reward(test), fitted.expected_reward_raw(d.logits[2000:]))


def test_costs_round_trip_and_split(tmp_path):
    d = synthetic_images(900, seed=4)
    data, _ = costs_from_logits(d.logits, d.labels, d.strong_loss)
    assert len(data.train.metric) == 600 and len(data.test.metric) == 300
    assert abs(data.train.metric.mean()) < 1e-9
    path = tmp_path / "costs.npz"
    both = [np.concatenate((a, b)) for a, b in zip(
        (data.train.metric, data.train.wcost, data.train.scost),
        (data.test.metric, data.test.wcost, data.test.scost),
        strict=True,
    )]  # fmt: skip
    save_costs(path, *both)
    again = load_costs(path)
    assert len(again.train.metric) == 600
    assert set(np.unique(again.train.reward)) <= {-1.0, 0.0, 1.0}


def test_paper_layout_is_read_and_normalised_with_training_statistics(tmp_path):
    path = tmp_path / "ofa_top5.npz"
    tr, ts = np.array([1.0, 2, 3, 4]), np.array([2.5, 10])
    np.savez(path, metric_tr=tr, metric_ts=ts, wcost_tr=np.ones(4), scost_tr=np.zeros(4),
             wcost_ts=np.ones(2), scost_ts=np.ones(2))  # fmt: skip
    data = load_costs(path)
    assert np.allclose(data.test.metric, (ts - tr.mean()) / tr.std())
    assert data.train.reward.tolist() == [1.0] * 4 and data.test.reward.tolist() == [0.0, 0.0]


def test_missing_fields_and_bad_files_are_one_line(tmp_path):
    ours = tmp_path / "ours.npz"
    np.savez(ours, wcost=np.ones(3), metric=np.ones(3))
    with pytest.raises(ValueError, match=r"ours\.npz: missing field scost$"):
        load_costs(ours)
    paper = tmp_path / "paper.npz"
    np.savez(paper, metric_tr=np.ones(3), metric_ts=np.ones(3))
    with pytest.raises(ValueError, match=r"paper\.npz: missing field wcost_tr \(paper layout\)"):
        load_costs(paper)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz") as info:
        load_costs(junk)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"missing\.npz"):
        load_costs(tmp_path / "missing.npz")


class FixedModel:
    """Stands in for a Classifier: logits are looked up from the image's first pixel."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self.table[images[:, 0, 0, 0]]


def test_classifier_images_batches_and_scores_the_strong_model():
    rng = np.random.default_rng(6)
    images = rng.integers(0, 20, (45, 2, 2, 3)).astype(np.uint8)
    labels = rng.integers(0, 10, 45)
    weak, strong = FixedModel(rng.normal(size=(20, 10))), FixedModel(rng.normal(size=(20, 10)))
    out = classifier_images(weak, strong, images, labels, k=1, batch=7)
    assert np.array_equal(out.logits, weak.table[images[:, 0, 0, 0]])
    want = top_k_loss(strong.table[images[:, 0, 0, 0]], labels, 1)
    assert np.array_equal(out.strong_loss, want)
