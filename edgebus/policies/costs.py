"""Per-image costs (losses of the weak and strong models) and metrics, from npz files.

Two layouts are read:
- ours: `wcost`, `scost`, `metric`, one entry per image; split here into train/test;
- the paper's published `ofa_top5` file: `metric_tr`, `wcost_tr`, `scost_tr` and the same
  with `_ts`, already split.
Either way metrics are z-normalised with the training split's mean and deviation.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebus.policies.metric import KernelRegression, OffloadMetric, top_k_loss

OURS = ("wcost", "scost", "metric")
# The fitted metric itself (weak logits -> metric), so a camera computes exactly the metric
# the thresholds and DQNs of this file were made with.
METRIC_FIELDS = (
    "metric_beta",
    "metric_grid",
    "metric_table",
    "metric_width",
    "metric_mean",
    "metric_std",
)
PAPER = ("metric_tr", "wcost_tr", "scost_tr", "metric_ts", "wcost_ts", "scost_ts")


@dataclass(frozen=True)
class CostSplit:
    metric: np.ndarray
    wcost: np.ndarray
    scost: np.ndarray

    @property
    def reward(self) -> np.ndarray:
        return self.wcost - self.scost

    def sorted_by_metric(self) -> CostSplit:
        """The locreset traces index a metric-sorted dataset."""
        order = np.argsort(self.metric, kind="stable")
        return CostSplit(self.metric[order], self.wcost[order], self.scost[order])


@dataclass(frozen=True)
class CostData:
    train: CostSplit
    test: CostSplit


def _normalised(train: CostSplit, test: CostSplit) -> CostData:
    mean, std = float(train.metric.mean()), float(train.metric.std()) or 1.0

    def norm(s: CostSplit) -> CostSplit:
        return CostSplit((s.metric - mean) / std, s.wcost, s.scost)

    return CostData(norm(train), norm(test))


def split_indices(
    count: int, train_fraction: float = 2 / 3, seed: int = 0, least: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The seeded (train, test) image indices every costs file is split by."""
    cut = round(count * train_fraction)
    if not least <= cut < count:
        raise ValueError(f"costs: {count} images cannot be split {train_fraction:.2f} train")
    order = np.random.default_rng(seed).permutation(count)
    return order[:cut], order[cut:]


def split_costs(
    metric: np.ndarray,
    wcost: np.ndarray,
    scost: np.ndarray,
    train_fraction: float = 2 / 3,
    seed: int = 0,
) -> CostData:
    """A seeded random train/test split (the paper uses 2/3 for training)."""
    metric, wcost, scost = (np.asarray(a, dtype=np.float64) for a in (metric, wcost, scost))
    if not metric.shape == wcost.shape == scost.shape or metric.ndim != 1:
        raise ValueError("costs: metric, wcost and scost must be 1-D arrays of one length")
    tr, ts = split_indices(len(metric), train_fraction, seed)
    return _normalised(
        CostSplit(metric[tr], wcost[tr], scost[tr]), CostSplit(metric[ts], wcost[ts], scost[ts])
    )


def load_costs(path: str | Path, train_fraction: float = 2 / 3, seed: int = 0) -> CostData:
    """Read either layout; a missing file or field is one line naming both."""
    path = Path(path)
    try:
        npz = np.load(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"costs file {path}: cannot read it as npz ({exc})") from None
    with npz:
        names = set(npz.files)
        if "metric_tr" in names or "metric_ts" in names:
            missing = [f for f in PAPER if f not in names]
            if missing:
                raise ValueError(f"costs file {path}: missing field {missing[0]} (paper layout)")
            arrays = {f: np.asarray(npz[f], dtype=np.float64).ravel() for f in PAPER}
            return _normalised(
                CostSplit(arrays["metric_tr"], arrays["wcost_tr"], arrays["scost_tr"]),
                CostSplit(arrays["metric_ts"], arrays["wcost_ts"], arrays["scost_ts"]),
            )
        missing = [f for f in OURS if f not in names]
        if missing:
            raise ValueError(f"costs file {path}: missing field {missing[0]}")
        arrays = {f: np.asarray(npz[f], dtype=np.float64).ravel() for f in OURS}
    return split_costs(arrays["metric"], arrays["wcost"], arrays["scost"], train_fraction, seed)


def save_costs(path: str | Path, metric: np.ndarray, wcost: np.ndarray, scost: np.ndarray) -> None:
    np.savez(Path(path), metric=metric, wcost=wcost, scost=scost)


def costs_from_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    strong_loss: np.ndarray,
    k: int = 5,
    train_fraction: float = 2 / 3,
    seed: int = 0,
) -> tuple[CostData, OffloadMetric]:
    """Fit the metric on the training split only, then score every image with it."""
    weak_loss = top_k_loss(logits, labels, k)
    strong_loss = np.asarray(strong_loss, dtype=np.float64)
    tr, _ = split_indices(len(labels), train_fraction, seed, least=4)
    fitted = OffloadMetric.fit(logits[tr], labels[tr], weak_loss[tr] - strong_loss[tr])
    metric = fitted(logits)
    return split_costs(metric, weak_loss, strong_loss, train_fraction, seed), fitted


def metric_arrays(fitted: OffloadMetric) -> dict[str, np.ndarray]:
    """The fields that store a fitted metric beside the costs (see `load_offload_metric`);
    scalars as 0-d arrays, as np.savez stores them."""
    return {
        "metric_beta": np.asarray(fitted.beta, np.float64),
        "metric_grid": fitted.regression.grid,
        "metric_table": fitted.regression.table,
        "metric_width": np.asarray(fitted.regression.width, np.float64),
        "metric_mean": np.asarray(fitted.mean, np.float64),
        "metric_std": np.asarray(fitted.std, np.float64),
    }


@dataclass(frozen=True)
class CameraMetric:
    """Weak logits -> the metric in the units of a costs file's `CostData`: the fitted
    metric, then the same train-split z-normalisation `load_costs` applies."""

    fitted: OffloadMetric
    mean: float
    std: float

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return (self.fitted(logits) - self.mean) / self.std


def load_camera_metric(
    path: str | Path, train_fraction: float = 2 / 3, seed: int = 0
) -> CameraMetric:
    """The metric a camera computes from its weak logits, from a costs file saved with its
    fitted metric (`edgebus train costs`); anything missing is one line naming the file."""
    path = Path(path)
    try:
        npz = np.load(path)
    except FileNotFoundError:
        raise ValueError(f"costs file {path}: does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"costs file {path}: cannot read it as npz ({exc})") from None
    with npz:
        missing = [f for f in (*METRIC_FIELDS, "metric") if f not in npz.files]
        if missing:
            raise ValueError(
                f"costs file {path}: no fitted metric ({missing[0]} missing); a camera needs "
                "one: make the file with `edgebus train costs`"
            )
        f = {name: np.asarray(npz[name], dtype=np.float64) for name in METRIC_FIELDS}
        stored = np.asarray(npz["metric"], dtype=np.float64).ravel()
    grid, table = f["metric_grid"].ravel(), f["metric_table"].ravel()
    if grid.shape != table.shape or len(grid) < 2 or not np.all(np.diff(grid) > 0):
        raise ValueError(f"costs file {path}: metric_grid/metric_table are not a 1-D table")
    fitted = OffloadMetric(
        float(f["metric_beta"]),
        KernelRegression(grid, table, float(f["metric_width"])),
        float(f["metric_mean"]),
        float(f["metric_std"]),
    )
    # load_costs z-normalises the stored metric with its training split's statistics; the
    # camera applies the same ones so its metric lands in exactly the same units.
    train_metric = stored[split_indices(len(stored), train_fraction, seed)[0]]
    return CameraMetric(fitted, float(train_metric.mean()), float(train_metric.std()) or 1.0)
