"""Synthetic (weak logits, labels, strong loss) for tests and simulation, and the same
three things from real classifiers.

The synthetic images have a hidden difficulty u ~ U(0, 1). The weak model's logit margin
for the true class and its sharpness both fall with u, so the entropy tells something,
but not everything, about whether the weak model fails; the strong model fails mostly on
the hardest images. That is the structure the offloading metric exploits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgebus.policies.metric import top_k_loss


@dataclass(frozen=True)
class LabelledLogits:
    logits: np.ndarray  # weak model, (count, classes)
    labels: np.ndarray
    strong_loss: np.ndarray  # 0/1 per image, at the same k as the weak loss is measured


def synthetic_images(count: int, classes: int = 100, k: int = 5, seed: int = 0) -> LabelledLogits:
    if count < 1 or classes < k:
        raise ValueError(f"synthetic: need count >= 1 and classes >= k, got {count}, {classes}")
    rng = np.random.default_rng(seed)
    u = rng.random(count)
    labels = rng.integers(0, classes, count)
    margin = 7.0 * (1 - u) + rng.normal(0, 1.0, count)
    sharpness = 0.6 + 2.0 * (1 - u) + rng.normal(0, 0.3, count).clip(-0.5, 0.5)
    logits = rng.normal(size=(count, classes))
    logits[np.arange(count), labels] += margin
    logits *= sharpness[:, None]
    strong_fails = rng.random(count) < 0.02 + 0.25 * u**4
    return LabelledLogits(logits, labels, strong_fails.astype(np.float64))


class LogitModel(Protocol):
    def logits(self, images: np.ndarray) -> np.ndarray: ...


def classifier_images(
    weak: LogitModel,
    strong: LogitModel,
    images: np.ndarray,
    labels: np.ndarray,
    k: int = 5,
    batch: int = 256,
) -> LabelledLogits:
    """Run real weak and strong classifiers (e.g. edgebus.codecs.classifier.Classifier)."""
    weak_logits, strong_loss = [], []
    for start in range(0, len(images), batch):
        part, lab = images[start : start + batch], labels[start : start + batch]
        weak_logits.append(np.asarray(weak.logits(part), dtype=np.float64))
        strong_loss.append(top_k_loss(np.asarray(strong.logits(part)), lab, k))
    return LabelledLogits(
        np.concatenate(weak_logits), np.asarray(labels), np.concatenate(strong_loss)
    )
