"""Build the orchestrator's model pool: Algorithm 1 per configuration, every model kept.

Each probe of the binary search trains an ECO or ECCD model (ml/dense_ae.py), scores its
accuracy on the held-out set (the QoS the search compares), exports its ONNX files and
adds it to the pool (qos/model_store.py) with its sha256.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from torch import nn

from edgebus.ml.dense_ae import (
    Recipe,
    export_bundle,
    export_cloud_classifier,
    train_cloud_classifier,
    train_dense,
)
from edgebus.ml.errors import TrainingError
from edgebus.ml.qos_data import FlatSet, load_split
from edgebus.ml.training import seed_everything
from edgebus.qos.compression_search import QosRule, SearchResult, binary_search
from edgebus.qos.model_store import ModelPool, model_id_for

Report = Callable[[str], None]


def raw_item_bytes(dataset: str) -> int:
    """CO sends images as uint8 and accelerometer windows as float16."""
    return 2 if dataset == "accelerometer" else 1


class PoolTrainer:
    """Trains pool models of one data split into one pool folder."""

    def __init__(
        self, pool: ModelPool, train: FlatSet, held_out: FlatSet, recipe: Recipe,
        report: Report | None = None,
    ) -> None:  # fmt: skip
        self.pool = pool
        self.train = train
        self.held_out = held_out
        self.recipe = recipe
        self.report = report or (lambda _what: None)

    def train_one(self, configuration: str, d: int) -> float:
        """Train, export and store one model; returns its held-out accuracy."""
        trained = train_dense(configuration.lower(), d, self.train, self.held_out, self.recipe)
        with tempfile.TemporaryDirectory() as tmp:
            paths = export_bundle(trained, self.train.dim, Path(tmp))
            files = {name: path.read_bytes() for name, path in paths.items()}
        model_id = model_id_for(self.pool.dataset, configuration, d)
        s = trained.scores
        self.pool.add(model_id, configuration, d, s.accuracy, s.psnr_db, s.train_seconds, files)
        self.report(f"{model_id}: accuracy {s.accuracy:.3f}, {s.psnr_db:.1f} dB")
        return s.accuracy

    def search(self, configuration: str) -> SearchResult:
        result = binary_search(
            self.train.dim, lambda d: self.train_one(configuration, d), self.pool.rule
        )
        self.pool.searches.append(
            {"configuration": configuration, "strategy": result.strategy,
             "target": result.target, "chosen_d": result.chosen_d,
             "trials": [asdict(t) for t in result.trials]}
        )  # fmt: skip
        return result


def pool_trainer(
    out: Path, train: FlatSet, held_out: FlatSet, recipe: Recipe, rule: QosRule
) -> tuple[PoolTrainer, nn.Module]:
    """Train the cloud-only (CO) classifier on `train`, score it on `held_out`, and open (or
    extend) the pool at `out` with it as model "raw", for receivers of raw (CO) frames.
    Returns the trainer and the CO classifier (the AE and PCA baselines are scored with it)."""
    started = time.perf_counter()
    cloud, cloud_accuracy = train_cloud_classifier(train, held_out, recipe)
    cloud_seconds = time.perf_counter() - started
    try:
        pool = ModelPool.load(out)
        if pool.dataset != train.kind or pool.dim != train.dim:
            raise TrainingError(
                f"pool {out} holds {pool.dataset} (D = {pool.dim}); use another --out for "
                f"{train.kind}"
            )
    except ValueError:  # no pool yet
        pool = ModelPool(
            out, train.kind, train.dim, raw_item_bytes(train.kind), cloud_accuracy, rule
        )
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_cloud_classifier(cloud, train.dim, Path(tmp))
        files = {name: path.read_bytes() for name, path in paths.items()}
    pool.set_cloud_classifier(cloud_accuracy, cloud_seconds, files)
    return PoolTrainer(pool, train, held_out, recipe), cloud


def open_pool(
    out: Path, dataset: str, train_n: int, held_out_n: int, recipe: Recipe, rule: QosRule,
    root: Path | None = None,
) -> tuple[PoolTrainer, float]:  # fmt: skip
    """Load the data and open the pool with its CO classifier (see pool_trainer).

    QoS is scored on a hold-out of the training data (for Fashion-MNIST the training file's
    images after the first `train_n`, as the paper holds out 20 %), never on the test set,
    which stays for the experiments' reported accuracy."""
    seed_everything(recipe.seed, threads=1)
    train, held_out, _ = load_split(dataset, recipe.seed, train_n, held_out_n, 0, root)
    trainer, _ = pool_trainer(out, train, held_out, recipe, rule)
    return trainer, trainer.pool.cloud_accuracy


def search_pool(
    out: Path, dataset: str, configurations: Sequence[str], train_n: int, held_out_n: int,
    recipe: Recipe, rule: QosRule, report: Report | None = None, root: Path | None = None,
) -> tuple[ModelPool, list[SearchResult]]:  # fmt: skip
    trainer, _ = open_pool(out, dataset, train_n, held_out_n, recipe, rule, root)
    trainer.report = report or trainer.report
    results = [trainer.search(c) for c in configurations]
    trainer.pool.save()
    return trainer.pool, results
