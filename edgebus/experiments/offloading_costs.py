"""Per-image costs of the shipped weak and strong classifiers, for the offloading simulation.

The images are the procedural shapes from the classifiers' recorded test split on: index
train + val onwards of the same seed. The first `test` of them are the recorded test split;
the rest are fresh draws of the same generator, which neither model saw in training or
validation. The metric is fitted on the training part of the seeded 2/3 split that
`load_costs` later redoes, so a saved file reloads to the same train/test halves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgebus.codecs.classifier import Classifier
from edgebus.ml.datasets import FASHION_MNIST_DIR, fashion_split, procedural_shapes
from edgebus.policies.costs import costs_from_logits, metric_arrays
from edgebus.policies.metric import OffloadMetric, top_k_loss

Tick = Callable[[int], None]
CHUNK = 500


def classifier_costs(
    count: int,
    k: int = 1,
    assets: Path | None = None,
    threads: int = 2,
    tick: Tick | None = None,
) -> tuple[dict[str, np.ndarray], OffloadMetric]:
    """(metric, wcost, scost) for `count` held-out images, and the fitted metric."""
    weak = Classifier("weak", assets, threads)
    strong = Classifier("strong", assets, threads)
    split = weak.card["split"]
    seed, first = int(split["seed"]), int(split["train"]) + int(split["val"])
    logits, labels, strong_loss = [], [], []
    for start in range(0, count, CHUNK):
        part = procedural_shapes(seed, first + start, min(CHUNK, count - start), weak.image_size)
        logits.append(weak.logits(part.images).astype(np.float64))
        strong_loss.append(top_k_loss(strong.logits(part.images), part.labels, k))
        labels.append(part.labels)
        if tick is not None:
            tick(len(part))
    return _costs(np.concatenate(logits), np.concatenate(labels), np.concatenate(strong_loss), k)


def fashion_classifier_costs(
    k: int = 1,
    assets: Path | None = None,
    threads: int = 2,
    tick: Tick | None = None,
    root: Path = FASHION_MNIST_DIR,
) -> tuple[dict[str, np.ndarray], OffloadMetric]:
    """The same for the Fashion-MNIST weak and strong classifiers, on the 15,000 images
    neither was trained on: the validation hold-out (used only to pick an epoch) and the
    published test set."""
    weak = Classifier("fashion_weak", assets, threads)
    strong = Classifier("fashion_strong", assets, threads)
    seed = int(weak.card["split"]["seed"])
    _, _, val, test = fashion_split(root, seed, int(weak.card["split"]["val"]))
    images = np.concatenate([val.images, test.images])
    labels = np.concatenate([val.labels, test.labels])
    logits, strong_loss = [], []
    for start in range(0, len(images), CHUNK):
        part = slice(start, start + CHUNK)
        logits.append(weak.logits(images[part]).astype(np.float64))
        strong_loss.append(top_k_loss(strong.logits(images[part]), labels[part], k))
        if tick is not None:
            tick(len(images[part]))
    return _costs(np.concatenate(logits), labels, np.concatenate(strong_loss), k)


def _costs(
    logits: np.ndarray, labels: np.ndarray, scost: np.ndarray, k: int
) -> tuple[dict[str, np.ndarray], OffloadMetric]:
    _, fitted = costs_from_logits(logits, labels, scost, k=k)
    arrays: dict[str, np.ndarray] = {
        "metric": fitted(logits).astype(np.float32),
        "wcost": top_k_loss(logits, labels, k).astype(np.uint8),
        "scost": scost.astype(np.uint8),
    }
    return arrays, fitted


def save_classifier_costs(path: Path, arrays: dict[str, np.ndarray], fitted: OffloadMetric) -> None:
    """The costs and the fitted metric in one npz: cameras read the metric back
    (`policies.costs.load_camera_metric`) to score their weak model's logits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # numpy's stubs type savez's keyword arrays narrower than the arrays it accepts.
    np.savez_compressed(path, **arrays, **metric_arrays(fitted))  # type: ignore[arg-type]
