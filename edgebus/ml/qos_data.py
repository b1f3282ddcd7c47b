"""Data sets of the QoS orchestrator (Amaizu et al.): flat vectors with integer labels.

- `grey_shapes`: 28x28 grey images of step 2's ten shape classes (784 features), drawn
  centred on a dark background like Fashion-MNIST, whose stand-in they are;
  `fashion_mnist_flat` reads the real IDX files when given.
- `accelerometer`: a synthetic 6-activity tri-axial accelerometer set standing in for UCI
  HAR: 128-sample windows at 50 Hz (384 features), each class with its own gait frequency,
  amplitude, gravity orientation and noise, jittered per window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from edgebus.ml.datasets import load_fashion_mnist
from edgebus.ml.errors import DatasetError
from edgebus.shapes import (
    SHAPE_CLASSES,
    _draw_shape,
)

ACTIVITIES: tuple[str, ...] = (
    "walking",
    "walking_upstairs",
    "walking_downstairs",
    "sitting",
    "standing",
    "laying",
)
SAMPLE_RATE_HZ = 50.0
WINDOW = 128


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


def _grey(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) to float32 (N, H*W) in [0, 1] with ITU-R 601 luma weights."""
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (luma / 255.0).reshape(len(images), -1)


def grey_shape(seed: int, index: int, size: int = 28) -> tuple[np.ndarray, int]:
    """One image of the step 2 shape classes drawn the Fashion-MNIST way: a light object
    roughly centred on a dark, slightly noisy background, rendered at 4x and downsampled."""
    rng = np.random.default_rng([seed, index, size, 1])
    label = index % len(SHAPE_CLASSES)
    big = 4 * size
    image = Image.new("RGB", (big, big), (0, 0, 0))
    brightness = int(rng.integers(150, 256))
    centre = tuple(float(big / 2 + rng.uniform(-0.08, 0.08) * big) for _ in range(2))
    radius = float(rng.uniform(0.26, 0.38) * big)
    angle = float(rng.uniform(0, 2 * np.pi))
    # The step 2 drawing code, so the classes are the same shapes.
    _draw_shape(ImageDraw.Draw(image), SHAPE_CLASSES[label], centre, radius, angle,  # type: ignore[arg-type]
                (brightness,) * 3, (0, 0, 0))  # fmt: skip
    grey = np.asarray(image.convert("L").resize((size, size), Image.Resampling.BOX), np.float32)
    grey = grey + rng.normal(0, rng.uniform(2, 12), grey.shape)
    return np.clip(grey, 0, 255).astype(np.uint8), label


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
    data = load_fashion_mnist(root, train)
    return FlatSet(_grey(data.images), data.labels, tuple(data.class_names), "fashion-mnist")


# Per activity: gait frequency (Hz), dynamic amplitude (g), gravity direction (x, y, z),
# noise (g). Sitting and standing differ mainly by orientation, as in the real data.
_PROFILES: dict[str, tuple[float, float, tuple[float, float, float], float]] = {
    "walking": (1.9, 0.35, (0.0, 0.0, 1.0), 0.05),
    "walking_upstairs": (1.5, 0.30, (0.2, 0.0, 0.98), 0.06),
    "walking_downstairs": (2.3, 0.50, (-0.2, 0.0, 0.98), 0.08),
    "sitting": (0.0, 0.01, (0.0, 0.55, 0.83), 0.02),
    "standing": (0.0, 0.01, (0.0, 0.1, 0.99), 0.02),
    "laying": (0.0, 0.01, (0.95, 0.0, 0.3), 0.02),
}


def accelerometer_window(seed: int, index: int) -> tuple[np.ndarray, int]:
    """Window `index` (128 x 3, in g) and its label; the same (seed, index) gives the same data."""
    rng = np.random.default_rng([seed, index, 384])
    label = index % len(ACTIVITIES)
    frequency, amplitude, gravity, noise = _PROFILES[ACTIVITIES[label]]
    t = np.arange(WINDOW) / SAMPLE_RATE_HZ
    g = np.asarray(gravity) + rng.normal(0, 0.06, 3)
    g = g / np.linalg.norm(g)
    f = frequency * rng.uniform(0.85, 1.15)
    a = amplitude * rng.uniform(0.7, 1.3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    # Each axis sees the gait with its own phase and weight; harmonics give a step shape.
    weights = rng.uniform(0.4, 1.0, 3)
    dynamic = (
        a
        * weights[None, :]
        * (
            np.sin(2 * np.pi * f * t[:, None] + phase)
            + 0.3 * np.sin(4 * np.pi * f * t[:, None] + phase)
        )
    )
    window = g[None, :] + dynamic + rng.normal(0, noise, (WINDOW, 3))
    return window.astype(np.float32), label


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
    train file (train, then val) and test file of Fashion-MNIST under `root`."""
    if kind == "fashion-mnist":
        if root is None:
            raise DatasetError("fashion-mnist: pass the folder holding the IDX files")
        fit = fashion_mnist_flat(root, train=True)
        if train + val > len(fit):
            raise DatasetError(f"fashion-mnist: {len(fit)} training images < {train}+{val}")
        return (
            fit.take(0, train),
            fit.take(train, val),
            fashion_mnist_flat(root, False).take(0, test),
        )
    generators = {"shapes28": grey_shapes, "accelerometer": accelerometer}
    if kind not in generators:
        raise DatasetError(f"dataset {kind!r}: expected one of {', '.join(DATASETS)}")
    make = generators[kind]
    return make(seed, 0, train), make(seed, train, val), make(seed, train + val, test)
