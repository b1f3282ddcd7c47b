"""Frame sources for cameras. The built-in synthetic source needs no files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# Ten well-separated colours: the synthetic frame's class is the colour of its square.
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [250, 250, 250],
        [128, 128, 0],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True, slots=True)
class Frame:
    frame_id: int
    image: np.ndarray  # H×W×3 uint8
    label: int


class SyntheticSource:
    """Noisy dark frames, each with one square in a class colour at a random place."""

    def __init__(self, width: int = 64, height: int = 64, seed: int = 0) -> None:
        if width < 8 or height < 8:
            raise ValueError(f"synthetic frames need at least 8×8 pixels, got {width}×{height}")
        self.width = width
        self.height = height
        self._rng = np.random.default_rng(seed)

    def frame(self, frame_id: int) -> Frame:
        rng = self._rng
        image = rng.integers(0, 60, size=(self.height, self.width, 3), dtype=np.uint8)
        label = int(rng.integers(0, len(PALETTE)))
        side = int(
            rng.integers(
                max(2, min(self.width, self.height) // 6), max(3, min(self.width, self.height) // 2)
            )
        )
        top = int(rng.integers(0, self.height - side))
        left = int(rng.integers(0, self.width - side))
        jitter = rng.normal(0, 12, size=3)
        colour = np.clip(PALETTE[label] + jitter, 0, 255).astype(np.uint8)
        image[top : top + side, left : left + side] = colour
        return Frame(frame_id, image, label)

    def __iter__(self) -> Iterator[Frame]:
        frame_id = 0
        while True:
            yield self.frame(frame_id)
            frame_id += 1


class PaletteClassifier:
    """Ranks the palette colours by distance to the frame's brightest pixels.

    It is the edge's model for the synthetic source until a trained classifier is
    configured; zero-filled (missing) pixels simply count as background.
    """

    def top_k(self, image: np.ndarray, k: int = 5) -> tuple[list[int], list[float]]:
        pixels = image.reshape(-1, 3).astype(np.float32)
        brightness = pixels.max(axis=1)
        foreground = pixels[brightness >= max(60.0, float(np.percentile(brightness, 90)))]
        if len(foreground) == 0:
            foreground = pixels
        centre = foreground.mean(axis=0)
        distance = np.linalg.norm(PALETTE - centre, axis=1)
        scores = np.exp(-distance / 40.0)
        scores /= scores.sum()
        order = np.argsort(-scores)[:k]
        return [int(i) for i in order], [float(scores[i]) for i in order]
