"""Fashion-MNIST, the QoS paper's data set, from Debian's dataset-fashion-mnist: the split
the real-data models are trained on, and the shipped classifiers measured on its test set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgebus.codecs.assets import assets_dir
from edgebus.codecs.classifier import Classifier
from edgebus.ml.datasets import FASHION_CLASSES, fashion_split

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def split(fashion_mnist_dir):
    return fashion_split(fashion_mnist_dir, seed=0)


def test_the_split_keeps_the_published_test_set(split):
    record, train, val, test = split
    assert (len(train), len(val), len(test)) == (55_000, 5_000, 10_000)
    assert train.images.shape[1:] == (28, 28, 3) and train.class_names == list(FASHION_CLASSES)
    assert np.bincount(test.labels).tolist() == [1000] * 10  # the published test set
    assert record.kind == "fashion-mnist" and len(record.fingerprint) == 16


def test_the_shipped_classifiers_meet_their_targets(split):
    """Strong at least 90 % top-1; the weak one at most a quarter of its compute, and far
    enough below it that offloading a frame buys something."""
    _, _, _, test = split
    top1 = {}
    for kind in ("strong", "weak"):
        classifier = Classifier(f"fashion_{kind}")
        logits = np.concatenate(
            [classifier.logits(test.images[i : i + 1000]) for i in range(0, len(test), 1000)]
        )
        top1[kind] = float((logits.argmax(axis=1) == test.labels).mean())
        card = json.loads((assets_dir() / f"fashion_{kind}_classifier.json").read_text())
        assert card["test_top1"] == pytest.approx(top1[kind], abs=1e-3)  # the card is true
        top1[f"{kind}_macs"] = card["multiply_adds"]
    assert top1["strong"] >= 0.90
    assert top1["weak_macs"] <= top1["strong_macs"] / 4
    assert top1["strong"] - top1["weak"] >= 0.02


def test_the_shipped_fashion_costs_are_the_classifiers_own(fashion_mnist_dir):
    """The offloading costs on Fashion-MNIST: recomputed from the shipped classifiers on
    the 15,000 images they were not trained on, they equal the shipped file."""
    from edgebus.experiments.offloading_costs import fashion_classifier_costs

    arrays, _ = fashion_classifier_costs(root=fashion_mnist_dir)
    shipped = np.load(assets_dir() / "offloading_costs_fashion_top1.npz")
    # Another CPU's kernels may round a near-tie of two logits the other way: a handful of
    # images out of 15,000 may differ, no more.
    for key in ("wcost", "scost"):
        assert np.count_nonzero(arrays[key] != shipped[key]) <= 15
    assert np.mean(np.abs(arrays["metric"] - shipped["metric"]) > 1e-4) <= 1e-3
    assert len(arrays["wcost"]) == 15_000
    assert 0.12 < arrays["wcost"].mean() < 0.18 and 0.06 < arrays["scost"].mean() < 0.10
