"""Flat data items of the QoS orchestrator's data sets, generated at run time (numpy +
Pillow, no torch): a sensor node streams them, and `ml.qos_data` builds its training sets
from the same functions, so a deployed node and the pool's training data agree exactly.

- `shapes28`: 28x28 grey images of the procedural shape classes of shapes.py (the
  Fashion-MNIST stand-in), 784 features in [0, 1];
- `accelerometer`: 128-sample tri-axial windows at 50 Hz (the UCI HAR stand-in), 384
  features, axis-major and scaled by 1/2 g;
- `fashion-mnist`: not generated but read: the real test images of Fashion-MNIST (784
  features in [0, 1]), which pools are trained without, from the installed IDX files.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from edgebus.fashion_mnist import fashion_test_set
from edgebus.shapes import SHAPE_CLASSES, _draw_shape

FLAT_KINDS = ("shapes28", "accelerometer", "fashion-mnist")
# Values per item, what a pool's models must take to code a source's items.
FLAT_DIMS = {"shapes28": 784, "accelerometer": 384, "fashion-mnist": 784}
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


def grey_shape(seed: int, index: int, size: int = 28) -> tuple[np.ndarray, int]:
    """One image of the procedural shape classes of shapes.py drawn the Fashion-MNIST way:
    a light object roughly centred on a dark, slightly noisy background, rendered at 4x
    and downsampled."""
    rng = np.random.default_rng([seed, index, size, 1])
    label = index % len(SHAPE_CLASSES)
    big = 4 * size
    image = Image.new("RGB", (big, big), (0, 0, 0))
    brightness = int(rng.integers(150, 256))
    cx, cy = (float(big / 2 + rng.uniform(-0.08, 0.08) * big) for _ in range(2))
    centre = (cx, cy)
    radius = float(rng.uniform(0.26, 0.38) * big)
    angle = float(rng.uniform(0, 2 * np.pi))
    # The drawing code of shapes.py, so the classes are the same shapes.
    shade = (brightness, brightness, brightness)
    _draw_shape(
        ImageDraw.Draw(image), SHAPE_CLASSES[label], centre, radius, angle, shade, (0, 0, 0)
    )
    grey = np.asarray(image.convert("L").resize((size, size), Image.Resampling.BOX), np.float64)
    grey = grey + rng.normal(0, rng.uniform(2, 12), grey.shape)
    return np.clip(grey, 0, 255).astype(np.uint8), label


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


def flat_item(kind: str, seed: int, index: int) -> tuple[np.ndarray, int]:
    """Item `index` of a generated flat data set as the networks see it: float32 (D,)."""
    if kind == "accelerometer":
        window, label = accelerometer_window(seed, index)
        return (window.T.reshape(-1) / 2.0).astype(np.float32), label
    if kind == "shapes28":
        image, label = grey_shape(seed, index)
        return (image.reshape(-1) / 255.0).astype(np.float32), label
    if kind == "fashion-mnist":
        return fashion_item(index)
    raise ValueError(f"flat data set {kind!r}: expected one of {', '.join(FLAT_KINDS)}")


def fashion_item(index: int) -> tuple[np.ndarray, int]:
    """Test image `index` (cycling through the 10,000) as float32 (784,) in [0, 1]."""
    images, labels = fashion_test_set()
    i = index % len(images)
    return images[i].reshape(-1).astype(np.float32) / 255.0, int(labels[i])
