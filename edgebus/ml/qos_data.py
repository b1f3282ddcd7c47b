"""Data sets of the QoS orchestrator (Amaizu et al.): flat vectors with integer labels.

- `grey_shapes`: 28x28 grey images of the ten procedural shape classes of shapes.py (784
  features), drawn centred on a dark background like Fashion-MNIST, whose stand-in they are;
  `fashion_mnist_flat` reads the real IDX files when given.
- `accelerometer`: a synthetic 6-activity tri-axial accelerometer set standing in for UCI
  HAR: 128-sample windows at 50 Hz (384 features), each class with its own gait frequency,
  amplitude, gravity orientation and noise, jittered per window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebus.flat_data import ACTIVITIES, WINDOW, accelerometer_window, grey_shape

__all__ = ["ACTIVITIES", "FlatSet", "accelerometer", "grey_shapes", "load_split"]
from edgebus.fashion_mnist import FASHION_CLASSES, IdxError, fashion_mnist_dir, read_fashion_mnist
from edgebus.ml.errors import DatasetError
from edgebus.shapes import SHAPE_CLASSES


@dataclass(frozen=True)
class FlatSet:
    """x (N, D) float32 scaled for the networks, y (N,) int64, and the class names."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    kind: str

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.shape != (self.x.shape[0],):
            raise DatasetError(f"{self.kind}: x {self.x.shape} and y {self.y.shape} disagree")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def take(self, start: int, count: int) -> FlatSet:
        return FlatSet(self.x[start : start + count], self.y[start : start + count],
                       self.class_names, self.kind)  # fmt: skip


def grey_shapes(seed: int, start: int, count: int, size: int = 28) -> FlatSet:
    if count < 0 or start < 0:
        raise DatasetError(f"shapes range: expected start, count >= 0, got {start}, {count}")
    x = np.empty((count, size * size), dtype=np.float32)
    y = np.empty(count, dtype=np.int64)
    for i in range(count):
        image, y[i] = grey_shape(seed, start + i, size)
        x[i] = image.reshape(-1) / 255.0
    return FlatSet(x, y, SHAPE_CLASSES, "shapes28")


def fashion_mnist_flat(root: str | Path, train: bool) -> FlatSet:
    """The IDX images as a sensor streams them (flat_data.fashion_item): pixels / 255."""
    try:
        images, labels = read_fashion_mnist(Path(root), train)
    except IdxError as exc:
        raise DatasetError(str(exc)) from None
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return FlatSet(x, labels, FASHION_CLASSES, "fashion-mnist")


def accelerometer(seed: int, start: int, count: int) -> FlatSet:
    """Windows start .. start+count-1, flattened axis-major and scaled by 1/2 g."""
    if count < 0 or start < 0:
        raise DatasetError(f"accelerometer range: expected start, count >= 0, got {start}, {count}")
    x = np.empty((count, WINDOW * 3), dtype=np.float32)
    y = np.empty(count, dtype=np.int64)
    for i in range(count):
        window, y[i] = accelerometer_window(seed, start + i)
        x[i] = window.T.reshape(-1) / 2.0
    return FlatSet(x, y, ACTIVITIES, "accelerometer")


DATASETS = ("shapes28", "accelerometer", "fashion-mnist")


def load_split(
    kind: str, seed: int, train: int, val: int, test: int, root: Path | None = None
) -> tuple[FlatSet, FlatSet, FlatSet]:
    """Disjoint train/val/test sets: consecutive index ranges of a generated set, or the IDX
    train file (train, then val) and test file of Fashion-MNIST under `root` (default: where
    EDGEBUS_FASHION_MNIST_DIR, else where Debian's dataset-fashion-mnist installs them)."""
    if kind == "fashion-mnist":
        root = fashion_mnist_dir() if root is None else root
        fit = fashion_mnist_flat(root, train=True)
        if train + val > len(fit):
            raise DatasetError(f"fashion-mnist: {len(fit)} training images < {train}+{val}")
        held_out = fashion_mnist_flat(root, False)
        if test > len(held_out):
            raise DatasetError(f"fashion-mnist: {len(held_out)} test images < {test}")
        return fit.take(0, train), fit.take(train, val), held_out.take(0, test)
    generators = {"shapes28": grey_shapes, "accelerometer": accelerometer}
    if kind not in generators:
        raise DatasetError(f"dataset {kind!r}: expected one of {', '.join(DATASETS)}")
    make = generators[kind]
    return make(seed, 0, train), make(seed, train, val), make(seed, train + val, test)
