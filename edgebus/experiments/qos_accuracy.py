"""Accuracy against compression rate (the QoS paper's Fig. 11, as a table): the cloud-only
classifier (CO) on raw data, ECO, ECCD, the unsupervised AE and PCA at the paper's five
compression rates, all scored on the same test images.

ECO and ECCD models are trained into a pool under the results folder (exported and
checksummed like the shipped pools), so Table 4's job cost runs on the very models this
table scores. The AE and PCA baselines are scored with the CO classifier on their
reconstructions, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgebus.ml.dense_ae import Recipe, train_dense
from edgebus.ml.qos_data import FlatSet
from edgebus.ml.qos_pool import PoolTrainer, pool_trainer
from edgebus.qos.compression_search import QosRule
from edgebus.qos.model_store import model_id_for
from edgebus.qos.qos_model import RAW

# Eq. 1's compression rates the paper samples; 95 % on Fashion-MNIST is its d = 39.
PAPER_RATES_PCT: tuple[float, ...] = (10.0, 50.0, 75.0, 95.0, 99.5)
CONFIGURATIONS = ("ECO", "ECCD")
BASELINES = ("AE", "PCA")
Step = Callable[[str], None]


def latent_for_rate(dim: int, rate_pct: float) -> int:
    """The d whose compression rate |d - D| / D is closest to `rate_pct` (at least 1)."""
    return max(1, round(dim * (1 - rate_pct / 100)))


def rate_of(dim: int, d: int) -> float:
    """Eq. 1: CR = |(d - D) / D| x 100 %."""
    return 100 * abs(d - dim) / dim


@dataclass(frozen=True)
class AccuracyRow:
    configuration: str  # CO, ECO, ECCD, AE or PCA
    rate_pct: float  # the paper's nominal rate; CO sends all D features (0 %)
    d: int
    actual_rate_pct: float
    accuracy: float
    psnr_db: float  # of the reconstruction; NaN for CO and ECO (no decoder at run time)
    train_seconds: float


@dataclass
class AccuracyTable:
    rows: list[AccuracyRow]
    pool: PoolTrainer  # ECO and ECCD models of every rate, for the job cost

    def accuracy(self, configuration: str, rate_pct: float) -> float:
        return next(
            r.accuracy for r in self.rows
            if r.configuration == configuration and r.rate_pct == rate_pct
        )  # fmt: skip


def accuracy_by_rate(
    out: Path, train: FlatSet, test: FlatSet, recipe: Recipe, step: Step,
    rates: Sequence[float] = PAPER_RATES_PCT,
) -> AccuracyTable:  # fmt: skip
    """Train CO once and every configuration and baseline at every rate; `out` receives the
    pool of ECO and ECCD models (scored on `test`, like every row)."""
    trainer, cloud = pool_trainer(out, train, test, recipe, QosRule())
    co = trainer.pool.get(RAW)
    rows = [AccuracyRow("CO", 0.0, train.dim, 0.0, co.accuracy, float("nan"), co.train_seconds)]
    step(f"CO accuracy {co.accuracy:.3f}")
    for rate in rates:
        d = latent_for_rate(train.dim, rate)
        for configuration in CONFIGURATIONS:
            trainer.train_one(configuration, d)
            stored = trainer.pool.get(model_id_for(train.kind, configuration, d))
            psnr = stored.psnr_db if configuration == "ECCD" else float("nan")
            rows.append(AccuracyRow(configuration, rate, d, rate_of(train.dim, d),
                                    stored.accuracy, psnr, stored.train_seconds))  # fmt: skip
        for baseline in BASELINES:
            scored = train_dense(baseline.lower(), d, train, test, recipe, cloud).scores
            rows.append(AccuracyRow(baseline, rate, d, rate_of(train.dim, d), scored.accuracy,
                                    scored.psnr_db, scored.train_seconds))  # fmt: skip
        step(f"accuracy at {rate:g} % (d = {d}) done")
    trainer.pool.save()
    return AccuracyTable(rows, trainer)
